//! Scanning JSON data without building a document tree: the check that data on a stream without
//! a contract is JSON whose objects never repeat a key, and the partition key read by JSON
//! pointer on the way.
//!
//! The whole input is parsed, so malformed JSON is reported, but nothing is allocated for the
//! members skipped: the keys of the objects being read sit on one stack of borrowed keys shared
//! by the whole scan (each object compares its own keys when it ends, then pops them), which is
//! how repeated keys are found with the same rule, pointer and trail as [`crate::Doc::parse`], so
//! the two parsers agree on what JSON Weft accepts.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::doc::{DocError, KeySeed, RepeatedKeyTrail, escape_token, repeated_idx};
use crate::limits::EVENT_DEPTH_MAX;

/// Checks that `data` is one JSON document whose objects never repeat a key; with a `pointer`,
/// also returns the scalar found there as partition-key bytes: strings as they are, numbers and
/// booleans as their JSON text. Null, objects, arrays and missing members give `None`.
pub fn scan_json(data: &[u8], pointer: Option<&str>) -> Result<Option<Vec<u8>>, DocError> {
    let tokens: Vec<String> = match pointer {
        Some(pointer) => pointer.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect(),
        None => Vec::new(),
    };
    let trail = RepeatedKeyTrail::default();
    let keys = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let seek = Seek { tokens: pointer.is_some().then_some(tokens.as_slice()), depth_left: EVENT_DEPTH_MAX, trail: &trail, keys: &keys };
    let scanned = seek.deserialize(&mut deserializer).and_then(|found| {
        deserializer.end()?;
        Ok(found)
    });
    scanned.map_err(|error| match trail.pointer() {
        Some(pointer) => DocError::RepeatedKey { pointer },
        None => DocError::Malformed(error),
    })
}

/// Walks one value; `tokens` is the rest of the pointer while the value lies on its path, `None`
/// for a value that is only checked; `keys` is the scan's stack of the open objects' keys.
#[derive(Clone, Copy)]
struct Seek<'t, 'de> {
    tokens: Option<&'t [String]>,
    depth_left: usize,
    trail: &'t RepeatedKeyTrail,
    keys: &'t RefCell<Vec<Cow<'de, str>>>,
}

impl<'t, 'de> Seek<'t, 'de> {
    fn nested<E: serde::de::Error>(self, tokens: Option<&'t [String]>) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Seek { tokens, depth_left, trail: self.trail, keys: self.keys }),
            None => Err(E::custom(format_args!("nesting is deeper than {EVENT_DEPTH_MAX} levels"))),
        }
    }

    /// The key bytes of a scalar, when the pointer ends here.
    fn scalar(&self, text: impl FnOnce() -> Vec<u8>) -> Option<Vec<u8>> {
        self.tokens.is_some_and(<[String]>::is_empty).then(text)
    }
}

impl<'de> DeserializeSeed<'de> for Seek<'_, 'de> {
    type Value = Option<Vec<u8>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_, 'de> {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(self.scalar(|| value.as_bytes().to_vec()))
    }
    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(self.scalar(|| value.to_string().into_bytes()))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(self.scalar(|| value.to_string().into_bytes()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(self.scalar(|| value.to_string().into_bytes()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(self.scalar(|| serde_json::Number::from_f64(value).map_or_else(|| value.to_string(), |n| n.to_string()).into_bytes()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let base = self.keys.borrow().len();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let on_path = match self.tokens.and_then(<[String]>::split_first) {
                Some((first, rest)) if **first == *key => Some(rest),
                _ => None,
            };
            match map.next_value_seed(self.nested(on_path)?) {
                Ok(value) => {
                    if on_path.is_some() && found.is_none() {
                        found = value;
                    }
                }
                Err(error) => {
                    self.trail.push(|| escape_token(&key));
                    return Err(error);
                }
            }
            self.keys.borrow_mut().push(key);
        }
        let mut keys = self.keys.borrow_mut();
        if let Some(repeated) = repeated_idx(&keys[base..], |key| key) {
            let key = &keys[base + repeated];
            self.trail.start(key);
            return Err(serde::de::Error::custom(format_args!("the key {key:?} appears more than once in one object")));
        }
        keys.truncate(base);
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted =
            self.tokens.and_then(<[String]>::split_first).and_then(|(first, rest)| first.parse::<usize>().ok().map(|idx| (idx, rest)));
        let mut found = None;
        let mut element_idx = 0usize;
        loop {
            let on_path = wanted.filter(|(idx, _)| *idx == element_idx).map(|(_, rest)| rest);
            match seq.next_element_seed(self.nested(on_path)?) {
                Ok(Some(value)) => {
                    if on_path.is_some() {
                        found = value;
                    }
                }
                Ok(None) => return Ok(found),
                Err(error) => {
                    self.trail.push(|| element_idx.to_string());
                    return Err(error);
                }
            }
            element_idx += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(data: &[u8], pointer: &str) -> Option<String> {
        scan_json(data, Some(pointer)).unwrap().map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn keys_are_found_at_any_depth_and_typed_like_kafka_keys() {
        let data = br#"{"a":{"b~c":[{"x":1},{"x":"k-9"}]},"id":"c-1","n":42,"f":1.5,"t":true,"z":null,"o":{}}"#;
        assert_eq!(key(data, "/id").as_deref(), Some("c-1"));
        assert_eq!(key(data, "/n").as_deref(), Some("42"));
        assert_eq!(key(data, "/f").as_deref(), Some("1.5"));
        assert_eq!(key(data, "/t").as_deref(), Some("true"));
        assert_eq!(key(data, "/a/b~0c/1/x").as_deref(), Some("k-9"));
        assert_eq!(key(data, "/z"), None);
        assert_eq!(key(data, "/o"), None);
        assert_eq!(key(data, "/missing"), None);
        assert_eq!(scan_json(data, None).unwrap(), None, "without a pointer the data is only checked");
    }

    #[test]
    fn malformed_data_is_an_error_even_after_the_key() {
        assert!(matches!(scan_json(br#"{"id":"c-1","x":}"#, Some("/id")), Err(DocError::Malformed(_))));
        assert!(matches!(scan_json(br#"{"id":"c-1"} trailing"#, Some("/id")), Err(DocError::Malformed(_))));
        assert!(matches!(scan_json(&[b'['; 200], None), Err(DocError::Malformed(_))));
    }

    /// The scan refuses what `Doc::parse` refuses, with the same pointer: on the key's path, in
    /// skipped members, and with or without a pointer.
    #[test]
    fn a_repeated_key_is_refused_wherever_it_is() {
        for (data, pointer, expected) in [
            (&br#"{"id":"a","id":"b"}"#[..], Some("/id"), "/id"),
            (br#"{"id":"a","x":[{"q":1},{"q":1,"q":2}]}"#, Some("/id"), "/x/1/q"),
            (br#"{"a":{"b":{"c":1,"c":1}}}"#, Some("/a/b/c"), "/a/b/c"),
            (br#"{"m/n":{"k~":1,"k~":1}}"#, None, "/m~1n/k~0"),
        ] {
            match scan_json(data, pointer) {
                Err(DocError::RepeatedKey { pointer }) => assert_eq!(pointer, expected),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(data)),
            }
            let Err(DocError::RepeatedKey { pointer }) = crate::Doc::parse(data) else { panic!("Doc::parse agrees") };
            assert_eq!(pointer, expected);
        }
    }
}
