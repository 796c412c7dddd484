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
//! The semantics are those of `serde_json::Value` (numbers are [`serde_json::Number`]s built the
//! same way) except for one rule: an object that repeats a key is refused, with the JSON pointer
//! of the repeated member ([`Doc::parse`], [`DocError::RepeatedKey`]). RFC 8259 says names
//! SHOULD be unique and I-JSON (RFC 7493) says MUST; readers disagree on which value wins
//! (first, last, or both), so an event the validator passed with one value could reach a masker
//! or a consumer with another. The check costs nothing extra: the pairs are compared once the
//! object is read, as the merge it replaces did.
//!
//! Limits: nesting deeper than [`EVENT_DEPTH_MAX`] is a parse error, so hostile input cannot
//! exhaust the stack (serde_json's own recursion limit, which is the same, usually fires first).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::error::push_pointer_token;
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
    /// Keys are unique, in document order.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

/// Why bytes are not a [`Doc`].
#[derive(Debug)]
pub enum DocError {
    /// Not JSON, or nested deeper than [`EVENT_DEPTH_MAX`].
    Malformed(serde_json::Error),
    /// An object repeats a key; `pointer` is the JSON pointer of the repeated member
    /// (`/customer/email` for `{"customer":{"email":1,"email":2}}`).
    RepeatedKey { pointer: String },
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::Malformed(error) => write!(f, "{error}"),
            DocError::RepeatedKey { pointer } => write!(f, "the key at {pointer} appears more than once in its object"),
        }
    }
}

/// Where a repeated key was found: the tokens of its pointer, innermost first, pushed while the
/// parse error unwinds through the enclosing objects and arrays (so the happy path pays nothing).
#[derive(Default)]
pub(crate) struct RepeatedKeyTrail {
    tokens: RefCell<Option<Vec<String>>>,
}

impl RepeatedKeyTrail {
    pub(crate) fn start(&self, key: &str) {
        *self.tokens.borrow_mut() = Some(vec![escape_token(key)]);
    }

    pub(crate) fn push(&self, token: impl FnOnce() -> String) {
        if let Some(tokens) = self.tokens.borrow_mut().as_mut() {
            tokens.push(token());
        }
    }

    pub(crate) fn pointer(&self) -> Option<String> {
        self.tokens.borrow().as_ref().map(|tokens| tokens.iter().rev().map(|token| format!("/{token}")).collect())
    }
}

pub(crate) fn escape_token(key: &str) -> String {
    let mut pointer = String::with_capacity(key.len() + 1);
    push_pointer_token(&mut pointer, key);
    pointer.split_off(1)
}

impl<'a> Doc<'a> {
    /// Parses one JSON document that borrows its strings from `bytes`; an object that repeats a
    /// key is [`DocError::RepeatedKey`] with the pointer of the repeated member.
    pub fn parse(bytes: &'a [u8]) -> Result<Doc<'a>, DocError> {
        let trail = RepeatedKeyTrail::default();
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let parsed = DocSeed { depth_left: EVENT_DEPTH_MAX, trail: Some(&trail) }.deserialize(&mut deserializer).and_then(|doc| {
            deserializer.end()?;
            Ok(doc)
        });
        parsed.map_err(|error| match trail.pointer() {
            Some(pointer) => DocError::RepeatedKey { pointer },
            None => DocError::Malformed(error),
        })
    }

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

/// Deserializing from any deserializer refuses repeated keys too, without their pointer (use
/// [`Doc::parse`] for that).
impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DocSeed { depth_left: EVENT_DEPTH_MAX, trail: None }.deserialize(deserializer)
    }
}

/// Deserializes one value with at most `depth_left` levels of arrays and objects, noting where a
/// repeated key was found in `trail`.
#[derive(Clone, Copy)]
struct DocSeed<'t> {
    depth_left: usize,
    trail: Option<&'t RepeatedKeyTrail>,
}

impl DocSeed<'_> {
    fn nested<E: serde::de::Error>(self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(DocSeed { depth_left, trail: self.trail }),
            None => Err(E::custom(format_args!("nesting is deeper than {EVENT_DEPTH_MAX} levels"))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = Doc<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Doc<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
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
        loop {
            match seq.next_element_seed(item_seed) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Doc::Array(items)),
                Err(error) => {
                    if let Some(trail) = self.trail {
                        trail.push(|| items.len().to_string());
                    }
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let value_seed = self.nested()?;
        let mut pairs: Vec<(Cow<'de, str>, Doc<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match map.next_value_seed(value_seed) {
                Ok(value) => pairs.push((key, value)),
                Err(error) => {
                    if let Some(trail) = self.trail {
                        trail.push(|| escape_token(&key));
                    }
                    return Err(error);
                }
            }
        }
        if let Some(repeated_idx) = repeated_key_idx(&pairs) {
            let key = &pairs[repeated_idx].0;
            if let Some(trail) = self.trail {
                trail.start(key);
            }
            return Err(serde::de::Error::custom(format_args!("the key {key:?} appears more than once in one object")));
        }
        Ok(Doc::Object(pairs))
    }
}

/// Deserializes an object key, borrowing it when it has no escapes (serde's own `Cow` impl
/// always copies). Shared with `scan.rs`.
pub(crate) struct KeySeed;

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

/// The index of the first pair whose key an earlier pair already has.
fn repeated_key_idx(pairs: &[(Cow<'_, str>, Doc<'_>)]) -> Option<usize> {
    repeated_idx(pairs, |(key, _)| key)
}

/// The index of the first item whose key an earlier item already has: pairwise for small
/// objects, through a hash set beyond `DUPLICATE_SCAN_KEYS_MAX` keys.
pub(crate) fn repeated_idx<T>(items: &[T], key: impl Fn(&T) -> &str) -> Option<usize> {
    if items.len() <= DUPLICATE_SCAN_KEYS_MAX {
        (1..items.len()).find(|&idx| items[..idx].iter().any(|earlier| key(earlier) == key(&items[idx])))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        items.iter().position(|item| !seen.insert(key(item)))
    }
}

#[cfg(test)]
mod tests {
    //! Proves that `Doc` parses, compares, prints and points like `serde_json::Value`.

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

    /// A repeated key is refused with the pointer of the repeated member, at any depth, in small
    /// objects (compared pairwise) and large ones (through a hash set) alike.
    #[test]
    fn a_repeated_key_is_refused_with_its_pointer() {
        let repeated = |text: &str| match Doc::parse(text.as_bytes()) {
            Err(DocError::RepeatedKey { pointer }) => pointer,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(repeated(r#"{"a":1,"b":2,"a":3}"#), "/a");
        assert_eq!(repeated(r#"{"x":[1,{"m/n":{"q~":1,"q~":2}}]}"#), "/x/1/m~1n/q~0");
        assert_eq!(repeated(r#"[{},{"k":1,"k":1}]"#), "/1/k");
        let many: String = format!("{{{}, \"k0\": \"last\"}}", (0..40).map(|i| format!("\"k{i}\": {i}")).collect::<Vec<_>>().join(","));
        assert_eq!(repeated(&many), "/k0");
        assert!(serde_json::from_str::<Doc<'_>>(r#"{"a":1,"a":1}"#).is_err());
        assert!(Doc::parse(br#"{"a":1,"b":{"a":2}}"#).is_ok(), "the same key in different objects is fine");
        assert!(matches!(Doc::parse(br#"{"a":}"#), Err(DocError::Malformed(_))));
        assert!(matches!(Doc::parse(br#"{"a":1} x"#), Err(DocError::Malformed(_))));
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
