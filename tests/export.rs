//! `trellis export` through the real binary: the YAML export of every example validates and
//! exports to the same text again, `trellis up` on an export serves what the original serves,
//! relative paths and `${ENV}` secrets survive, and the CloudFormation export of every example
//! passes cfn-lint (the oracle, from the virtualenv of `scripts/pyenv.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.push(repo().join("examples/compose/trellis.yaml"));
    files.sort();
    assert!(files.len() >= 4, "examples not found: {files:?}");
    files
}

/// `trellis export ARGS` run in `cwd`: its stdout, after checking it exited 0.
fn export(args: &[&str], cwd: &Path) -> String {
    let mut all = vec!["export"];
    all.extend(args);
    let (code, out, err) = run_cli(&all, cwd);
    assert_eq!(code, 0, "trellis {all:?} failed:\n{err}");
    out
}

#[test]
fn yaml_export_of_every_example_validates_and_exports_the_same_again() {
    let dir = scratch_dir("export-yaml");
    for example in examples() {
        let file = example.display().to_string();
        let first = export(&["-f", &file], repo());
        let saved = dir.join("exported.yaml");
        std::fs::write(&saved, &first).unwrap();
        let saved_arg = saved.display().to_string();
        // From another directory: the export names its files absolutely.
        let (code, out, err) = run_cli(&["validate", "-f", &saved_arg], &dir);
        assert_eq!(
            code, 0,
            "{file}: the export does not validate:\n{out}{err}\n{first}"
        );
        let second = export(&["-f", &saved_arg], &dir);
        assert_eq!(first, second, "{file}: export → export differs");
        // What the read-only commands show is the same for both files.
        let (_, original, _) = run_cli(&["services", "-f", &file], repo());
        let (_, exported, _) = run_cli(&["services", "-f", &saved_arg], &dir);
        assert_eq!(original, exported, "{file}: trellis services differs");
        let config = trellis_config_names(&first);
        for service in config {
            let (_, a, _) = run_cli(&["routes", &service, "-f", &file], repo());
            let (_, b, _) = run_cli(&["routes", &service, "-f", &saved_arg], &dir);
            assert_eq!(
                a.replace(&file, "FILE"),
                b.replace(&saved_arg, "FILE"),
                "{file}: routes of {service}"
            );
        }
    }
}

/// The services' names in an export (`  - name: X` under `services:`).
fn trellis_config_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_services = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_services = line.starts_with("services:");
        } else if in_services && let Some(name) = line.strip_prefix("  - name: ") {
            out.push(name.trim().to_string());
        }
    }
    assert!(
        !out.is_empty() || !text.contains("\nservices:"),
        "no service names found"
    );
    out
}

#[test]
fn output_file_relative_paths_and_env_secrets() {
    let dir = scratch_dir("export-paths");
    std::fs::write(
        dir.join("trellis.yaml"),
        json!({
            "region": "us-west-2",
            "identities": [{"arn": "arn:aws:iam::123456789012:user/ci", "accessKeyId": "AKIACI",
                "secretAccessKey": "${TRELLIS_EXPORT_TEST_SECRET}"}],
            "services": [{"name": "svc", "accessLogs": [{"destination": "file:logs/access.log"}],
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080,
                    "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "fn-tg"}]}}}]}],
            "targetGroups": [{"name": "fn-tg", "type": "LAMBDA", "targets": [{"id": "f"}]}],
            "functions": [{"name": "f", "runtime": "wasm", "code": "fns/hello.wasm"},
                {"name": "p", "runtime": "process", "command": ["bin/run", "--flag", "x/y"]}],
        })
        .to_string(),
    )
    .unwrap();
    let out = Command::new(TRELLIS)
        .args(["export", "-f", "trellis.yaml", "-o", "out/exported.yaml"])
        .current_dir(&dir)
        .env("TRELLIS_EXPORT_TEST_SECRET", "hunter2-not-in-the-export")
        .output()
        .unwrap();
    // The output directory does not exist: a failure to write is exit code 2, with a message.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("out/exported.yaml"));
    std::fs::create_dir(dir.join("out")).unwrap();
    let out = Command::new(TRELLIS)
        .args(["export", "-f", "trellis.yaml", "-o", "out/exported.yaml"])
        .current_dir(&dir)
        .env("TRELLIS_EXPORT_TEST_SECRET", "hunter2-not-in-the-export")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "with -o nothing goes to stdout");
    let text = std::fs::read_to_string(dir.join("out/exported.yaml")).unwrap();
    let abs = dir.canonicalize().unwrap_or(dir.to_path_buf());
    let abs = abs.display();
    assert!(
        text.contains(&format!("code: {abs}/fns/hello.wasm")),
        "{text}"
    );
    assert!(
        text.contains(&format!("file:{abs}/logs/access.log")),
        "{text}"
    );
    // The program is resolved; its arguments are left as written.
    assert!(
        text.contains(&format!("command: [{abs}/bin/run, \"--flag\", x/y]")),
        "{text}"
    );
    assert!(
        text.contains("secretAccessKey: \"${TRELLIS_EXPORT_TEST_SECRET}\""),
        "{text}"
    );
    assert!(
        !text.contains("hunter2"),
        "a secret from the environment was written out"
    );
    // A missing config file is exit code 1, as for the other commands.
    let (code, _, err) = run_cli(&["export", "-f", "missing.yaml"], &dir);
    assert_eq!(code, 1, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_on_the_export_serves_what_the_original_serves() {
    let backend = Backend::start("instance").await;
    let port = free_port();
    let wasm = sample("hello-wasm.wasm").display().to_string();
    let original = Config::new()
        .service(
            Service::new("svc").listener(
                Listener::http(port)
                    .action(forward_weighted(&[("web-tg", 1)]))
                    .rule("to-fn", 10, path_prefix("/env"), forward("fn-tg"))
                    .rule(
                        "teapot",
                        20,
                        header_exact("x-env", "tea"),
                        fixed_response(418),
                    ),
            ),
        )
        .target_group(TargetGroup::instance("web-tg", &[backend.port]).no_health_checks())
        .target_group(TargetGroup::lambda("fn-tg", "hello", "V2"))
        .function(json!({"name": "hello", "runtime": "wasm", "code": wasm,
            "environment": {"GREETING": "exported"}}))
        .yaml();
    let dir = scratch_dir("export-up");
    let file = dir.join("original.yaml");
    std::fs::write(&file, &original).unwrap();
    let exported = export(&["-f", &file.display().to_string()], &dir);

    let client = http1_client();
    let host = "svc.trellis.localhost";
    let requests: &[(&str, &[(&str, &str)])] = &[
        ("/", &[]),
        ("/env", &[]),
        ("/other", &[("x-env", "tea")]),
        ("/other", &[("x-env", "coffee")]),
    ];
    let mut answers = Vec::new();
    for config in [&original, &exported] {
        let trellis = Trellis::start(config, &[]);
        let mut seen = Vec::new();
        for (path, headers) in requests {
            let a = send(&client, port, host, "GET", path, headers, "").await;
            let backend = a
                .headers
                .get("x-backend")
                .map(|v| v.to_str().unwrap_or("").to_string());
            seen.push((a.status, backend, a.body.contains("exported")));
        }
        drop(trellis);
        answers.push(seen);
    }
    assert_eq!(
        answers[0], answers[1],
        "the export serves differently:\n{exported}"
    );
    assert_eq!(answers[0][0].0, 200);
    assert!(
        answers[0][1].2,
        "the function answered with its environment: {:?}",
        answers[0]
    );
    assert_eq!(answers[0][2].0, 418);
}

/// cfn-lint from the virtualenv of scripts/pyenv.sh (which installs it when missing).
fn cfn_lint() -> PathBuf {
    let out = Command::new(repo().join("scripts/pyenv.sh"))
        .current_dir(repo())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/pyenv.sh");
    assert!(out.status.success(), "scripts/pyenv.sh failed");
    let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    python.with_file_name("cfn-lint")
}

#[test]
fn cloudformation_export_of_every_example_passes_cfn_lint() {
    let lint = cfn_lint();
    let dir = scratch_dir("export-cfn");
    for example in examples() {
        let file = example.display().to_string();
        let template = dir.join(format!(
            "{}.json",
            example.file_stem().unwrap().to_string_lossy()
        ));
        let out = Command::new(TRELLIS)
            .args(["export", "-f", &file, "--format", "cloudformation", "-o"])
            .arg(&template)
            .current_dir(repo())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&template).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("the template is JSON");
        assert!(
            parsed["Resources"]
                .as_object()
                .is_some_and(|r| r.values().any(|v| v["Type"] == "AWS::VpcLattice::Service")),
            "{file}: no service in the template"
        );
        let again = export(&["-f", &file, "--format", "cloudformation"], repo());
        assert_eq!(text, again, "{file}: the template is not deterministic");
        let lint_out = Command::new(&lint)
            .arg(&template)
            .output()
            .expect("run cfn-lint");
        let code = lint_out.status.code().unwrap_or(-1);
        // cfn-lint's exit status is a bit set: 2 errors, 4 warnings, 8 informational.
        assert!(
            code >= 0 && code & 2 == 0 && code & 1 == 0,
            "{file}: cfn-lint found errors (exit {code}):\n{}\n{text}",
            String::from_utf8_lossy(&lint_out.stdout)
        );
    }
}

#[test]
fn cfn_lint_catches_a_wrong_property() {
    // The oracle is not a rubber stamp: the same check fails on a misspelt property.
    let lint = cfn_lint();
    let dir = scratch_dir("export-cfn-bad");
    let file = repo()
        .join("examples/walkthrough.yaml")
        .display()
        .to_string();
    let text = export(&["-f", &file, "--format", "cloudformation"], repo());
    let bad = text.replacen("\"IdleTimeoutSeconds\"", "\"IdleTimeout\"", 1);
    assert_ne!(bad, text);
    let path = dir.join("bad.json");
    std::fs::write(&path, bad).unwrap();
    let code = Command::new(&lint)
        .arg(&path)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1);
    assert!(
        code & 2 != 0,
        "cfn-lint did not flag an unknown property (exit {code})"
    );
}

/// `GET PATH` on `addr` over a plain HTTP/1.0 connection: (status, body).
fn admin_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the admin port");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

#[test]
fn the_admin_port_exports_what_is_served_as_trellis_export_does() {
    let backend = free_port();
    let trellis = Trellis::start(&simple_config(free_port(), &[backend]), &[]);
    let admin = trellis.admin_addr();
    let config_path = trellis.config_path();
    let config = config_path.display().to_string();
    let dir = config_path.parent().expect("its directory").to_path_buf();

    let (status, served_yaml) = admin_get(&admin, "/export");
    assert_eq!(status, 200, "{served_yaml}");
    assert_eq!(served_yaml, export(&["-f", &config], &dir));
    let (status, same) = admin_get(&admin, "/export?format=yaml");
    assert_eq!((status, &same), (200, &served_yaml));

    let (status, template) = admin_get(&admin, "/export?format=cloudformation");
    assert_eq!(status, 200, "{template}");
    assert_eq!(
        template,
        export(&["-f", &config, "--format", "cloudformation"], &dir)
    );
    let parsed: serde_json::Value = serde_json::from_str(&template).expect("JSON template");
    assert!(
        parsed["Resources"]
            .as_object()
            .is_some_and(|r| !r.is_empty())
    );

    let (status, body) = admin_get(&admin, "/export?format=terraform");
    assert_eq!(status, 400);
    assert!(body.contains("\"terraform\""), "{body}");
}
