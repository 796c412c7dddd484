//! [`Doc`], the borrowed JSON document that event validation walks.
//!
//! Owns the parse of one event's bytes into a tree that borrows its strings from those bytes
//! (a string is copied only when it holds an escape) and keeps objects as a vector of pairs.
//! It does not own any check: [`crate::CompiledContract::validate_bytes`] walks it.
//!
//! Why not `serde_json::Value`: in this workspace serde_json's `preserve_order` feature is on
//! (another crate asks for it), so every `Value` object is an `IndexMap` with SipHash and every
//! key and string is its own allocation. Building that tree was most of the cost of validating
//! an event at produce time; the checks themselves are a small part of it.
//! Event objects are small, so a linear scan finds a key as fast as a hash would.
//!
//! The semantics are those of `serde_json::Value`: numbers are [`serde_json::Number`]s built the
//! same way, and a key repeated in one object keeps its first position and its last value.
//!
//! Limits: nesting deeper than [`EVENT_DEPTH_MAX`] is a parse error, so hostile input cannot
//! exhaust the stack (serde_json's own recursion limit, which is the same, usually fires first).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::limits::EVENT_DEPTH_MAX;

/// Objects with at most this many keys are checked for repeated keys pairwise; larger ones
/// through a hash set, so a hostile object with many keys costs linear time, not quadratic.
const DUPLICATE_SCAN_KEYS_MAX: usize = 16;

/// One JSON value whose strings borrow from the parsed bytes where they can.
#[derive(Debug, Clone)]
pub enum Doc<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Doc<'a>>),
    /// Keys are unique, in order of first appearance.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// A view of `value` that borrows its strings.
    pub fn from_value(value: &'a Value) -> Self {
        match value {
            Value::Null => Doc::Null,
            Value::Bool(flag) => Doc::Bool(*flag),
            Value::Number(number) => Doc::Number(number.clone()),
            Value::String(text) => Doc::String(Cow::Borrowed(text)),
            Value::Array(items) => Doc::Array(items.iter().map(Doc::from_value).collect()),
            Value::Object(map) => {
                Doc::Object(map.iter().map(|(key, value)| (Cow::Borrowed(key.as_str()), Doc::from_value(value))).collect())
            }
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }

    /// The value of `key` when `self` is an object holding it.
    pub fn get(&self, key: &str) -> Option<&Doc<'a>> {
        match self {
            Doc::Object(pairs) => object_get(pairs, key),
            _ => None,
        }
    }

    /// The value at a JSON pointer (RFC 6901), with the rules of `serde_json::Value::pointer`:
    /// the empty pointer is the whole document; array indices have no sign and no leading zero.
    pub fn pointer(&self, pointer: &str) -> Option<&Doc<'a>> {
        if pointer.is_empty() {
            return Some(self);
        }
        let tokens = pointer.strip_prefix('/')?;
        tokens.split('/').try_fold(self, |target, token| {
            let token: Cow<'_, str> =
                if token.contains('~') { Cow::Owned(token.replace("~1", "/").replace("~0", "~")) } else { Cow::Borrowed(token) };
            match target {
                Doc::Object(pairs) => object_get(pairs, &token),
                Doc::Array(items) => parse_index(&token).and_then(|item_idx| items.get(item_idx)),
                _ => None,
            }
        })
    }
}

pub(crate) fn object_get<'d, 'a>(pairs: &'d [(Cow<'a, str>, Doc<'a>)], key: &str) -> Option<&'d Doc<'a>> {
    pairs.iter().find(|(candidate, _)| candidate == key).map(|(_, value)| value)
}

fn parse_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// Structural equality as `serde_json::Value`'s: object key order does not matter, numbers
/// compare by representation.
impl PartialEq for Doc<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Doc::Null, Doc::Null) => true,
            (Doc::Bool(a), Doc::Bool(b)) => a == b,
            (Doc::Number(a), Doc::Number(b)) => a == b,
            (Doc::String(a), Doc::String(b)) => a == b,
            (Doc::Array(a), Doc::Array(b)) => a == b,
            (Doc::Object(a), Doc::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(key, value)| object_get(b, key).is_some_and(|other| value == other))
            }
            _ => false,
        }
    }
}

/// Equality with a `serde_json::Value`, with the same rules as `Value == Value`.
impl PartialEq<Value> for Doc<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Doc::Null, Value::Null) => true,
            (Doc::Bool(a), Value::Bool(b)) => a == b,
            (Doc::Number(a), Value::Number(b)) => a == b,
            (Doc::String(a), Value::String(b)) => a == b,
            (Doc::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b),
            (Doc::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(key, value)| b.get(key.as_ref()).is_some_and(|other| value == other))
            }
            _ => false,
        }
    }
}

/// Writes the document as `serde_json::Value` would (objects in their order of first key).
impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Null => serializer.serialize_unit(),
            Doc::Bool(flag) => serializer.serialize_bool(*flag),
            Doc::Number(number) => number.serialize(serializer),
            Doc::String(text) => serializer.serialize_str(text),
            Doc::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Doc::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    map.serialize_entry(key.as_ref(), value)?;
                }
                map.end()
            }
        }
    }
}

impl fmt::Display for Doc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DocSeed { depth_left: EVENT_DEPTH_MAX }.deserialize(deserializer)
    }
}

/// Deserializes one value with at most `depth_left` levels of arrays and objects.
#[derive(Clone, Copy)]
struct DocSeed {
    depth_left: usize,
}

impl DocSeed {
    fn nested<E: serde::de::Error>(self) -> Result<DocSeed, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(DocSeed { depth_left }),
            None => Err(E::custom(format_args!("nesting is deeper than {EVENT_DEPTH_MAX} levels"))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for DocSeed {
    type Value = Doc<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Doc<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(flag))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Doc<'de>, E> {
        // As `serde_json::Value`: a float JSON cannot hold becomes null.
        Ok(Number::from_f64(n).map_or(Doc::Null, Doc::Number))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(text)))
    }

    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Doc<'de>, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let item_seed = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(item_seed)? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let value_seed = self.nested()?;
        let mut pairs: Vec<(Cow<'de, str>, Doc<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(value_seed)?;
            pairs.push((key, value));
        }
        if has_repeated_key(&pairs) {
            pairs = merge_repeated_keys(pairs);
        }
        Ok(Doc::Object(pairs))
    }
}

/// Deserializes an object key, borrowing it when it has no escapes (serde's own `Cow` impl
/// always copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(text))
    }
}

fn has_repeated_key(pairs: &[(Cow<'_, str>, Doc<'_>)]) -> bool {
    if pairs.len() <= DUPLICATE_SCAN_KEYS_MAX {
        (1..pairs.len()).any(|idx| pairs[..idx].iter().any(|(earlier, _)| *earlier == pairs[idx].0))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        !pairs.iter().all(|(key, _)| seen.insert(key.as_ref()))
    }
}

/// Keeps each key once, at its first position, with its last value (as `serde_json::Value`).
fn merge_repeated_keys<'a>(pairs: Vec<(Cow<'a, str>, Doc<'a>)>) -> Vec<(Cow<'a, str>, Doc<'a>)> {
    let mut merged: Vec<(Cow<'a, str>, Doc<'a>)> = Vec::with_capacity(pairs.len());
    let mut position_of_key: std::collections::HashMap<Cow<'a, str>, usize> = std::collections::HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        match position_of_key.get(&key) {
            Some(&position) => merged[position].1 = value,
            None => {
                position_of_key.insert(key.clone(), merged.len());
                merged.push((key, value));
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    //! Proves that `Doc` parses, compares, prints and points like `serde_json::Value`.

    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> Doc<'_> {
        serde_json::from_str(text).expect("valid json")
    }

    #[test]
    fn parses_and_prints_like_value() {
        // Keys in sorted order, so the text is the same with or without `preserve_order`.
        let text = r#"{"a":{"c":"d"},"b":[1,-2,3.5,true,null,"x\"y"],"e":18446744073709551615}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let doc = parse(text);
        assert_eq!(doc, value);
        assert_eq!(doc.to_string(), value.to_string());
        assert!(matches!(doc.get("a"), Some(Doc::Object(_))));
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let doc = parse(r#"{"plain":"abc","escaped":"a\nb"}"#);
        assert!(matches!(doc.get("plain"), Some(Doc::String(Cow::Borrowed("abc")))));
        assert!(matches!(doc.get("escaped"), Some(Doc::String(Cow::Owned(text))) if text == "a\nb"));
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let text = r#"{"a":1,"b":2,"a":3}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let doc = parse(text);
        assert_eq!(doc, value);
        let Doc::Object(pairs) = &doc else { panic!("object") };
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].0, "a");
        assert_eq!(pairs[0].1, json!(3));
        let many: String = format!("{{{}, \"k0\": \"last\"}}", (0..40).map(|i| format!("\"k{i}\": {i}")).collect::<Vec<_>>().join(","));
        let doc = parse(&many);
        let Doc::Object(pairs) = &doc else { panic!("object") };
        assert_eq!(pairs.len(), 40);
        assert_eq!(pairs[0].1, json!("last"));
    }

    #[test]
    fn pointer_follows_serde_json_rules() {
        let text = r#"{"a/b":{"m~n":[10,20]},"":5}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let doc = parse(text);
        for pointer in ["", "/", "/a~1b", "/a~1b/m~0n", "/a~1b/m~0n/1", "/a~1b/m~0n/01", "/a~1b/m~0n/+1", "/a~1b/m~0n/2", "a", "/x/y"] {
            match (doc.pointer(pointer), value.pointer(pointer)) {
                (Some(doc), Some(value)) => assert_eq!(doc, value, "{pointer}"),
                (None, None) => {}
                (doc, value) => panic!("{pointer}: {doc:?} vs {value:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(serde_json::from_str::<Doc<'_>>(&deep).is_err());
        // A `Value` as the deserializer has no recursion limit of its own, so this hits ours.
        let mut deep_value = Value::Null;
        for _ in 0..=EVENT_DEPTH_MAX {
            deep_value = Value::Array(vec![deep_value]);
        }
        let error = Doc::deserialize(&deep_value).unwrap_err();
        assert!(error.to_string().contains("nesting is deeper than 128 levels"), "{error}");
    }
}
