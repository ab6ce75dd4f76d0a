//! Checks a bound input against its model shape: types, required members, lengths, ranges,
//! enums, patterns and unions. The SDKs check only some of this client-side (botocore: required
//! members, types and minimum lengths), and `curl` checks nothing, so the operations get input
//! that has the model's types and constraints: `maxResults` is an integer from 1 to 100, a
//! `name` matches its pattern. Members the model does not know are dropped (a newer SDK's
//! member is ignored rather than refused), and so are JSON `null`s (absent, as the SDKs mean).

use serde_json::{Map, Value};

use super::model::{Kind, Model, Shape};
use crate::FieldError;

/// How deep a value may nest. The model's deepest input is far shallower; this bounds the walk
/// whatever the model says.
const MAX_DEPTH: usize = 32;

/// At most this many problems are reported (the first ones, in member order).
const MAX_ERRORS: usize = 20;

/// Longest value quoted in a message; longer ones are cut with `…`.
const QUOTE: usize = 64;

pub(crate) struct Checker<'m> {
    model: &'m Model,
    pub errors: Vec<FieldError>,
}

impl<'m> Checker<'m> {
    pub fn new(model: &'m Model) -> Checker<'m> {
        Checker {
            model,
            errors: Vec::new(),
        }
    }

    fn fail(&mut self, path: &str, value: Option<&Value>, constraint: impl Into<String>) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        let constraint = constraint.into();
        let message = match value {
            Some(v) => format!(
                "Value {} at '{path}' failed to satisfy constraint: {constraint}",
                quote(v)
            ),
            None => format!("Value null at '{path}' failed to satisfy constraint: {constraint}"),
        };
        self.errors.push(FieldError {
            name: path.to_owned(),
            message,
        });
    }

    /// Checks `value` (found at `path`) against shape `name`; returns it with unknown members
    /// and nulls removed, or `None` when its type is wrong (the problem is recorded).
    pub fn value(&mut self, name: &str, value: Value, path: &str, depth: usize) -> Option<Value> {
        let Some(shape) = self.model.shape(name) else {
            return Some(value);
        };
        if depth > MAX_DEPTH {
            self.fail(path, None, "Member nests too deeply");
            return None;
        }
        match &shape.kind {
            Kind::Structure {
                members,
                required,
                union,
            } => {
                let Value::Object(object) = value else {
                    self.fail(path, Some(&value), "Member must be an object");
                    return None;
                };
                let mut object = object;
                let mut out = Map::new();
                let errors_before = self.errors.len();
                for member in members {
                    let at = join(path, &member.name);
                    match object.remove(&member.name) {
                        None | Some(Value::Null) => {
                            if required.contains(&member.name) {
                                self.fail(&at, None, "Member must not be null");
                            }
                        }
                        Some(v) => {
                            if let Some(v) = self.value(&member.shape, v, &at, depth + 1) {
                                out.insert(member.name.clone(), v);
                            }
                        }
                    }
                }
                if *union && out.len() != 1 && self.errors.len() == errors_before {
                    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                    let shown = Value::Object(out.clone());
                    self.fail(
                        path,
                        Some(&shown),
                        format!("Member must set exactly one of {}", names.join(", ")),
                    );
                }
                Some(Value::Object(out))
            }
            Kind::List { member } => {
                let Value::Array(items) = value else {
                    self.fail(path, Some(&value), "Member must be a list");
                    return None;
                };
                self.length(shape, items.len(), path, || Value::Array(Vec::new()));
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    if item.is_null() {
                        continue;
                    }
                    if let Some(v) = self.value(member, item, &format!("{path}[{i}]"), depth + 1) {
                        out.push(v);
                    }
                }
                Some(Value::Array(out))
            }
            Kind::Map { key, value: item } => {
                let Value::Object(entries) = value else {
                    self.fail(path, Some(&value), "Member must be a map");
                    return None;
                };
                self.length(shape, entries.len(), path, || Value::Object(Map::new()));
                let mut out = Map::new();
                for (k, v) in entries {
                    let at = format!("{path}.{k}");
                    self.value(key, Value::String(k.clone()), &at, depth + 1);
                    if v.is_null() {
                        continue;
                    }
                    if let Some(v) = self.value(item, v, &at, depth + 1) {
                        out.insert(k, v);
                    }
                }
                Some(Value::Object(out))
            }
            Kind::String {
                enumeration,
                pattern,
            } => {
                let Some(text) = value.as_str() else {
                    self.fail(path, Some(&value), "Member must be a string");
                    return None;
                };
                let chars = text.chars().count();
                self.length(shape, chars, path, || value.clone());
                if let Some(allowed) = enumeration
                    && !allowed.iter().any(|a| a == text)
                {
                    self.fail(
                        path,
                        Some(&value),
                        format!(
                            "Member must satisfy enum value set: [{}]",
                            allowed.join(", ")
                        ),
                    );
                } else if let Some(p) = pattern
                    && !p.matches(text)
                {
                    self.fail(
                        path,
                        Some(&value),
                        format!(
                            "Member must satisfy regular expression pattern: {}",
                            p.source
                        ),
                    );
                }
                Some(value)
            }
            Kind::Integer => {
                let Some(n) = value.as_i64() else {
                    self.fail(path, Some(&value), "Member must be an integer");
                    return None;
                };
                if let Some(min) = shape.min
                    && n < min
                {
                    self.fail(
                        path,
                        Some(&value),
                        format!("Member must be greater than or equal to {min}"),
                    );
                } else if let Some(max) = shape.max
                    && n > max
                {
                    self.fail(
                        path,
                        Some(&value),
                        format!("Member must be less than or equal to {max}"),
                    );
                }
                Some(value)
            }
            Kind::Boolean => {
                if !value.is_boolean() {
                    self.fail(path, Some(&value), "Member must be a boolean");
                    return None;
                }
                Some(value)
            }
            Kind::Timestamp => {
                if !(value.is_number() || value.is_string()) {
                    self.fail(path, Some(&value), "Member must be a timestamp");
                    return None;
                }
                Some(value)
            }
            Kind::Other => Some(value),
        }
    }

    fn length(&mut self, shape: &Shape, len: usize, path: &str, shown: impl Fn() -> Value) {
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        if let Some(min) = shape.min
            && len < min
        {
            self.fail(
                path,
                Some(&shown()),
                format!("Member must have length greater than or equal to {min}"),
            );
        } else if let Some(max) = shape.max
            && len > max
        {
            self.fail(
                path,
                Some(&shown()),
                format!("Member must have length less than or equal to {max}"),
            );
        }
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_owned()
    } else {
        format!("{path}.{member}")
    }
}

/// `'text'` for strings (cut after [`QUOTE`] characters), the JSON for anything else (cut too).
fn quote(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cut: String = text.chars().take(QUOTE).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    match value {
        Value::String(_) => format!("'{cut}{more}'"),
        _ => format!("{cut}{more}"),
    }
}
