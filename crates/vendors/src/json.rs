//! JSON read once, strictly: a body with the same key twice in one object is
//! refused. serde_json keeps the last of duplicate keys, and a reader that took
//! the first one (a proxy, a vendor's own parser, an earlier version of this
//! code) would see another lead than the one stored: with two `bot_id`s, the
//! signing secret and the route could be chosen by one and the event queued
//! under the other. serde_json has no switch for it (serde-rs/json#1112), so
//! this is a small visitor that builds the same `Value` and stops at a repeat.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Number, Value};

/// Parses `body` as JSON, refusing duplicate keys at any depth.
pub fn parse_strict(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Strict {
        path: String::new(),
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds a `Value`; `path` is the JSON pointer of the value, for the error.
struct Strict {
    path: String,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict {
            path: format!("{}/{}", self.path, out.len()),
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!(
                "{}/{}",
                self.path,
                key.replace('~', "~0").replace('/', "~1")
            );
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "duplicate key {path:?}: a key may appear only once in an object"
                )));
            }
            let v = map.next_value_seed(Strict { path })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_wherever_it_is() {
        for body in [
            r#"{"bot_id":"a","bot_id":"b"}"#,
            r#"{"visitor":{"email":"a@b.co","email":"c@d.co"}}"#,
            r#"{"x":[{"k":1,"k":2}]}"#,
        ] {
            let e = parse_strict(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("duplicate key"), "{body}: {e}");
        }
        let e = parse_strict(br#"{"visitor":{"email":"a","email":"b"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/visitor/email"), "{e}");
    }

    #[test]
    fn otherwise_it_reads_what_serde_json_reads() {
        let body =
            br#"{"a":1,"b":-2,"c":1.5,"d":"x","e":[true,null,{"f":{}}],"g":18446744073709551615}"#;
        assert_eq!(
            parse_strict(body).unwrap(),
            serde_json::from_slice::<Value>(body).unwrap()
        );
        assert!(parse_strict(b"{} trailing").is_err());
        assert!(parse_strict(b"{\"a\":").is_err());
    }
}
