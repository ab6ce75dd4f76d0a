//! A listener's `rules` (priority, match, action) and the actions and matches they share with
//! its `defaultAction`.

use std::collections::HashMap;

use super::Ctx;
use super::checks::{Named, resolve};
use super::section::{Item, NameRule, NameSyntax, Section};
use crate::decode::{Fields, Loc, fields, int, item, list, string, union};
use crate::model::*;
use crate::yaml::Node;

const RULES: Section = Section {
    key: "rules",
    keys: &["name", "priority", "match", "action"],
    required: None,
    name: NameRule {
        what: "rule name",
        syntax: NameSyntax::Lattice {
            min: 3,
            max: 63,
            reserved_prefix: Some("rule-"),
        },
    },
};

impl Ctx<'_> {
    pub(super) fn rules(
        &mut self,
        listener: &Fields<'_>,
        listener_arn: &str,
        tgs: &[Named<'_>],
    ) -> Vec<Rule> {
        let mut out = self.section(listener, &RULES, |ctx, item| {
            ctx.rule(item, listener_arn, tgs)
        });
        let mut seen: HashMap<u16, &Rule> = HashMap::new();
        for r in out.iter().filter(|r| r.priority > 0) {
            if let Some(first) = seen.get(&r.priority) {
                self.problems.add(
                    &r.at.field("priority", r.at.pos),
                    format!(
                        "priority {} is already used by rule \"{}\"",
                        r.priority, first.name
                    ),
                    Some("rule priorities must be unique within a listener".into()),
                );
            } else {
                seen.insert(r.priority, r);
            }
        }
        out.sort_by_key(|r| r.priority);
        out
    }

    fn rule(
        &mut self,
        Item { f, at, name }: Item<'_>,
        listener_arn: &str,
        tgs: &[Named<'_>],
    ) -> Rule {
        let priority = f
            .require(
                self.problems,
                "priority",
                "1-2000; lower numbers are evaluated first",
            )
            .and_then(|n| {
                int(
                    self.problems,
                    n,
                    &f.loc("priority"),
                    1,
                    2000,
                    "a rule priority",
                )
            })
            .unwrap_or(0) as u16;
        let http_match = match f.require(
            self.problems,
            "match",
            "e.g. {httpMatch: {pathMatch: {match: {prefix: /api}}}}",
        ) {
            Some(n) => self.http_match(n, &f.loc("match")),
            None => HttpMatch::default(),
        };
        let action = match f.require(
            self.problems,
            "action",
            "{forward: ...} or {fixedResponse: ...}",
        ) {
            Some(n) => self.action(n, &f.loc("action"), tgs),
            None => None,
        }
        .unwrap_or(Action::FixedResponse { status_code: 404 });
        let id = format!(
            "rule-{}",
            self.id("rule", &format!("{listener_arn}/{name}"))
        );
        let arn = format!("{listener_arn}/rule/{id}");
        Rule {
            name,
            id,
            arn,
            priority,
            http_match,
            action,
            at,
        }
    }

    fn http_match(&mut self, node: &Node, loc: &Loc) -> HttpMatch {
        let mut out = HttpMatch::default();
        let Some(m) = fields(self.problems, node, loc, &["httpMatch"]) else {
            return out;
        };
        let Some(h) = m.require(
            self.problems,
            "httpMatch",
            "the only kind of match is httpMatch",
        ) else {
            return out;
        };
        let Some(f) = fields(
            self.problems,
            h,
            &m.loc("httpMatch"),
            &["method", "pathMatch", "headerMatches"],
        ) else {
            return out;
        };
        if let Some(method) = self.str_field(&f, "method") {
            if method.is_empty()
                || method.len() > 16
                || !method.bytes().all(|b| b.is_ascii_graphic())
                || method.contains('*')
            {
                self.problems.add(
                    &f.loc("method"),
                    format!("method \"{method}\" is not valid"),
                    Some(
                        "a method is 1-16 characters without wildcards, matched exactly, e.g. GET"
                            .into(),
                    ),
                );
            }
            out.method = Some(method);
        }
        if let Some(p) = f.get("pathMatch") {
            out.path_match = self.path_match(p, &f.loc("pathMatch"));
        }
        if f.get("headerMatches").is_some() {
            let hloc = f.loc("headerMatches");
            let items = list(self.problems, f.get("headerMatches"), &hloc);
            if items.is_empty() || items.len() > 5 {
                self.problems.add(
                    &hloc,
                    format!("{} header matches given", items.len()),
                    Some("a rule has 1-5 header matches".into()),
                );
            }
            for (i, n) in items.iter().enumerate() {
                if let Some(hm) = self.header_match(n, &item(&hloc, i, n)) {
                    out.header_matches.push(hm);
                }
            }
        }
        out
    }

    fn path_match(&mut self, node: &Node, loc: &Loc) -> Option<PathMatch> {
        let f = fields(self.problems, node, loc, &["match", "caseSensitive"])?;
        let case_sensitive = self.bool_field(&f, "caseSensitive").unwrap_or(false);
        let m = f.require(self.problems, "match", "{exact: /path} or {prefix: /path}")?;
        let (kind, value_node, vloc) =
            union(self.problems, m, &f.loc("match"), &["exact", "prefix"])?;
        let value = string(self.problems, value_node, &vloc)?;
        const ALLOWED: &str = "@:%_+.~#?&/=-";
        if !value.starts_with('/') {
            self.problems.add(
                &vloc,
                format!("path \"{value}\" does not start with '/'"),
                Some(format!(
                    "write it as \"/{}\"",
                    value.trim_start_matches('/')
                )),
            );
        } else if value.len() > 200 {
            self.problems.add(
                &vloc,
                "a path match is at most 200 characters".to_string(),
                None,
            );
        } else if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ALLOWED.contains(*c)))
        {
            self.problems.add(&vloc, format!("path \"{value}\" contains '{c}'"), Some(format!("path matches use a-z, A-Z, 0-9 and {ALLOWED}; there are no wildcards (use prefix)")));
        }
        let kind = if kind == "exact" {
            PathMatchKind::Exact
        } else {
            PathMatchKind::Prefix
        };
        Some(PathMatch {
            kind,
            value,
            case_sensitive,
        })
    }

    fn header_match(&mut self, node: &Node, loc: &Loc) -> Option<HeaderMatch> {
        let f = fields(
            self.problems,
            node,
            loc,
            &["name", "match", "caseSensitive"],
        )?;
        let name = f
            .require(self.problems, "name", "the header name, e.g. x-env")
            .and_then(|n| string(self.problems, n, &f.loc("name")));
        if let Some(n) = &name
            && (n.is_empty() || n.len() > 100 || n.contains('*') || http_token(n).is_none())
        {
            self.problems.add(
                &f.loc("name"),
                format!("header name \"{n}\" is not valid"),
                Some("a header name is 1-100 token characters without wildcards".into()),
            );
        }
        let case_sensitive = self.bool_field(&f, "caseSensitive").unwrap_or(false);
        let m = f.require(
            self.problems,
            "match",
            "{exact: v}, {prefix: v} or {contains: v}",
        )?;
        let (kind, value_node, vloc) = union(
            self.problems,
            m,
            &f.loc("match"),
            &["exact", "prefix", "contains"],
        )?;
        let value = string(self.problems, value_node, &vloc)?;
        if value.is_empty() || value.len() > 200 {
            self.problems.add(
                &vloc,
                "a header match value is 1-200 characters".to_string(),
                None,
            );
        }
        let kind = match kind.as_str() {
            "exact" => HeaderMatchKind::Exact,
            "prefix" => HeaderMatchKind::Prefix,
            _ => HeaderMatchKind::Contains,
        };
        Some(HeaderMatch {
            name: name?.to_ascii_lowercase(),
            kind,
            value,
            case_sensitive,
        })
    }

    pub(super) fn action(&mut self, node: &Node, loc: &Loc, tgs: &[Named<'_>]) -> Option<Action> {
        let (kind, inner, iloc) = union(self.problems, node, loc, &["forward", "fixedResponse"])?;
        if kind == "fixedResponse" {
            let f = fields(self.problems, inner, &iloc, &["statusCode"])?;
            let code = f
                .require(self.problems, "statusCode", "e.g. 404")
                .and_then(|n| {
                    int(
                        self.problems,
                        n,
                        &f.loc("statusCode"),
                        100,
                        599,
                        "a fixed-response status code",
                    )
                })?;
            return Some(Action::FixedResponse {
                status_code: code as u16,
            });
        }
        let f = fields(self.problems, inner, &iloc, &["targetGroups"])?;
        let tloc = f.loc("targetGroups");
        let required = f.require(
            self.problems,
            "targetGroups",
            "[{targetGroupIdentifier: my-tg, weight: 100}]",
        );
        let items = list(self.problems, required, &tloc);
        if items.is_empty() || items.len() > 10 {
            self.problems.add(
                &tloc,
                format!("{} target groups in a forward action", items.len()),
                Some("a forward action has 1-10 target groups".into()),
            );
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, n) in items.iter().enumerate() {
            let at = item(&tloc, i, n);
            let Some(w) = fields(self.problems, n, &at, &["targetGroupIdentifier", "weight"])
            else {
                ok = false;
                continue;
            };
            let weight = match w.get("weight") {
                Some(wn) => int(self.problems, wn, &w.loc("weight"), 0, 999, "a weight"),
                None => Some(100),
            };
            let target_group = w
                .require(
                    self.problems,
                    "targetGroupIdentifier",
                    "the name (or id, or ARN) of a target group",
                )
                .and_then(|n| string(self.problems, n, &w.loc("targetGroupIdentifier")))
                .and_then(|text| {
                    resolve(
                        self.problems,
                        &text,
                        &w.loc("targetGroupIdentifier"),
                        "target group",
                        tgs,
                    )
                });
            match (target_group, weight) {
                (Some(target_group), Some(weight)) => out.push(WeightedTargetGroup {
                    target_group,
                    weight: weight as u16,
                }),
                _ => ok = false,
            }
        }
        if ok && !out.is_empty() && out.iter().all(|w| w.weight == 0) {
            self.problems.add(
                &tloc,
                "every target group has weight 0, so no request could be forwarded",
                Some("give at least one target group a weight of 1-999".into()),
            );
        }
        Some(Action::Forward(out))
    }
}

fn http_token(name: &str) -> Option<()> {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        .then_some(())
}
