//! Reads one value out of JSON data by JSON pointer without building a document tree:
//! the partition key on the produce path. The whole input is still parsed, so malformed
//! JSON is reported, but nothing is allocated for the members that are skipped.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A scalar found at the pointer, as partition-key bytes: strings as they are, numbers and
/// booleans as their JSON text. Null, objects, arrays and missing members give `None`.
pub fn key_at_pointer(data: &[u8], pointer: &str) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect();
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let found = Seek { tokens: &tokens }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(found)
}

struct Seek<'t> {
    tokens: &'t [String],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Option<Vec<u8>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(self.tokens.is_empty().then(|| value.as_bytes().to_vec()))
    }
    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(self.tokens.is_empty().then(|| value.to_string().into_bytes()))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(self.tokens.is_empty().then(|| value.to_string().into_bytes()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(self.tokens.is_empty().then(|| value.to_string().into_bytes()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(self
            .tokens
            .is_empty()
            .then(|| serde_json::Number::from_f64(value).map_or_else(|| value.to_string(), |n| n.to_string()).into_bytes()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.tokens.split_first() {
                Some((first, rest)) if found.is_none() && **first == *key => found = map.next_value_seed(Seek { tokens: rest })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = self.tokens.split_first().and_then(|(first, rest)| first.parse::<usize>().ok().map(|idx| (idx, rest)));
        let mut found = None;
        let mut element_idx = 0usize;
        loop {
            let step = match wanted {
                Some((idx, rest)) if idx == element_idx => seq.next_element_seed(Seek { tokens: rest })?.map(|value| found = value),
                _ => seq.next_element::<IgnoredAny>()?.map(|_| ()),
            };
            if step.is_none() {
                return Ok(found);
            }
            element_idx += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_at_any_depth_and_typed_like_kafka_keys() {
        let data = br#"{"a":{"b~c":[{"x":1},{"x":"k-9"}]},"id":"c-1","n":42,"f":1.5,"t":true,"z":null,"o":{}}"#;
        let key = |pointer: &str| key_at_pointer(data, pointer).unwrap().map(|bytes| String::from_utf8(bytes).unwrap());
        assert_eq!(key("/id").as_deref(), Some("c-1"));
        assert_eq!(key("/n").as_deref(), Some("42"));
        assert_eq!(key("/f").as_deref(), Some("1.5"));
        assert_eq!(key("/t").as_deref(), Some("true"));
        assert_eq!(key("/a/b~0c/1/x").as_deref(), Some("k-9"));
        assert_eq!(key("/z"), None);
        assert_eq!(key("/o"), None);
        assert_eq!(key("/missing"), None);
    }

    #[test]
    fn malformed_data_is_an_error_even_after_the_key() {
        assert!(key_at_pointer(br#"{"id":"c-1","x":}"#, "/id").is_err());
        assert!(key_at_pointer(br#"{"id":"c-1"} trailing"#, "/id").is_err());
    }
}
