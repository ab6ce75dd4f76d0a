//! `tags`: a mapping of tag keys to values, on identities (principal tags) and on services
//! (resource tags, `aws:ResourceTag/<key>`).

use super::Ctx;
use crate::decode::{Fields, string};
use crate::yaml::{Node, Value};

/// A tag key: 1-128 characters; a value: up to 256; at most 50 tags on one principal or
/// resource (the tag limits of IAM and VPC Lattice, counted in characters as the API does).
const TAG_KEY_MAX: usize = 128;
const TAG_VALUE_MAX: usize = 256;
const TAGS_MAX: usize = 50;

/// A key as an error message quotes it: at most 40 characters of it.
fn quoted(key: &str) -> String {
    match key.char_indices().nth(40) {
        Some((cut, _)) => format!("\"{}…\"", &key[..cut]),
        None => format!("\"{key}\""),
    }
}

impl Ctx<'_> {
    /// `tags`: a mapping of tag keys to values (an identity's principal tags, a service's
    /// resource tags).
    pub(super) fn tags(&mut self, f: &Fields<'_>) -> Vec<(String, String)> {
        let Some(node) = f.get("tags") else {
            return Vec::new();
        };
        let loc = f.loc("tags");
        let Value::Map(entries) = &node.value else {
            self.problems.add(
                &loc,
                format!(
                    "expected a mapping of tag keys to values, found {}",
                    node.kind()
                ),
                Some("e.g. tags: {team: payments}".into()),
            );
            return Vec::new();
        };
        let mut tags: Vec<(String, String)> = Vec::new();
        for (key, value) in entries {
            let name = key.key_text().to_string();
            let at = loc.field(&name, key.pos);
            let Some(value) = tag_value(value).or_else(|| {
                string(self.problems, value, &at);
                None
            }) else {
                continue;
            };
            let (key_chars, value_chars) = (name.chars().count(), value.chars().count());
            let bounds = Some(format!(
                "a tag key is 1-{TAG_KEY_MAX} characters, a value up to {TAG_VALUE_MAX}"
            ));
            if key_chars == 0 {
                self.problems.add(&at, "a tag key is empty", bounds);
            } else if key_chars > TAG_KEY_MAX {
                self.problems.add(
                    &at,
                    format!(
                        "tag key {} is {key_chars} characters; at most {TAG_KEY_MAX}",
                        quoted(&name)
                    ),
                    bounds,
                );
            } else if value_chars > TAG_VALUE_MAX {
                self.problems.add(
                    &at,
                    format!(
                        "the value of tag {} is {value_chars} characters; at most {TAG_VALUE_MAX}",
                        quoted(&name)
                    ),
                    bounds,
                );
            } else if tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
                self.problems.add(
                    &at,
                    format!("tag \"{name}\" is given twice (tag keys ignore case)"),
                    None,
                );
            } else {
                tags.push((name, value));
            }
        }
        if tags.len() > TAGS_MAX {
            self.problems.add(
                &loc,
                format!("{} tags; at most {TAGS_MAX}", tags.len()),
                None,
            );
        }
        tags
    }
}

/// A tag's value: any scalar (`ready: true` is the string "true").
fn tag_value(node: &Node) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    }
}
