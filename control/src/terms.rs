//! A problem the config crate finds in the store's document, said in the API's terms.
//!
//! The operations write the API's objects into the store in the config file's schema, and the
//! config crate reports a problem at its path in that document
//! (`document.targetGroups[3].config.vpcIdentifier`). That path is Trellis's inside: an API
//! caller gave `config.vpcIdentifier` to `CreateTargetGroup`, and an SDK user must be told that,
//! in the message and in the `ValidationException`'s `fieldList`. So a store path is read back
//! against the document it was found in: the object it falls in is named as the API names it
//! (`target group "x-tg"`), and what is left of the path is the input member (with the few
//! members the store keeps under another key renamed back).

use serde_json::{Map, Value};
use trellis_config::ConfigError;

use crate::error::{ApiError, FieldError};
use crate::store::Snapshot;

/// The `ValidationException` for a change the config crate refused, composed from `snap` (the
/// store as the call `op`, with `input`, would leave it). Only the store's problems can be new
/// (the file is the last good one); one of the file's is passed on as the config crate said it.
pub(crate) fn invalid_change(
    e: ConfigError,
    snap: &Snapshot,
    store_name: &str,
    op: &str,
    input: &Map<String, Value>,
) -> ApiError {
    let document = Value::Object(snap.document.clone());
    let mut messages = Vec::new();
    let mut fields = Vec::new();
    for p in e.problems() {
        let hint = p
            .hint
            .as_deref()
            .map(|h| scrub(h, &document, store_name, op, input));
        if !p.pos.in_store() {
            messages.push(match &hint {
                Some(h) => format!("{}: {} ({h})", p.path, p.message),
                None => format!("{}: {}", p.path, p.message),
            });
            continue;
        }
        let message = scrub(&p.message, &document, store_name, op, input);
        let message = match &hint {
            Some(h) => format!("{message} ({h})"),
            None => message,
        };
        let (object, member) = describe(&p.path, &document, op, input);
        let text = match (&object, &member) {
            (Some(o), Some(m)) if !addressed(o, op, input) => format!("{o}, {m}: {message}"),
            (_, Some(m)) => format!("{m}: {message}"),
            (Some(o), None) => format!("{o}: {message}"),
            (None, None) => message.clone(),
        };
        if let Some(m) = member {
            fields.push(FieldError {
                name: m,
                message: message.clone(),
            });
        }
        messages.push(text);
    }
    if messages.is_empty() {
        messages.push(scrub(&e.to_string(), &document, store_name, op, input));
    }
    let reason = if fields.is_empty() {
        "other"
    } else {
        "fieldValidationFailed"
    };
    ApiError::Validation {
        message: messages.join("; "),
        reason,
        fields,
    }
}

/// Whether `object` (as [`describe`] says it) is the one a `Create*` call makes: then a problem
/// inside it is said by the input member alone (`config.vpcIdentifier: …`).
fn addressed(object: &str, op: &str, input: &Map<String, Value>) -> bool {
    let Some(name) = input.get("name").and_then(Value::as_str) else {
        return false;
    };
    op.starts_with("Create")
        && object
            .split(" of ")
            .next()
            .is_some_and(|o| o.ends_with(&format!("\"{name}\"")))
}

/// The object a store path falls in, as the API names it, and the rest of the path as the
/// call's input member (None when the problem is about the object as a whole).
fn describe(
    path: &str,
    document: &Value,
    op: &str,
    input: &Map<String, Value>,
) -> (Option<String>, Option<String>) {
    let Some(rest) = path.strip_prefix("document") else {
        return (None, Some(path.to_string()).filter(|p| !p.is_empty()));
    };
    let steps = steps(rest.trim_start_matches('.'));
    let mut node = document;
    let mut names: Vec<(&str, String)> = Vec::new();
    let mut used = 0;
    let mut last_object = 0;
    let mut target: Option<&Value> = None;
    while used < steps.len() {
        let (key, index) = &steps[used];
        let Some(child) = node.get(key.as_str()) else {
            break;
        };
        let Some(i) = index else {
            if names.is_empty() {
                break;
            }
            node = child;
            used += 1;
            continue;
        };
        let Some(item) = child.get(*i) else {
            break;
        };
        let what = match key.as_str() {
            "serviceNetworks" => Some("service network"),
            "services" => Some("service"),
            "targetGroups" => Some("target group"),
            "listeners" => Some("listener"),
            "rules" => Some("rule"),
            "serviceAssociations" | "vpcAssociations" | "targetChanges" => Some(""),
            "targets" | "registered" | "deregistered" => {
                target = Some(item);
                None
            }
            _ => None,
        };
        if let Some(what) = what {
            names.push((what, object_name(key, item)));
            last_object = used + 1;
        }
        node = item;
        used += 1;
    }
    if names.is_empty() {
        // Not a path into an object of the document: nothing to say it by.
        return (None, None);
    }
    let object = names
        .iter()
        .rev()
        .map(|(what, name)| {
            if what.is_empty() {
                name.clone()
            } else {
                format!("{what} \"{name}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" of ");
    let object = Some(object);
    let mut member: Vec<String> = steps[last_object.min(steps.len())..]
        .iter()
        .map(|(k, i)| match i {
            Some(i) => format!("{k}[{i}]"),
            None => k.clone(),
        })
        .collect();
    if let Some(first) = member.first_mut() {
        let key = first.split('[').next().unwrap_or_default().to_string();
        let renamed = match key.as_str() {
            "authPolicy" => Some("policy".to_string()),
            "accessLogs" => Some("destinationArn".to_string()),
            "service" => Some("serviceIdentifier".to_string()),
            "serviceNetwork" => Some("serviceNetworkIdentifier".to_string()),
            "vpc" => Some("vpcIdentifier".to_string()),
            "targetGroup" => Some("targetGroupIdentifier".to_string()),
            // A target the call gave: its place in the call's `targets`.
            "targets" | "registered" | "deregistered" => Some(
                target
                    .and_then(|t| input_target(t, input))
                    .map_or_else(|| "targets".to_string(), |j| format!("targets[{j}]")),
            ),
            _ => None,
        };
        if let Some(r) = renamed {
            *first = r;
        }
    }
    // UpdateTargetGroup takes the health check alone; the store keeps it under `config`.
    if op == "UpdateTargetGroup" && member.first().map(String::as_str) == Some("config") {
        member.remove(0);
    }
    let member = (!member.is_empty()).then(|| member.join("."));
    (object, member)
}

/// The index in the call's `targets` of the target `t` of the store.
fn input_target(t: &Value, input: &Map<String, Value>) -> Option<usize> {
    let id = t.get("id")?;
    input
        .get("targets")?
        .as_array()?
        .iter()
        .position(|x| x.get("id") == Some(id))
}

/// How the API names the store's object `item` of list `key`.
fn object_name(key: &str, item: &Value) -> String {
    let s = |k: &str| {
        item.get(k)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    match key {
        "serviceAssociations" => format!(
            "the association of service \"{}\" with service network \"{}\"",
            s("service"),
            s("serviceNetwork")
        ),
        "vpcAssociations" => format!(
            "the association of VPC \"{}\" with service network \"{}\"",
            s("vpc"),
            s("serviceNetwork")
        ),
        "targetChanges" => format!("the targets of target group \"{}\"", s("targetGroup")),
        _ => s("name"),
    }
}

/// `a.b[2].c` → `[("a", None), ("b", Some(2)), ("c", None)]`.
fn steps(path: &str) -> Vec<(String, Option<usize>)> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        let key = pieces.next().unwrap_or_default().to_string();
        let indices: Vec<usize> = pieces
            .filter_map(|p| p.trim_end_matches(']').parse().ok())
            .collect();
        if indices.is_empty() {
            out.push((key, None));
        } else {
            for (n, i) in indices.into_iter().enumerate() {
                out.push((if n == 0 { key.clone() } else { String::new() }, Some(i)));
            }
        }
    }
    out
}

/// `text` with every store path in it (`STORE: document.services[0]`, or a bare
/// `document.services[0].name`) replaced by what the API calls that place.
fn scrub(
    text: &str,
    document: &Value,
    store_name: &str,
    op: &str,
    input: &Map<String, Value>,
) -> String {
    let text = text.replace(&format!("{store_name}: document"), "document");
    let mut out = String::new();
    let mut rest = text.as_str();
    // Bounded: each turn consumes at least "document".
    while let Some(at) = rest.find("document") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let end = from
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || "._[]".contains(*c)))
            .map_or(from.len(), |(i, _)| i);
        let path = from[..end].trim_end_matches('.');
        let after = &from[path.len()..];
        if !path.starts_with("document.") {
            out.push_str(path);
        } else {
            let (object, member) = describe(path, document, op, input);
            let said = match (object, member) {
                (Some(o), Some(m)) => format!("{o}, {m}"),
                (Some(o), None) => o,
                (None, Some(m)) => m,
                (None, None) => "the change".to_string(),
            };
            out.push_str(&said);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "services": [{"name": "parking", "listeners": [{"name": "http", "rules": [{"name": "r1"}]}]}],
            "targetGroups": [{"name": "a"}, {"name": "x-tg", "targets": [{"id": "10.0.0.1"}, {"id": "bad"}]}],
            "vpcAssociations": [{"serviceNetwork": "net", "vpc": "client"}],
        })
    }

    #[test]
    fn a_store_path_is_said_as_the_object_and_the_input_member() {
        let d = doc();
        let none = Map::new();
        assert_eq!(
            describe(
                "document.targetGroups[1].config.vpcIdentifier",
                &d,
                "CreateTargetGroup",
                &none
            ),
            (
                Some("target group \"x-tg\"".into()),
                Some("config.vpcIdentifier".into())
            )
        );
        assert_eq!(
            describe(
                "document.services[0].listeners[0].rules[0].action.forward",
                &d,
                "UpdateRule",
                &none
            ),
            (
                Some("rule \"r1\" of listener \"http\" of service \"parking\"".into()),
                Some("action.forward".into())
            )
        );
        assert_eq!(
            describe("document.services[0]", &d, "CreateService", &none),
            (Some("service \"parking\"".into()), None)
        );
        let input = json!({"targets": [{"id": "bad"}]});
        assert_eq!(
            describe(
                "document.targetGroups[1].targets[1].id",
                &d,
                "RegisterTargets",
                input.as_object().unwrap()
            ),
            (
                Some("target group \"x-tg\"".into()),
                Some("targets[0].id".into())
            )
        );
        assert_eq!(
            describe(
                "document.vpcAssociations[0].vpc",
                &d,
                "CreateServiceNetworkVpcAssociation",
                &none
            )
            .1,
            Some("vpcIdentifier".into())
        );
        assert_eq!(
            describe(
                "document.targetGroups[1].config.healthCheck.path",
                &d,
                "UpdateTargetGroup",
                &none
            )
            .1,
            Some("healthCheck.path".into())
        );
        // Hostile or stale paths give no panic and no internal path.
        for p in [
            "document",
            "document.",
            "document.nope[99].x",
            "document.targetGroups[7]",
            "document.targetGroups[x]",
            "document..[[]]",
        ] {
            assert_eq!(describe(p, &d, "CreateService", &none), (None, None), "{p}");
        }
    }

    #[test]
    fn a_hint_naming_the_store_names_the_object_instead() {
        let d = doc();
        let s = scrub(
            "the first one is at state/api/store.json: document.targetGroups[0]",
            &d,
            "state/api/store.json",
            "CreateTargetGroup",
            &Map::new(),
        );
        assert_eq!(s, "the first one is at target group \"a\"");
    }
}
