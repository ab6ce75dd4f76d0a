//! A small YAML tree that remembers where every node came from.
//!
//! Serde-based YAML decoders stop at the first error and lose positions once a value is
//! decoded. Trellis wants to report *every* problem of a config file with its line and column,
//! so the file is first read into this positioned tree and then decoded by hand (`decode.rs`).

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    /// The position of every node of the API store's document: it has no line in the config
    /// file (YAML lines start at 1), and its diagnostics name the store and the object's path
    /// instead.
    pub const STORE: Pos = Pos { line: 0, col: 0 };

    /// Whether this is [`Pos::STORE`].
    pub fn in_store(&self) -> bool {
        self.line == 0
    }

    fn from_span(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// One node of the document.
#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    /// A scalar; `quoted` tells a quoted `"10"` (a string) from a plain `10`.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are scalars (other keys are rejected while reading).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A short word for error messages: what was found where something else was expected.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { text, quoted } if !quoted && is_null(text) => "nothing (null)",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The text of a scalar key (maps only have scalar keys).
    pub fn key_text(&self) -> &str {
        match &self.value {
            Value::Scalar { text, .. } => text,
            _ => "",
        }
    }
}

/// A JSON document (the API store's) as a tree of [`Pos::STORE`] nodes, decoded exactly as
/// the file's: strings are quoted scalars, numbers and booleans plain ones. `None` when it nests
/// deeper than [`MAX_DEPTH`].
pub fn from_json(value: &serde_json::Value) -> Option<Node> {
    fn node(value: &serde_json::Value, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        let scalar = |text: String, quoted: bool| Value::Scalar { text, quoted };
        let value = match value {
            serde_json::Value::Null => scalar("null".into(), false),
            serde_json::Value::Bool(b) => scalar(b.to_string(), false),
            serde_json::Value::Number(n) => scalar(n.to_string(), false),
            serde_json::Value::String(s) => scalar(s.clone(), true),
            serde_json::Value::Array(items) => Value::Seq(
                items
                    .iter()
                    .map(|v| node(v, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = Node {
                            pos: Pos::STORE,
                            value: scalar(k.clone(), true),
                        };
                        Some((key, node(v, depth + 1)?))
                    })
                    .collect::<Option<_>>()?,
            ),
        };
        Some(Node {
            pos: Pos::STORE,
            value,
        })
    }
    node(value, 0)
}

/// Plain scalars that YAML reads as null.
pub fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// At most this many aliases are expanded in one document (each use counts, also one inside
/// an anchored node that is itself expanded). Every expansion copies nodes, so without a bound
/// a few hundred bytes of nested aliases ("billion laughs") expand to gigabytes.
pub const MAX_ALIASES: usize = 1_000;
/// At most this many nodes (scalars, lists and mappings) are created by expanding aliases.
pub const MAX_ALIAS_NODES: usize = 10_000;
/// At most this many bytes of scalar text are copied by expanding aliases.
pub const MAX_ALIAS_BYTES: usize = 1024 * 1024;
/// Lists and mappings nest at most this deep: the tree is decoded and dropped recursively, on
/// threads with small stacks, and no config needs more than a dozen levels.
pub const MAX_DEPTH: usize = 64;

/// A syntax error, or a document over one of the limits above, with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    /// The whole message, e.g. `YAML syntax error: …`.
    pub message: String,
    pub hint: Option<String>,
}

impl SyntaxError {
    fn new(pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos,
            message: message.into(),
            hint: None,
        }
    }
}

/// Reads a YAML document into a positioned tree. An empty document gives an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        recorded: Vec::new(),
        recording: 0,
        budget: Budget::default(),
        root: None,
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            SyntaxError::new(
                Pos {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                },
                format!("YAML syntax error: {}", e.info()),
            )
        })?;
        builder.feed(event, span)?;
    }
    Ok(builder.root.unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        value: Value::Map(Vec::new()),
    }))
}

enum Open {
    /// A list under construction, and where its recording starts if it has an anchor.
    Seq(Node, Option<Anchor>),
    /// A mapping under construction, the key waiting for its value, and its anchor.
    Map(Node, Option<Node>, Option<Anchor>),
}

/// An anchored list or mapping still open: its id and the index of its first recorded event.
#[derive(Clone, Copy)]
struct Anchor {
    id: usize,
    start: usize,
}

/// What expanding aliases has cost so far.
#[derive(Default)]
struct Budget {
    aliases: usize,
    nodes: usize,
    bytes: usize,
}

/// Builds the tree from parser events.
///
/// Aliases are expanded by replaying the events of the anchored node, which are recorded while
/// it is read (one copy, however deeply anchors nest), rather than by cloning a stored copy of
/// every anchored subtree; each replayed node is charged to a [`Budget`].
struct Builder<'a> {
    stack: Vec<Open>,
    /// Each complete anchored node: its events in `recorded`.
    anchors: HashMap<usize, Range<usize>>,
    /// The events of anchored nodes, in file order.
    recorded: Vec<(Event<'a>, Span)>,
    /// How many anchored lists or mappings are open (their events are being recorded).
    recording: usize,
    budget: Budget,
    root: Option<Node>,
}

impl<'a> Builder<'a> {
    /// One event from the parser.
    fn feed(&mut self, event: Event<'a>, span: Span) -> Result<(), SyntaxError> {
        let pos = Pos::from_span(&span);
        let anchor = match &event {
            Event::Scalar(_, _, id, _)
            | Event::SequenceStart(id, _)
            | Event::MappingStart(id, _) => *id,
            _ => 0,
        };
        let index = self.recorded.len();
        if self.recording > 0 || anchor > 0 {
            self.recorded.push((event.clone(), span));
        }
        match event {
            Event::Alias(id) => self.alias(id, pos),
            Event::Scalar(..) => {
                if anchor > 0 {
                    self.anchors.insert(anchor, index..index + 1);
                }
                self.build(event, pos, None)
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let open = (anchor > 0).then_some(Anchor {
                    id: anchor,
                    start: index,
                });
                if open.is_some() {
                    self.recording += 1;
                }
                self.build(event, pos, open)
            }
            Event::DocumentStart(_) => {
                if self.root.is_some() {
                    return Err(SyntaxError::new(
                        pos,
                        "YAML syntax error: only one YAML document is allowed in a config file",
                    ));
                }
                Ok(())
            }
            _ => self.build(event, pos, None),
        }
    }

    /// Expands an alias by replaying its anchored node's events (and those of the aliases
    /// inside it), charging every node to the budget; the expansion's root takes the alias's
    /// position, the nodes inside keep theirs.
    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), SyntaxError> {
        let mut work = vec![self.resolve(id, pos)?];
        let mut root = true;
        while let Some(range) = work.last_mut() {
            let Some(index) = range.next() else {
                work.pop();
                continue;
            };
            let Some((event, span)) = self.recorded.get(index).cloned() else {
                continue;
            };
            if let Event::Alias(inner) = event {
                let inner = self.resolve(inner, pos)?;
                work.push(inner);
                continue;
            }
            self.charge(&event, pos)?;
            let at = if root { pos } else { Pos::from_span(&span) };
            root = false;
            self.build(event, at, None)?;
        }
        Ok(())
    }

    /// The recorded events of anchor `id`, counting one more alias use.
    fn resolve(&mut self, id: usize, pos: Pos) -> Result<Range<usize>, SyntaxError> {
        self.budget.aliases += 1;
        if self.budget.aliases > MAX_ALIASES {
            return Err(over_budget(
                pos,
                format!("more than {MAX_ALIASES} aliases to expand"),
            ));
        }
        self.anchors.get(&id).cloned().ok_or_else(|| {
            SyntaxError::new(
                pos,
                "YAML syntax error: alias to an unknown anchor (or to the node that contains it)",
            )
        })
    }

    /// Charges one replayed event to the budget.
    fn charge(&mut self, event: &Event<'_>, pos: Pos) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, ..) => {
                self.budget.nodes += 1;
                self.budget.bytes = self.budget.bytes.saturating_add(text.len());
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => self.budget.nodes += 1,
            _ => {}
        }
        if self.budget.nodes > MAX_ALIAS_NODES {
            return Err(over_budget(
                pos,
                format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
            ));
        }
        if self.budget.bytes > MAX_ALIAS_BYTES {
            return Err(over_budget(
                pos,
                format!("aliases expand to more than {MAX_ALIAS_BYTES} bytes of text"),
            ));
        }
        Ok(())
    }

    /// Adds a node, opens or closes a list or mapping (`anchor`: where the events of the one
    /// being opened start, if it is anchored).
    fn build(
        &mut self,
        event: Event<'_>,
        pos: Pos,
        anchor: Option<Anchor>,
    ) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, style, _, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                self.push(Node {
                    pos,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    },
                })
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError::new(
                        pos,
                        format!("lists and mappings nest more than {MAX_DEPTH} levels deep"),
                    ));
                }
                let open = if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(
                        Node {
                            pos,
                            value: Value::Seq(Vec::new()),
                        },
                        anchor,
                    )
                } else {
                    Open::Map(
                        Node {
                            pos,
                            value: Value::Map(Vec::new()),
                        },
                        None,
                        anchor,
                    )
                };
                self.stack.push(open);
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(node, anchor)) | Some(Open::Map(node, _, anchor)) => {
                        (node, anchor)
                    }
                    None => {
                        return Err(SyntaxError::new(
                            pos,
                            "YAML syntax error: unbalanced document",
                        ));
                    }
                };
                if let Some(Anchor { id, start }) = anchor {
                    self.anchors.insert(id, start..self.recorded.len());
                    self.recording = self.recording.saturating_sub(1);
                }
                self.push(node)
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, node: Node) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Open::Seq(seq, _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
                Ok(())
            }
            Some(Open::Map(map, pending, _)) => match pending.take() {
                None => {
                    if !matches!(node.value, Value::Scalar { .. }) {
                        return Err(SyntaxError::new(
                            node.pos,
                            "YAML syntax error: mapping keys must be plain names",
                        ));
                    }
                    *pending = Some(node);
                    Ok(())
                }
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                    Ok(())
                }
            },
        }
    }
}

/// A document whose aliases would expand past the budget.
fn over_budget(pos: Pos, what: String) -> SyntaxError {
    SyntaxError {
        pos,
        message: format!(
            "{what}; Trellis stops there so that a small file cannot exhaust memory (\"billion laughs\")"
        ),
        hint: Some(format!(
            "Trellis expands at most {MAX_ALIASES} aliases, {MAX_ALIAS_NODES} nodes and {MAX_ALIAS_BYTES} bytes through aliases; write the repeated blocks out, or generate the file"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  - x\n  - {c: d}\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
        assert_eq!(items[1].pos.line, 4);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
    }

    #[test]
    fn quoted_scalars_are_marked() {
        let root = parse("a: \"10\"\nb: 10\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert!(matches!(
            entries[0].1.value,
            Value::Scalar { quoted: true, .. }
        ));
        assert!(matches!(
            entries[1].1.value,
            Value::Scalar { quoted: false, .. }
        ));
    }

    /// The classic "billion laughs": nine levels of nine aliases each.
    fn laughs() -> String {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn billion_laughs_is_refused_quickly_with_a_position() {
        let text = laughs();
        let start = std::time::Instant::now();
        let err = parse(&text).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        assert!(err.message.contains("aliases"), "{err:?}");
        assert!((3..=5).contains(&err.pos.line), "{err:?}");
        assert!(err.hint.is_some());
    }

    #[test]
    fn aliases_within_the_budget_expand_with_positions() {
        let root = parse("hc: &hc {path: /health, port: 80}\na: *hc\nb: [*hc, *hc]\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        let a = &entries[1].1;
        assert_eq!(a.pos, Pos { line: 2, col: 4 });
        let Value::Map(fields) = &a.value else {
            panic!("{a:?}")
        };
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].0.key_text(), "path");
        // The fields inside keep the anchored node's positions.
        assert_eq!(fields[0].0.pos.line, 1);
        let Value::Seq(items) = &entries[2].1.value else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1].value, Value::Map(ref f) if f.len() == 2));
    }

    #[test]
    fn nested_anchors_and_scalar_aliases() {
        let root =
            parse("x: &outer {in: &inner [1, &s two], more: *inner}\ny: *outer\nz: *s\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        let Value::Map(y) = &entries[1].1.value else {
            panic!()
        };
        assert!(matches!(&y[1].1.value, Value::Seq(items) if items.len() == 2));
        assert_eq!(entries[2].1.key_text(), "two");
        assert_eq!(entries[2].1.pos, Pos { line: 3, col: 4 });
    }

    #[test]
    fn each_budget_is_enforced() {
        // Nodes: 200 scalars aliased 60 times.
        let items = vec!["x"; 200].join(",");
        let uses = vec!["*a"; 60].join(",");
        let err = parse(&format!("a: &a [{items}]\nb: [{uses}]\n")).unwrap_err();
        assert!(
            err.message.contains(&format!("{MAX_ALIAS_NODES} nodes")),
            "{err:?}"
        );
        // Bytes: a 20 KB scalar aliased 60 times.
        let big = "x".repeat(20_000);
        let err = parse(&format!("a: &a {big}\nb: [{uses}]\n")).unwrap_err();
        assert!(err.message.contains("bytes"), "{err:?}");
        // Uses: one small scalar aliased too often.
        let uses = vec!["*a"; MAX_ALIASES + 1].join(",");
        let err = parse(&format!("a: &a x\nb: [{uses}]\n")).unwrap_err();
        assert!(
            err.message.contains(&format!("{MAX_ALIASES} aliases")),
            "{err:?}"
        );
        assert_eq!(err.pos.line, 2);
        // Exactly at the limit is fine.
        let uses = vec!["*a"; MAX_ALIASES].join(",");
        assert!(parse(&format!("a: &a x\nb: [{uses}]\n")).is_ok());
    }

    #[test]
    fn deep_nesting_and_self_reference_are_refused() {
        let deep = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH + 5),
            "]".repeat(MAX_DEPTH + 5)
        );
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("nest"), "{err:?}");
        assert!(
            parse(&format!(
                "a: {}{}\n",
                "[".repeat(MAX_DEPTH - 1),
                "]".repeat(MAX_DEPTH - 1)
            ))
            .is_ok()
        );
        let err = parse("a: &a [1, *a]\n").unwrap_err();
        assert!(err.message.contains("unknown anchor"), "{err:?}");
    }
}
