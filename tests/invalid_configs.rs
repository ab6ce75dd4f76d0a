//! Every file in tests/configs/invalid/ is a config with mistakes. `trellis validate` must exit
//! 1 and print each `# expect: TEXT` line of the file (position, path, message or hint).
mod common;

use std::path::Path;

use common::run_cli;

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
