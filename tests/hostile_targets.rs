//! Targets that fail under a client's feet: a target that refuses connections costs one retry,
//! not a stream of 502s (passive ejection), and the access log says what happened.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const HOST: &str = "svc.trellis.localhost";

/// A port nothing listens on: connections to it are refused.
fn dead_port() -> u16 {
    free_port()
}

fn records(t: &Trellis) -> Vec<Value> {
    t.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The access records once `n` have arrived (each goes through a writer thread and a pipe
/// after its response), and 200 ms more for any extra one; fewer if 5 s pass first.
async fn records_after(t: &Trellis, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while records(t).len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    records(t)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_refuses_connections_costs_one_retry_not_a_stream_of_502s() {
    let backend = Backend::start("alive").await;
    let (port, dead) = (free_port(), dead_port());
    let config = Config::new()
        .service(
            Service::new("svc")
                .access_log("stdout")
                .listener(Listener::http(port).forward("pair")),
        )
        // Health checks off: nothing but the refused connection tells Trellis the target is gone.
        .target_group(TargetGroup::instance("pair", &[dead, backend.port]).no_health_checks());
    let t = Trellis::start(&config.yaml(), &[]);
    let client = http1_client();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(get(&client, port, HOST, "/").await.status);
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::Relaxed), 40);

    // One request met the dead target, and says so; the rest never went there.
    let records = records_after(&t, 40).await;
    assert_eq!(records.len(), 40, "{}", t.stdout());
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["refusedByTargetIpPort"] != "-")
        .collect();
    assert_eq!(refused.len(), 1, "{}", t.stdout());
    assert_eq!(
        refused[0]["refusedByTargetIpPort"],
        format!("127.0.0.1:{dead}")
    );
    assert_eq!(
        refused[0]["targetIpPort"],
        format!("127.0.0.1:{}", backend.port)
    );
    assert_eq!(refused[0]["responseCode"], 200);
    assert!(
        t.stderr()
            .contains(&format!("127.0.0.1:{dead}: connection refused")),
        "{}",
        t.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_target_refuses_the_client_gets_one_502_per_request_after_one_retry() {
    let (port, dead_a, dead_b) = (free_port(), dead_port(), dead_port());
    let config = Config::new()
        .service(
            Service::new("svc")
                .access_log("stdout")
                .listener(Listener::http(port).forward("dead")),
        )
        .target_group(TargetGroup::instance("dead", &[dead_a, dead_b]).no_health_checks());
    let t = Trellis::start(&config.yaml(), &[]);
    let client = http1_client();
    for _ in 0..4 {
        let answer = get(&client, port, HOST, "/").await;
        assert_eq!(answer.status, 502, "{}", answer.body);
    }
    let records = records_after(&t, 4).await;
    assert_eq!(records.len(), 4, "{}", t.stdout());
    for r in &records {
        assert_eq!(r["failureReason"], "TargetConnectionError", "{r}");
    }
    // The first request tried both (then both were out of rotation: Lattice fails open, so
    // the rest go to one of them, and are not retried on the other, ejected one).
    assert_ne!(records[0]["refusedByTargetIpPort"], "-", "{}", records[0]);
}
