//! A small YAML writer: a tree of scalars, mappings and lists written in block style, with
//! short leaf collections in flow style, and every string quoted unless it is unambiguous as a
//! plain scalar. Written here rather than through a YAML library so that the output is exactly
//! what the config crate's parser reads back, byte for byte the same for the same tree.

/// One node of the document.
#[derive(Debug, Clone)]
pub enum Node {
    /// A scalar already written as YAML (plain or double-quoted).
    Scalar(String),
    /// A literal block scalar (`|`): multi-line text kept as is, such as a pretty-printed auth
    /// policy. Only for text of printable characters (see [`printable`]).
    Block(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

/// A string scalar, quoted when it has to be.
pub fn string(text: &str) -> Node {
    Node::Scalar(scalar(text))
}

/// A number scalar.
pub fn number(n: impl Into<u64>) -> Node {
    Node::Scalar(n.into().to_string())
}

pub fn boolean(b: bool) -> Node {
    Node::Scalar(if b { "true" } else { "false" }.to_string())
}

/// A mapping from `(key, value)` pairs, in the given order.
pub fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// Lines longer than this are written in block style.
const WIDTH: usize = 100;

/// The document `root` (a mapping) as YAML text, ending with a newline.
pub fn document(root: &Node) -> String {
    let mut out = String::new();
    match root {
        Node::Map(entries) => {
            for (key, value) in entries {
                // Top-level sections always in block style: one object per item.
                entry(&mut out, 0, key, value, true);
            }
        }
        other => {
            out.push_str(&flow(other).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// `key: value` at `indent`; `force_block` keeps a top-level list in block style.
fn entry(out: &mut String, indent: usize, key: &str, value: &Node, force_block: bool) {
    push_indent(out, indent);
    out.push_str(&scalar(key));
    out.push(':');
    value_after(out, indent, key.len() + 2, value, force_block);
}

/// Writes `value` after a `key:` or `- ` already on the line (`used` columns of it past
/// `indent`), continuing on the next lines at `indent + 2` when it is a block.
fn value_after(out: &mut String, indent: usize, used: usize, value: &Node, force_block: bool) {
    match value {
        Node::Scalar(text) => {
            out.push(' ');
            out.push_str(text);
            out.push('\n');
        }
        Node::Block(text) => {
            out.push_str(" |\n");
            for line in text.lines() {
                if !line.is_empty() {
                    push_indent(out, indent + 2);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        _ => {
            if !force_block
                && let Some(text) = flow(value).filter(|t| indent + used + 1 + t.len() <= WIDTH)
            {
                out.push(' ');
                out.push_str(&text);
                out.push('\n');
                return;
            }
            out.push('\n');
            match value {
                Node::Map(entries) => {
                    for (k, v) in entries {
                        entry(out, indent + 2, k, v, false);
                    }
                }
                Node::Seq(items) => seq_items(out, indent + 2, items),
                Node::Scalar(_) | Node::Block(_) => {}
            }
        }
    }
}

/// The items of a block list at `indent`: `- ` then the item, a mapping's first entry on the
/// dash's line.
fn seq_items(out: &mut String, indent: usize, items: &[Node]) {
    for item in items {
        push_indent(out, indent);
        out.push('-');
        match item {
            Node::Map(entries) if !entries.is_empty() => {
                if let Some(text) = flow(item).filter(|t| indent + 2 + t.len() <= WIDTH) {
                    out.push(' ');
                    out.push_str(&text);
                    out.push('\n');
                    continue;
                }
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i == 0 {
                        out.push(' ');
                        out.push_str(&scalar(k));
                        out.push(':');
                        value_after(out, indent + 2, k.len() + 2, v, false);
                    } else {
                        entry(out, indent + 2, k, v, false);
                    }
                }
            }
            Node::Seq(inner) if !inner.is_empty() => {
                if let Some(text) = flow(item).filter(|t| indent + 2 + t.len() <= WIDTH) {
                    out.push(' ');
                    out.push_str(&text);
                    out.push('\n');
                } else {
                    out.push('\n');
                    seq_items(out, indent + 2, inner);
                }
            }
            other => value_after(out, indent, 0, other, false),
        }
    }
}

/// `node` in flow style (`{a: 1, b: [x, y]}`), or `None` when it holds a block scalar or nests
/// too deep to read well on one line.
fn flow(node: &Node) -> Option<String> {
    fn walk(node: &Node, depth: usize) -> Option<String> {
        match node {
            Node::Scalar(text) => Some(text.clone()),
            Node::Block(_) => None,
            _ if depth > 3 => None,
            Node::Map(entries) => {
                let parts: Option<Vec<String>> = entries
                    .iter()
                    .map(|(k, v)| Some(format!("{}: {}", scalar(k), walk(v, depth + 1)?)))
                    .collect();
                Some(format!("{{{}}}", parts?.join(", ")))
            }
            Node::Seq(items) => {
                let parts: Option<Vec<String>> = items.iter().map(|v| walk(v, depth + 1)).collect();
                Some(format!("[{}]", parts?.join(", ")))
            }
        }
    }
    walk(node, 1)
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// `text` as a YAML scalar that reads back as the string `text`: plain when it is made of
/// characters that mean nothing to YAML in block or flow context and cannot be taken for a
/// number, boolean, null or date; double-quoted otherwise.
pub fn scalar(text: &str) -> String {
    if plain(text) {
        text.to_string()
    } else {
        quoted(text)
    }
}

fn plain(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return false;
    }
    if matches!(first, '-' | '.') || WORDS.iter().any(|w| w.eq_ignore_ascii_case(text)) {
        return false;
    }
    // Numbers (10, 1e3, 0x1f, 1_000), dates (2012-10-17) and times start with a digit; an
    // address (127.0.0.1) or a CIDR block (10.0.0.0/16) is none of them.
    !first.is_ascii_digit() || text.contains('/') || text.matches('.').count() >= 2
}

/// `text` double-quoted, with every character that YAML would not keep as it is escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Whether YAML keeps `c` as it is inside a quoted or block scalar: not a control character,
/// not one of the characters YAML 1.1 reads as a line break (NEL, LS, PS), not a byte-order
/// mark or a non-character.
pub fn printable(c: char) -> bool {
    let n = c as u32;
    (0x20..0x7F).contains(&n)
        || (n >= 0xA0 && !matches!(n, 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_strings_are_quoted() {
        for text in [
            "",
            "true",
            "No",
            "null",
            "~",
            "8080",
            "1e3",
            "0x1f",
            "2012-10-17",
            "-x",
            ".inf",
            "a b",
            "a:b",
            "a#b",
            "[x]",
            "{x}",
            "a,b",
            "*",
            "&a",
            "!t",
            "'",
            "\"",
            "é",
        ] {
            assert!(scalar(text).starts_with('"'), "{text:?} was written plain");
        }
        for text in [
            "hello",
            "client-vpc",
            "127.0.0.1",
            "10.0.0.0/16",
            "/to-instance",
            "sample-functions/dist/hello.wasm",
            "HTTP1",
            "us-west-2",
        ] {
            assert_eq!(scalar(text), text);
        }
    }

    #[test]
    fn control_characters_and_line_breaks_are_escaped() {
        assert_eq!(scalar("a\u{1}b"), "\"a\\u0001b\"");
        assert_eq!(scalar("a\u{2028}"), "\"a\\u2028\"");
        assert_eq!(scalar("x\ny\"\\"), "\"x\\ny\\\"\\\\\"");
        assert_eq!(scalar("\u{10FFFF}"), "\"\u{10FFFF}\"");
    }

    #[test]
    fn leaf_collections_go_flow_and_the_rest_block() {
        let doc = map([
            ("region", string("us-west-2")),
            (
                "vpcs",
                Node::Seq(vec![map([
                    ("name", string("client-vpc")),
                    (
                        "cidrs",
                        Node::Seq(vec![string("127.0.0.0/8"), string("::1/128")]),
                    ),
                ])]),
            ),
            ("empty", Node::Seq(vec![])),
        ]);
        assert_eq!(
            document(&doc),
            "region: us-west-2\nvpcs:\n  - {name: client-vpc, cidrs: [127.0.0.0/8, \"::1/128\"]}\nempty: []\n"
        );
    }
}
