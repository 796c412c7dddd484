//! Reading resource files: multi-document YAML (or one JSON document) into typed [`Document`]s.
//!
//! Owns dispatch on `apiVersion`/`kind`, the translation of serde errors into [`ContractError`]s
//! with a JSON pointer and a line, and the size limits on input text.
//! Does not own the semantic rules of a contract; it calls [`crate::check`] after parsing.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ContractError, code, push_pointer_token};
use crate::limits::{DOCUMENT_TEXT_BYTES_MAX, DOCUMENTS_PER_FILE_MAX};
use crate::model::DataContract;
use crate::product::{DataProduct, Domain, Policy};

/// ODCS `apiVersion`s Weft reads. v3.2.0 is accepted ahead of its approval; v2 is refused.
pub const ODCS_API_VERSIONS: &[&str] = &["v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0", "v3.2.0"];
/// ODPS `apiVersion`s Weft reads.
pub const ODPS_API_VERSIONS: &[&str] = &["v1.0.0"];
/// `apiVersion` of Weft's own resources.
pub const WEFT_API_VERSION: &str = "weft/v1";

/// One resource read from a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Contract(Box<DataContract>),
    Product(Box<DataProduct>),
    Domain(Domain),
    Policy(Policy),
}

impl Document {
    /// The `kind` of the resource, as written in files.
    pub fn kind(&self) -> &'static str {
        match self {
            Document::Contract(_) => "DataContract",
            Document::Product(_) => "DataProduct",
            Document::Domain(_) => "Domain",
            Document::Policy(_) => "Policy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceKind {
    Contract,
    Product,
    Domain,
    Policy,
}

impl ResourceKind {
    fn name(self) -> &'static str {
        match self {
            Self::Contract => "DataContract",
            Self::Product => "DataProduct",
            Self::Domain => "Domain",
            Self::Policy => "Policy",
        }
    }
}

/// What a document says it is, read before it is parsed as its kind, so errors can name it.
#[derive(Clone, Copy)]
struct ResourceName<'a> {
    kind: ResourceKind,
    id: Option<&'a str>,
}

impl<'a> ResourceName<'a> {
    fn of(kind: ResourceKind, value: &'a serde_json::Value) -> Self {
        let key = match kind {
            ResourceKind::Contract | ResourceKind::Product => "id",
            ResourceKind::Domain | ResourceKind::Policy => "name",
        };
        Self { kind, id: value.get(key).and_then(serde_json::Value::as_str) }
    }
}

impl ContractError {
    fn for_resource(mut self, name: ResourceName<'_>) -> Self {
        self.resource = Some(Box::new(crate::error::ResourceLabel { kind: name.kind.name(), id: name.id.map(str::to_string) }));
        self
    }
}

/// Parses every document in `text` (a YAML stream with `---` separators, or a single JSON object)
/// and checks each one. `source_name` only labels errors (usually the file name).
///
/// Empty YAML documents (e.g. a trailing `---`) are skipped but still count for `document_idx`.
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<Document>, ContractError> {
    if text.len() > DOCUMENT_TEXT_BYTES_MAX {
        let message = format!("text is {} bytes, over the limit of {DOCUMENT_TEXT_BYTES_MAX} bytes", text.len());
        return Err(ContractError::at(code::RESOURCE_TOO_LARGE, "", message).in_source(source_name));
    }
    let trimmed = text.trim_start();
    let documents =
        if trimmed.starts_with('{') { vec![parse_json_document(text, source_name)?] } else { parse_yaml_stream(text, source_name)? };
    Ok(documents)
}

fn parse_json_document(text: &str, source_name: &str) -> Result<Document, ContractError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| ContractError {
        line: u32::try_from(error.line()).ok(),
        column: u32::try_from(error.column()).ok(),
        ..ContractError::at(code::JSON_MALFORMED, "", strip_serde_location(&error.to_string())).in_document(source_name, 0)
    })?;
    let kind = resource_kind(&value).map_err(|e| e.in_document(source_name, 0))?;
    let name = ResourceName::of(kind, &value);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let document =
        typed_document(kind, &mut deserializer, |error: &serde_json::Error| (line_number(error.line()), line_number(error.column())))
            .map_err(|e| e.in_document(source_name, 0).for_resource(name))?;
    check_document(&document).map_err(|e| e.in_document(source_name, 0).for_resource(name))?;
    Ok(document)
}

fn parse_yaml_stream(text: &str, source_name: &str) -> Result<Vec<Document>, ContractError> {
    // First pass: read each document as an untyped value to learn its kind. A second pass then
    // deserializes straight from the text, so structural errors keep their line numbers.
    let mut kinds: Vec<Option<(ResourceKind, Option<String>)>> = Vec::new();
    for (document_idx, deserializer) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        if document_idx >= DOCUMENTS_PER_FILE_MAX {
            let message = format!("more than {DOCUMENTS_PER_FILE_MAX} documents in one file");
            return Err(ContractError::at(code::RESOURCE_TOO_LARGE, "", message).in_document(source_name, document_idx));
        }
        let value = serde_yaml_ng::Value::deserialize(deserializer).map_err(|error| {
            with_yaml_location(ContractError::at(code::YAML_MALFORMED, "", strip_serde_location(&error.to_string())), &error)
                .in_document(source_name, document_idx)
        })?;
        if value.is_null() {
            kinds.push(None);
            continue;
        }
        let json: serde_json::Value = serde_json::to_value(&value).map_err(|error| {
            ContractError::at(code::YAML_MALFORMED, "", format!("unsupported yaml value: {error}")).in_document(source_name, document_idx)
        })?;
        let kind = resource_kind(&json).map_err(|error| {
            let (line, column) = locate_in_yaml(text, document_idx, &error.path);
            ContractError { line, column, ..error.in_document(source_name, document_idx) }
        })?;
        kinds.push(Some((kind, ResourceName::of(kind, &json).id.map(str::to_string))));
    }

    let mut documents = Vec::with_capacity(kinds.len());
    for (document_idx, deserializer) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let Some(Some((kind, id))) = kinds.get(document_idx) else {
            continue;
        };
        let (kind, name) = (*kind, ResourceName { kind: *kind, id: id.as_deref() });
        let document = typed_document(kind, deserializer, |error: &serde_yaml_ng::Error| match error.location() {
            Some(location) => (line_number(location.line()), line_number(location.column())),
            None => (None, None),
        })
        .map_err(|e| e.in_document(source_name, document_idx).for_resource(name))?;
        check_document(&document).map_err(|error| {
            let (line, column) = locate_in_yaml(text, document_idx, &error.path);
            ContractError { line, column, ..error.in_document(source_name, document_idx) }.for_resource(name)
        })?;
        documents.push(document);
    }
    Ok(documents)
}

/// The line and column of the node at JSON `pointer` in YAML document `document_idx`, or of its
/// nearest existing ancestor. serde_yaml exposes no spans, so this walks the document with a
/// seed that fails on purpose when it reaches the node: the parser stamps its position on the
/// error. Used for semantic errors, which are found after parsing.
fn locate_in_yaml(text: &str, document_idx: usize, pointer: &str) -> (Option<u32>, Option<u32>) {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect();
    for n_tokens in (1..=tokens.len()).rev() {
        let Some(deserializer) = serde_yaml_ng::Deserializer::from_str(text).nth(document_idx) else {
            return (None, None);
        };
        let seek = YamlSeek { tokens: &tokens[..n_tokens] };
        if let Err(error) = serde::de::DeserializeSeed::deserialize(seek, deserializer)
            && error.to_string().contains(YamlSeek::FOUND)
            && let Some(location) = error.location()
        {
            return (line_number(location.line()), line_number(location.column()));
        }
    }
    (None, None)
}

struct YamlSeek<'a> {
    tokens: &'a [String],
}

impl YamlSeek<'_> {
    const FOUND: &'static str = "weft-seek-found";

    fn scalar<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.tokens.is_empty() { Err(E::custom(Self::FOUND)) } else { Ok(()) }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for YamlSeek<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // At the target, the visitor fails from inside the value, so the error carries the
        // value's own position rather than its parent's.
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for YamlSeek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any yaml value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.tokens.is_empty() {
            return Err(serde::de::Error::custom(Self::FOUND));
        }
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            if key.as_str() == Some(self.tokens[0].as_str()) {
                return map.next_value_seed(YamlSeek { tokens: &self.tokens[1..] });
            }
            map.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.tokens.is_empty() {
            return Err(serde::de::Error::custom(Self::FOUND));
        }
        let Ok(target_idx) = self.tokens[0].parse::<usize>() else {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        for _ in 0..target_idx {
            if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(YamlSeek { tokens: &self.tokens[1..] })?;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

fn with_yaml_location(mut error: ContractError, yaml_error: &serde_yaml_ng::Error) -> ContractError {
    if let Some(location) = yaml_error.location() {
        error.line = u32::try_from(location.line()).ok();
        error.column = u32::try_from(location.column()).ok();
    }
    error
}

/// Decides which resource a document is from its `apiVersion` and `kind`.
fn resource_kind(value: &serde_json::Value) -> Result<ResourceKind, ContractError> {
    let Some(object) = value.as_object() else {
        return Err(ContractError::at(code::RESOURCE_MISSING_KIND, "", "document is not a mapping"));
    };
    if object.contains_key("dataContractSpecification") {
        return Err(ContractError::at(
            code::RESOURCE_UNSUPPORTED_VERSION,
            "/dataContractSpecification",
            "data contract specification (dcs) documents are not supported, convert them with `datacontract export odcs`",
        ));
    }
    let api_version = object.get("apiVersion").and_then(|v| v.as_str());
    let kind = object.get("kind").and_then(|v| v.as_str());
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(ContractError::at(code::RESOURCE_MISSING_KIND, "", "document needs string fields `apiVersion` and `kind`"));
    };
    let unsupported = |supported: &[&str]| {
        ContractError::at(
            code::RESOURCE_UNSUPPORTED_VERSION,
            "/apiVersion",
            format!("{kind} apiVersion `{api_version}` is not supported (supported: {})", supported.join(", ")),
        )
    };
    match kind {
        "DataContract" if ODCS_API_VERSIONS.contains(&api_version) => Ok(ResourceKind::Contract),
        "DataContract" => Err(unsupported(ODCS_API_VERSIONS)),
        "DataProduct" if ODPS_API_VERSIONS.contains(&api_version) => Ok(ResourceKind::Product),
        "DataProduct" => Err(unsupported(ODPS_API_VERSIONS)),
        "Domain" if api_version == WEFT_API_VERSION => Ok(ResourceKind::Domain),
        "Policy" if api_version == WEFT_API_VERSION => Ok(ResourceKind::Policy),
        "Domain" | "Policy" => Err(unsupported(&[WEFT_API_VERSION])),
        _ => Err(ContractError::at(
            code::RESOURCE_UNKNOWN_KIND,
            "/kind",
            format!("unknown resource kind `{kind}` (known: DataContract, DataProduct, Domain, Policy)"),
        )),
    }
}

fn typed_document<'de, D, E>(
    kind: ResourceKind,
    deserializer: D,
    location: impl Fn(&E) -> (Option<u32>, Option<u32>),
) -> Result<Document, ContractError>
where
    D: serde::Deserializer<'de, Error = E>,
    E: serde::de::Error + std::fmt::Display,
{
    match kind {
        ResourceKind::Contract => typed(deserializer, &location).map(|c| Document::Contract(Box::new(c))),
        ResourceKind::Product => typed(deserializer, &location).map(|p| Document::Product(Box::new(p))),
        ResourceKind::Domain => typed(deserializer, &location).map(Document::Domain),
        ResourceKind::Policy => typed(deserializer, &location).map(Document::Policy),
    }
}

fn typed<'de, T, D, E>(deserializer: D, location: &impl Fn(&E) -> (Option<u32>, Option<u32>)) -> Result<T, ContractError>
where
    T: DeserializeOwned,
    D: serde::Deserializer<'de, Error = E>,
    E: serde::de::Error + std::fmt::Display,
{
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let mut path = String::new();
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => push_pointer_token(&mut path, &index.to_string()),
                serde_path_to_error::Segment::Map { key } => push_pointer_token(&mut path, key),
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
            }
        }
        let (line, column) = location(error.inner());
        let raw_message = strip_serde_location(&error.inner().to_string());
        let (code, message) = match unknown_field_name(&raw_message) {
            Some(field) => {
                // Point at the unknown key itself, not only at the object holding it.
                if !path.ends_with(&format!("/{field}")) {
                    push_pointer_token(&mut path, field);
                }
                (code::RESOURCE_UNKNOWN_FIELD, unknown_field_message(&raw_message, field))
            }
            None => (code::RESOURCE_INVALID_FIELD, raw_message.clone()),
        };
        ContractError { line, column, ..ContractError::at(code, path, message) }
    })
}

/// serde's message for `deny_unknown_fields` is "unknown field `x`, expected one of ...".
fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some(&rest[..end])
}

/// Shortens serde's list of every expected field to one suggestion, when a close one exists.
fn unknown_field_message(raw_message: &str, field: &str) -> String {
    let expected: Vec<&str> =
        raw_message.split_once("expected").map(|(_, list)| list.split('`').skip(1).step_by(2).collect()).unwrap_or_default();
    let closest =
        expected.iter().map(|candidate| (edit_distance(field, candidate), *candidate)).filter(|(distance, _)| *distance <= 2).min();
    match closest {
        Some((_, candidate)) => format!("unknown field `{field}`, did you mean `{candidate}`"),
        None => format!("unknown field `{field}`"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// serde_yaml and serde_json append " at line L column C"; we report those separately.
/// serde_yaml also prefixes nested errors with its own path (`schema[0].properties[1]: `), which
/// we report as a JSON pointer instead.
fn strip_serde_location(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(idx) => &message[..idx],
        None => message,
    };
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') => rest,
        _ => message,
    };
    message.trim_end_matches('.').to_owned()
}

fn check_document(document: &Document) -> Result<(), ContractError> {
    match document {
        Document::Contract(contract) => crate::check::check_contract(contract),
        Document::Product(product) => crate::check::check_product(product),
        Document::Domain(domain) => crate::check::check_domain(domain),
        Document::Policy(policy) => crate::check::check_policy(policy),
    }
}

impl ContractError {
    fn in_source(mut self, source_name: &str) -> Self {
        self.source_name = source_name.to_owned();
        self
    }
}

fn line_number(n: usize) -> Option<u32> {
    u32::try_from(n).ok()
}
