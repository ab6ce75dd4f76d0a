//! What every list of named objects (VPCs, functions, target groups, services, listeners,
//! rules, service networks) shares: a list of mappings with known keys, each with a name
//! that follows its kind's rule, and no name given twice in the list.

use super::Ctx;
use super::checks::check_unique;
use crate::decode::{Fields, Loc, Problems, fields, item, list, string};
use crate::model::*;

/// One list of named objects in its parent mapping.
pub(super) struct Section {
    /// The list's key in its parent, e.g. `listeners`.
    pub key: &'static str,
    /// The keys an item may have.
    pub keys: &'static [&'static str],
    /// The hint when the list is required and missing; `None` when it may be left out.
    pub required: Option<&'static str>,
    pub name: NameRule,
}

/// The naming rule for one kind of object.
pub(super) struct NameRule {
    /// What the name is called in messages, e.g. "service name".
    pub what: &'static str,
    pub syntax: NameSyntax,
}

pub(super) enum NameSyntax {
    /// Lattice's resource names: `min`-`max` characters of a-z, 0-9 and '-', with '-' only
    /// inside and single, and not starting with the kind's reserved id prefix.
    Lattice {
        min: usize,
        max: usize,
        reserved_prefix: Option<&'static str>,
    },
    /// Lambda's function names: 1-64 characters of a-z, A-Z, 0-9, '-' and '_'.
    Function,
}

/// One item of a section, as its decoder receives it: its keys (already checked), where it is,
/// and its name (already checked; empty when missing).
pub(super) struct Item<'a> {
    pub f: Fields<'a>,
    pub at: Loc,
    pub name: String,
}

/// A decoded object whose name must be unique in its section.
pub(super) trait NamedItem {
    fn name(&self) -> &str;
    fn at(&self) -> &Loc;
}

macro_rules! named_item {
    ($($t:ty),*) => {$(
        impl NamedItem for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn at(&self) -> &Loc {
                &self.at
            }
        }
    )*};
}
named_item!(
    Vpc,
    Function,
    TargetGroup,
    Service,
    Listener,
    Rule,
    ServiceNetwork
);

impl Ctx<'_> {
    /// Decodes the list `section.key` of `parent`: each item that is a mapping of known keys
    /// gets its name read and checked, then `decode` makes the object; names given twice are
    /// reported after the whole list.
    pub(super) fn section<T: NamedItem>(
        &mut self,
        parent: &Fields<'_>,
        section: &Section,
        mut decode: impl FnMut(&mut Self, Item<'_>) -> T,
    ) -> Vec<T> {
        let loc = parent.loc(section.key);
        let node = match section.required {
            Some(hint) => parent.require(self.problems, section.key, hint),
            None => parent.get(section.key),
        };
        let mut out = Vec::new();
        // The store's objects follow the file's in a top-level list (see `layer::merge`), and
        // are numbered as they are in the store's document.
        let top = parent.loc.path.is_empty();
        let (mut in_file, mut in_store) = (0, 0);
        for node in list(self.problems, node, &loc) {
            let at = if top && node.pos.in_store() {
                in_store += 1;
                Loc::new(
                    format!("{}{}[{}]", self.store_path, loc.path, in_store - 1),
                    node.pos,
                )
            } else {
                in_file += 1;
                item(&loc, in_file - 1, node)
            };
            let Some(f) = fields(self.problems, node, &at, section.keys) else {
                continue;
            };
            let name = self.name(&f, &section.name);
            out.push(decode(self, Item { f, at, name }));
        }
        check_unique(
            self.problems,
            section.name.what,
            out.iter().map(|v| (v.name(), v.at())),
        );
        out
    }

    /// The required `name` of an item, checked against `rule` when present.
    fn name(&mut self, f: &Fields<'_>, rule: &NameRule) -> String {
        let missing = match rule.syntax {
            NameSyntax::Lattice { .. } => format!("every object needs a name ({})", rule.what),
            NameSyntax::Function => "every function needs a name".to_string(),
        };
        let name = f
            .require(self.problems, "name", &missing)
            .and_then(|n| string(self.problems, n, &f.loc("name")))
            .unwrap_or_default();
        if f.get("name").is_some() {
            check_name(self.problems, &name, &f.loc("name"), rule);
        }
        name
    }
}

fn check_name(problems: &mut Problems, name: &str, loc: &Loc, rule: &NameRule) {
    let what = rule.what;
    let NameSyntax::Lattice {
        min,
        max,
        reserved_prefix,
    } = rule.syntax
    else {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.add(
                loc,
                format!("{what} \"{name}\" is not valid"),
                Some("a function name is 1-64 characters of a-z, A-Z, 0-9, '-' and '_'".into()),
            );
        }
        return;
    };
    let pattern_hint = || {
        Some(format!(
            "a {what} is {min}-{max} characters of a-z, 0-9 and '-', not starting or ending with '-' and without '--'{}",
            reserved_prefix
                .map(|p| format!(", and may not start with \"{p}\""))
                .unwrap_or_default()
        ))
    };
    let len = name.chars().count();
    if len < min || len > max {
        problems.add(
            loc,
            format!(
                "{what} \"{name}\" has {len} character{}",
                if len == 1 { "" } else { "s" }
            ),
            pattern_hint(),
        );
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        problems.add(
            loc,
            format!("{what} \"{name}\" contains '{bad}'"),
            pattern_hint(),
        );
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        problems.add(
            loc,
            format!("{what} \"{name}\" has a misplaced '-'"),
            pattern_hint(),
        );
    } else if let Some(prefix) = reserved_prefix.filter(|p| name.starts_with(p)) {
        problems.add(
            loc,
            format!("{what} \"{name}\" starts with the reserved prefix \"{prefix}\""),
            pattern_hint(),
        );
    }
}
