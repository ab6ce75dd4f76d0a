//! The API store's document layered on the config file (see [`crate::Layer`]).
//!
//! The store's objects are written in the file's own schema, so they are decoded by the same
//! code as the file's: their lists are appended to the file's (`merge`), and every check —
//! names unique across both, references, ports, quotas — sees one config. What the store adds
//! to objects it does not own (a service or VPC associated with a network, targets registered
//! with a target group) is kept apart and applied to the decoded objects here.

use super::Ctx;
use super::checks::{named, resolve};
use crate::decode::{Fields, Problems, fields, int, item, list, string};
use crate::model::*;
use crate::yaml::{Node, Value};

/// The lists the store may hold objects in: the file's schema for these.
const OBJECT_KEYS: &[&str] = &["serviceNetworks", "services", "targetGroups"];

/// The keys of the store's document.
pub(super) const STORE_KEYS: &[&str] = &[
    "serviceNetworks",
    "services",
    "targetGroups",
    "serviceAssociations",
    "vpcAssociations",
    "targetChanges",
];

/// The file's root with the store's objects appended to its lists (a file without such a
/// list gets the store's). The store's nodes keep [`crate::Pos::STORE`], which is how their
/// problems are told from the file's.
pub(super) fn merge(problems: &mut Problems, file: &Node, store: &Fields<'_>) -> Node {
    let mut root = file.clone();
    let Value::Map(entries) = &mut root.value else {
        // Reported when the file's root is read.
        return root;
    };
    for &key in OBJECT_KEYS {
        let Some(items) = store.get(key) else {
            continue;
        };
        let Value::Seq(items) = &items.value else {
            problems.add(
                &store.loc(key),
                format!("expected a list, found {}", items.kind()),
                None,
            );
            continue;
        };
        match entries.iter_mut().find(|(k, _)| k.key_text() == key) {
            Some((_, value)) => match &mut value.value {
                Value::Seq(list) => list.extend(items.iter().cloned()),
                Value::Scalar {
                    text,
                    quoted: false,
                } if crate::yaml::is_null(text) => {
                    value.value = Value::Seq(items.clone());
                }
                // Not a list in the file: reported there; the store's objects wait for it.
                _ => {}
            },
            None => entries.push((
                Node {
                    pos: crate::yaml::Pos::STORE,
                    value: Value::Scalar {
                        text: key.to_string(),
                        quoted: true,
                    },
                },
                Node {
                    pos: crate::yaml::Pos::STORE,
                    value: Value::Seq(items.clone()),
                },
            )),
        }
    }
    root
}

impl Ctx<'_> {
    /// `targetChanges`: targets the API registered with, or deregistered from, a target group
    /// (of the file or of the store), applied on top of the group's `targets`.
    pub(super) fn target_changes(
        &mut self,
        store: &Fields<'_>,
        tgs: &mut [TargetGroup],
        functions: &[Function],
    ) {
        let loc = store.loc("targetChanges");
        let functions = named(functions, |x| (&x.name, &x.name, &x.arn));
        for (i, node) in list(self.problems, store.get("targetChanges"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(
                self.problems,
                node,
                &at,
                &["targetGroup", "registered", "deregistered"],
            ) else {
                continue;
            };
            let Some(index) = f
                .require(self.problems, "targetGroup", "the target group's name")
                .and_then(|n| string(self.problems, n, &f.loc("targetGroup")))
                .and_then(|name| {
                    let all = named(tgs, |x| (&x.name, &x.id, &x.arn));
                    resolve(
                        self.problems,
                        &name,
                        &f.loc("targetGroup"),
                        "target group",
                        &all,
                    )
                })
            else {
                continue;
            };
            let Some(tg) = tgs.get_mut(index) else {
                continue;
            };
            let dloc = f.loc("deregistered");
            for (j, n) in list(self.problems, f.get("deregistered"), &dloc)
                .iter()
                .enumerate()
            {
                let tloc = item(&dloc, j, n);
                let Some(t) = fields(self.problems, n, &tloc, &["id", "port"]) else {
                    continue;
                };
                let Some(id) = t
                    .require(self.problems, "id", "the target's id")
                    .and_then(|n| string(self.problems, n, &t.loc("id")))
                else {
                    continue;
                };
                let port = match t.get("port") {
                    Some(p) => match int(self.problems, p, &t.loc("port"), 1, 65535, "a port") {
                        Some(p) => p as u16,
                        None => continue,
                    },
                    None => tg.port,
                };
                tg.targets.retain(|x| !(x.id == id && x.port == port));
            }
            let rloc = f.loc("registered");
            for (j, n) in list(self.problems, f.get("registered"), &rloc)
                .iter()
                .enumerate()
            {
                if let Some(target) = self.target(n, &item(&rloc, j, n), tg, &functions)
                    && !tg.targets.contains(&target)
                {
                    tg.targets.push(target);
                }
            }
            if tg.targets.len() > 1000 {
                self.problems.add(
                    &at,
                    format!(
                        "target group \"{}\" would hold {} targets, more than the 1000 a target group may hold",
                        tg.name,
                        tg.targets.len()
                    ),
                    None,
                );
            }
            if tg.kind == TargetGroupType::Lambda && tg.targets.len() > 1 {
                self.problems.add(
                    &at,
                    format!(
                        "LAMBDA target group \"{}\" would hold {} functions; it holds exactly one",
                        tg.name,
                        tg.targets.len()
                    ),
                    Some("deregister its function first".into()),
                );
            }
        }
    }

    /// `serviceAssociations` and `vpcAssociations`: services and VPCs the API associated with
    /// a service network (of the file or of the store), added to the network's own lists.
    pub(super) fn associations(
        &mut self,
        store: &Fields<'_>,
        networks: &mut [ServiceNetwork],
        services: &[Service],
        vpcs: &[Vpc],
    ) {
        let services = named(services, |x| (&x.name, &x.id, &x.arn));
        let vpcs = named(vpcs, |x| (&x.name, &x.id, &x.arn));
        for (key, what, others) in [
            ("serviceAssociations", "service", &services),
            ("vpcAssociations", "vpc", &vpcs),
        ] {
            let loc = store.loc(key);
            for (i, node) in list(self.problems, store.get(key), &loc).iter().enumerate() {
                let at = item(&loc, i, node);
                let Some(f) = fields(self.problems, node, &at, &["serviceNetwork", what]) else {
                    continue;
                };
                let all = named(networks, |x| (&x.name, &x.id, &x.arn));
                let network = self.reference(&f, "serviceNetwork", "service network", &all);
                let other = self.reference(
                    &f,
                    what,
                    if what == "vpc" { "VPC" } else { "service" },
                    others,
                );
                let (Some(network), Some(other)) = (network, other) else {
                    continue;
                };
                let taken = if what == "vpc" {
                    networks.iter().position(|n| n.vpcs.contains(&other))
                } else {
                    networks
                        .get(network)
                        .filter(|n| n.services.contains(&other))
                        .map(|_| network)
                };
                if let Some(first) = taken {
                    let message = if what == "vpc" {
                        format!(
                            "VPC \"{}\" is already associated with service network \"{}\"",
                            others[other].name, networks[first].name
                        )
                    } else {
                        format!(
                            "service \"{}\" is already associated with service network \"{}\"",
                            others[other].name, networks[first].name
                        )
                    };
                    self.problems.add(
                        &at,
                        message,
                        (what == "vpc").then(|| {
                            "a VPC can be associated with only one service network".into()
                        }),
                    );
                    continue;
                }
                if let Some(n) = networks.get_mut(network) {
                    if what == "vpc" {
                        n.vpcs.push(other);
                    } else {
                        n.services.push(other);
                    }
                }
            }
        }
    }

    /// The index of the object that `f`'s required `key` names.
    fn reference(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        what: &str,
        all: &[super::checks::Named<'_>],
    ) -> Option<usize> {
        let text = f
            .require(self.problems, key, &format!("the {what}'s name"))
            .and_then(|n| string(self.problems, n, &f.loc(key)))?;
        resolve(self.problems, &text, &f.loc(key), what, all)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Config, ConfigError, Layer, parse_bytes, parse_layered};

    const FILE: &str = "\
region: us-west-2
vpcs:
  - name: client
    cidrs: [127.0.0.0/8]
serviceNetworks:
  - name: net
    vpcs: [client]
services:
  - name: billing
    listeners:
      - name: http
        protocol: HTTP
        port: 8080
        defaultAction: {fixedResponse: {statusCode: 404}}
targetGroups:
  - name: billing-tg
    type: IP
    config: {port: 9000}
    targets: [{id: 127.0.0.1}, {id: 127.0.0.2}]
";

    fn layered(file: &str, document: serde_json::Value) -> Result<Config, ConfigError> {
        parse_layered(
            file.as_bytes(),
            "trellis.yaml",
            &Layer {
                document: &document,
                name: "state/api/store.json",
                path: "document",
            },
        )
    }

    fn api_service(name: &str) -> serde_json::Value {
        json!({"name": name, "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080,
               "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "api-tg", "weight": 100}]}}}]})
    }

    #[test]
    fn store_objects_join_the_file_and_keep_the_ids_a_file_would_give_them() {
        let doc = json!({
            "services": [api_service("parking")],
            "targetGroups": [{"name": "api-tg", "type": "IP", "targets": [{"id": "127.0.0.9", "port": 7000}]}],
            "serviceAssociations": [{"serviceNetwork": "net", "service": "parking"}],
        });
        let config = layered(FILE, doc).unwrap();
        assert_eq!(config.services.len(), 2);
        let written = format!(
            "{FILE}  - name: api-tg\n    type: IP\n    targets: [{{id: 127.0.0.9, port: 7000}}]\n"
        )
        .replace(
            "targetGroups:",
            "  - name: parking\n    listeners:\n      - name: http\n        protocol: HTTP\n        port: 8080\n        defaultAction: {forward: {targetGroups: [{targetGroupIdentifier: api-tg}]}}\ntargetGroups:",
        );
        let file_only = parse_bytes(written.as_bytes(), "x.yaml").unwrap();
        assert_eq!(config.services[1].id, file_only.services[1].id);
        assert_eq!(config.services[1].dns_name, file_only.services[1].dns_name);
        assert_eq!(
            config.services[1].listeners[0].arn,
            file_only.services[1].listeners[0].arn
        );
        assert_eq!(config.target_groups[1].id, file_only.target_groups[1].id);
        // The association put the API's service in the file's network.
        assert_eq!(config.service_networks[0].services, vec![1]);
        assert_eq!(config.service_networks[0].vpcs, vec![0]);
    }

    #[test]
    fn a_name_in_both_is_reported_at_the_store_naming_the_file_line() {
        let doc = json!({"services": [api_service("billing")],
                         "targetGroups": [{"name": "api-tg", "type": "IP"}]});
        let e = layered(FILE, doc).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "state/api/store.json: document.services[0]: duplicate service name \"billing\""
            ),
            "{text}"
        );
        assert!(
            text.contains("the first one is at trellis.yaml line 9, services[0]"),
            "{text}"
        );
    }

    #[test]
    fn store_problems_name_the_store_and_the_path_file_problems_their_line() {
        let mut svc = api_service("parking");
        svc["listeners"][0]["port"] = json!(70000);
        let doc = json!({"services": [svc], "targetGroups": [{"name": "api-tg", "type": "IP"}]});
        let bad_file = FILE.replace("port: 9000", "port: 0");
        let e = layered(&bad_file, doc).unwrap_err();
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("trellis.yaml:18:"), "{text}");
        assert!(
            lines.iter().any(|l| l.starts_with(
                "state/api/store.json: document.services[0].listeners[0].port: 70000 is out of range"
            )),
            "{text}"
        );
        assert!(text.ends_with("2 problems found"), "{text}");
    }

    #[test]
    fn associations_resolve_names_and_refuse_a_second_network_for_a_vpc() {
        let doc = json!({
            "serviceNetworks": [{"name": "other"}],
            "serviceAssociations": [{"serviceNetwork": "nett", "service": "billing"},
                                    {"serviceNetwork": "net", "service": "billing"},
                                    {"serviceNetwork": "net", "service": "billing"}],
            "vpcAssociations": [{"serviceNetwork": "other", "vpc": "client"}],
        });
        let text = layered(FILE, doc).unwrap_err().to_string();
        assert!(
            text.contains(
                "document.serviceAssociations[0].serviceNetwork: unknown service network \"nett\""
            ),
            "{text}"
        );
        assert!(
            text.contains("document.serviceAssociations[2]: service \"billing\" is already associated with service network \"net\""),
            "{text}"
        );
        assert!(
            text.contains("document.vpcAssociations[0]: VPC \"client\" is already associated with service network \"net\""),
            "{text}"
        );
        assert!(text.ends_with("3 problems found"), "{text}");
    }

    #[test]
    fn target_changes_apply_on_top_of_the_file_targets_and_are_checked() {
        let doc = json!({"targetChanges": [{"targetGroup": "billing-tg",
            "registered": [{"id": "127.0.0.3", "port": 9001}, {"id": "127.0.0.1"}],
            "deregistered": [{"id": "127.0.0.2"}]}]});
        let config = layered(FILE, doc).unwrap();
        let targets: Vec<(String, u16)> = config.target_groups[0]
            .targets
            .iter()
            .map(|t| (t.id.clone(), t.port))
            .collect();
        assert_eq!(
            targets,
            vec![("127.0.0.1".into(), 9000), ("127.0.0.3".into(), 9001)]
        );
        let doc = json!({"targetChanges": [{"targetGroup": "billing-tg",
            "registered": [{"id": "not-an-ip"}]}]});
        let text = layered(FILE, doc).unwrap_err().to_string();
        assert!(
            text.contains(
                "document.targetChanges[0].registered[0].id: \"not-an-ip\" is not an IP address"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_empty_file_or_one_with_only_vpcs_takes_a_whole_store() {
        let doc = json!({
            "serviceNetworks": [{"name": "net"}],
            "services": [api_service("parking")],
            "targetGroups": [{"name": "api-tg", "type": "IP"}],
            "serviceAssociations": [{"serviceNetwork": "net", "service": "parking"}],
        });
        let config = layered("", doc.clone()).unwrap();
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.services[0].name, "parking");
        let vpcs_only = "vpcs:\n  - name: client\n    cidrs: [127.0.0.0/8]\n";
        let mut doc = doc;
        doc["vpcAssociations"] = json!([{"serviceNetwork": "net", "vpc": "client"}]);
        let config = layered(vpcs_only, doc).unwrap();
        assert_eq!(config.service_networks[0].vpcs, vec![0]);
        assert_eq!(config.service_networks[0].services, vec![0]);
    }

    #[test]
    fn a_hostile_store_is_a_problem_not_a_panic() {
        for doc in [
            json!([]),
            json!({"services": 5}),
            json!({"services": [null, 7, "x", {"name": 1}]}),
            json!({"vpcs": []}),
            json!({"targetChanges": [{"targetGroup": "billing-tg", "registered": [{"id": 5, "port": "x"}]}]}),
            json!({"services": [{"name": "parking", "authPolicy": "{not json", "listeners": []}]}),
        ] {
            let e = layered(FILE, doc.clone()).expect_err(&doc.to_string());
            assert!(e.problems().iter().all(|p| p.pos.in_store()), "{doc}: {e}");
        }
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        let e = layered(FILE, json!({"services": deep})).unwrap_err();
        assert!(e.to_string().contains("nests deeper"), "{e}");
    }
}
