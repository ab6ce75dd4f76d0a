//! The operations, called through [`Operations::call`] with a data plane that records every
//! config it is given.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use trellis_config::Config;

use crate::{ApiError, Call, DataPlane, Operations, Plane};

#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<Arc<Config>>>,
    refuse: Mutex<bool>,
}

impl DataPlane for Recorder {
    fn apply(
        &self,
        config: Arc<Config>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if *self.refuse.lock().unwrap() {
                return Err("port 8080 is in use".into());
            }
            self.applied.lock().unwrap().push(config);
            Ok(())
        })
    }

    fn target_status(
        &self,
        _tg: &str,
        target: &str,
        _port: u16,
    ) -> Option<(String, Option<String>)> {
        (target == "127.0.0.1").then(|| ("HEALTHY".to_string(), None))
    }
}

const FILE: &str = "\
region: us-west-2
vpcs:
  - name: client
    cidrs: [127.0.0.0/8]
targetGroups:
  - name: file-tg
    type: IP
    config: {port: 9000}
    targets: [{id: 127.0.0.1}]
services:
  - name: file-svc
    tags: {team: file}
    listeners:
      - name: http
        protocol: HTTP
        port: 8080
        defaultAction: {forward: {targetGroups: [{targetGroupIdentifier: file-tg}]}}
";

struct Fixture {
    plane: Arc<Plane>,
    data: Arc<Recorder>,
    dir: PathBuf,
}

fn fixture(name: &str, file: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("trellis-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    reopen(dir, file)
}

fn reopen(dir: PathBuf, file: &str) -> Fixture {
    let data = Arc::new(Recorder::default());
    let (plane, _) = Plane::open(file.as_bytes().to_vec(), "trellis.yaml", &dir, data.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture { plane, data, dir }
}

impl Fixture {
    async fn call(&self, op: &str, input: Value) -> Result<Map<String, Value>, ApiError> {
        let Value::Object(input) = input else {
            panic!("input must be an object")
        };
        self.plane
            .call(Call {
                operation: op.into(),
                input,
            })
            .await
    }

    async fn ok(&self, op: &str, input: Value) -> Map<String, Value> {
        self.call(op, input.clone())
            .await
            .unwrap_or_else(|e| panic!("{op} {input}: {} {e}", e.code()))
    }

    async fn err(&self, op: &str, input: Value) -> ApiError {
        match self.call(op, input.clone()).await {
            Ok(out) => panic!("{op} {input} succeeded: {out:?}"),
            Err(e) => e,
        }
    }

    fn last(&self) -> Arc<Config> {
        self.data
            .applied
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a config was applied")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds the launch walkthrough's shape by API on a file with only `vpcs`.
async fn walkthrough(f: &Fixture) -> (String, String, String) {
    let sn = f
        .ok("CreateServiceNetwork", json!({"name": "walk-net"}))
        .await;
    let svc = f
        .ok(
            "CreateService",
            json!({"name": "parking", "tags": {"team": "a"}}),
        )
        .await;
    // Served with its tags at once (aws:ResourceTag/<key> reads them from the config).
    assert_eq!(f.last().services[0].tags, vec![("team".into(), "a".into())]);
    let tg = f
        .ok(
            "CreateTargetGroup",
            json!({"name": "rates-tg", "type": "IP", "config": {"port": 8081, "protocol": "HTTP"}}),
        )
        .await;
    let tg_id = tg["id"].as_str().unwrap().to_string();
    f.ok("RegisterTargets", json!({"targetGroupIdentifier": tg_id, "targets": [{"id": "127.0.0.1"}, {"id": "127.0.0.2", "port": 8082}]})).await;
    let svc_id = svc["id"].as_str().unwrap().to_string();
    f.ok("CreateListener", json!({"serviceIdentifier": svc_id, "name": "http", "protocol": "HTTP", "port": 8080,
        "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": tg_id, "weight": 100}]}}})).await;
    f.ok(
        "CreateServiceNetworkServiceAssociation",
        json!({"serviceNetworkIdentifier": sn["id"], "serviceIdentifier": svc_id}),
    )
    .await;
    f.ok(
        "CreateServiceNetworkVpcAssociation",
        json!({"serviceNetworkIdentifier": sn["arn"], "vpcIdentifier": "client"}),
    )
    .await;
    (sn["id"].as_str().unwrap().to_string(), svc_id, tg_id)
}

const VPCS_ONLY: &str = "region: us-west-2\nvpcs:\n  - name: client\n    cidrs: [127.0.0.0/8]\n";

#[tokio::test]
async fn the_walkthrough_built_by_api_is_applied_and_read_back() {
    let f = fixture("walk", VPCS_ONLY);
    let (sn_id, svc_id, tg_id) = walkthrough(&f).await;
    let config = f.last();
    assert_eq!(config.services[0].name, "parking");
    assert_eq!(config.services[0].listeners[0].port, 8080);
    assert_eq!(config.target_groups[0].targets.len(), 2);
    assert_eq!(config.service_networks[0].services, vec![0]);
    assert_eq!(config.service_networks[0].vpcs, vec![0]);

    let svc = f
        .ok("GetService", json!({"serviceIdentifier": svc_id}))
        .await;
    assert!(svc_id.starts_with("svc-") && svc_id.len() == 21, "{svc_id}");
    assert_eq!(
        svc["arn"],
        json!(format!(
            "arn:aws:vpc-lattice:us-west-2:123456789012:service/{svc_id}"
        ))
    );
    assert_eq!(svc["status"], "ACTIVE");
    assert!(
        svc["dnsEntry"]["domainName"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "parking-{}.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
                &svc_id[4..]
            ))
    );
    assert!(svc["createdAt"].as_str().unwrap().ends_with('Z'));
    let sn = f
        .ok(
            "GetServiceNetwork",
            json!({"serviceNetworkIdentifier": "walk-net"}),
        )
        .await;
    assert_eq!(
        (
            sn["id"].as_str().unwrap(),
            sn["numberOfAssociatedServices"].as_u64(),
            sn["numberOfAssociatedVPCs"].as_u64()
        ),
        (sn_id.as_str(), Some(1), Some(1))
    );
    let tags = f
        .ok("ListTagsForResource", json!({"resourceArn": svc["arn"]}))
        .await;
    assert_eq!(tags["tags"], json!({"team": "a"}));
    let targets = f
        .ok("ListTargets", json!({"targetGroupIdentifier": tg_id}))
        .await;
    assert_eq!(
        targets["items"],
        json!([
            {"id": "127.0.0.1", "port": 8081, "status": "HEALTHY"},
            {"id": "127.0.0.2", "port": 8082, "status": "INITIAL", "reasonCode": "Elb.RegistrationInProgress"},
        ])
    );
    let listeners = f
        .ok("ListListeners", json!({"serviceIdentifier": svc_id}))
        .await;
    assert_eq!(listeners["items"][0]["port"], 8080);
    let assocs = f
        .ok(
            "ListServiceNetworkServiceAssociations",
            json!({"serviceNetworkIdentifier": sn_id}),
        )
        .await;
    assert_eq!(assocs["items"][0]["serviceName"], "parking");
    let tg = f
        .ok("GetTargetGroup", json!({"targetGroupIdentifier": tg_id}))
        .await;
    assert_eq!(tg["serviceArns"], json!([svc["arn"]]));
    assert_eq!(tg["config"]["healthCheck"]["enabled"], true);
}

#[tokio::test]
async fn weights_rules_and_batch_updates_reach_the_config() {
    let f = fixture("rules", VPCS_ONLY);
    let (_, svc_id, tg_id) = walkthrough(&f).await;
    f.ok(
        "CreateTargetGroup",
        json!({"name": "rates-v2", "type": "IP", "config": {"port": 8083}}),
    )
    .await;
    let rule = f.ok("CreateRule", json!({"serviceIdentifier": svc_id, "listenerIdentifier": "http", "name": "split", "priority": 10,
        "match": {"httpMatch": {"pathMatch": {"match": {"prefix": "/rates"}}}},
        "action": {"forward": {"targetGroups": [{"targetGroupIdentifier": tg_id, "weight": 90}, {"targetGroupIdentifier": "rates-v2", "weight": 10}]}}})).await;
    assert_eq!(rule["priority"], 10);
    let rule_id = rule["id"].as_str().unwrap().to_string();
    let out = f.ok("BatchUpdateRule", json!({"serviceIdentifier": svc_id, "listenerIdentifier": "http", "rules": [
        {"ruleIdentifier": rule_id, "action": {"forward": {"targetGroups": [{"targetGroupIdentifier": tg_id, "weight": 50}, {"targetGroupIdentifier": "rates-v2", "weight": 50}]}}},
        {"ruleIdentifier": "rule-00000000000000000"}]})).await;
    assert_eq!(out["successful"].as_array().unwrap().len(), 1);
    assert_eq!(
        out["unsuccessful"][0]["failureCode"],
        "ResourceNotFoundException"
    );
    let config = f.last();
    let trellis_config::Action::Forward(w) = &config.services[0].listeners[0].rules[0].action
    else {
        panic!()
    };
    assert_eq!(w.iter().map(|w| w.weight).collect::<Vec<_>>(), vec![50, 50]);
    let rules = f
        .ok(
            "ListRules",
            json!({"serviceIdentifier": svc_id, "listenerIdentifier": "http"}),
        )
        .await;
    assert_eq!(rules["items"].as_array().unwrap().len(), 2);
    assert_eq!(rules["items"][1]["isDefault"], true);
    // A rule the config crate refuses is a ValidationException naming the problem.
    let e = f.err("CreateRule", json!({"serviceIdentifier": svc_id, "listenerIdentifier": "http", "name": "bad", "priority": 11,
        "match": {"httpMatch": {"pathMatch": {"match": {"prefix": "rates"}}}}, "action": {"fixedResponse": {"statusCode": 404}}})).await;
    assert_eq!(e.code(), "ValidationException");
    assert!(e.to_string().contains("does not start with '/'"), "{e}");
    let e = f.err("CreateRule", json!({"serviceIdentifier": svc_id, "listenerIdentifier": "http", "name": "dup", "priority": 10,
        "match": {"httpMatch": {"method": "GET"}}, "action": {"fixedResponse": {"statusCode": 404}}})).await;
    assert_eq!(e.code(), "ConflictException");
}

#[tokio::test]
async fn deletes_of_things_in_use_are_conflicts() {
    let f = fixture("conflicts", VPCS_ONLY);
    let (sn_id, svc_id, tg_id) = walkthrough(&f).await;
    for (op, input) in [
        (
            "DeleteServiceNetwork",
            json!({"serviceNetworkIdentifier": sn_id}),
        ),
        ("DeleteService", json!({"serviceIdentifier": svc_id})),
        ("DeleteTargetGroup", json!({"targetGroupIdentifier": tg_id})),
    ] {
        let e = f.err(op, input).await;
        assert_eq!(
            (e.code(), e.status()),
            ("ConflictException", 409),
            "{op}: {e}"
        );
    }
    f.ok(
        "UpdateService",
        json!({"serviceIdentifier": svc_id, "authType": "AWS_IAM"}),
    )
    .await;
    let put = f.ok("PutAuthPolicy", json!({"resourceIdentifier": svc_id,
        "policy": "{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"vpc-lattice-svcs:Invoke\", \"Resource\": \"*\"}}"})).await;
    assert_eq!(put["state"], "Active");
    assert!(
        put["policy"]
            .as_str()
            .unwrap()
            .contains("\"Version\":\"2008-10-17\""),
        "{put:?}"
    );
    assert!(
        put["policy"].as_str().unwrap().contains("\"Statement\":["),
        "{put:?}"
    );
    let e = f
        .err("DeleteAuthPolicy", json!({"resourceIdentifier": svc_id}))
        .await;
    assert_eq!(e.code(), "ConflictException");
    f.ok(
        "UpdateService",
        json!({"serviceIdentifier": svc_id, "authType": "NONE"}),
    )
    .await;
    let got = f
        .ok("GetAuthPolicy", json!({"resourceIdentifier": svc_id}))
        .await;
    assert_eq!(got["state"], "Inactive");
    f.ok("DeleteAuthPolicy", json!({"resourceIdentifier": svc_id}))
        .await;
    // Taken apart in order, everything goes.
    let assocs = f
        .ok(
            "ListServiceNetworkServiceAssociations",
            json!({"serviceIdentifier": svc_id}),
        )
        .await;
    let gone = f
        .ok(
            "DeleteServiceNetworkServiceAssociation",
            json!({"serviceNetworkServiceAssociationIdentifier": assocs["items"][0]["id"]}),
        )
        .await;
    assert_eq!(
        (&gone["id"], &gone["arn"], &gone["status"]),
        (
            &assocs["items"][0]["id"],
            &assocs["items"][0]["arn"],
            &json!("DELETE_IN_PROGRESS")
        ),
        "{gone:?}"
    );
    let vas = f
        .ok(
            "ListServiceNetworkVpcAssociations",
            json!({"serviceNetworkIdentifier": sn_id}),
        )
        .await;
    let gone = f
        .ok(
            "DeleteServiceNetworkVpcAssociation",
            json!({"serviceNetworkVpcAssociationIdentifier": vas["items"][0]["arn"]}),
        )
        .await;
    assert_eq!(
        (&gone["id"], &gone["arn"], &gone["status"]),
        (
            &vas["items"][0]["id"],
            &vas["items"][0]["arn"],
            &json!("DELETE_IN_PROGRESS")
        ),
        "{gone:?}"
    );
    f.ok("DeleteService", json!({"serviceIdentifier": svc_id}))
        .await;
    f.ok("DeleteTargetGroup", json!({"targetGroupIdentifier": tg_id}))
        .await;
    f.ok(
        "DeleteServiceNetwork",
        json!({"serviceNetworkIdentifier": sn_id}),
    )
    .await;
    let e = f
        .err("GetService", json!({"serviceIdentifier": svc_id}))
        .await;
    assert_eq!((e.code(), e.status()), ("ResourceNotFoundException", 404));
    let config = f.last();
    assert!(config.services.is_empty() && config.target_groups.is_empty());
}

#[tokio::test]
async fn client_tokens_make_creates_idempotent() {
    let f = fixture("tokens", VPCS_ONLY);
    let first = f
        .ok(
            "CreateService",
            json!({"name": "parking", "clientToken": "t-1"}),
        )
        .await;
    let again = f
        .ok(
            "CreateService",
            json!({"name": "parking", "clientToken": "t-1"}),
        )
        .await;
    assert_eq!(first, again);
    let e = f
        .err(
            "CreateService",
            json!({"name": "other", "clientToken": "t-1"}),
        )
        .await;
    assert_eq!(e.code(), "ConflictException");
    let e = f.err("CreateService", json!({"name": "parking"})).await;
    assert_eq!(e.code(), "ConflictException");
    // The token survives a restart.
    let dir = f.dir.clone();
    std::mem::forget(f);
    let f = reopen(dir, VPCS_ONLY);
    assert_eq!(
        f.ok(
            "CreateService",
            json!({"name": "parking", "clientToken": "t-1"})
        )
        .await,
        first
    );
}

#[tokio::test]
async fn quotas_and_paging() {
    let f = fixture("quotas", VPCS_ONLY);
    let (_, svc_id, tg_id) = walkthrough(&f).await;
    f.ok("CreateListener", json!({"serviceIdentifier": svc_id, "name": "second", "protocol": "HTTP", "port": 8081, "defaultAction": {"fixedResponse": {"statusCode": 404}}})).await;
    let e = f.err("CreateListener", json!({"serviceIdentifier": svc_id, "name": "third", "protocol": "HTTP", "port": 8082, "defaultAction": {"fixedResponse": {"statusCode": 404}}})).await;
    assert_eq!(
        (e.code(), e.status()),
        ("ServiceQuotaExceededException", 402)
    );
    assert_eq!(e.body()["quotaCode"], "listeners-per-service");
    let many: Vec<Value> = (0..101)
        .map(|n| json!({"id": format!("10.0.0.{}", n % 250), "port": 1000 + n}))
        .collect();
    let e = f
        .err(
            "RegisterTargets",
            json!({"targetGroupIdentifier": tg_id, "targets": many}),
        )
        .await;
    assert_eq!(e.code(), "ValidationException");
    for n in 0..119 {
        f.ok(
            "CreateTargetGroup",
            json!({"name": format!("tg-page-{n:03}").replace("tg-", "t-"), "type": "IP"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut input = json!({"maxResults": 50});
        if let Some(t) = &token {
            input["nextToken"] = json!(t);
        }
        let page = f.ok("ListTargetGroups", input).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string()),
        );
        match page.get("nextToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    seen.dedup();
    assert_eq!(seen.len(), 120);
    let e = f
        .err("ListTargetGroups", json!({"nextToken": "garbage"}))
        .await;
    assert_eq!(e.code(), "ValidationException");
}

#[tokio::test]
async fn file_objects_take_only_target_registrations_which_survive_reloads() {
    let f = fixture("file", FILE);
    let e = f
        .err(
            "UpdateService",
            json!({"serviceIdentifier": "file-svc", "authType": "AWS_IAM"}),
        )
        .await;
    assert_eq!(e.code(), "ConflictException");
    assert!(
        e.to_string()
            .contains("comes from the config file trellis.yaml"),
        "{e}"
    );
    let e = f
        .err(
            "DeleteTargetGroup",
            json!({"targetGroupIdentifier": "file-tg"}),
        )
        .await;
    assert!(e.to_string().contains("comes from the config file"), "{e}");
    let e = f.err("CreateListener", json!({"serviceIdentifier": "file-svc", "name": "x", "protocol": "HTTP", "port": 81, "defaultAction": {"fixedResponse": {"statusCode": 404}}})).await;
    assert!(e.to_string().contains("comes from the config file"), "{e}");
    // An auth policy and an access-log subscription belong to the file's service too.
    let e = f
        .err(
            "PutAuthPolicy",
            json!({"resourceIdentifier": "file-svc", "policy": "{}"}),
        )
        .await;
    assert_eq!(e.code(), "ConflictException");
    assert!(
        e.to_string()
            .contains("service \"file-svc\" comes from the config file"),
        "{e}"
    );
    let e = f
        .err(
            "CreateAccessLogSubscription",
            json!({"resourceIdentifier": "file-svc",
                   "destinationArn": "arn:aws:logs:us-west-2:123456789012:log-group:x"}),
        )
        .await;
    assert_eq!(e.code(), "ConflictException");
    assert!(
        e.to_string()
            .contains("service \"file-svc\" comes from the config file"),
        "{e}"
    );
    // A file's service has the file's tags; the API lists them and does not change them.
    let svc_arn = f.plane.config().await.services[0].arn.clone();
    assert_eq!(
        f.ok("ListTagsForResource", json!({"resourceArn": svc_arn}))
            .await["tags"],
        json!({"team": "file"})
    );
    let e = f
        .err(
            "TagResource",
            json!({"resourceArn": svc_arn, "tags": {"team": "api"}}),
        )
        .await;
    assert_eq!(e.code(), "ConflictException");
    assert!(e.to_string().contains("has its tags there (tags:)"), "{e}");
    f.ok(
        "RegisterTargets",
        json!({"targetGroupIdentifier": "file-tg", "targets": [{"id": "127.0.0.5", "port": 9005}]}),
    )
    .await;
    let out = f.ok("DeregisterTargets", json!({"targetGroupIdentifier": "file-tg", "targets": [{"id": "127.0.0.1"}, {"id": "127.0.0.9"}]})).await;
    assert_eq!(
        out["successful"],
        json!([{"id": "127.0.0.1", "port": 9000}])
    );
    assert_eq!(out["unsuccessful"][0]["failureCode"], "TargetNotFound");
    let ids = |c: &Config| {
        c.target_groups[0]
            .targets
            .iter()
            .map(|t| format!("{}:{}", t.id, t.port))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&f.last()), vec!["127.0.0.5:9005"]);
    // An edit of the file keeps the API's registrations on top of it.
    let edited = FILE.replace(
        "targets: [{id: 127.0.0.1}]",
        "targets: [{id: 127.0.0.1}, {id: 127.0.0.7}]",
    );
    let config = f.plane.reload(edited.into_bytes()).await.unwrap();
    assert_eq!(ids(&config), vec!["127.0.0.7:9000", "127.0.0.5:9005"]);
    // A file edit that clashes with the store is refused, naming both.
    let clash = format!("{FILE}  - name: parking\n    listeners: []\n");
    f.ok("CreateService", json!({"name": "parking"})).await;
    let e = f
        .plane
        .reload(clash.into_bytes())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store.json: document.services[0]: duplicate service name \"parking\""),
        "{e}"
    );
    assert!(e.contains("trellis.yaml line"), "{e}");
}

#[tokio::test]
async fn a_change_the_data_plane_refuses_leaves_the_store_as_it_was() {
    let f = fixture("refused", VPCS_ONLY);
    f.ok("CreateService", json!({"name": "parking"})).await;
    let before = std::fs::read(f.dir.join("api/store.json")).unwrap();
    *f.data.refuse.lock().unwrap() = true;
    let e = f.err("CreateService", json!({"name": "other"})).await;
    assert!(e.to_string().contains("port 8080 is in use"), "{e}");
    assert_eq!(std::fs::read(f.dir.join("api/store.json")).unwrap(), before);
    *f.data.refuse.lock().unwrap() = false;
    let e = f
        .err("GetService", json!({"serviceIdentifier": "other"}))
        .await;
    assert_eq!(e.code(), "ResourceNotFoundException");
}

#[tokio::test]
async fn a_restart_serves_exactly_what_was_there() {
    let f = fixture("restart", VPCS_ONLY);
    walkthrough(&f).await;
    let before = f.ok("ListServices", json!({})).await;
    let dir = f.dir.clone();
    std::mem::forget(f);
    let f = reopen(dir, VPCS_ONLY);
    assert_eq!(f.ok("ListServices", json!({})).await, before);
    let config = f.plane.config().await;
    assert_eq!(config.service_networks[0].vpcs, vec![0]);
    assert_eq!(config.target_groups[0].targets.len(), 2);
}

#[tokio::test]
async fn access_logs_tags_and_unsupported_operations() {
    let f = fixture("logs", VPCS_ONLY);
    let (sn_id, svc_id, _) = walkthrough(&f).await;
    let als = f
        .ok(
            "CreateAccessLogSubscription",
            json!({"resourceIdentifier": svc_id,
        "destinationArn": "arn:aws:logs:us-west-2:123456789012:log-group:/lattice/parking"}),
        )
        .await;
    let config = f.last();
    let trellis_config::LogDestination::File(path) = &config.services[0].access_logs[0] else {
        panic!()
    };
    assert!(
        path.ends_with("api/logs/cloudwatch/lattice_parking.log"),
        "{path:?}"
    );
    let e = f
        .err(
            "CreateAccessLogSubscription",
            json!({"resourceIdentifier": svc_id,
        "destinationArn": "arn:aws:logs:us-west-2:123456789012:log-group:other"}),
        )
        .await;
    assert_eq!(e.code(), "ConflictException");
    f.ok("CreateAccessLogSubscription", json!({"resourceIdentifier": sn_id, "destinationArn": "arn:aws:logs:us-west-2:123456789012:log-group:stdout"})).await;
    assert_eq!(
        f.last().service_networks[0].access_logs,
        vec![trellis_config::LogDestination::Stdout]
    );
    let e = f
        .err(
            "CreateAccessLogSubscription",
            json!({"resourceIdentifier": svc_id, "destinationArn": "arn:aws:sqs:x:y:z"}),
        )
        .await;
    assert_eq!(e.code(), "ValidationException");
    f.ok(
        "DeleteAccessLogSubscription",
        json!({"accessLogSubscriptionIdentifier": als["id"]}),
    )
    .await;
    assert!(f.last().services[0].access_logs.is_empty());

    let arn = f
        .ok("GetService", json!({"serviceIdentifier": svc_id}))
        .await["arn"]
        .clone();
    f.ok(
        "TagResource",
        json!({"resourceArn": arn, "tags": {"env": "dev"}}),
    )
    .await;
    f.ok(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["team"]}),
    )
    .await;
    assert_eq!(
        f.ok("ListTagsForResource", json!({"resourceArn": arn}))
            .await["tags"],
        json!({"env": "dev"})
    );
    assert_eq!(
        f.last().services[0].tags,
        vec![("env".into(), "dev".into())]
    );
    // A key that differs only in case replaces the tag (the last call wins), and an untag of
    // it brings no older value back.
    f.ok(
        "TagResource",
        json!({"resourceArn": arn, "tags": {"Env": "prod"}}),
    )
    .await;
    assert_eq!(
        f.ok("ListTagsForResource", json!({"resourceArn": arn}))
            .await["tags"],
        json!({"Env": "prod"})
    );
    assert_eq!(
        f.last().services[0].tags,
        vec![("Env".into(), "prod".into())]
    );
    f.ok(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["Env"]}),
    )
    .await;
    assert!(f.last().services[0].tags.is_empty());
    f.ok(
        "TagResource",
        json!({"resourceArn": arn, "tags": {"env": "dev"}}),
    )
    .await;
    let many: Map<String, Value> = (0..50).map(|n| (format!("k{n}"), json!("v"))).collect();
    let e = f
        .err("TagResource", json!({"resourceArn": arn, "tags": many}))
        .await;
    assert_eq!(e.code(), "ServiceQuotaExceededException");
    let e = f.err("CreateResourceGateway", json!({"name": "x"})).await;
    assert!(
        e.to_string()
            .contains("CreateResourceGateway is not supported by Trellis"),
        "{e}"
    );
    assert!(!f.plane.implements("CreateResourceGateway"));
    assert_eq!(f.plane.region(), "us-west-2");
}

/// Every problem the config crate finds in a change is said in the API's terms: the input
/// member in the message and in `fieldList`, never the store document's path.
fn assert_api_terms(e: &ApiError, field: &str, says: &str) {
    let body = e.body();
    assert_eq!(e.code(), "ValidationException", "{body}");
    let text = e.to_string();
    assert!(!text.contains("document"), "{text}");
    assert!(!text.contains("store.json"), "{text}");
    assert!(text.starts_with(&format!("{field}: ")), "{text}");
    assert!(text.contains(says), "{text}");
    assert_eq!(body["reason"], "fieldValidationFailed", "{body}");
    assert_eq!(body["fieldList"][0]["name"], field, "{body}");
}

#[tokio::test]
async fn a_vpc_is_named_by_id_arn_or_name_and_problems_are_said_in_api_terms() {
    let f = fixture("vpcnames", VPCS_ONLY);
    let config = f.plane.config().await;
    let vpc = &config.vpcs[0];
    for (n, given) in ["client", vpc.id.as_str(), vpc.arn.as_str()]
        .iter()
        .enumerate()
    {
        let out = f
            .ok(
                "CreateTargetGroup",
                json!({"name": format!("x-tg-{n}"), "type": "INSTANCE",
                       "config": {"port": 80, "vpcIdentifier": given}}),
            )
            .await;
        assert_eq!(out["config"]["vpcIdentifier"], json!(vpc.id), "{given}");
    }
    // Another VPC id is kept as given (Trellis does not need it), as in the file.
    let out = f
        .ok(
            "CreateTargetGroup",
            json!({"name": "other-vpc", "type": "IP",
            "config": {"vpcIdentifier": "vpc-0123456789abcdef0"}}),
        )
        .await;
    assert_eq!(out["config"]["vpcIdentifier"], "vpc-0123456789abcdef0");
    for filter in ["client", vpc.id.as_str(), vpc.arn.as_str()] {
        let page = f
            .ok("ListTargetGroups", json!({"vpcIdentifier": filter}))
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 3, "{filter}");
    }
    let e = f
        .err(
            "CreateTargetGroup",
            json!({"name": "bad-vpc", "type": "IP",
            "config": {"vpcIdentifier": "client-vpc"}}),
        )
        .await;
    assert_api_terms(
        &e,
        "config.vpcIdentifier",
        "nor a VPC of the config file's vpcs (client)",
    );
    // Problems the config crate finds after the change (the REST layer's model checks are
    // bypassed here, so the config crate is the one to see them).
    let (_, svc_id, tg_id) = walkthrough(&f).await;
    let e = f
        .err(
            "CreateListener",
            json!({"serviceIdentifier": svc_id, "name": "wide", "protocol": "HTTP",
            "port": 70000, "defaultAction": {"fixedResponse": {"statusCode": 404}}}),
        )
        .await;
    assert_api_terms(&e, "port", "70000 is out of range");
    let e = f
        .err(
            "RegisterTargets",
            json!({"targetGroupIdentifier": tg_id,
            "targets": [{"id": "127.0.0.8"}, {"id": "not-an-ip"}]}),
        )
        .await;
    let text = e.to_string();
    assert!(
        text.starts_with(
            "target group \"rates-tg\", targets[1].id: \"not-an-ip\" is not an IP address"
        ),
        "{text}"
    );
    assert_eq!(e.body()["fieldList"][0]["name"], "targets[1].id");
    let e = f
        .err(
            "UpdateTargetGroup",
            json!({"targetGroupIdentifier": tg_id,
            "healthCheck": {"path": "no-slash"}}),
        )
        .await;
    let body = e.body();
    assert_eq!(body["fieldList"][0]["name"], "healthCheck.path", "{body}");
    assert!(!e.to_string().contains("document"), "{e}");
}

/// One quota of LATTICE.md §7 at its boundary: from a pre-filled store (so the big quotas cost
/// one compose, not thousands of calls), `last` is the last call allowed and succeeds, `next`
/// fails with `code` (and, for a 402, `quota_code`).
struct QuotaRow {
    quota: &'static str,
    file: String,
    document: Value,
    last: (&'static str, Value),
    next: (&'static str, Value),
    code: &'static str,
    quota_code: Option<&'static str>,
}

fn prefilled(name: &str, file: &str, document: &Value) -> Fixture {
    let dir = std::env::temp_dir().join(format!("trellis-quota-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("api")).unwrap();
    let store = json!({"format": 1, "document": document});
    std::fs::write(dir.join("api/store.json"), store.to_string()).unwrap();
    reopen(dir, file)
}

fn fixed() -> Value {
    json!({"fixedResponse": {"statusCode": 404}})
}

fn forward_to(names: &[String]) -> Value {
    let tgs: Vec<Value> = names
        .iter()
        .map(|n| json!({"targetGroupIdentifier": n, "weight": 1}))
        .collect();
    json!({"forward": {"targetGroups": tgs}})
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

fn ips(n: usize, from: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| json!({"id": format!("10.0.{}.{}", i / 250, i % 250 + 1), "port": 80}))
        .collect()
}

fn rule(name: &str, priority: usize, action: Value) -> Value {
    json!({"name": name, "priority": priority,
           "match": {"httpMatch": {"pathMatch": {"match": {"prefix": format!("/{name}")}}}},
           "action": action})
}

/// A policy of exactly `len` bytes.
fn policy_of(len: usize) -> String {
    let head = r#"{"Statement": [{"Sid": ""#;
    let tail = r#"", "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

#[tokio::test]
async fn every_quota_holds_at_its_boundary() {
    let tgs = |n: usize| -> Vec<Value> {
        names("grp", n)
            .into_iter()
            .map(|n| json!({"name": n, "type": "IP"}))
            .collect()
    };
    let many_vpcs = {
        let mut f = String::from("region: us-west-2\nvpcs:\n");
        for i in 0..501 {
            f.push_str(&format!(
                "  - name: client-{i:04}\n    cidrs: [10.{}.{}.0/24]\n",
                i / 250,
                i % 250
            ));
        }
        f
    };
    let svc_with = |listeners: Value| json!({"name": "qsvc", "listeners": listeners});
    let rows = vec![
        QuotaRow {
            quota: "listeners per service: 2",
            file: VPCS_ONLY.into(),
            document: json!({"services": [svc_with(json!([{"name": "la1", "protocol": "HTTP", "port": 8080, "defaultAction": fixed()}]))]}),
            last: (
                "CreateListener",
                json!({"serviceIdentifier": "qsvc", "name": "lb1", "protocol": "HTTP", "port": 8081, "defaultAction": fixed()}),
            ),
            next: (
                "CreateListener",
                json!({"serviceIdentifier": "qsvc", "name": "lc1", "protocol": "HTTP", "port": 8082, "defaultAction": fixed()}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("listeners-per-service"),
        },
        QuotaRow {
            quota: "rules per listener: 10",
            file: VPCS_ONLY.into(),
            document: json!({"services": [svc_with(json!([{"name": "la1", "protocol": "HTTP", "port": 8080, "defaultAction": fixed(),
                "rules": (1..10).map(|p| rule(&format!("rule{p}"), p, fixed())).collect::<Vec<_>>()}]))]}),
            last: ("CreateRule", {
                let mut r = rule("rule10", 10, fixed());
                r["serviceIdentifier"] = json!("qsvc");
                r["listenerIdentifier"] = json!("la1");
                r
            }),
            next: ("CreateRule", {
                let mut r = rule("rule11", 11, fixed());
                r["serviceIdentifier"] = json!("qsvc");
                r["listenerIdentifier"] = json!("la1");
                r
            }),
            code: "ServiceQuotaExceededException",
            quota_code: Some("rules-per-listener"),
        },
        QuotaRow {
            // A model bound: AWS answers it as a ValidationException.
            quota: "target groups per forward action: 10 (model)",
            file: VPCS_ONLY.into(),
            document: json!({"services": [svc_with(json!([]))], "targetGroups": tgs(11)}),
            last: (
                "CreateListener",
                json!({"serviceIdentifier": "qsvc", "name": "la1", "protocol": "HTTP", "port": 8080, "defaultAction": forward_to(&names("grp", 10))}),
            ),
            next: (
                "CreateListener",
                json!({"serviceIdentifier": "qsvc", "name": "lb1", "protocol": "HTTP", "port": 8081, "defaultAction": forward_to(&names("grp", 11))}),
            ),
            code: "ValidationException",
            quota_code: None,
        },
        QuotaRow {
            quota: "target groups per service: 10",
            file: VPCS_ONLY.into(),
            document: json!({"services": [svc_with(json!([{"name": "la1", "protocol": "HTTP", "port": 8080,
                "defaultAction": forward_to(&names("grp", 9))}]))], "targetGroups": tgs(11)}),
            last: (
                "CreateListener",
                json!({"serviceIdentifier": "qsvc", "name": "lb1", "protocol": "HTTP", "port": 8081,
                "defaultAction": forward_to(&names("grp", 10)[9..])}),
            ),
            next: (
                "UpdateListener",
                json!({"serviceIdentifier": "qsvc", "listenerIdentifier": "lb1",
                "defaultAction": forward_to(&names("grp", 11)[9..])}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("target-groups-per-service"),
        },
        QuotaRow {
            quota: "target groups per region: 500",
            file: VPCS_ONLY.into(),
            document: json!({"targetGroups": tgs(499)}),
            last: ("CreateTargetGroup", json!({"name": "last", "type": "IP"})),
            next: ("CreateTargetGroup", json!({"name": "next", "type": "IP"})),
            code: "ServiceQuotaExceededException",
            quota_code: Some("target-groups-per-region"),
        },
        QuotaRow {
            quota: "targets per target group: 1000",
            file: VPCS_ONLY.into(),
            document: json!({"targetGroups": [{"name": "big", "type": "IP", "targets": ips(999, 0)}]}),
            last: (
                "RegisterTargets",
                json!({"targetGroupIdentifier": "big", "targets": ips(1, 999)}),
            ),
            next: (
                "RegisterTargets",
                json!({"targetGroupIdentifier": "big", "targets": ips(1, 1000)}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("targets-per-target-group"),
        },
        QuotaRow {
            // A model bound (1-100): a ValidationException, as from AWS.
            quota: "targets per RegisterTargets call: 100 (model)",
            file: VPCS_ONLY.into(),
            document: json!({"targetGroups": [{"name": "big", "type": "IP"}]}),
            last: (
                "RegisterTargets",
                json!({"targetGroupIdentifier": "big", "targets": ips(100, 0)}),
            ),
            next: (
                "RegisterTargets",
                json!({"targetGroupIdentifier": "big", "targets": ips(101, 100)}),
            ),
            code: "ValidationException",
            quota_code: None,
        },
        QuotaRow {
            quota: "targets per DeregisterTargets call: 100 (model)",
            file: VPCS_ONLY.into(),
            document: json!({"targetGroups": [{"name": "big", "type": "IP", "targets": ips(201, 0)}]}),
            last: (
                "DeregisterTargets",
                json!({"targetGroupIdentifier": "big", "targets": ips(100, 0)}),
            ),
            next: (
                "DeregisterTargets",
                json!({"targetGroupIdentifier": "big", "targets": ips(101, 100)}),
            ),
            code: "ValidationException",
            quota_code: None,
        },
        QuotaRow {
            quota: "services per region: 2000",
            file: VPCS_ONLY.into(),
            document: json!({"services": names("s", 1999).iter().map(|n| json!({"name": n, "listeners": []})).collect::<Vec<_>>()}),
            last: ("CreateService", json!({"name": "last"})),
            next: ("CreateService", json!({"name": "next"})),
            code: "ServiceQuotaExceededException",
            quota_code: Some("services-per-region"),
        },
        QuotaRow {
            quota: "service networks per region: 50",
            file: VPCS_ONLY.into(),
            document: json!({"serviceNetworks": names("n", 49).iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
            last: ("CreateServiceNetwork", json!({"name": "last"})),
            next: ("CreateServiceNetwork", json!({"name": "next"})),
            code: "ServiceQuotaExceededException",
            quota_code: Some("service-networks-per-region"),
        },
        QuotaRow {
            quota: "service associations per service network: 500",
            file: VPCS_ONLY.into(),
            document: json!({
                "serviceNetworks": [{"name": "net"}],
                "services": names("s", 501).iter().map(|n| json!({"name": n, "listeners": []})).collect::<Vec<_>>(),
                "serviceAssociations": names("s", 499).iter().map(|n| json!({"serviceNetwork": "net", "service": n})).collect::<Vec<_>>(),
            }),
            last: (
                "CreateServiceNetworkServiceAssociation",
                json!({"serviceNetworkIdentifier": "net", "serviceIdentifier": "s-0499"}),
            ),
            next: (
                "CreateServiceNetworkServiceAssociation",
                json!({"serviceNetworkIdentifier": "net", "serviceIdentifier": "s-0500"}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("service-associations-per-service-network"),
        },
        QuotaRow {
            quota: "VPC associations per service network: 500",
            file: many_vpcs.clone(),
            document: json!({
                "serviceNetworks": [{"name": "net"}],
                "vpcAssociations": (0..499).map(|i| json!({"serviceNetwork": "net", "vpc": format!("client-{i:04}")})).collect::<Vec<_>>(),
            }),
            last: (
                "CreateServiceNetworkVpcAssociation",
                json!({"serviceNetworkIdentifier": "net", "vpcIdentifier": "client-0499"}),
            ),
            next: (
                "CreateServiceNetworkVpcAssociation",
                json!({"serviceNetworkIdentifier": "net", "vpcIdentifier": "client-0500"}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("vpc-associations-per-service-network"),
        },
        QuotaRow {
            // Lattice refuses a second network for a VPC as a conflict with the first.
            quota: "service networks per VPC: 1",
            file: VPCS_ONLY.into(),
            document: json!({"serviceNetworks": [{"name": "net"}, {"name": "net2"}]}),
            last: (
                "CreateServiceNetworkVpcAssociation",
                json!({"serviceNetworkIdentifier": "net", "vpcIdentifier": "client"}),
            ),
            next: (
                "CreateServiceNetworkVpcAssociation",
                json!({"serviceNetworkIdentifier": "net2", "vpcIdentifier": "client"}),
            ),
            code: "ConflictException",
            quota_code: None,
        },
        QuotaRow {
            quota: "tags per resource: 50 (at create)",
            file: VPCS_ONLY.into(),
            document: json!({}),
            last: (
                "CreateService",
                json!({"name": "last", "tags": (0..50).map(|i| (format!("k{i}"), json!("v"))).collect::<Map<String, Value>>()}),
            ),
            next: (
                "CreateService",
                json!({"name": "next", "tags": (0..51).map(|i| (format!("k{i}"), json!("v"))).collect::<Map<String, Value>>()}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("tags-per-resource"),
        },
        QuotaRow {
            quota: "tags per resource: 50 (TagResource)",
            file: VPCS_ONLY.into(),
            document: json!({"targetGroups": [{"name": "tagged", "type": "IP"}]}),
            last: (
                "TagResource",
                json!({"resourceArn": "arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/TG", "tags": (0..50).map(|i| (format!("k{i}"), json!("v"))).collect::<Map<String, Value>>()}),
            ),
            next: (
                "TagResource",
                json!({"resourceArn": "arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/TG", "tags": {"one-more": "v"}}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("tags-per-resource"),
        },
        QuotaRow {
            quota: "auth policy size: 10 KB",
            file: VPCS_ONLY.into(),
            document: json!({"services": [svc_with(json!([]))]}),
            last: (
                "PutAuthPolicy",
                json!({"resourceIdentifier": "qsvc", "policy": policy_of(10 * 1024)}),
            ),
            next: (
                "PutAuthPolicy",
                json!({"resourceIdentifier": "qsvc", "policy": policy_of(10 * 1024 + 1)}),
            ),
            code: "ServiceQuotaExceededException",
            quota_code: Some("auth-policy-size"),
        },
    ];
    for (n, row) in rows.into_iter().enumerate() {
        let f = prefilled(&format!("row{n}"), &row.file, &row.document);
        let config = f.plane.config().await;
        let fix = |mut input: Value| {
            // The tagged group's ARN is known once the store is composed.
            if let Some(arn) = input.get("resourceArn").and_then(Value::as_str)
                && arn.ends_with("/TG")
            {
                let tg = &config.target_groups[0];
                input["resourceArn"] = json!(tg.arn);
            }
            input
        };
        let (op, input) = row.last;
        if let Err(e) = f.call(op, fix(input)).await {
            panic!(
                "{}: the last allowed {op} failed: {} {e}",
                row.quota,
                e.code()
            );
        }
        let (op, input) = row.next;
        let e = match f.call(op, fix(input)).await {
            Ok(out) => panic!("{}: {op} past the quota succeeded: {out:?}", row.quota),
            Err(e) => e,
        };
        assert_eq!(e.code(), row.code, "{}: {e}", row.quota);
        if let Some(code) = row.quota_code {
            assert_eq!(e.status(), 402, "{}", row.quota);
            let body = e.body();
            assert_eq!(body["quotaCode"], code, "{}: {body}", row.quota);
            assert_eq!(body["serviceCode"], "vpc-lattice", "{}", row.quota);
            assert!(
                body["resourceType"].as_str().is_some_and(|t| !t.is_empty()),
                "{}",
                row.quota
            );
        }
    }
}
