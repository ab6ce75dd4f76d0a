//! Hostile and careless config files (issue 15, items 1 and 5): a YAML alias bomb ("billion
//! laughs") is refused by `validate` and by a reload without the server's memory growing, a
//! config written in two steps is never served half-written, and `--reload` and SIGHUP decide
//! what reloads.
mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

const HOST: &str = "svc.trellis.localhost";

/// Nine levels of nine aliases: 9^9 (387 million) scalars once expanded, in 342 bytes.
const LAUGHS: &str = r#"a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"#;

#[test]
fn config_alias_bomb_and_oversized_file_are_refused_by_validate_at_once() {
    let dir = scratch_dir("laughs");
    let file = dir.join("laughs.yaml");
    std::fs::write(&file, LAUGHS).unwrap();
    let started = Instant::now();
    let (code, _, err) = run_cli(&["validate", "-f", "laughs.yaml"], &dir);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "validate took {:?}",
        started.elapsed()
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("laughs.yaml:5:8: (top level): more than 1000 aliases"),
        "{err}"
    );

    // A file over 4 MiB is refused without being read whole.
    let big = dir.join("big.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    let text = line.repeat(4 * 1024 * 1024 / line.len() + 1);
    std::fs::write(&big, format!("{text}region: us-west-2\n")).unwrap();
    let (code, _, err) = run_cli(&["validate", "-f", "big.yaml"], &dir);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("big.yaml:1:1:"), "{err}");
    assert!(err.contains("larger than 4194304 bytes"), "{err}");
}

/// The resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn config_alias_bomb_written_over_a_live_config_is_refused_and_memory_stays_bounded() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let t = Trellis::start(&simple_config(port, &[backend.port]), &[]);
    let pid = t.child.as_ref().expect("running").id();
    let client = http1_client();
    assert_eq!(get(&client, port, HOST, "/").await.status, 200);

    // Sample the server's memory from the moment the bomb is written until after it is refused.
    let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mark = t.stderr().len();
    std::fs::write(t.config_path(), LAUGHS).unwrap();
    t.wait_for_stderr(Duration::from_secs(10), "the refused reload", |e| {
        e[mark..].contains("still serving the previous config")
    });
    let report = t.stderr()[mark..].to_string();
    assert!(
        report.contains("trellis.yaml:5:8: (top level): more than 1000 aliases"),
        "{report}"
    );
    // Still serving, new connections included.
    for _ in 0..5 {
        assert_eq!(get(&http1_client(), port, HOST, "/").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampling.store(false, Ordering::SeqCst);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 0, "no VmRSS for pid {pid}");
    assert!(
        peak < 200 * 1024,
        "RSS reached {} MiB while refusing the alias bomb",
        peak / 1024
    );
    assert!(!report.contains("reloaded"), "{report}");
}

/// The config of the two-part test, in two parts: the first is a valid config on its own that
/// forwards everything to the backend; the second adds a rule that denies `/admin` (and one
/// that answers `/version` with `version`, to see which config serves).
fn two_parts(port: u16, backend: u16, version: u16) -> (String, String) {
    let first = format!(
        "targetGroups:
  - name: web-tg
    type: INSTANCE
    config: {{port: 80, protocol: HTTP, healthCheck: {{enabled: false}}}}
    targets:
      - {{id: 127.0.0.1, port: {backend}}}
services:
  - name: svc
    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction: {{forward: {{targetGroups: [{{targetGroupIdentifier: web-tg}}]}}}}
"
    );
    let second = format!(
        "        rules:
          - name: deny-admin
            priority: 1
            match: {{httpMatch: {{pathMatch: {{match: {{prefix: /admin}}}}}}}}
            action: {{fixedResponse: {{statusCode: 403}}}}
          - name: version
            priority: 2
            match: {{httpMatch: {{pathMatch: {{match: {{exact: /version}}}}}}}}
            action: {{fixedResponse: {{statusCode: {version}}}}}
"
    );
    (first, second)
}

#[tokio::test(flavor = "multi_thread")]
async fn config_written_in_two_parts_is_never_served_half_written() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let (first, second) = two_parts(port, backend.port, 210);
    let t = Trellis::start(&format!("{first}{second}"), &[]);
    let file = t.config_path();
    // The first part alone is a valid config (that serves /admin).
    let dir = scratch_dir("half");
    std::fs::write(dir.join("half.yaml"), &first).unwrap();
    let (code, _, err) = run_cli(&["validate", "-f", "half.yaml"], &dir);
    assert_eq!(code, 0, "the first part should validate on its own: {err}");

    // Requests to /admin throughout: every one must meet the deny rule.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = http1_client();
            let (mut sent, mut leaked) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let a = get(&client, port, HOST, "/admin/secret").await;
                sent += 1;
                if a.status != 403 {
                    leaked.push(format!("{} {}", a.status, a.body));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (sent, leaked)
        })
    };

    // Rounds with gaps of 150 ms and 300 ms between the parts: the old watcher (reload 100 ms
    // after a change) caught the first part alone in most of them.
    let client = http1_client();
    for (round, gap) in [150u64, 300, 150, 300].into_iter().enumerate() {
        let version = 201 + round as u16;
        let (first, second) = two_parts(port, backend.port, version);
        {
            let mut f = std::fs::File::create(&file).unwrap();
            f.write_all(first.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(gap));
            f.write_all(second.as_bytes()).unwrap();
        }
        // The complete file serves within a few polls.
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(&client, port, HOST, "/version").await.status != version {
            assert!(
                Instant::now() < deadline,
                "round {round}: the complete config was not served; stderr:\n{}",
                t.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (sent, leaked) = prober.await.unwrap();
    assert!(sent >= 20, "only {sent} probes ran");
    assert!(
        leaked.is_empty(),
        "{} of {sent} requests to /admin passed the deny rule: {:?}\n{}",
        leaked.len(),
        &leaked[..leaked.len().min(5)],
        t.stderr()
    );
    assert_eq!(
        backend.hits.load(Ordering::SeqCst),
        0,
        "the half-written config was served"
    );
    // Each complete file was loaded once: no reload of a half file. (The new table serves
    // a moment before its "reloaded" line is written.)
    t.wait_for_stderr(Duration::from_secs(5), "the fourth reload line", |e| {
        e.matches("trellis: reloaded").count() >= 4
    });
    assert_eq!(t.stderr().matches("trellis: reloaded").count(), 4);
}

/// A service whose `/fixed` answers `status` (and everything else 404).
fn fixed_config(port: u16, status: u16) -> String {
    Config::new()
        .service(Service::new("svc").listener(Listener::http(port).rule(
            "fixed",
            5,
            path_prefix("/fixed"),
            fixed_response(status),
        )))
        .yaml()
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_signal_mode_reloads_on_sighup_only() {
    let port = free_port();
    let t = Trellis::start(&fixed_config(port, 201), &["--reload", "signal"]);
    let client = http1_client();
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 201);

    // An edit alone changes nothing, however long it settles.
    std::fs::write(t.config_path(), fixed_config(port, 202)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 201);
    assert!(!t.stderr().contains("trellis: reloaded"), "{}", t.stderr());

    // SIGHUP applies it at once.
    let sent = Instant::now();
    t.signal("HUP");
    t.wait_for_stderr(Duration::from_secs(5), "the SIGHUP reload", |e| {
        e.contains("trellis: reloaded")
    });
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "the SIGHUP reload took {:?}",
        sent.elapsed()
    );
    assert!(t.stderr().contains("SIGHUP received"), "{}", t.stderr());
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 202);

    // A file that does not validate is refused on SIGHUP too.
    let mark = t.stderr().len();
    std::fs::write(t.config_path(), "services: [{name: svc, bogusKey: 1}]\n").unwrap();
    t.signal("HUP");
    t.wait_for_stderr(Duration::from_secs(5), "the refused SIGHUP reload", |e| {
        e[mark..].contains("still serving the previous config")
    });
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_off_ignores_edits_and_sighup() {
    let port = free_port();
    let mut t = Trellis::start(&fixed_config(port, 201), &["--reload=off"]);
    let client = http1_client();
    std::fs::write(t.config_path(), fixed_config(port, 202)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.signal("HUP");
    t.wait_for_stderr(Duration::from_secs(5), "the ignored SIGHUP", |e| {
        e.contains("SIGHUP received; ignored, as reloading is off")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 201);
    assert!(!t.stderr().contains("trellis: reloaded"), "{}", t.stderr());
    // SIGHUP did not stop it (its default action is to exit).
    assert_eq!(t.wait(Duration::from_millis(100)), None, "{}", t.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_watch_mode_reloads_a_renamed_file_and_on_sighup() {
    let port = free_port();
    let t = Trellis::start(&fixed_config(port, 201), &[]);
    let client = http1_client();
    // SIGHUP with an unchanged file reloads it (the default mode listens too).
    t.signal("HUP");
    t.wait_for_stderr(Duration::from_secs(5), "the SIGHUP reload", |e| {
        e.contains("trellis: reloaded")
    });
    // The README's way to replace a config: a temporary file in the same directory, renamed.
    let tmp = t.dir.join("trellis.yaml.tmp");
    std::fs::write(&tmp, fixed_config(port, 202)).unwrap();
    std::fs::rename(&tmp, t.config_path()).unwrap();
    t.wait_for_stderr(Duration::from_secs(10), "the renamed file's reload", |e| {
        e.matches("trellis: reloaded").count() == 2
    });
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 202);
}
