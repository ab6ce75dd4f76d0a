//! The sizes and the text AWS gives back: a policy's length as compact JSON (the 10 KB quota)
//! and the normalised echo of `GetAuthPolicy`/`PutAuthPolicy`.

use serde_json::Value;

use super::document::STATEMENT_FIELDS;
use super::{MAX_POLICY_BYTES, Version};

/// The length of `value` as compact JSON, walked without recursion (a hostile document may be
/// nested deeper than the stack allows) and cut short once it passes the limit.
pub(crate) fn compact_len(value: &Value) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        total = total.saturating_add(match value {
            Value::Null | Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => json_string_len(s),
            Value::Array(list) => {
                stack.extend(list);
                2 + list.len().saturating_sub(1)
            }
            Value::Object(map) => {
                let keys: usize = map.keys().map(|k| json_string_len(k) + 1).sum();
                stack.extend(map.values());
                2 + map.len().saturating_sub(1) + keys
            }
        });
        if total > MAX_POLICY_BYTES {
            break;
        }
    }
    total
}

/// The length of `s` as a JSON string literal, escaped as serde_json escapes.
fn json_string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// AWS's echo of a policy (LATTICE.md §5.1): compact JSON, `Version` first (filled in as
/// 2008-10-17 when missing), `Statement` always a list, each statement's elements in the order
/// of the IAM reference. Values are echoed as written (a single string stays a string).
pub(crate) fn normalise<'v>(
    version: Version,
    id: Option<&str>,
    statements: impl Iterator<Item = &'v Value>,
) -> String {
    let mut out = String::from("{\"Version\":");
    push_json(&mut out, &Value::from(version.as_str()));
    if let Some(id) = id {
        out.push_str(",\"Id\":");
        push_json(&mut out, &Value::from(id));
    }
    out.push_str(",\"Statement\":[");
    for (i, statement) in statements.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        let mut first = true;
        for name in STATEMENT_FIELDS {
            if let Some(value) = statement.get(name) {
                if !first {
                    out.push(',');
                }
                first = false;
                push_json(&mut out, &Value::from(name));
                out.push(':');
                push_json(&mut out, value);
            }
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// Appends compact JSON. Only validated documents get here: their depth is bounded by the
/// policy grammar, so serialising cannot recurse deeply, and serialising a `Value` to a string
/// cannot fail.
fn push_json(out: &mut String, value: &Value) {
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_len_is_the_serialised_length() {
        for text in [
            r#"{"a":[1,2.5,-3,true,false,null,"x\"y\\z\n\u0001é"],"b":{},"c":[]}"#,
            r#""just a string""#,
            r#"[{"k":{"k2":["v"]}},12345678901234567890]"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                compact_len(&value),
                serde_json::to_string(&value).unwrap().len(),
                "{text}"
            );
        }
    }
}
