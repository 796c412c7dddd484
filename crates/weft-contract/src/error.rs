//! Errors raised while reading resource files (contracts, products, domains, policies).
//!
//! Owns [`ContractError`] and the stable error codes in [`code`].
//! Does not own event violations: those are [`crate::Violation`]s, reported by the validator.

use std::fmt;

/// Stable error codes carried by [`ContractError::code`].
///
/// Codes are part of Weft's public API: they are never renamed and never reused for another meaning.
pub mod code {
    /// The text is not well-formed YAML.
    pub const YAML_MALFORMED: &str = "yaml.malformed";
    /// The text looked like JSON (it starts with `{` or `[`) but is not well-formed JSON.
    pub const JSON_MALFORMED: &str = "json.malformed";
    /// The text or the number of documents is over a limit in [`crate::limits`].
    pub const RESOURCE_TOO_LARGE: &str = "resource.too_large";
    /// A document is not a mapping, or lacks `apiVersion` or `kind`.
    pub const RESOURCE_MISSING_KIND: &str = "resource.missing_kind";
    /// The `apiVersion`/`kind` pair names no resource Weft knows.
    pub const RESOURCE_UNKNOWN_KIND: &str = "resource.unknown_kind";
    /// The kind is known but this `apiVersion` of it is not supported (e.g. ODCS v2).
    pub const RESOURCE_UNSUPPORTED_VERSION: &str = "resource.unsupported_version";
    /// A field that the standard does not define (all ODCS/ODPS objects are closed).
    pub const RESOURCE_UNKNOWN_FIELD: &str = "resource.unknown_field";
    /// A field has the wrong type, or a required field is absent.
    pub const RESOURCE_INVALID_FIELD: &str = "resource.invalid_field";
    /// A contract is well-formed but breaks a semantic rule (see the message and path).
    pub const CONTRACT_INVALID: &str = "contract.invalid";
    /// Two properties of one object share a name.
    pub const CONTRACT_DUPLICATE_PROPERTY: &str = "contract.duplicate_property";
    /// A `logicalTypeOptions` key that does not apply to the property's `logicalType`, or a bad value.
    pub const CONTRACT_INVALID_TYPE_OPTIONS: &str = "contract.invalid_type_options";
    /// A `pattern` (in logicalTypeOptions or a quality rule) that does not compile.
    pub const CONTRACT_INVALID_PATTERN: &str = "contract.invalid_pattern";
    /// A `weft.*` custom property that is unknown or malformed.
    pub const CONTRACT_INVALID_WEFT_PROPERTY: &str = "contract.invalid_weft_property";
    /// The stream key (`weft.key`) names a property classified `pii`, `confidential`, `restricted`
    /// or `sensitive`, or lies inside one: keys are stored and served in clear, so they cannot be
    /// masked. The path is the `customProperties` that set the key.
    pub const CONTRACT_CLASSIFIED_KEY: &str = "contract.classified_key";
    /// A schema object name passed to the compiler does not exist in the contract.
    pub const CONTRACT_SCHEMA_OBJECT_NOT_FOUND: &str = "contract.schema_object_not_found";
    /// A Weft resource (domain, policy, product) breaks a semantic rule.
    pub const RESOURCE_INVALID: &str = "resource.invalid";
}

/// Why a resource file (or one document in it) was refused.
///
/// `path` is a JSON pointer into the document (`/schema/0/properties/2/logicalTyp`); empty means the
/// whole document. `line` and `column` are 1-based and only known for syntax and structural errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ContractError {
    /// Stable code, one of [`code`].
    pub code: &'static str,
    /// The file name (or other label) the caller gave for the text.
    pub source_name: String,
    /// Index of the document inside a multi-document YAML stream (0-based).
    pub document_idx: Option<u32>,
    /// 1-based line in the source text, when known.
    pub line: Option<u32>,
    /// 1-based column in the source text, when known.
    pub column: Option<u32>,
    /// JSON pointer to the offending field inside the document.
    pub path: String,
    /// Lowercase message without a trailing period.
    pub message: String,
    /// Which resource the document says it is, once its kind is known, so a plan can name what
    /// it refused even when the document does not parse as that kind (boxed: errors stay small).
    pub resource: Option<Box<ResourceLabel>>,
}

/// A resource as a document names it before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLabel {
    /// `DataContract`, `DataProduct`, `Domain` or `Policy`.
    pub kind: &'static str,
    /// Its `id` (`name` for domains and policies), when the document has one.
    pub id: Option<String>,
}

impl ContractError {
    /// A semantic error at `path` with no source position; callers fill in source and document later.
    pub(crate) fn at(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        ContractError {
            code,
            source_name: String::new(),
            document_idx: None,
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
            resource: None,
        }
    }

    pub(crate) fn in_document(mut self, source_name: &str, document_idx: usize) -> Self {
        self.source_name = source_name.to_owned();
        // At most `DOCUMENTS_PER_FILE_MAX` documents are read, so the index fits.
        self.document_idx = u32::try_from(document_idx).ok();
        self
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.source_name.is_empty() {
            f.write_str(&self.source_name)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        if let Some(document_idx) = self.document_idx {
            write!(f, "document {document_idx}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// Appends one RFC 6901 reference token to a JSON pointer (`~` becomes `~0`, `/` becomes `~1`).
pub(crate) fn push_pointer_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// A JSON pointer made of `base` plus one token.
pub(crate) fn pointer_join(base: &str, token: &str) -> String {
    let mut pointer = String::with_capacity(base.len() + token.len() + 1);
    pointer.push_str(base);
    push_pointer_token(&mut pointer, token);
    pointer
}
