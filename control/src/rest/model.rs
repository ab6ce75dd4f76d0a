//! The AWS model (`model/vpc-lattice-service-2.json`, embedded), read once into what the REST
//! layer needs: each operation's route and success code, and the shapes of the inputs with the
//! constraints the SDKs do not check (botocore checks required members and minimum lengths
//! client-side, not patterns, ranges or enums).
//!
//! The routes come from the model rather than from a hand-written table so that all 73
//! operations answer at their AWS paths (implemented or not) and a newer model is a file copy.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The model as AWS publishes it (botocore's `vpc-lattice/2022-11-30/service-2.json`).
const MODEL_JSON: &str = include_str!("../../model/vpc-lattice-service-2.json");

/// Shapes whose model pattern and length the REST layer does not enforce, and why: Trellis
/// deliberately accepts more than AWS there, and the operations check those values themselves.
const RELAXED: &[(&str, &str)] = &[(
    "VpcId",
    "Trellis's VPCs are the config's `vpcs`, named by their id or their name",
)];

/// The parsed model. Built on first use; a model that does not parse is a build defect that the
/// unit tests catch, so `model()` panics only if the embedded file itself is broken.
pub(crate) fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::parse(MODEL_JSON).expect("the embedded AWS model parses"))
}

#[derive(Debug)]
pub(crate) struct Model {
    pub operations: Vec<Operation>,
    pub shapes: HashMap<String, Shape>,
}

#[derive(Debug)]
pub(crate) struct Operation {
    pub name: String,
    pub method: http::Method,
    /// The request URI template, as the model writes it (`/services/{serviceIdentifier}`).
    pub template: String,
    pub segments: Vec<Segment>,
    /// `http.responseCode` (200 when the model says nothing).
    pub success: u16,
    pub input: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(String),
    /// A URI label: the `locationName` of an input member with `location: uri`.
    Label(String),
}

#[derive(Debug)]
pub(crate) struct Shape {
    pub kind: Kind,
    /// `min`/`max`: a length for strings, lists and maps, a range for numbers.
    pub min: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Structure {
        members: Vec<Member>,
        required: Vec<String>,
        /// Exactly one member may be set.
        union: bool,
    },
    List {
        member: String,
    },
    Map {
        key: String,
        value: String,
    },
    String {
        enumeration: Option<Vec<String>>,
        pattern: Option<Pattern>,
    },
    Integer,
    Boolean,
    Timestamp,
    /// Anything the input shapes do not use (blob, float …): passed through unchecked.
    Other,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub name: String,
    pub shape: String,
    pub location: Location,
    /// Where the member is found: the URI label, query parameter or header name (the member
    /// name for body members).
    pub location_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Body,
    Uri,
    Query,
    Header,
}

/// A model pattern, matched against the whole value. The model's patterns are Java regular
/// expressions; the only feature the `regex` crate lacks is the leading negative lookaheads of
/// the name shapes (`(?!svc-)(?![-])…[a-z0-9-]+`), so those are split off and matched apart:
/// the value must match none of them (anchored at its start) and match the rest.
#[derive(Debug)]
pub(crate) struct Pattern {
    pub source: String,
    refused: Vec<regex::Regex>,
    whole: regex::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let mut rest = source;
        let mut refused = Vec::new();
        while let Some(inner) = rest.strip_prefix("(?!") {
            let end = closing_paren(inner).ok_or_else(|| format!("unbalanced ( in {source}"))?;
            refused.push(compile(&format!("^(?:{})", &inner[..end]))?);
            rest = &inner[end + 1..];
        }
        Ok(Pattern {
            source: source.to_owned(),
            refused,
            whole: compile(&format!("^(?:{rest})$"))?,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.whole.is_match(value) && !self.refused.iter().any(|r| r.is_match(value))
    }
}

fn compile(source: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(source)
        .size_limit(16 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// The index of the `)` closing a group whose `(` precedes `text`, skipping escapes and
/// character classes.
fn closing_paren(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut in_class, mut i) = (0usize, false, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

impl Model {
    fn parse(text: &str) -> Result<Model, String> {
        let json: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut shapes = HashMap::new();
        for (name, shape) in json["shapes"].as_object().ok_or("no shapes")? {
            shapes.insert(name.clone(), Shape::parse(name, shape)?);
        }
        let mut operations = Vec::new();
        for (name, op) in json["operations"].as_object().ok_or("no operations")? {
            let http = &op["http"];
            let method = http["method"]
                .as_str()
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| format!("{name}: no http.method"))?;
            let template = http["requestUri"]
                .as_str()
                .ok_or_else(|| format!("{name}: no http.requestUri"))?;
            let segments = template
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(label) => Segment::Label(label.to_owned()),
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect();
            operations.push(Operation {
                name: name.clone(),
                method,
                template: template.to_owned(),
                segments,
                success: http["responseCode"].as_u64().unwrap_or(200) as u16,
                input: op["input"]["shape"].as_str().map(str::to_owned),
            });
        }
        operations.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Model { operations, shapes })
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }
}

impl Shape {
    fn parse(name: &str, shape: &Value) -> Result<Shape, String> {
        let relaxed = RELAXED.iter().any(|(n, _)| *n == name);
        let bound = |key: &str| if relaxed { None } else { shape[key].as_i64() };
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let kind = match shape["type"].as_str().unwrap_or_default() {
            "structure" => {
                let mut members = Vec::new();
                for (member, spec) in shape["members"].as_object().into_iter().flatten() {
                    let location = match spec["location"].as_str() {
                        None => Location::Body,
                        Some("uri") => Location::Uri,
                        Some("querystring") => Location::Query,
                        Some("header") => Location::Header,
                        Some(other) => return Err(format!("{name}.{member}: location {other}")),
                    };
                    members.push(Member {
                        name: member.clone(),
                        shape: text(&spec["shape"])
                            .ok_or_else(|| format!("{name}.{member}: no shape"))?,
                        location,
                        location_name: text(&spec["locationName"])
                            .unwrap_or_else(|| member.clone()),
                    });
                }
                Kind::Structure {
                    members,
                    required: shape["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(text)
                        .collect(),
                    union: shape["union"].as_bool().unwrap_or(false),
                }
            }
            "list" => Kind::List {
                member: text(&shape["member"]["shape"])
                    .ok_or_else(|| format!("{name}: list without a member shape"))?,
            },
            "map" => Kind::Map {
                key: text(&shape["key"]["shape"]).ok_or_else(|| format!("{name}: no key"))?,
                value: text(&shape["value"]["shape"]).ok_or_else(|| format!("{name}: no value"))?,
            },
            "string" => Kind::String {
                enumeration: shape["enum"]
                    .as_array()
                    .map(|e| e.iter().filter_map(text).collect()),
                pattern: match shape["pattern"].as_str() {
                    Some(p) if !relaxed => {
                        Some(Pattern::new(p).map_err(|e| format!("{name}: pattern {p}: {e}"))?)
                    }
                    _ => None,
                },
            },
            "integer" | "long" => Kind::Integer,
            "boolean" => Kind::Boolean,
            "timestamp" => Kind::Timestamp,
            _ => Kind::Other,
        };
        Ok(Shape {
            kind,
            min: bound("min"),
            max: bound("max"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_parses_with_every_pattern() {
        let m = model();
        assert_eq!(m.operations.len(), 73);
        let patterns = m
            .shapes
            .values()
            .filter(|s| {
                matches!(
                    s.kind,
                    Kind::String {
                        pattern: Some(_),
                        ..
                    }
                )
            })
            .count();
        // 64 shapes have a pattern; VpcId is relaxed.
        assert_eq!(patterns, 63);
    }

    #[test]
    fn name_patterns_keep_their_lookaheads() {
        let Some(Shape {
            kind: Kind::String {
                pattern: Some(p), ..
            },
            ..
        }) = model().shape("ServiceName")
        else {
            panic!("ServiceName has a pattern");
        };
        for good in ["billing", "a-b-c", "svc1"] {
            assert!(p.matches(good), "{good}");
        }
        for bad in ["svc-billing", "-a", "a-", "a--b", "Bad_Name", "", "a b"] {
            assert!(!p.matches(bad), "{bad}");
        }
    }

    #[test]
    fn identifier_patterns_match_whole_values() {
        let Some(Shape {
            kind: Kind::String {
                pattern: Some(p), ..
            },
            ..
        }) = model().shape("ServiceIdentifier")
        else {
            panic!("ServiceIdentifier has a pattern");
        };
        assert!(p.matches("svc-0123456789abcdefg"));
        assert!(
            p.matches("arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdefg")
        );
        assert!(!p.matches("svc-0123456789abcdefgh"));
        assert!(!p.matches("xsvc-0123456789abcdefg"));
        assert!(!p.matches(".."));
    }

    #[test]
    fn closing_paren_skips_classes_and_escapes() {
        assert_eq!(closing_paren("a)b"), Some(1));
        assert_eq!(closing_paren("[)](x))"), Some(6));
        assert_eq!(closing_paren(r"\)a)"), Some(3));
        assert_eq!(closing_paren("(a"), None);
    }
}
