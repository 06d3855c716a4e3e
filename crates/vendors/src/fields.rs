//! Reading a JSON payload field by field, collecting every error with its path,
//! so one 422 can tell the sender everything that is wrong.

use chrono::{DateTime, Utc};
use lb_domain::{DisplayName, FieldError, FieldErrors};
use serde_json::{Map, Value};

/// Longest free-text value accepted in a short field (names, ids, UTM values, URLs).
pub const MAX_SHORT: usize = 2_048;
/// Longest free-text value in a long field (summary, transcript line, answer).
pub const MAX_LONG: usize = 65_536;

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object being read, with the path of its fields for error messages.
pub struct Reader<'a> {
    pub path: String,
    pub map: &'a Map<String, Value>,
}

impl<'a> Reader<'a> {
    pub fn root(map: &'a Map<String, Value>) -> Self {
        Self {
            path: String::new(),
            map,
        }
    }

    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// An optional string, trimmed; empty means absent. Too long or not a string is an error.
    pub fn string(&self, key: &str, max: usize, errs: &mut FieldErrors) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => {
                let t = s.trim();
                if t.is_empty() {
                    None
                } else if t.chars().count() > max {
                    errs.push(FieldError::new(
                        self.field(key),
                        "too_long",
                        format!("{} is longer than {max} characters", self.field(key)),
                    ));
                    None
                } else {
                    Some(t.to_string())
                }
            }
            other => {
                errs.push(wrong_type(&self.field(key), "a string", other));
                None
            }
        }
    }

    pub fn required_string(&self, key: &str, max: usize, errs: &mut FieldErrors) -> Option<String> {
        let present = self.get(key).is_some();
        // Blank (or absent) is `required`; too long or the wrong type already said why.
        let blank = match self.get(key) {
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => !present,
        };
        let v = self.string(key, max, errs);
        if v.is_none() && blank {
            errs.push(FieldError::new(
                self.field(key),
                "required",
                format!("{} is required", self.field(key)),
            ));
        }
        v
    }

    /// A string exactly as sent (absent or null → `None`); any other JSON type
    /// is an `invalid_type` error. For values a domain type parses itself.
    pub fn text(&self, key: &str, errs: &mut FieldErrors) -> Option<&'a str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            other => {
                errs.push(wrong_type(&self.field(key), "a string", other));
                None
            }
        }
    }

    /// A string read by a domain value type's `parse(field, raw)`, whose
    /// `Ok(None)` means blank (absent); its error is recorded.
    pub fn parsed<T>(
        &self,
        key: &str,
        errs: &mut FieldErrors,
        parse: impl FnOnce(&str, &str) -> Result<Option<T>, FieldError>,
    ) -> Option<T> {
        let raw = self.text(key, errs)?;
        errs.take(parse(&self.field(key), raw)).flatten()
    }

    /// A person's or company's name ([`DisplayName`]): controls removed,
    /// trimmed, inner whitespace collapsed, NFC, at most 256 characters.
    pub fn name(&self, key: &str, errs: &mut FieldErrors) -> Option<String> {
        self.parsed(key, errs, DisplayName::parse)
            .map(DisplayName::into_string)
    }

    pub fn timestamp(
        &self,
        key: &str,
        required: bool,
        errs: &mut FieldErrors,
    ) -> Option<DateTime<Utc>> {
        let s = if required {
            self.required_string(key, 64, errs)?
        } else {
            self.string(key, 64, errs)?
        };
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errs.push(FieldError::new(
                    self.field(key),
                    "invalid_timestamp",
                    format!(
                        "{} must be an RFC 3339 timestamp such as 2026-05-04T11:23:45Z",
                        self.field(key)
                    ),
                ));
                None
            }
        }
    }

    pub fn uint(&self, key: &str, max: u64, errs: &mut FieldErrors) -> Option<u64> {
        match self.get(key)? {
            Value::Number(n) => match n.as_u64() {
                Some(v) if v <= max => Some(v),
                _ => {
                    errs.push(FieldError::new(
                        self.field(key),
                        "out_of_range",
                        format!("{} must be a whole number from 0 to {max}", self.field(key)),
                    ));
                    None
                }
            },
            other => {
                errs.push(wrong_type(&self.field(key), "a number", other));
                None
            }
        }
    }

    pub fn boolean(&self, key: &str, errs: &mut FieldErrors) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                errs.push(wrong_type(&self.field(key), "a boolean", other));
                None
            }
        }
    }

    pub fn string_list(&self, key: &str, errs: &mut FieldErrors) -> Vec<String> {
        match self.get(key) {
            None => vec![],
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    match v {
                        Value::String(s) if s.chars().count() <= MAX_SHORT => {
                            let t = s.trim();
                            if !t.is_empty() {
                                out.push(t.to_string());
                            }
                        }
                        Value::String(_) => errs.push(FieldError::new(
                            format!("{}[{i}]", self.field(key)),
                            "too_long",
                            format!("longer than {MAX_SHORT} characters"),
                        )),
                        other => errs.push(wrong_type(
                            &format!("{}[{i}]", self.field(key)),
                            "a string",
                            other,
                        )),
                    }
                }
                if out.len() > 100 {
                    errs.push(FieldError::new(
                        self.field(key),
                        "too_many",
                        "at most 100 entries",
                    ));
                }
                out
            }
            Some(other) => {
                errs.push(wrong_type(&self.field(key), "an array of strings", other));
                vec![]
            }
        }
    }

    /// A nested object, or `None` when absent/null (wrong type is an error).
    pub fn object(&self, key: &str, errs: &mut FieldErrors) -> Option<Reader<'a>> {
        match self.get(key)? {
            Value::Object(m) => Some(Reader {
                path: self.field(key),
                map: m,
            }),
            other => {
                errs.push(wrong_type(&self.field(key), "an object", other));
                None
            }
        }
    }

    pub fn array(&self, key: &str, errs: &mut FieldErrors) -> &'a [Value] {
        match self.get(key) {
            Some(Value::Array(a)) => a,
            None => &[],
            Some(other) => {
                errs.push(wrong_type(&self.field(key), "an array", other));
                &[]
            }
        }
    }
}

pub fn wrong_type(field: &str, expected: &str, got: &Value) -> FieldError {
    FieldError::new(
        field,
        "invalid_type",
        format!("{field} must be {expected}, not {}", type_name(got)),
    )
}
