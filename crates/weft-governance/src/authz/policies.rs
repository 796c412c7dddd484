//! Policy resources: their scope (global or one domain), the apply-time checks (name, size, Cedar
//! syntax, schema validation, the domain scope rule), and the evaluation-time guard added to every
//! domain policy.
//!
//! Owns what a Policy resource may say and where its errors point (line and column in its text).
//! It does not assemble the policy sets a request is decided by, and does not decide requests:
//! that is the parent module's `Authorizer`.

use std::str::FromStr;

use cedar_policy::{ActionConstraint, Effect, Policy, PolicyId, PolicySet, ResourceConstraint, ValidationMode, Validator};
use miette::Diagnostic;

use super::entities::Mesh;
use super::schema::{Action, TYPE_DATA_PRODUCT, TYPE_DOMAIN, TYPE_PRINCIPAL, TYPE_STREAM, schema};
use super::{DEFAULT_POLICY_NAME, POLICIES_PER_RESOURCE_MAX, POLICY_NAME_BYTES_MAX, POLICY_TEXT_BYTES_MAX};
use crate::codes;
use crate::identity::ADMIN_PRINCIPAL;

/// Where a Policy resource applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyScope {
    /// `scope: global`: applied by admins, may speak about anything.
    Global,
    /// `scope: domain` with its `domain`: may only speak about that domain's resources.
    Domain(String),
}

/// A stored Policy resource: `apiVersion: weft/v1, kind: Policy, name, scope, domain, policies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub name: String,
    pub scope: PolicyScope,
    pub text: String,
}

/// Why a Policy resource was refused. `line` and `column` (1-based, column in characters) point into
/// its `policies` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: policy {policy}: line {line}, column {column}: {message}")]
pub struct PolicyError {
    pub code: &'static str,
    /// The Policy resource's name.
    pub policy: String,
    /// The index of the offending policy within the resource, when one is at fault.
    pub index: Option<usize>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Checks a Policy resource at apply time: its name, size, Cedar syntax, schema validity and, for a
/// domain policy, the domain scope rule against the current mesh. Returns the number of policies.
pub fn check_policy_resource(name: &str, scope: &PolicyScope, text: &str, mesh: &Mesh) -> Result<usize, PolicyError> {
    let source = PolicySource { name: name.to_string(), scope: scope.clone(), text: text.to_string() };
    Ok(check_source(&source, mesh, MembershipCheck::Require)?.len())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MembershipCheck {
    Require,
    Skip,
}

pub(crate) struct CheckedPolicy {
    pub(crate) policy: Policy,
    pub(crate) text: String,
}

pub(crate) fn check_source(source: &PolicySource, mesh: &Mesh, membership: MembershipCheck) -> Result<Vec<CheckedPolicy>, PolicyError> {
    let name = source.name.as_str();
    let text = source.text.as_str();
    let resource_error = |message: &str| policy_error(codes::POLICY_INVALID_RESOURCE, name, None, "", 0, message.to_string());
    let name_ok = !name.is_empty()
        && name.len() <= POLICY_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(resource_error("a Policy name is 1 to 128 characters of [A-Za-z0-9._-]"));
    }
    if name == DEFAULT_POLICY_NAME {
        return Err(resource_error("the Policy name `default` is reserved for the built-in policies"));
    }
    if let PolicyScope::Domain(domain) = &source.scope
        && domain.is_empty()
    {
        return Err(resource_error("a domain Policy names its domain"));
    }
    if text.len() > POLICY_TEXT_BYTES_MAX {
        return Err(policy_error(codes::POLICY_TOO_LARGE, name, None, "", 0, "policies text is over 64 KiB".to_string()));
    }

    let parsed = match PolicySet::from_str(text) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let offset = first_label_offset(&errors).unwrap_or(0);
            let message = errors.iter().next().map_or_else(|| errors.to_string(), |error| error.to_string());
            return Err(policy_error(codes::POLICY_SYNTAX_ERROR, name, None, text, offset, message));
        }
    };
    if let Some(template) = parsed.templates().next() {
        let offset = text.find(&template.to_string()).unwrap_or(0);
        return Err(policy_error(
            codes::POLICY_TEMPLATE_NOT_ALLOWED,
            name,
            parser_index(template.id()),
            text,
            offset,
            "templates (?principal, ?resource slots) are not allowed in Policy resources".to_string(),
        ));
    }
    let mut ordered: Vec<(usize, &Policy)> = parsed.policies().filter_map(|policy| Some((parser_index(policy.id())?, policy))).collect();
    ordered.sort_by_key(|(index, _)| *index);
    if ordered.len() > POLICIES_PER_RESOURCE_MAX {
        return Err(policy_error(codes::POLICY_TOO_LARGE, name, None, "", 0, "more than 256 policies in one Policy resource".to_string()));
    }

    // Locate each policy's text: the parser hands back exact slices, in order, so searching from the
    // end of the previous one finds each (only whitespace and comments lie between them).
    let mut checked = Vec::with_capacity(ordered.len());
    let mut offsets = Vec::with_capacity(ordered.len());
    let mut cursor = 0;
    for (index, policy) in &ordered {
        let policy_text = policy.to_string();
        let offset = text[cursor..].find(&policy_text).map_or(cursor, |found| cursor + found);
        cursor = (offset + policy_text.len()).min(text.len());
        offsets.push(offset);
        let id = PolicyId::new(format!("{name}/{index}"));
        checked.push(CheckedPolicy { policy: policy.new_id(id), text: policy_text });
    }

    let mut validated = PolicySet::new();
    for policy in &checked {
        validated.add(policy.policy.clone()).map_err(|error| resource_error(&error.to_string()))?;
    }
    let validation = Validator::new(schema().clone()).validate(&validated, ValidationMode::Strict);
    if let Some(error) = validation.validation_errors().next() {
        let index = policy_index_of(error.policy_id(), name);
        let offset = first_label_offset(error).or_else(|| index.and_then(|index| offsets.get(index).copied())).unwrap_or(0);
        return Err(policy_error(codes::POLICY_INVALID, name, index, text, offset, error.to_string()));
    }

    if let PolicyScope::Domain(domain) = &source.scope {
        for (position, policy) in checked.iter().enumerate() {
            let offset = offsets[position];
            let index = Some(ordered[position].0);
            check_domain_scope(&policy.policy, domain, mesh, membership)
                .map_err(|(code, message)| policy_error(code, name, index, text, offset, message))?;
        }
    }
    Ok(checked)
}

/// The domain scope rule (see the module doc). Returns the code and message of the first breach.
fn check_domain_scope(policy: &Policy, domain: &str, mesh: &Mesh, membership: MembershipCheck) -> Result<(), (&'static str, String)> {
    let outside = |what: String| {
        (
            codes::POLICY_OUTSIDE_DOMAIN,
            format!(
                "{what}: a policy of domain {domain:?} must constrain its resource with `in` or `==` to Weft::Domain::{domain:?} or to one of its products or streams"
            ),
        )
    };
    let scope_entity = match policy.resource_constraint() {
        ResourceConstraint::Any => return Err(outside("resource is unconstrained".to_string())),
        ResourceConstraint::Is(type_name) => return Err(outside(format!("`resource is {type_name}` alone reaches every domain"))),
        ResourceConstraint::In(uid) | ResourceConstraint::Eq(uid) | ResourceConstraint::IsIn(_, uid) => uid,
    };
    let entity_id = scope_entity.id().unescaped();
    let entity_domain = match scope_entity.type_name().to_string().as_str() {
        TYPE_DOMAIN => Some(entity_id),
        TYPE_DATA_PRODUCT if membership == MembershipCheck::Skip => Some(domain),
        TYPE_STREAM if membership == MembershipCheck::Skip => Some(domain),
        TYPE_DATA_PRODUCT => mesh.product_domain(entity_id),
        TYPE_STREAM => mesh.stream_domain(entity_id),
        _ => None,
    };
    if entity_domain != Some(domain) {
        return Err(outside(format!("resource scope {scope_entity} is not in domain {domain:?}")));
    }
    if policy.effect() == Effect::Permit {
        let admin = Action::Admin.uid();
        let grants_admin = match policy.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(action) => action == admin,
            ActionConstraint::In(actions) => actions.contains(&admin),
        };
        if grants_admin {
            return Err((
                codes::POLICY_FORBIDDEN_ACTION,
                "a domain policy may not permit `admin` (an unconstrained `action` includes it): name the actions it permits".to_string(),
            ));
        }
    }
    Ok(())
}

/// Adds the evaluation-time domain guard to a domain policy (see the module doc), through Cedar's
/// JSON form so the policy's own text is never re-parsed or spliced.
pub(crate) fn guard_domain_policy(policy: &Policy, domain: &str) -> Policy {
    let entity = |type_name: &str, id: &str| serde_json::json!({ "Value": { "__entity": { "type": type_name, "id": id } } });
    let mut json = policy.to_json().expect("a parsed static policy converts to JSON");
    let conditions =
        json.get_mut("conditions").and_then(|conditions| conditions.as_array_mut()).expect("Cedar's policy JSON has conditions");
    conditions.push(serde_json::json!({
        "kind": "when",
        "body": { "in": { "left": { "Var": "resource" }, "right": entity(TYPE_DOMAIN, domain) } }
    }));
    if policy.effect() == Effect::Forbid {
        conditions.push(serde_json::json!({
            "kind": "unless",
            "body": { "==": { "left": { "Var": "principal" }, "right": entity(TYPE_PRINCIPAL, ADMIN_PRINCIPAL) } }
        }));
    }
    Policy::from_json(Some(policy.id().clone()), json).expect("a guarded policy converts back from JSON")
}

/// `policyN` → N: the parser numbers policies in textual order.
fn parser_index(id: &PolicyId) -> Option<usize> {
    id.to_string().strip_prefix("policy")?.parse().ok()
}

/// `<name>/N` → N.
fn policy_index_of(id: &PolicyId, name: &str) -> Option<usize> {
    id.to_string().strip_prefix(name)?.strip_prefix('/')?.parse().ok()
}

fn first_label_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic.labels()?.next().map(|label| label.offset())
}

pub(crate) fn policy_error(
    code: &'static str,
    policy: &str,
    index: Option<usize>,
    text: &str,
    offset: usize,
    message: String,
) -> PolicyError {
    let (line, column) = line_column(text, offset);
    PolicyError { code, policy: policy.to_string(), index, line, column, message }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let text = "ab\nçd\nef";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 5), (2, 2)); // after the two-byte ç
        assert_eq!(line_column(text, 100), (3, 3));
    }
}
