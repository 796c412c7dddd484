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
//! pointers, masks the whole value; data that is not JSON is masked whole.

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
    parsed.sort_by_key(Vec::len);
    let mut n_masked = 0;
    for segments in &parsed {
        mask_at(value, segments, product_key, &mut n_masked);
    }
    n_masked
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

fn mask_at(value: &mut Value, segments: &[String], product_key: &[u8], n_masked: &mut usize) {
    let Some((segment, rest)) = segments.split_first() else {
        mask_in_place(value, product_key);
        *n_masked += 1;
        return;
    };
    match value {
        // `*` is every value of a map (a `logicalType: map` property's values are `<map>/*`), as
        // it is every item of an array. An object with a member literally named `*` then has all
        // its members masked: more than asked, never less.
        Value::Object(members) if segment == "*" => {
            for member in members.values_mut() {
                mask_at(member, rest, product_key, n_masked);
            }
        }
        Value::Object(members) => {
            if let Some(member) = members.get_mut(segment) {
                mask_at(member, rest, product_key, n_masked);
            }
        }
        Value::Array(items) if segment == "*" => {
            for item in items {
                mask_at(item, rest, product_key, n_masked);
            }
        }
        Value::Array(items) => {
            if let Some(item) = array_index(segment).and_then(|index| items.get_mut(index)) {
                mask_at(item, rest, product_key, n_masked);
            }
        }
        _ => {}
    }
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

    /// The values of a map (`<map>/*`) are masked one by one and its keys stay; an array's items
    /// and a map nested in an array's items are masked the same way.
    #[test]
    fn every_value_of_a_map_is_masked() {
        let key = [7u8; KEY_BYTES];
        let mut value: Value = serde_json::from_str(r#"{"notes":{"a":"x","b":{"deep":1}},"lines":[{"m":{"k":"v"}}],"id":"o-1"}"#).unwrap();
        let n_masked = mask_json(&mut value, &["/notes/*".to_string(), "/lines/*/m/*".to_string()], &key);
        assert_eq!(n_masked, 3);
        for masked in [&value["notes"]["a"], &value["notes"]["b"], &value["lines"][0]["m"]["k"]] {
            assert!(masked.as_str().is_some_and(|text| text.starts_with(MASK_PREFIX)), "{value}");
        }
        assert_eq!(value["id"], "o-1");
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
