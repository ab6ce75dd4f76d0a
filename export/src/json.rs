//! Indenting compact JSON text without parsing it into a map (which would reorder keys): an
//! auth policy is written in the order AWS echoes it.

/// `compact` (valid JSON) with one member or element per line, two spaces per level.
pub fn indent(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on its line.
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', depth * 2));
}

#[cfg(test)]
mod tests {
    use super::indent;

    #[test]
    fn indents_in_order_and_keeps_strings() {
        let text = r#"{"b":1,"a":[{"x":"a,b:{c}\"]"},[]],"e":{}}"#;
        let out = indent(text);
        assert_eq!(
            out,
            "{\n  \"b\": 1,\n  \"a\": [\n    {\n      \"x\": \"a,b:{c}\\\"]\"\n    },\n    []\n  ],\n  \"e\": {}\n}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }
}
