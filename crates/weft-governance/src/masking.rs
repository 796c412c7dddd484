//! Masking of classified properties on read paths, deterministic per data product.
//!
//! Properties classified `pii`, `confidential`, `restricted` or `sensitive`
//! ([`is_masked_classification`]) are replaced, for principals without `unmask` on the product, by
//! `"masked:<16 hex>"`: the first 8 bytes of HMAC-SHA256(product key, canonical JSON of the value).
//! The same value masks to the same text within a product, so masked columns still join and group;
//! across products the keys differ, so masked values cannot be correlated between products.
//!
//! Keys: the server secret is 32 random bytes in `<data-dir>/governance.secret` (hex, mode 0600),
//! created on first start; a product's key is HMAC-SHA256(server secret, `"weft/mask/v1\0" + product id`).
//! Losing or replacing the secret changes every masked value (joins across the change break), so a
//! malformed secret file is an error, never silently regenerated.
//!
//! Owns the value transformation only: which pointers are classified comes from the data contract,
//! and whether the reader may `unmask` comes from [`crate::authz`].
//!
//! Failures fail closed: a pointer that is not a JSON pointer, or more than [`MASK_POINTERS_MAX`]
//! pointers, masks the whole value; data that is not JSON is masked whole; and where the data does
//! not have the shape a pointer describes (a scalar or an array where it goes into an object, an
//! object where it goes into an array's items: a dead letter need not match its contract), the
//! value in the way is masked whole.

use std::fmt;
use std::fs;
use std::path::Path;

use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::codes;
use crate::encoding::{from_hex, to_hex};
use crate::private_file::write_private_file;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Classifications whose properties are masked.
pub const MASKED_CLASSIFICATIONS: [&str; 4] = ["pii", "confidential", "restricted", "sensitive"];
/// Most pointers applied to one value; more masks the whole value (a contract should never need it).
pub const MASK_POINTERS_MAX: usize = 1024;
/// The server secret's file under the data directory.
pub const SERVER_SECRET_FILE: &str = "governance.secret";
/// Bytes of the server secret and of product keys.
pub const KEY_BYTES: usize = 32;
/// Every masked value starts with this.
pub const MASK_PREFIX: &str = "masked:";
/// Hex characters of the keyed hash kept in a masked value (64 bits: collisions are negligible for
/// joins, and the value stays short).
pub const MASK_HEX_CHARS: usize = 16;

const KEY_DERIVATION_LABEL: &[u8] = b"weft/mask/v1\0";
const JSON_VALUE_LABEL: &[u8] = b"json\0";
const RAW_VALUE_LABEL: &[u8] = b"raw\0";

/// True for the classifications that are masked (case-insensitive).
pub fn is_masked_classification(classification: &str) -> bool {
    MASKED_CLASSIFICATIONS.iter().any(|masked| masked.eq_ignore_ascii_case(classification))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MaskingError {
    pub message: String,
}

impl MaskingError {
    pub fn code(&self) -> &'static str {
        codes::MASKING_SECRET
    }
}

/// The server secret. `Debug` never shows it.
#[derive(Clone)]
pub struct ServerSecret([u8; KEY_BYTES]);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// Reads `<data_dir>/governance.secret`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, MaskingError> {
        let path = data_dir.join(SERVER_SECRET_FILE);
        let error = |what: &str| MaskingError { message: format!("server secret {}: {what}", path.display()) };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = from_hex(text.trim()).ok_or_else(|| error("not 64 hex characters"))?;
                let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| error("not 64 hex characters"))?;
                Ok(Self(bytes))
            }
            Err(io_error) if io_error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_BYTES];
                getrandom::fill(&mut bytes).map_err(|_| error("operating system random number generator failed"))?;
                write_private_file(&path, format!("{}\n", to_hex(&bytes)).as_bytes()).map_err(|io_error| error(&io_error.to_string()))?;
                Ok(Self(bytes))
            }
            Err(io_error) => Err(error(&io_error.to_string())),
        }
    }

    /// The masking key of one data product.
    pub fn product_key(&self, product_id: &str) -> ProductKey {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(KEY_DERIVATION_LABEL);
        mac.update(product_id.as_bytes());
        ProductKey(mac.finalize().into_bytes().into())
    }
}

/// One product's masking key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProductKey([u8; KEY_BYTES]);

impl ProductKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProductKey(<redacted>)")
    }
}

/// Masks, in place, the values at `pointers` (RFC 6901 JSON pointers into the event data, where a
/// `*` segment means every element of an array or every value of an object, for map-typed
/// properties). Missing paths are skipped. Returns how many values
/// were masked.
///
/// Pointers are applied shortest first, so when one pointer lies inside another the outer value is
/// masked whole and the result does not depend on the order of `pointers`.
pub fn mask_json(value: &mut Value, pointers: &[String], product_key: &[u8]) -> usize {
    if pointers.len() > MASK_POINTERS_MAX {
        mask_in_place(value, product_key);
        return 1;
    }
    let mut parsed: Vec<Vec<String>> = Vec::with_capacity(pointers.len());
    for pointer in pointers {
        match parse_pointer(pointer) {
            Some(segments) => parsed.push(segments),
            None => {
                mask_in_place(value, product_key);
                return 1;
            }
        }
    }
    // Every value to mask is found first, then each is masked once: where one lies inside another
    // (nested pointers, or a pointer that stops at a value in the way of a longer one), the outer
    // one is masked whole, so the result does not depend on the order of `pointers`.
    let mut targets: Vec<Vec<Step>> = Vec::new();
    for segments in &parsed {
        find_targets(value, segments, &mut Vec::new(), &mut targets);
    }
    targets.sort_by_key(Vec::len);
    let mut masked: Vec<Vec<Step>> = Vec::with_capacity(targets.len());
    for target in targets {
        if masked.iter().any(|outer| target.starts_with(outer)) {
            continue;
        }
        if let Some(at) = step_into(value, &target) {
            mask_in_place(at, product_key);
        }
        masked.push(target);
    }
    masked.len()
}

/// Masks raw event data: JSON data as [`mask_json`] (returned unchanged, byte for byte, when nothing
/// was masked); data that is not JSON is replaced whole by `masked:<16 hex>` when any pointer applies.
pub fn mask_bytes(data: &[u8], pointers: &[String], product_key: &[u8]) -> Vec<u8> {
    if pointers.is_empty() {
        return data.to_vec();
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(mut value) => {
            if mask_json(&mut value, pointers, product_key) == 0 {
                data.to_vec()
            } else {
                serde_json::to_vec(&value).expect("a JSON value serializes")
            }
        }
        Err(_) => mask_text(product_key, RAW_VALUE_LABEL, data).into_bytes(),
    }
}

/// The masked form of one JSON value.
pub fn mask_value(value: &Value, product_key: &[u8]) -> String {
    let mut canonical = Vec::new();
    write_canonical(value, &mut canonical);
    mask_text(product_key, JSON_VALUE_LABEL, &canonical)
}

fn mask_text(product_key: &[u8], label: &[u8], bytes: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(product_key).expect("HMAC accepts any key length");
    mac.update(label);
    mac.update(bytes);
    let digest = mac.finalize().into_bytes();
    format!("{MASK_PREFIX}{}", &to_hex(&digest)[..MASK_HEX_CHARS])
}

fn mask_in_place(value: &mut Value, product_key: &[u8]) {
    *value = Value::String(mask_value(value, product_key));
}

/// One step from a JSON value to a value inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    Item(usize),
}

/// Appends to `out` the path of every value that `segments` leads to from `value` (at `path`).
/// Missing members and items are skipped. Where the data does not have the shape the pointer
/// describes (a dead letter need not), the value in the way is the target: a classified value
/// may be anywhere inside it.
fn find_targets(value: &Value, segments: &[String], path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let Some((segment, rest)) = segments.split_first() else {
        out.push(path.clone());
        return;
    };
    let visit = |step: Step, inner: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>| {
        path.push(step);
        find_targets(inner, rest, path, out);
        path.pop();
    };
    match value {
        // `*` is every item of an array and every value of a map (a `logicalType: map` property
        // whose values are classified compiles to `<map>/*`): a map is masked whole, keys and all,
        // even one with a member literally named `*`, whose other values must not leak.
        Value::Object(_) if segment == "*" => out.push(path.clone()),
        Value::Object(members) => {
            if let Some(member) = members.get(segment) {
                visit(Step::Member(segment.clone()), member, path, out);
            }
        }
        Value::Array(items) if segment == "*" => {
            for (item_idx, item) in items.iter().enumerate() {
                visit(Step::Item(item_idx), item, path, out);
            }
        }
        Value::Array(items) => match array_index(segment) {
            Some(index) => {
                if let Some(item) = items.get(index) {
                    visit(Step::Item(index), item, path, out);
                }
            }
            None => out.push(path.clone()),
        },
        Value::Null => {}
        Value::Bool(_) | Value::Number(_) | Value::String(_) => out.push(path.clone()),
    }
}

/// The value at `path`, found by [`find_targets`] in the same value.
fn step_into<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |at, step| match (at, step) {
        (Value::Object(members), Step::Member(key)) => members.get_mut(key),
        (Value::Array(items), Step::Item(index)) => items.get_mut(*index),
        _ => None,
    })
}

/// RFC 6901 array index: `0` or digits without a leading zero.
fn array_index(segment: &str) -> Option<usize> {
    let digits_only = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (segment.len() > 1 && segment.starts_with('0')) {
        return None;
    }
    segment.parse().ok()
}

/// `""` is the whole value; otherwise `/`-separated segments with `~1` for `/` and `~0` for `~`.
fn parse_pointer(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/')
        .map(|segment| {
            let mut unescaped = String::with_capacity(segment.len());
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => unescaped.push('~'),
                        Some('1') => unescaped.push('/'),
                        _ => return None,
                    },
                    c => unescaped.push(c),
                }
            }
            Some(unescaped)
        })
        .collect()
}

/// JSON with object members sorted by key and no whitespace, so equal values hash equally whatever
/// the member order in the event (or serde_json's map order feature).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (member_idx, (key, member)) in sorted.into_iter().enumerate() {
                if member_idx > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (item_idx, item) in items.iter().enumerate() {
                if item_idx > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_parse_per_rfc6901() {
        assert_eq!(parse_pointer(""), Some(vec![]));
        assert_eq!(parse_pointer("/a~1b/c~0d/*"), Some(vec!["a/b".to_string(), "c~d".to_string(), "*".to_string()]));
        assert_eq!(parse_pointer("a"), None);
        assert_eq!(parse_pointer("/a~2"), None);
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("10"), Some(10));
    }

    /// The values of a map (`<map>/*`) are classified, so the map is masked whole, keys too, even
    /// with a key literally named `*`; a map inside an array's items likewise.
    #[test]
    fn a_map_whose_values_are_classified_is_masked_whole() {
        let key = [7u8; KEY_BYTES];
        let mut value: Value =
            serde_json::from_str(r#"{"notes":{"a":"x","*":"y"},"lines":[{"m":{"k":"v"}},{"m":{}}],"id":"o-1"}"#).unwrap();
        let n_masked = mask_json(&mut value, &["/notes/*".to_string(), "/lines/*/m/*".to_string()], &key);
        assert_eq!(n_masked, 3);
        for masked in [&value["notes"], &value["lines"][0]["m"], &value["lines"][1]["m"]] {
            assert!(masked.as_str().is_some_and(|text| text.starts_with(MASK_PREFIX)), "{value}");
        }
        assert_eq!(value["id"], "o-1");
    }

    /// A dead letter need not have its contract's shape: whatever stands where a classified
    /// pointer leads is masked whole, so a classified value cannot hide in a wrong shape.
    #[test]
    fn data_without_the_pointers_shape_is_masked_where_the_shape_breaks() {
        let key = [7u8; KEY_BYTES];
        let pointers = ["/customer/email".to_string(), "/lines/*/card".to_string()];
        let mut value: Value =
            serde_json::from_str(r#"{"customer":"ann@example.com","lines":{"a":{"card":"4111"}},"other":1,"ok":{"customer":null}}"#)
                .unwrap();
        assert_eq!(mask_json(&mut value, &pointers, &key), 2);
        assert!(value["customer"].as_str().is_some_and(|v| v.starts_with(MASK_PREFIX)), "{value}");
        assert!(value["lines"].as_str().is_some_and(|v| v.starts_with(MASK_PREFIX)), "{value}");
        assert_eq!(value["other"], 1);
        let mut shaped: Value = serde_json::from_str(r#"{"customer":{"name":"x"},"lines":[{"card":"4111"},{"n":2}]}"#).unwrap();
        assert_eq!(mask_json(&mut shaped, &pointers, &key), 1, "missing members are skipped: {shaped}");
        let mut absent: Value = serde_json::from_str(r#"{"customer":null,"lines":[]}"#).unwrap();
        assert_eq!(mask_json(&mut absent, &pointers, &key), 0, "null and empty hold nothing: {absent}");
        let mut indexed: Value = serde_json::from_str(r#"{"customer":["ann@example.com"]}"#).unwrap();
        assert_eq!(mask_json(&mut indexed, &pointers, &key), 1);
        assert!(indexed["customer"].as_str().is_some_and(|v| v.starts_with(MASK_PREFIX)), "{indexed}");
    }

    #[test]
    fn canonical_json_ignores_member_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[true,null,"x"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a" : [true, null, "x"], "b" : 1 }"#).unwrap();
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        write_canonical(&a, &mut ca);
        write_canonical(&b, &mut cb);
        assert_eq!(ca, cb);
        assert_eq!(ca, br#"{"a":[true,null,"x"],"b":1}"#);
    }
}
