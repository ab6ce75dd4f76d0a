//! Every file in tests/configs/invalid/ is a config with mistakes. `trellis validate` must exit
//! 1 and print each `# expect: TEXT` line of the file (position, path, message or hint).
mod common;

use std::path::Path;
use std::time::Duration;

use common::{Trellis, get, http1_client, run_cli};

const HOST: &str = "svc.trellis.localhost";

#[test]
fn each_invalid_config_reports_its_expected_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/configs/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/configs/invalid exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 13,
        "expected one file per kind of mistake, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read config");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let rel = file.strip_prefix(root).expect("under the repo");
        let (code, stdout, stderr) =
            run_cli(&["validate", "-f", rel.to_str().expect("utf-8 path")], root);
        if code != 1 {
            failures.push(format!(
                "{}: exit code {code}, expected 1\n{stdout}{stderr}",
                rel.display()
            ));
            continue;
        }
        for e in expected {
            if !stderr.contains(e) {
                failures.push(format!("{}: missing `{e}` in:\n{stderr}", rel.display()));
            }
        }
        // Every problem line names the file, so editors can jump to it.
        let first = stderr.lines().next().unwrap_or_default();
        if !first.starts_with(&format!("{}:", rel.display())) {
            failures.push(format!(
                "{}: first line does not start with the file name: {first}",
                rel.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_bad_config_is_refused_by_up_too() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, _, stderr) = run_cli(
        &["up", "-f", "tests/configs/invalid/path-without-slash.yaml"],
        root,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not start with '/'"), "{stderr}");
}

/// What `trellis up` cannot serve is a config problem like any other: `up` refuses it with the
/// very report `validate` prints (line:column, hint, exit 1), before anything starts.
#[test]
fn up_refuses_a_bad_auth_policy_with_the_report_validate_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = "tests/configs/invalid/auth-policy.yaml";
    let (validate_code, _, validate_err) = run_cli(&["validate", "-f", file], root);
    let (up_code, up_out, up_err) = run_cli(&["up", "-f", file, "--admin", "off"], root);
    assert_eq!(validate_code, 1, "{validate_err}");
    assert_eq!(up_code, 1, "{up_out}{up_err}");
    assert!(
        up_err.contains(&format!(
            "{file}:21:27: services[0].authPolicy.Statement[0].Condition.StringEqualz: auth policy: unknown condition operator"
        )),
        "{up_err}"
    );
    assert_eq!(up_err, validate_err);
    assert!(!up_err.contains("trellis: ready"), "{up_err}");
}

/// A reload may turn auth on. One with a bad policy is refused like any invalid edit (the
/// problem printed with its line:column, the previous config serving on); one with AWS_IAM and
/// no policy denies everything, as in Lattice.
#[tokio::test]
async fn a_reload_turns_auth_on_and_a_bad_policy_keeps_the_previous_config() {
    let port = common::free_port();
    let good = format!(
        "services:
  - name: svc
    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction: {{fixedResponse: {{statusCode: 204}}}}
"
    );
    let t = Trellis::start(&good, &[]);
    let client = http1_client();
    assert_eq!(get(&client, port, HOST, "/").await.status, 204);

    // A poll sees a change by size and modification time: let the clock move on first.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mark = t.stderr().len();
    let bad = good.replacen(
        "  - name: svc\n",
        "  - name: svc\n    authType: AWS_IAM\n    authPolicy: {Statement: [{Effect: Allow, Principal: '*', Action: '*', Resource: '*', Condition: {StringEqualz: {'aws:PrincipalType': User}}}]}\n",
        1,
    );
    std::fs::write(t.config_path(), &bad).expect("edit the config");
    t.wait_for_stderr(Duration::from_secs(20), "the refused reload", |e| {
        e[mark..].contains("still serving the previous config")
    });
    let report = t.stderr()[mark..].to_string();
    assert!(
        report.contains("trellis.yaml:4:")
            && report.contains("services[0].authPolicy.Statement[0].Condition")
            && report.contains("StringEqualz"),
        "{report}"
    );
    assert!(!report.contains("reloaded"), "{report}");
    assert_eq!(get(&client, port, HOST, "/").await.status, 204);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let mark = t.stderr().len();
    let closed = good.replacen(
        "  - name: svc\n",
        "  - name: svc\n    authType: AWS_IAM\n",
        1,
    );
    std::fs::write(t.config_path(), &closed).expect("edit the config");
    t.wait_for_stderr(Duration::from_secs(20), "the reload", |e| {
        e[mark..].contains("reloaded")
    });
    let refused = get(&client, port, HOST, "/").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .starts_with("AccessDeniedException: User: anonymous is not authorized")
            && refused
                .body
                .contains("because no service-based policy allows"),
        "{}",
        refused.body
    );
}

/// An identity's policy has the auth-policy quota of 10 KB, as a YAML mapping (measured as
/// compact JSON) and as a JSON string (measured as written), with one message for both; one
/// just under it is accepted.
#[test]
fn identity_policies_over_10_kb_are_refused() {
    let dir = common::scratch_dir("identity-policy-size");
    let config = |policy: &str| {
        format!(
            "services:
  - name: svc
    listeners:
      - {{name: http, protocol: HTTP, port: 8080, defaultAction: {{fixedResponse: {{statusCode: 200}}}}}}
identities:
  - arn: arn:aws:iam::123456789012:user/big
    accessKeyId: AKIABIG
    secretAccessKey: big
    policy: {policy}
"
        )
    };
    // A policy padded by its Id to `n` bytes, compact.
    let statement = r#"[{"Effect":"Allow","Action":"*","Resource":"*"}]"#;
    let json_with_id =
        |n: usize| format!(r#"{{"Id":"{}","Statement":{statement}}}"#, "x".repeat(n));
    let around = json_with_id(0).len();
    let under = json_with_id(10_240 - around);
    assert_eq!(under.len(), 10_240);
    let over = json_with_id(10_240 - around + 1);
    for (name, policy, problem) in [
        ("mapping-ok", under.clone(), None),
        ("string-ok", format!("'{under}'"), None),
        (
            "mapping",
            over.clone(),
            Some(
                ".yaml:9:13: identities[0].policy: identity policy: the policy is 10241 bytes; Trellis caps an identity policy at 10 KB, as VPC Lattice does an auth policy (10240 bytes)",
            ),
        ),
        (
            "string",
            format!("'{over}'"),
            // Where the text starts, inside the quote.
            Some(
                ".yaml:9:14: identities[0].policy: identity policy: the policy is 10241 bytes; Trellis caps an identity policy at 10 KB, as VPC Lattice does an auth policy (10240 bytes)",
            ),
        ),
    ] {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, config(&policy)).expect("write the config");
        let (code, stdout, stderr) =
            run_cli(&["validate", "-f", file.to_str().expect("utf-8")], &dir);
        match problem {
            None => assert_eq!(code, 0, "{name}: {stdout}{stderr}"),
            Some(problem) => {
                assert_eq!(code, 1, "{name}: {stdout}{stderr}");
                assert!(stderr.contains(problem), "{name}: {stderr}");
                assert!(stderr.contains("1 problem found"), "{name}: {stderr}");
            }
        }
    }
}
