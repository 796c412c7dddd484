//! Weft's public Cedar vocabulary: the schema text, the built-in policies, and the [`Action`] and
//! [`Resource`] types with their Cedar and short spellings.
//!
//! Owns the names policies are written against and how they map to Cedar entity uids. It does not
//! build entity data from the mesh (that is `entities.rs`), check Policy resources (`policies.rs`)
//! or decide requests (the parent module's `Authorizer`).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};

use crate::identity::ADMIN_PRINCIPAL;

/// Weft's Cedar schema. Public interface: Policy resources are written against it, and
/// `weft authz schema` prints it. Change it only compatibly.
pub const SCHEMA: &str = r#"// Weft's authorization schema (Cedar). Policy resources are validated against it.
namespace Weft {
  // A person or service; id = principal name. Parents: the domains whose owners or team include it.
  entity Principal in [Domain];

  // A domain team; id = domain name.
  entity Domain = {
    "owners": Set<Principal>,
    "team": Set<Principal>,
  };

  // A data product; id = product id. Parent: its domain.
  entity DataProduct in [Domain] = {
    "domain": Domain,
  };

  // A stream; id = stream name. Parent: its data product, when it belongs to one.
  // classifications: the lowercase classifications of its properties (e.g. "pii").
  entity Stream in [DataProduct] = {
    "classifications": Set<String>,
    "domain"?: Domain,
    "product"?: DataProduct,
  };

  // A consumer group; id = group name. creator: the principal that first used it (absent until
  // someone does); streams: the streams it was used on; stream_owners: the owners of their domains.
  entity ConsumerGroup = {
    "creator"?: Principal,
    "streams": Set<Stream>,
    "stream_owners": Set<Principal>,
  };

  action "produce" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "consume" appliesTo { principal: [Principal], resource: [DataProduct, Stream, ConsumerGroup] };
  action "read_dead_letters" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "replay_dead_letters" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "apply" appliesTo { principal: [Principal], resource: [Domain, DataProduct, Stream] };
  action "read_catalog" appliesTo { principal: [Principal], resource: [Domain, DataProduct, Stream] };
  action "unmask" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "admin" appliesTo { principal: [Principal], resource: [Principal, Domain, DataProduct, Stream, ConsumerGroup] };
}
"#;

/// The built-in policies, always in force (a global `forbid` can still override their permits).
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    ("default/admin", r#"permit (principal == Weft::Principal::"admin", action, resource);"#),
    ("default/catalog", r#"permit (principal, action == Weft::Action::"read_catalog", resource);"#),
    (
        "default/owners_domain",
        r#"permit (principal, action == Weft::Action::"apply", resource is Weft::Domain)
when { resource has owners && resource.owners.contains(principal) };"#,
    ),
    (
        "default/owners_products",
        r#"permit (
  principal,
  action in [Weft::Action::"produce", Weft::Action::"consume", Weft::Action::"apply", Weft::Action::"read_dead_letters", Weft::Action::"replay_dead_letters"],
  resource is Weft::DataProduct
) when { resource has domain && resource.domain has owners && resource.domain.owners.contains(principal) };"#,
    ),
    (
        "default/owners_streams",
        r#"permit (
  principal,
  action in [Weft::Action::"produce", Weft::Action::"consume", Weft::Action::"apply", Weft::Action::"read_dead_letters", Weft::Action::"replay_dead_letters"],
  resource is Weft::Stream
) when { resource has domain && resource.domain has owners && resource.domain.owners.contains(principal) };"#,
    ),
    (
        "default/consumer_groups",
        r#"permit (principal, action == Weft::Action::"consume", resource is Weft::ConsumerGroup)
when { (resource has creator && resource.creator == principal) || resource.stream_owners.contains(principal) };"#,
    ),
];

pub(crate) const TYPE_PRINCIPAL: &str = "Weft::Principal";
pub(crate) const TYPE_DOMAIN: &str = "Weft::Domain";
pub(crate) const TYPE_DATA_PRODUCT: &str = "Weft::DataProduct";
pub(crate) const TYPE_STREAM: &str = "Weft::Stream";
pub(crate) const TYPE_CONSUMER_GROUP: &str = "Weft::ConsumerGroup";
pub(crate) const TYPE_ACTION: &str = "Weft::Action";

/// The schema, parsed once. It is a constant, so failing to parse is a bug: crash loudly.
pub(crate) fn schema() -> &'static Schema {
    static SCHEMA_PARSED: OnceLock<Schema> = OnceLock::new();
    SCHEMA_PARSED.get_or_init(|| Schema::from_cedarschema_str(SCHEMA).expect("Weft's Cedar schema parses").0)
}

/// The actions of Weft's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Produce,
    Consume,
    ReadDeadLetters,
    ReplayDeadLetters,
    Apply,
    ReadCatalog,
    Unmask,
    Admin,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Self::Produce,
        Self::Consume,
        Self::ReadDeadLetters,
        Self::ReplayDeadLetters,
        Self::Apply,
        Self::ReadCatalog,
        Self::Unmask,
        Self::Admin,
    ];

    /// The Cedar action id (`Weft::Action::"<name>"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Produce => "produce",
            Self::Consume => "consume",
            Self::ReadDeadLetters => "read_dead_letters",
            Self::ReplayDeadLetters => "replay_dead_letters",
            Self::Apply => "apply",
            Self::ReadCatalog => "read_catalog",
            Self::Unmask => "unmask",
            Self::Admin => "admin",
        }
    }

    pub(crate) fn uid(self) -> EntityUid {
        entity_uid(TYPE_ACTION, self.name())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = String;
    /// Accepts `consume` and `Weft::Action::"consume"`.
    fn from_str(text: &str) -> Result<Self, String> {
        let name = text.strip_prefix("Weft::Action::\"").and_then(|rest| rest.strip_suffix('"')).unwrap_or(text);
        Self::ALL.into_iter().find(|action| action.name() == name).ok_or_else(|| format!("unknown action {text:?}"))
    }
}

/// What an action is performed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Principal(String),
    Domain(String),
    DataProduct(String),
    Stream(String),
    ConsumerGroup(String),
}

impl Resource {
    /// The resource that mesh-wide administration is checked against (see the module doc).
    pub fn mesh() -> Self {
        Self::Principal(ADMIN_PRINCIPAL.to_string())
    }

    pub fn entity_type(&self) -> &'static str {
        match self {
            Self::Principal(_) => TYPE_PRINCIPAL,
            Self::Domain(_) => TYPE_DOMAIN,
            Self::DataProduct(_) => TYPE_DATA_PRODUCT,
            Self::Stream(_) => TYPE_STREAM,
            Self::ConsumerGroup(_) => TYPE_CONSUMER_GROUP,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Principal(id) | Self::Domain(id) | Self::DataProduct(id) | Self::Stream(id) | Self::ConsumerGroup(id) => id,
        }
    }

    pub(crate) fn uid(&self) -> EntityUid {
        entity_uid(self.entity_type(), self.id())
    }
}

impl fmt::Display for Resource {
    /// Cedar's form, `Weft::Stream::"orders"`, with Cedar's escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.uid())
    }
}

impl FromStr for Resource {
    type Err = String;
    /// Accepts Cedar's form (`Weft::Stream::"orders"`) and the short form `<kind>:<id>` with kind
    /// `principal`, `domain`, `product`, `stream` or `group`.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!("invalid resource {text:?}: expected Weft::<Type>::\"<id>\" or <kind>:<id> (principal, domain, product, stream, group)")
        };
        if text.starts_with("Weft::") {
            let uid = EntityUid::from_str(text).map_err(|_| invalid())?;
            let id = uid.id().unescaped().to_string();
            return match uid.type_name().to_string().as_str() {
                TYPE_PRINCIPAL => Ok(Self::Principal(id)),
                TYPE_DOMAIN => Ok(Self::Domain(id)),
                TYPE_DATA_PRODUCT => Ok(Self::DataProduct(id)),
                TYPE_STREAM => Ok(Self::Stream(id)),
                TYPE_CONSUMER_GROUP => Ok(Self::ConsumerGroup(id)),
                _ => Err(invalid()),
            };
        }
        let (kind, id) = text.split_once(':').ok_or_else(invalid)?;
        if id.is_empty() {
            return Err(invalid());
        }
        let id = id.to_string();
        match kind {
            "principal" => Ok(Self::Principal(id)),
            "domain" => Ok(Self::Domain(id)),
            "product" => Ok(Self::DataProduct(id)),
            "stream" => Ok(Self::Stream(id)),
            "group" => Ok(Self::ConsumerGroup(id)),
            _ => Err(invalid()),
        }
    }
}

/// The built-in policies as one Cedar text with their ids as comments, for documentation output.
pub fn default_policies_text() -> String {
    DEFAULT_POLICIES.iter().map(|(id, text)| format!("// {id}\n{text}\n")).collect::<Vec<_>>().join("\n")
}

pub(crate) fn entity_uid(type_name: &str, id: &str) -> EntityUid {
    // Only the authorization modules' type-name constants reach here.
    let type_name = EntityTypeName::from_str(type_name).expect("Weft's entity type names parse");
    EntityUid::from_type_name_and_id(type_name, EntityId::new(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_actions_parse_both_forms() {
        assert_eq!("stream:orders".parse::<Resource>().unwrap(), Resource::Stream("orders".into()));
        assert_eq!(r#"Weft::DataProduct::"sales.orders""#.parse::<Resource>().unwrap(), Resource::DataProduct("sales.orders".into()));
        assert_eq!(Resource::Stream("a\"b".into()).to_string().parse::<Resource>().unwrap(), Resource::Stream("a\"b".into()));
        assert!("table:x".parse::<Resource>().is_err());
        assert!(r#"Weft::Action::"consume""#.parse::<Resource>().is_err());
        assert_eq!(r#"Weft::Action::"read_dead_letters""#.parse::<Action>().unwrap(), Action::ReadDeadLetters);
        for action in Action::ALL {
            assert_eq!(action.name().parse::<Action>().unwrap(), action);
        }
    }
}
