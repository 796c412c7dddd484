//! CloudEvents 1.0: the envelope of every stored event, and its mapping onto a log record.
//!
//! Weft stores each event in CloudEvents' Kafka binary mode: the record value is the
//! event's data exactly as produced, every other attribute is a `ce_<name>` header, the
//! content type is the `content-type` header, and the record key is the partition key.
//! So a Kafka consumer reads plain data, and an HTTP reader gets the same CloudEvent back.
//!
//! This module parses the JSON event format (structured and batched), builds events from
//! attribute lists (HTTP and Kafka binary modes), checks attributes against the spec's type
//! system, and renders stored records back to the JSON format.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::value::RawValue;

use crate::error::{Error, codes};

pub const SPEC_VERSION: &str = "1.0";
/// Longest attribute value accepted, in bytes.
pub const ATTRIBUTE_VALUE_BYTES_MAX: usize = 4096;
/// Most extension attributes on one event.
pub const EXTENSIONS_MAX: usize = 64;
/// Longest attribute name accepted (the spec recommends at most 20).
pub const ATTRIBUTE_NAME_BYTES_MAX: usize = 64;
/// Extension attributes whose name starts with this are Weft's own (their record headers are
/// `ce_weft*`); producers cannot set them, over HTTP or Kafka.
pub const RESERVED_ATTRIBUTE_PREFIX: &str = "weft";

/// One event. `data` holds the data bytes exactly as they will be stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub specversion: String,
    pub ty: String,
    pub datacontenttype: Option<String>,
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    pub time: Option<String>,
    /// Extension attributes in canonical string form, in arrival order.
    pub extensions: Vec<(String, String)>,
    pub data: Option<Vec<u8>>,
}

/// True for media types whose data is carried as JSON in the JSON event format.
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return true };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

impl CloudEvent {
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The `partitionkey` extension, if present.
    pub fn partition_key(&self) -> Option<&str> {
        self.extension("partitionkey")
    }

    /// Approximate stored size: data plus attribute names and values.
    pub fn size_bytes(&self) -> usize {
        let attributes = [&self.id, &self.source, &self.specversion, &self.ty].iter().map(|v| v.len() + 8).sum::<usize>()
            + [&self.datacontenttype, &self.dataschema, &self.subject, &self.time]
                .iter()
                .map(|v| v.as_ref().map_or(0, |v| v.len() + 16))
                .sum::<usize>()
            + self.extensions.iter().map(|(k, v)| k.len() + v.len() + 3).sum::<usize>();
        attributes + self.data.as_ref().map_or(0, Vec::len)
    }

    /// Checks the attributes against CloudEvents' rules and Weft's bounds.
    pub fn check(&self) -> Result<(), Error> {
        self.checked_time_ms().map(|_| ())
    }

    /// `check`, returning the `time` attribute in milliseconds since the epoch, if it has one
    /// (parsed once, for the produce path's bound on times in the future).
    pub fn checked_time_ms(&self) -> Result<Option<i64>, Error> {
        let invalid = |path: &str, message: String| Error::invalid(codes::EVENT_INVALID_CLOUDEVENT, message).with_path(path);
        if self.specversion != SPEC_VERSION {
            return Err(invalid("/specversion", format!("specversion must be \"1.0\", not {:?}", self.specversion)));
        }
        for (name, value) in [("id", &self.id), ("source", &self.source), ("type", &self.ty)] {
            if value.is_empty() {
                return Err(invalid(&format!("/{name}"), format!("attribute {name} must be a non-empty string")));
            }
        }
        let optional = [
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
            ("subject", &self.subject),
            ("time", &self.time),
        ];
        let required = [("id", &self.id), ("source", &self.source), ("type", &self.ty)];
        let all_values = required
            .iter()
            .map(|(name, value)| (Cow::Borrowed(*name), value.as_str()))
            .chain(optional.iter().filter_map(|(name, value)| value.as_ref().map(|v| (Cow::Borrowed(*name), v.as_str()))))
            .chain(self.extensions.iter().map(|(name, value)| (Cow::Owned(name.clone()), value.as_str())));
        for (name, value) in all_values {
            check_attribute_value(&name, value)?;
        }
        if self.extensions.len() > EXTENSIONS_MAX {
            return Err(invalid("/", format!("an event may carry at most {EXTENSIONS_MAX} extension attributes")));
        }
        for (name, _) in &self.extensions {
            check_attribute_name(name)?;
            if is_context_attribute(name) {
                return Err(invalid(&format!("/{name}"), format!("attribute {name} appears twice")));
            }
            if name.starts_with(RESERVED_ATTRIBUTE_PREFIX) {
                return Err(Error::invalid(
                    codes::EVENT_RESERVED_ATTRIBUTE,
                    format!("attribute names starting with {RESERVED_ATTRIBUTE_PREFIX:?} are reserved for weft, not {name:?}"),
                )
                .with_path(format!("/{name}")));
            }
        }
        let time_ms = match &self.time {
            Some(time) => {
                Some(parse_rfc3339_ms(time).map_err(|reason| invalid("/time", format!("time must be an RFC 3339 timestamp: {reason}")))?)
            }
            None => None,
        };
        if let Some(dataschema) = &self.dataschema
            && !dataschema.contains(':')
        {
            return Err(invalid("/dataschema", "dataschema must be an absolute URI".into()));
        }
        Ok(time_ms)
    }

    /// The record headers of CloudEvents' Kafka binary mode.
    pub fn record_headers(&self) -> Vec<(Cow<'static, str>, &[u8])> {
        let mut headers: Vec<(Cow<'static, str>, &[u8])> = Vec::with_capacity(6 + self.extensions.len());
        headers.push((Cow::Borrowed("ce_specversion"), self.specversion.as_bytes()));
        headers.push((Cow::Borrowed("ce_id"), self.id.as_bytes()));
        headers.push((Cow::Borrowed("ce_source"), self.source.as_bytes()));
        headers.push((Cow::Borrowed("ce_type"), self.ty.as_bytes()));
        if let Some(value) = &self.subject {
            headers.push((Cow::Borrowed("ce_subject"), value.as_bytes()));
        }
        if let Some(value) = &self.time {
            headers.push((Cow::Borrowed("ce_time"), value.as_bytes()));
        }
        if let Some(value) = &self.dataschema {
            headers.push((Cow::Borrowed("ce_dataschema"), value.as_bytes()));
        }
        for (name, value) in &self.extensions {
            headers.push((Cow::Owned(format!("ce_{name}")), value.as_bytes()));
        }
        if let Some(value) = &self.datacontenttype {
            headers.push((Cow::Borrowed("content-type"), value.as_bytes()));
        }
        headers
    }

    /// Builds an event from named attributes (binary modes), checking nothing yet.
    /// Unknown names become extensions; `datacontenttype` comes from the content type.
    pub fn from_attributes<'a>(
        attributes: impl IntoIterator<Item = (&'a str, String)>,
        datacontenttype: Option<String>,
        data: Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        let mut event = Self { datacontenttype, data, ..Self::default() };
        for (name, value) in attributes {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "specversion" => event.specversion = value,
                "id" => event.id = value,
                "source" => event.source = value,
                "type" => event.ty = value,
                "subject" => event.subject = Some(value),
                "time" => event.time = Some(value),
                "dataschema" => event.dataschema = Some(value),
                "datacontenttype" => {
                    return Err(Error::invalid(
                        codes::EVENT_INVALID_CLOUDEVENT,
                        "datacontenttype travels as the content type, not as an attribute",
                    )
                    .with_path("/datacontenttype"));
                }
                _ => {
                    check_attribute_name(&name)?;
                    if event.extensions.iter().any(|(existing, _)| *existing == name) {
                        return Err(Error::invalid(codes::EVENT_INVALID_CLOUDEVENT, format!("attribute {name} appears twice"))
                            .with_path(format!("/{name}")));
                    }
                    event.extensions.push((name, value));
                }
            }
        }
        Ok(event)
    }

    /// Parses one event in the JSON format. `Err` carries `event.malformed_json` or
    /// `event.invalid_cloudevent` with the path of the offending member.
    /// A member that appears twice is `event.duplicate_key` at its path.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_json_members(envelope_members(bytes)?)
    }

    /// Parses a JSON array of events (the batched format); each element is parsed on its
    /// own so one bad event does not hide the others.
    pub fn from_json_batch(bytes: &[u8]) -> Result<Vec<Result<Self, Error>>, Error> {
        let elements: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(|error| malformed_json(&error))?;
        Ok(elements
            .into_iter()
            .enumerate()
            .map(|(event_idx, raw)| {
                let members = envelope_members(raw.get().as_bytes()).map_err(|error| match error.code {
                    codes::EVENT_DUPLICATE_KEY => {
                        Error { path: Some(format!("/{event_idx}{}", error.path.as_deref().unwrap_or(""))), ..error }
                    }
                    _ => Error::invalid(codes::EVENT_INVALID_CLOUDEVENT, format!("batch element {event_idx} is not a JSON object"))
                        .with_path(format!("/{event_idx}")),
                })?;
                Self::from_json_members(members)
            })
            .collect())
    }

    fn from_json_members(members: Vec<(Cow<'_, str>, &RawValue)>) -> Result<Self, Error> {
        let invalid = |path: &str, message: String| Error::invalid(codes::EVENT_INVALID_CLOUDEVENT, message).with_path(path);
        let mut event = Self::default();
        let mut data_raw: Option<&RawValue> = None;
        let mut data_base64: Option<String> = None;
        for (name, raw) in &members {
            let name = name.as_ref();
            if name == "data" {
                data_raw = Some(raw);
                continue;
            }
            let value = scalar_to_canonical(raw).map_err(|message| invalid(&format!("/{name}"), format!("attribute {name} {message}")))?;
            let Some(value) = value else { continue };
            match name {
                "specversion" => event.specversion = value,
                "id" => event.id = value,
                "source" => event.source = value,
                "type" => event.ty = value,
                "subject" => event.subject = Some(value),
                "time" => event.time = Some(value),
                "dataschema" => event.dataschema = Some(value),
                "datacontenttype" => event.datacontenttype = Some(value),
                "data_base64" => data_base64 = Some(value),
                _ => {
                    check_attribute_name(name)?;
                    event.extensions.push((name.to_string(), value));
                }
            }
        }
        event.extensions.sort();
        match (data_raw, data_base64) {
            (Some(_), Some(_)) => return Err(invalid("/data_base64", "data and data_base64 are mutually exclusive".into())),
            (None, Some(encoded)) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|error| invalid("/data_base64", format!("data_base64 is not valid base64: {error}")))?;
                event.data = Some(decoded);
            }
            (Some(raw), None) => {
                if raw.get() == "null" {
                    event.data = None;
                } else if is_json_content_type(event.datacontenttype.as_deref()) {
                    event.data = Some(raw.get().as_bytes().to_vec());
                } else {
                    let text: String = serde_json::from_str(raw.get())
                        .map_err(|_| invalid("/data", "data of a non-JSON content type must be a string".into()))?;
                    event.data = Some(text.into_bytes());
                }
            }
            (None, None) => {}
        }
        Ok(event)
    }
}

/// The members of one event in the JSON format, in order; a member named twice is refused
/// (`event.duplicate_key`), as in event data, so no two readers can take different values.
fn envelope_members(bytes: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, Error> {
    let members: Vec<(Cow<'_, str>, &RawValue)> =
        serde_json::from_slice::<EnvelopeMembers<'_>>(bytes).map_err(|error| malformed_json(&error))?.0;
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    let repeated = members.iter().position(|(name, _)| !seen.insert(name.as_ref()));
    if let Some(repeated) = repeated {
        let name = &members[repeated].0;
        return Err(Error::invalid(codes::EVENT_DUPLICATE_KEY, format!("attribute {name} appears more than once in the event"))
            .with_path(format!("/{}", crate::json_pointer_escape(name))));
    }
    Ok(members)
}

/// An event object's members as borrowed pairs (serde's map types would merge repeats).
struct EnvelopeMembers<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for EnvelopeMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = EnvelopeMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                // Bounded by the attribute and extension limits, checked after parsing; a hostile
                // envelope is bounded by the request body.
                while let Some((name, raw)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    members.push((name, raw));
                }
                Ok(EnvelopeMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

fn malformed_json(error: &serde_json::Error) -> Error {
    Error::invalid(
        codes::EVENT_MALFORMED_JSON,
        format!("malformed json at line {} column {}: {}", error.line(), error.column(), lowercase_first(&error.to_string())),
    )
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A JSON attribute value in its canonical string form; `None` for JSON null (absent).
fn scalar_to_canonical(raw: &RawValue) -> Result<Option<String>, &'static str> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text).map(Some).map_err(|_| "is not a valid string"),
        Some(b'n') if text == "null" => Ok(None),
        Some(b't') | Some(b'f') if text == "true" || text == "false" => Ok(Some(text.to_string())),
        Some(b'-' | b'0'..=b'9') => match text.parse::<i64>() {
            Ok(number) if (i32::MIN as i64..=i32::MAX as i64).contains(&number) => Ok(Some(number.to_string())),
            _ => Err("must be a string, a boolean or a 32-bit integer"),
        },
        _ => Err("must be a string, a boolean or an integer, not an object or array"),
    }
}

fn is_context_attribute(name: &str) -> bool {
    matches!(
        name,
        "specversion" | "id" | "source" | "type" | "subject" | "time" | "dataschema" | "datacontenttype" | "data" | "data_base64"
    )
}

pub fn check_attribute_name(name: &str) -> Result<(), Error> {
    let valid =
        !name.is_empty() && name.len() <= ATTRIBUTE_NAME_BYTES_MAX && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            codes::EVENT_INVALID_CLOUDEVENT,
            format!("attribute name {name:?} must be 1 to {ATTRIBUTE_NAME_BYTES_MAX} lowercase letters or digits"),
        )
        .with_path(format!("/{}", crate::json_pointer_escape(name))))
    }
}

/// CloudEvents strings exclude control characters; refusing them also keeps attributes
/// safe to copy into HTTP headers and logs (no header injection).
fn check_attribute_value(name: &str, value: &str) -> Result<(), Error> {
    if value.len() > ATTRIBUTE_VALUE_BYTES_MAX {
        return Err(Error::invalid(
            codes::EVENT_INVALID_CLOUDEVENT,
            format!("attribute {name} is longer than {ATTRIBUTE_VALUE_BYTES_MAX} bytes"),
        )
        .with_path(format!("/{name}")));
    }
    if has_control_character(value) {
        let bad = value.chars().find(|c| c.is_control()).map_or(0, |c| c as u32);
        return Err(Error::invalid(
            codes::EVENT_INVALID_CLOUDEVENT,
            format!("attribute {name} contains the control character U+{bad:04X}"),
        )
        .with_path(format!("/{name}")));
    }
    Ok(())
}

/// True if `text` holds a C0 or C1 control character (U+0000-001F, U+007F-009F), scanning
/// bytes: C1 controls are encoded as 0xC2 0x80-0x9F in UTF-8.
fn has_control_character(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .any(|(idx, &b)| b < 0x20 || b == 0x7f || (b == 0xc2 && bytes.get(idx + 1).is_some_and(|&next| (0x80..=0x9f).contains(&next))))
}

/// A new event id: a UUIDv7 (time-ordered) whose random bits come from a per-thread
/// generator seeded once from the OS, so minting an id costs no system call.
pub fn new_event_id(now_ms: i64) -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    }
    let (a, b) = STATE.with(|state| {
        let next = || {
            // splitmix64
            let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (next(), next())
    });
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(now_ms.max(0) as u64, &random).into_uuid().hyphenated().to_string()
}

/// True for media types whose data is text, carried as a JSON string in the JSON format.
pub fn is_text_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return false };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/") || essence.ends_with("+xml") || essence == "application/xml" || essence == "application/yaml"
}

/// Parses an RFC 3339 timestamp into milliseconds since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|error| error.to_string())?;
    Ok((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let Ok(datetime) = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000) else {
        return "1970-01-01T00:00:00.000Z".to_string();
    };
    let (year, month, day) = (datetime.year(), datetime.month() as u8, datetime.day());
    let (hour, minute, second, milli) = (datetime.hour(), datetime.minute(), datetime.second(), datetime.millisecond());
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_injection_and_bad_attributes_are_refused_with_a_path() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"specversion":"1.0","id":"x\r\nX-Evil: 1","source":"/s","type":"t"}"#, "/id"),
            (br#"{"specversion":"0.3","id":"x","source":"/s","type":"t"}"#, "/specversion"),
            (br#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#, "/id"),
            (br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"yesterday"}"#, "/time"),
            (br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","Bad-Name":"v"}"#, "/Bad-Name"),
        ];
        for (json, path) in cases {
            let error = CloudEvent::from_json(json).and_then(|event| event.check()).unwrap_err();
            assert_eq!(error.code, codes::EVENT_INVALID_CLOUDEVENT, "{}", String::from_utf8_lossy(json));
            assert_eq!(error.path.as_deref(), Some(path));
        }
        let error = CloudEvent::from_json(b"{\"id\":").unwrap_err();
        assert_eq!(error.code, codes::EVENT_MALFORMED_JSON);
    }

    #[test]
    fn structured_event_keeps_its_data_exactly_as_produced() {
        let json = br#"{"specversion":"1.0","id":"e-1","source":"/shop","type":"order.created","data":{"amount": 12.5}}"#;
        let event = CloudEvent::from_json(json).unwrap();
        event.check().unwrap();
        assert_eq!(event.data.as_deref(), Some(&br#"{"amount": 12.5}"#[..]));
    }
}
