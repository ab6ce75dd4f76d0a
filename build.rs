//! Stamps the binary with the git commit it was built from, so that `trellis --version` says
//! which code it runs: `make bench` checks it against the checkout before measuring, because a
//! cargo build can keep a binary of other sources (docs/BENCHMARKS.md, "Method").
//!
//! `TRELLIS_COMMIT` is the commit's short hash, `-modified` appended when the workspace's
//! sources differ from it, or `unknown` outside a git checkout.

use std::process::Command;

/// What the binary is built from: a change in any of them makes the tree modified.
const SOURCES: [&str; 8] = [
    "src",
    "auth",
    "config",
    "router",
    "runtime",
    "invokers",
    "Cargo.toml",
    "Cargo.lock",
];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // Only changes to what the binary is built from count (not docs or benchmark results).
    let mut status = vec![
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "build.rs",
    ];
    status.extend(SOURCES);
    let modified = git(&status).is_some_and(|changes| !changes.is_empty());
    let stamp = match commit {
        Some(commit) if modified => format!("{commit}-modified"),
        Some(commit) => commit,
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=TRELLIS_COMMIT={stamp}");

    // Run again when HEAD moves (checkout, commit) or a source changes. A commit rewrites the
    // branch's file under refs/heads (cargo scans a directory for changes); a path that does
    // not exist would make cargo run this script, and rebuild the binary, on every build, so
    // packed-refs is named only when there is one.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = std::path::Path::new(&dir);
        for path in [
            dir.join("HEAD"),
            dir.join("refs/heads"),
            dir.join("packed-refs"),
        ] {
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    for path in SOURCES {
        println!("cargo:rerun-if-changed={path}");
    }
}
