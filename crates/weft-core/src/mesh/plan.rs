//! An apply plan: what `weft apply` does (or would do) to each resource, with field-level
//! changes, schema changes judged for compatibility, governance changes, domain moves and
//! refusals. Plain data: the HTTP edge renders it as JSON, the CLI prints it.

use serde_json::Value;
use weft_contract::ContractError;

use crate::error::{Kind, codes};

/// Most field changes listed per resource in a plan.
pub const PLAN_CHANGES_MAX: usize = 200;

/// One file (or request body) handed to apply.
#[derive(Debug, Clone)]
pub struct ApplySource {
    pub name: String,
    pub text: String,
}

/// What apply does (or would do) to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanAction {
    Create,
    Update,
    Unchanged,
    Refused,
}

impl PlanAction {
    /// The name plans show (`create`, `update`, `unchanged`, `refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// A schema change between contract versions, judged against the compatibility mode.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    pub stream: String,
    pub field: String,
    pub change: String,
    pub breaks_readers: bool,
    pub breaks_writers: bool,
    pub breaking: bool,
    pub reason: String,
}

/// A product or contract changing domain (`None`: no domain, the platform's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainMove {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A classification a new contract version no longer gives a field (dropped, or changed to
/// another): a governance change, since masking and policies follow classifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceChange {
    pub stream: String,
    /// Dotted property path (`customer.email`).
    pub field: String,
    /// JSON pointer into event data.
    pub pointer: String,
    pub dropped_classification: String,
    pub new_classification: Option<String>,
}

/// Why a resource was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl Refusal {
    /// Refused because of who asked (the edge audits these as denials), not because of what
    /// the resource says.
    pub fn is_denial(&self) -> bool {
        self.code == weft_governance::codes::AUTHZ_DENIED || codes::kind_of(self.code) == Some(Kind::Forbidden)
    }
}

impl From<&ContractError> for Refusal {
    fn from(error: &ContractError) -> Self {
        Self { code: error.code, message: error.message.clone(), path: error.path.clone(), line: error.line, column: error.column }
    }
}

pub(super) fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into(), path: String::new(), line: None, column: None }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedResource {
    pub kind: &'static str,
    pub id: String,
    pub version: Option<String>,
    pub source: String,
    pub document: usize,
    pub action: PlanAction,
    pub changes: Vec<FieldChange>,
    pub schema_changes: Vec<SchemaChange>,
    pub governance_changes: Vec<GovernanceChange>,
    pub domain_move: Option<DomainMove>,
    pub streams: Vec<String>,
    pub error: Option<Refusal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApplyPlan {
    pub dry_run: bool,
    pub applied: bool,
    pub resources: Vec<PlannedResource>,
}

impl ApplyPlan {
    pub fn n_refused(&self) -> usize {
        self.resources.iter().filter(|r| r.action == PlanAction::Refused).count()
    }
}

/// Field-level differences between two JSON documents, as JSON pointers.
pub fn json_diff(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    diff_into("", old, new, &mut changes);
    changes.truncate(PLAN_CHANGES_MAX);
    changes
}

fn diff_into(path: &str, old: &Value, new: &Value, changes: &mut Vec<FieldChange>) {
    if changes.len() >= PLAN_CHANGES_MAX || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) => {
            let keys: std::collections::BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
            for key in keys {
                let child = format!("{path}/{}", crate::json_pointer_escape(key));
                match (old_map.get(key), new_map.get(key)) {
                    (Some(o), Some(n)) => diff_into(&child, o, n, changes),
                    (o, n) => changes.push(FieldChange { path: child, old: o.cloned(), new: n.cloned() }),
                }
            }
        }
        (Value::Array(old_items), Value::Array(new_items)) if old_items.len() == new_items.len() => {
            for (idx, (o, n)) in old_items.iter().zip(new_items).enumerate() {
                diff_into(&format!("{path}/{idx}"), o, n, changes);
            }
        }
        _ => changes.push(FieldChange {
            path: if path.is_empty() { "/".into() } else { path.into() },
            old: Some(old.clone()),
            new: Some(new.clone()),
        }),
    }
}
