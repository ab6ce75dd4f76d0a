//! `tags`: a mapping of tag keys to values, on identities (principal tags) and on services
//! (resource tags, `aws:ResourceTag/<key>`).

use super::Ctx;
use crate::decode::{Fields, string};
use crate::yaml::{Node, Value};

/// A tag key: 1-128 characters; a value: up to 256 (the tag limits of IAM and VPC Lattice).
const TAG_KEY_MAX: usize = 128;
const TAG_VALUE_MAX: usize = 256;

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
            if name.is_empty() || name.len() > TAG_KEY_MAX || value.len() > TAG_VALUE_MAX {
                self.problems.add(
                    &at,
                    format!("tag \"{name}\" is out of bounds"),
                    Some(format!(
                        "a tag key is 1-{TAG_KEY_MAX} characters, a value up to {TAG_VALUE_MAX}"
                    )),
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
