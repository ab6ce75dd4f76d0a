//! `authType` and `authPolicy` of services and service networks, and the `policy` of an
//! identity. The auth crate parses and validates a policy; this module gives its problems a
//! place in the file: a policy written as a YAML mapping is located node by node, one written as
//! a JSON string by where its text starts in the file plus the line and column inside the text.

use std::sync::Arc;

use trellis_auth::policy::{Kind, PathSegment, Policy, PolicyError};

use super::Ctx;
use crate::decode::{Fields, Loc};
use crate::model::{AuthPolicy, AuthType};
use crate::yaml::{self, Node, Pos, Value};

impl Ctx<'_> {
    /// A service's or service network's `authType` (default `NONE`).
    pub(super) fn auth_type(&mut self, f: &Fields<'_>) -> AuthType {
        match self.enum_field(f, "authType", &["NONE", "AWS_IAM"]) {
            Some(t) if t == "AWS_IAM" => AuthType::AwsIam,
            _ => AuthType::None,
        }
    }

    /// A service's or service network's `authPolicy`: a YAML mapping or a JSON string, parsed
    /// and validated now so that a bad policy stops the config, not a request.
    pub(super) fn auth_policy(&mut self, f: &Fields<'_>) -> Option<AuthPolicy> {
        self.policy(f, "authPolicy", Kind::Auth)
            .map(|p| AuthPolicy(Arc::new(p)))
    }

    /// An identity's `policy`: its identity-based policy, written and checked as `authPolicy`
    /// is, except that it names no principal.
    pub(super) fn identity_policy(&mut self, f: &Fields<'_>) -> Option<Arc<Policy>> {
        self.policy(f, "policy", Kind::Identity).map(Arc::new)
    }

    /// The policy of kind `kind` under `key`, its problems reported where they are.
    fn policy(&mut self, f: &Fields<'_>, key: &str, kind: Kind) -> Option<Policy> {
        let what = match kind {
            Kind::Auth => "auth policy",
            Kind::Identity => "identity policy",
        };
        let node = f.get(key)?;
        let loc = f.loc(key);
        let parsed = match &node.value {
            Value::Scalar { text, .. } => {
                let start = self.scalar_start(node);
                Policy::parse_as(kind, text).map_err(|errors| {
                    // Locate path errors through a positioned tree of the JSON text (JSON is
                    // YAML's flow syntax), syntax errors by their own line and column.
                    let tree = yaml::parse(text).ok();
                    errors
                        .into_iter()
                        .map(|e| {
                            let inner =
                                e.at.map(|(line, col)| Pos { line, col })
                                    .or_else(|| tree.as_ref().map(|t| walk(t, &e.path).pos));
                            // The store's nodes have no place in the file: the error's
                            // path says where it is.
                            let pos = inner
                                .filter(|_| !node.pos.in_store())
                                .map_or(node.pos, |p| offset(start, p));
                            (e, pos)
                        })
                        .collect::<Vec<_>>()
                })
            }
            _ => {
                // Its size is checked by the auth crate, on the JSON it stands for.
                let value = to_value(node);
                Policy::from_json_as(kind, &value).map_err(|errors| {
                    errors
                        .into_iter()
                        .map(|e| {
                            let pos = walk(node, &e.path).pos;
                            (e, pos)
                        })
                        .collect()
                })
            }
        };
        match parsed {
            Ok(policy) => Some(policy),
            Err(errors) => {
                for (error, pos) in errors {
                    let at = Loc::new(format!("{}{}", loc.path, path_text(&error)), pos);
                    self.problems
                        .add(&at, format!("{what}: {}", error.message), error.hint);
                }
                None
            }
        }
    }

    /// Where the text of scalar `node` starts in the file: after the quote of a quoted
    /// scalar, on the next line for a block scalar (`|`, `>`), else where the node is.
    fn scalar_start(&self, node: &Node) -> Pos {
        if node.pos.in_store() {
            return node.pos;
        }
        let mut lines = self.source.lines().skip(node.pos.line.saturating_sub(1));
        let Some(line) = lines.next() else {
            return node.pos;
        };
        let from = line
            .char_indices()
            .nth(node.pos.col.saturating_sub(1))
            .map_or("", |(i, _)| &line[i..]);
        match from.chars().next() {
            Some('"' | '\'') => Pos {
                line: node.pos.line,
                col: node.pos.col + 1,
            },
            Some('|' | '>') => {
                for (n, next) in lines.enumerate() {
                    let indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() {
                        return Pos {
                            line: node.pos.line + 1 + n,
                            col: indent + 1,
                        };
                    }
                }
                node.pos
            }
            _ => node.pos,
        }
    }
}

/// `inner` (1-based, inside a scalar's text) as a file position, given where the text starts.
/// Lines after the first keep their own column (exact for block scalars, whose lines share
/// the first one's indentation).
fn offset(start: Pos, inner: Pos) -> Pos {
    Pos {
        line: start.line + inner.line.saturating_sub(1),
        col: start.col + inner.col.saturating_sub(1),
    }
}

/// The node a policy error's path leads to (as deep as the path exists).
fn walk<'n>(mut node: &'n Node, path: &[PathSegment]) -> &'n Node {
    for segment in path {
        let next = match (segment, &node.value) {
            (PathSegment::Key(key), Value::Map(entries)) => entries
                .iter()
                .find(|(k, _)| k.key_text() == key)
                .map(|(_, v)| v),
            (PathSegment::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => break,
        }
    }
    node
}

/// `.Statement[1].Condition` for messages.
fn path_text(error: &PolicyError) -> String {
    error
        .path
        .iter()
        .map(|segment| match segment {
            PathSegment::Key(key) => format!(".{key}"),
            PathSegment::Index(i) => format!("[{i}]"),
        })
        .collect()
}

/// A YAML node as JSON: plain numbers and booleans as such (a policy's `"true"` and `true`
/// both mean true to IAM), null as null, everything else a string.
fn to_value(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Scalar { text, quoted } => {
            if *quoted {
                serde_json::Value::String(text.clone())
            } else if yaml::is_null(text) {
                serde_json::Value::Null
            } else if let Ok(b) = text.parse::<bool>() {
                serde_json::Value::Bool(b)
            } else if let Ok(n) = text.parse::<i64>() {
                serde_json::Value::from(n)
            } else if let Some(n) = text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                serde_json::Value::Number(n)
            } else {
                serde_json::Value::String(text.clone())
            }
        }
        Value::Seq(items) => serde_json::Value::Array(items.iter().map(to_value).collect()),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.key_text().to_string(), to_value(v)))
                .collect(),
        ),
    }
}
