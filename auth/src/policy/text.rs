//! Policy text: the size limit, JSON syntax errors with their line and column, repeated keys
//! refused, and the line and column of every validation error's path.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::document;
use super::error::{ErrorKind, PathSegment, PolicyError};
use super::{Kind, MAX_POLICY_BYTES, Policy};

pub(crate) fn parse(text: &str, kind: Kind) -> Result<Policy, Vec<PolicyError>> {
    // Checked before parsing, so an oversized text costs nothing to refuse.
    if text.len() > MAX_POLICY_BYTES {
        return Err(vec![document::too_large(text.len(), kind)]);
    }
    let value = match serde_json::from_str::<Strict>(text) {
        Ok(Strict(value)) => value,
        Err(e) => return Err(vec![syntax_error(&e)]),
    };
    document::policy(&value, kind).map_err(|mut errors| {
        for error in &mut errors {
            error.at = locate(text, &error.path);
        }
        errors
    })
}

fn syntax_error(e: &serde_json::Error) -> PolicyError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the position goes in `at` instead.
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(message, _)| message);
    let mut error = PolicyError::new(ErrorKind::Syntax, &[], format!("invalid JSON: {message}"));
    error.at = Some((e.line().max(1), e.column().max(1)));
    error
}

/// A JSON value read by serde_json (whose recursion limit bounds the nesting), refusing an
/// object that repeats a key: IAM refuses such policies, and silently keeping the last of two
/// `Effect`s would hide what the author wrote.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
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
        let mut list = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            list.push(item);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The 1-based line and column (in bytes) of the value at `path` in `text`, which is known to
/// be valid JSON without repeated keys. `None` if the path is not there (an error about a
/// missing element points at its parent, which is).
pub(crate) fn locate(text: &str, path: &[PathSegment]) -> Option<(usize, usize)> {
    let mut cursor = Cursor {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    for segment in path {
        cursor.space();
        match segment {
            PathSegment::Key(wanted) => {
                cursor.expect(b'{')?;
                loop {
                    cursor.space();
                    let key = cursor.string()?;
                    cursor.space();
                    cursor.expect(b':')?;
                    cursor.space();
                    if key == *wanted {
                        break;
                    }
                    cursor.skip_value()?;
                    cursor.space();
                    cursor.expect(b',')?;
                }
            }
            PathSegment::Index(index) => {
                cursor.expect(b'[')?;
                for _ in 0..*index {
                    cursor.space();
                    cursor.skip_value()?;
                    cursor.space();
                    cursor.expect(b',')?;
                }
            }
        }
    }
    cursor.space();
    Some(line_column(text, cursor.pos))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..offset).unwrap_or_default();
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

/// A read position in JSON text; every step is bounds-checked and fails with `None`.
struct Cursor<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// The index just past the string literal starting at `self.pos`.
    fn string_end(&self) -> Option<usize> {
        if self.peek()? != b'"' {
            return None;
        }
        let mut i = self.pos + 1;
        loop {
            match self.bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    }

    /// Reads a string literal, decoded.
    fn string(&mut self) -> Option<String> {
        let end = self.string_end()?;
        let literal = self.text.get(self.pos..end)?;
        self.pos = end;
        serde_json::from_str(literal).ok()
    }

    /// Skips one value, nested or not, without recursion.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.pos = self.string_end()?,
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.pos = self.string_end()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.pos += 1;
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.into())
    }

    #[test]
    fn locate_finds_values_by_path() {
        let text = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Sid\": \"a\\\"{\", \"X\": [1, {\"y\": 2}]},\n    {\"Effect\": \"Alow\"}\n  ]\n}";
        assert_eq!(locate(text, &[]), Some((1, 1)));
        assert_eq!(locate(text, &[key("Version")]), Some((2, 14)));
        assert_eq!(
            locate(
                text,
                &[key("Statement"), PathSegment::Index(1), key("Effect")]
            ),
            Some((5, 16))
        );
        assert_eq!(
            locate(
                text,
                &[
                    key("Statement"),
                    PathSegment::Index(0),
                    key("X"),
                    PathSegment::Index(1),
                    key("y")
                ]
            ),
            Some((4, 36))
        );
        assert_eq!(locate(text, &[key("Nope")]), None);
        assert_eq!(
            locate(text, &[key("Statement"), PathSegment::Index(5)]),
            None
        );
    }
}
