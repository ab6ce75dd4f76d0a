//! Hand-written decoding of the positioned YAML tree, collecting every problem instead of
//! stopping at the first one.

use crate::error::Diagnostic;
use crate::yaml::{Node, Pos, Value, is_null};

/// Where a value sits in the document: its path and position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loc {
    pub path: String,
    pub pos: Pos,
}

impl Loc {
    pub fn new(path: impl Into<String>, pos: Pos) -> Loc {
        Loc {
            path: path.into(),
            pos,
        }
    }

    /// The location of a field below this one.
    pub fn field(&self, key: &str, pos: Pos) -> Loc {
        Loc {
            path: join(&self.path, key),
            pos,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Collects diagnostics while decoding and validating.
#[derive(Debug, Default)]
pub struct Problems {
    pub list: Vec<Diagnostic>,
    /// The config file's name and the API store's, for hints that point at the other one of
    /// two clashing objects (empty when only a file is decoded).
    pub names: Option<(String, String)>,
}

impl Problems {
    /// Where `at` is, for a hint: `line 12, services[0]`, or — when a store is layered on the
    /// file — `trellis.yaml line 12, services[0]` and `STORE: document.services[0]`.
    pub fn place(&self, at: &Loc) -> String {
        match (&self.names, at.pos.in_store()) {
            (None, _) => format!("line {}, {}", at.pos.line, at.path),
            (Some((file, _)), false) => format!("{file} line {}, {}", at.pos.line, at.path),
            (Some((_, store)), true) => format!("{store}: {}", at.path),
        }
    }

    pub fn add(&mut self, at: &Loc, message: impl Into<String>, hint: Option<String>) {
        self.list.push(Diagnostic {
            path: at.path.clone(),
            pos: at.pos,
            message: message.into(),
            hint,
        });
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean \"{c}\"?"))
}

/// The entries of a mapping node, after checking that every key is known.
pub struct Fields<'a> {
    pub loc: Loc,
    entries: Vec<(&'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// The value of `key`, if present and not null.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.key_text() == key)
            .map(|(_, v)| *v)
            .filter(|v| !matches!(&v.value, Value::Scalar { text, quoted: false } if is_null(text)))
    }

    /// The location of `key`'s value (or of the mapping when the key is absent).
    pub fn loc(&self, key: &str) -> Loc {
        let pos = self.get(key).map(|v| v.pos).unwrap_or(self.loc.pos);
        self.loc.field(key, pos)
    }

    /// Reports `key` as required when it is missing.
    pub fn require(&self, problems: &mut Problems, key: &str, hint: &str) -> Option<&'a Node> {
        let found = self.get(key);
        if found.is_none() {
            problems.add(
                &self.loc,
                format!("missing required key \"{key}\""),
                Some(hint.into()),
            );
        }
        found
    }
}

/// Reads a mapping, reporting keys not in `allowed` (with a suggestion) and repeated keys.
pub fn fields<'a>(
    problems: &mut Problems,
    node: &'a Node,
    loc: &Loc,
    allowed: &[&str],
) -> Option<Fields<'a>> {
    let Value::Map(entries) = &node.value else {
        problems.add(
            loc,
            format!("expected a mapping, found {}", node.kind()),
            Some(format!("allowed keys here: {}", allowed.join(", "))),
        );
        return None;
    };
    let mut kept = Vec::new();
    for (key, value) in entries {
        let name = key.key_text();
        let at = loc.field(name, key.pos);
        if !allowed.contains(&name) {
            let hint = did_you_mean(name, allowed.iter().copied())
                .unwrap_or_else(|| format!("allowed keys here: {}", allowed.join(", ")));
            problems.add(&at, format!("unknown key \"{name}\""), Some(hint));
        } else if kept
            .iter()
            .any(|(k, _): &(&Node, &Node)| k.key_text() == name)
        {
            problems.add(&at, format!("key \"{name}\" is given twice"), None);
        } else {
            kept.push((key, value));
        }
    }
    Some(Fields {
        loc: Loc::new(loc.path.clone(), node.pos),
        entries: kept,
    })
}

/// The items of a list (a null or absent list is empty).
pub fn list<'a>(problems: &mut Problems, node: Option<&'a Node>, loc: &Loc) -> &'a [Node] {
    match node.map(|n| &n.value) {
        None => &[],
        Some(Value::Seq(items)) => items,
        Some(_) => {
            let found = node.map(Node::kind).unwrap_or("nothing");
            problems.add(loc, format!("expected a list, found {found}"), None);
            &[]
        }
    }
}

/// A list item's location: `parent[i]`.
pub fn item(loc: &Loc, i: usize, node: &Node) -> Loc {
    Loc::new(format!("{}[{i}]", loc.path), node.pos)
}

/// A scalar as text.
pub fn string(problems: &mut Problems, node: &Node, loc: &Loc) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => {
            problems.add(
                loc,
                format!("expected a string, found {}", node.kind()),
                None,
            );
            None
        }
    }
}

/// An unquoted integer within `min..=max`.
pub fn int(
    problems: &mut Problems,
    node: &Node,
    loc: &Loc,
    min: i64,
    max: i64,
    what: &str,
) -> Option<i64> {
    let text = match &node.value {
        Value::Scalar { text, .. } => text,
        _ => {
            problems.add(
                loc,
                format!("expected a number, found {}", node.kind()),
                None,
            );
            return None;
        }
    };
    let Ok(value) = text.trim().parse::<i64>() else {
        problems.add(
            loc,
            format!("expected a whole number, found \"{text}\""),
            Some(format!("{what} is {min}-{max}")),
        );
        return None;
    };
    if value < min || value > max {
        problems.add(
            loc,
            format!("{value} is out of range"),
            Some(format!("{what} is {min}-{max}")),
        );
        return None;
    }
    Some(value)
}

/// `true` or `false`.
pub fn boolean(problems: &mut Problems, node: &Node, loc: &Loc) -> Option<bool> {
    match &node.value {
        Value::Scalar {
            text,
            quoted: false,
        } if text == "true" || text == "false" => Some(text == "true"),
        _ => {
            problems.add(loc, "expected true or false".to_string(), None);
            None
        }
    }
}

/// One of the spellings in `allowed`, exactly (the Lattice API's enum values are upper case).
pub fn one_of(problems: &mut Problems, node: &Node, loc: &Loc, allowed: &[&str]) -> Option<String> {
    let text = string(problems, node, loc)?;
    if allowed.contains(&text.as_str()) {
        return Some(text);
    }
    let exact_case = allowed.iter().find(|a| a.eq_ignore_ascii_case(&text));
    let hint = match exact_case {
        Some(a) => Some(format!(
            "did you mean \"{a}\"? values are spelled as the VPC Lattice API spells them"
        )),
        None => did_you_mean(&text, allowed.iter().copied()),
    }
    .or_else(|| Some(format!("expected one of: {}", allowed.join(", "))));
    problems.add(
        loc,
        format!("\"{text}\" is not one of {}", allowed.join(", ")),
        hint,
    );
    None
}

/// A union (`{exact: ...}` / `{prefix: ...}`): exactly one of `members` must be present.
pub fn union<'a>(
    problems: &mut Problems,
    node: &'a Node,
    loc: &Loc,
    members: &[&str],
) -> Option<(String, &'a Node, Loc)> {
    let f = fields(problems, node, loc, members)?;
    let present: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| f.get(m).is_some())
        .collect();
    match present.as_slice() {
        [one] => f.get(one).map(|n| (one.to_string(), n, f.loc(one))),
        [] => {
            problems.add(
                loc,
                format!("expected one of {}", members.join(" or ")),
                None,
            );
            None
        }
        _ => {
            problems.add(
                loc,
                format!(
                    "give only one of {}, not {}",
                    members.join(" or "),
                    present.join(" and ")
                ),
                None,
            );
            None
        }
    }
}
