//! A strict JSON reader for JWS headers and claims: objects whose member
//! names repeat are refused at any depth. `serde_json::Value` silently keeps
//! the last duplicate, which is how `{"alg":"none","alg":"ES256"}` attacks
//! work: two parsers reading one token two ways.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    NotUtf8,
    /// Not JSON; serde's description (it quotes no input).
    Syntax(String),
    Duplicate(String),
    NotAnObject,
}

/// Parses `bytes` as one JSON object, refusing duplicate member names anywhere.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Strict.deserialize(&mut deserializer).map_err(|e| {
        let message = e.to_string();
        match message.strip_prefix(DUPLICATE) {
            Some(rest) => JsonError::Duplicate(rest.split(" at line").next().unwrap_or(rest).to_string()),
            None => JsonError::Syntax(message),
        }
    })?;
    deserializer.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotAnObject),
    }
}

const DUPLICATE: &str = "duplicate member ";

/// Builds a `serde_json::Value`, failing on a repeated member name.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
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

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(Strict)?;
            if map.contains_key(&key) {
                let shown: String = key.chars().filter(|c| !c.is_control()).take(40).collect();
                return Err(de::Error::custom(format!("{DUPLICATE}`{shown}`")));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        assert_eq!(
            object(br#"{"alg":"none","alg":"ES256"}"#),
            Err(JsonError::Duplicate("`alg`".into()))
        );
        assert!(matches!(
            object(br#"{"a":{"b":1,"b":2}}"#),
            Err(JsonError::Duplicate(_))
        ));
        assert!(matches!(
            object(br#"{"a":[{"b":1,"b":1}]}"#),
            Err(JsonError::Duplicate(_))
        ));
        // Escapes that decode to the same name are the same name.
        assert!(matches!(
            object(br#"{"alg":1,"\u0061lg":2}"#),
            Err(JsonError::Duplicate(_))
        ));
    }

    #[test]
    fn only_one_utf8_object_is_accepted() {
        assert_eq!(object(b"[1]"), Err(JsonError::NotAnObject));
        assert_eq!(object(b"\"x\""), Err(JsonError::NotAnObject));
        assert_eq!(object(b"{\"a\":\"\xff\"}"), Err(JsonError::NotUtf8));
        assert!(matches!(object(b"{} {}"), Err(JsonError::Syntax(_))));
        assert!(matches!(object(b"{"), Err(JsonError::Syntax(_))));
        let map = object(br#"{"n":1.5,"i":-3,"u":18446744073709551615,"s":"x","a":[true,null]}"#).unwrap();
        assert_eq!(map["i"], -3);
        assert_eq!(map["a"][0], true);
    }
}
