//! The read-only commands: `validate`, `services`, `routes`.

use std::collections::HashMap;
use std::path::Path;

use trellis_config::{
    Action, Config, HeaderMatchKind, HttpMatch, PathMatchKind, Service, TargetGroupType,
};

use crate::{EXIT_BAD_CONFIG, load_config, log};

/// Where `services` and `routes` look for a running Trellis to show live health.
#[derive(clap::Args)]
pub struct LiveArg {
    /// The admin address of a running Trellis to read live target health from (its console's
    /// JSON, `/ui/api/services/NAME`); when nothing answers there within a moment, only the
    /// file is shown. "off" to show only the file.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    admin: crate::admin::AdminAddr,
}

/// How long `services` and `routes` wait for a running Trellis: a command-line tool must not
/// hang on an address where nothing (or something else) listens.
const LIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The live health of one service's targets from a running Trellis: (target group, target id,
/// port) → (status, reason). `None` when none answers (or it does not serve this service).
fn live_health(live: &LiveArg, service: &str) -> Option<(String, Health)> {
    let crate::admin::AdminAddr::At(addr) = live.admin else {
        return None;
    };
    let path = format!("/ui/api/services/{}", percent_encode(service));
    let body = http_get(addr, &path)?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    let mut out = HashMap::new();
    for l in json.get("listeners")?.as_array()? {
        let actions = l
            .get("rules")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("action"))
            .chain(l.get("defaultAction"));
        for action in actions {
            for g in action
                .get("forward")
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
            {
                let group = g
                    .get("targetGroup")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                for t in g
                    .get("targets")
                    .and_then(|t| t.as_array())
                    .into_iter()
                    .flatten()
                {
                    let text = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                    out.insert(
                        (
                            group.to_owned(),
                            text("id").unwrap_or_default(),
                            t.get("port").and_then(|p| p.as_u64()).unwrap_or(0),
                        ),
                        (text("status").unwrap_or_default(), text("reasonCode")),
                    );
                }
            }
        }
    }
    Some((format!("http://{addr}"), out))
}

/// One GET over HTTP/1.0 with [`LIVE_TIMEOUT`] on every step; the body of a 200 answer.
fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, LIVE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(LIVE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(LIVE_TIMEOUT)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    // Bounded: a service's routing is a few kilobytes; 4 MiB is far beyond any config.
    stream.take(4 << 20).read_to_end(&mut answer).ok()?;
    let text = String::from_utf8(answer).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn validate(file: &Path) -> u8 {
    let config = match load_config(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listeners: usize = config.services.iter().map(|s| s.listeners.len()).sum();
    let rules: usize = config
        .services
        .iter()
        .flat_map(|s| &s.listeners)
        .map(|l| l.rules.len())
        .sum();
    let targets: usize = config.target_groups.iter().map(|t| t.targets.len()).sum();
    println!(
        "{}: valid: {} service{}, {} listener{}, {} rule{}, {} target group{} ({} target{}), {} service network{}, {} VPC{}, {} function{}",
        file.display(),
        config.services.len(),
        plural(config.services.len()),
        listeners,
        plural(listeners),
        rules,
        plural(rules),
        config.target_groups.len(),
        plural(config.target_groups.len()),
        targets,
        plural(targets),
        config.service_networks.len(),
        plural(config.service_networks.len()),
        config.vpcs.len(),
        plural(config.vpcs.len()),
        config.functions.len(),
        plural(config.functions.len()),
    );
    0
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn services(file: &Path, live: &LiveArg) -> u8 {
    let config = match load_config(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.services.is_empty() {
        println!("no services in {}", file.display());
    }
    for svc in &config.services {
        let networks: Vec<&str> = config
            .service_networks
            .iter()
            .enumerate()
            .filter(|(_, sn)| {
                sn.services
                    .iter()
                    .any(|&i| config.services[i].name == svc.name)
            })
            .map(|(_, sn)| sn.name.as_str())
            .collect();
        println!("{}  ({}, auth {})", svc.name, svc.id, auth(svc));
        println!("  dns name:   {}", svc.dns_name);
        println!("  also:       {}.trellis.localhost", svc.name);
        if let Some(d) = &svc.custom_domain_name {
            println!("  custom:     {d}");
        }
        let listeners: Vec<String> = svc
            .listeners
            .iter()
            .map(|l| format!("{} {}:{}", l.name, l.protocol.as_str(), l.port))
            .collect();
        println!("  listeners:  {}", listeners.join(", "));
        if config.service_networks.is_empty() {
            println!("  networks:   (none configured: every client may reach every service)");
        } else if networks.is_empty() {
            println!("  networks:   (none: no client can reach this service)");
        } else {
            println!("  networks:   {}", networks.join(", "));
        }
        if let Some((at, health)) = live_health(live, &svc.name) {
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            let mut seen = std::collections::HashSet::new();
            for (key, (status, _)) in &health {
                if seen.insert((&key.1, key.2, &key.0)) {
                    *counts.entry(status.as_str()).or_default() += 1;
                }
            }
            let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            println!(
                "  targets:    {} (live from {at})",
                if counts.is_empty() {
                    "none".to_owned()
                } else {
                    counts.join(", ")
                }
            );
        }
    }
    0
}

fn auth(svc: &Service) -> &'static str {
    match svc.auth_type {
        trellis_config::AuthType::None => "NONE",
        trellis_config::AuthType::AwsIam => "AWS_IAM",
    }
}

pub fn routes(file: &Path, service: &str, live: &LiveArg) -> u8 {
    let config = match load_config(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(svc) = config
        .services
        .iter()
        .find(|s| s.name == service || s.id == service || s.arn == service)
    else {
        let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        log::error(&anyhow::anyhow!(
            "no service \"{service}\" in {}; {}services: {}",
            file.display(),
            crate::suggestion(service, &names),
            names.join(", ")
        ));
        return EXIT_BAD_CONFIG;
    };
    println!("service {} ({})", svc.name, svc.dns_name);
    let health = live_health(live, &svc.name);
    if let Some((at, _)) = &health {
        println!("  (target health live from the Trellis at {at})");
    }
    let health = health.map(|(_, h)| h);
    for l in &svc.listeners {
        println!("  listener {} {}:{}", l.name, l.protocol.as_str(), l.port);
        for r in &l.rules {
            println!(
                "    rule {} (priority {}): {}",
                r.name,
                r.priority,
                describe_match(&r.http_match)
            );
            print_action(&config, &r.action, "      ", health.as_ref());
        }
        println!("    default:");
        print_action(&config, &l.default_action, "      ", health.as_ref());
    }
    0
}

fn describe_match(m: &HttpMatch) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    if let Some(p) = &m.path_match {
        let kind = match p.kind {
            PathMatchKind::Exact => "exact",
            PathMatchKind::Prefix => "prefix",
        };
        let case = if p.case_sensitive {
            ", case-sensitive"
        } else {
            ""
        };
        parts.push(format!("path {kind} {}{case}", p.value));
    }
    for h in &m.header_matches {
        let kind = match h.kind {
            HeaderMatchKind::Exact => "=",
            HeaderMatchKind::Prefix => "starts with",
            HeaderMatchKind::Contains => "contains",
        };
        let case = if h.case_sensitive {
            " (case-sensitive)"
        } else {
            ""
        };
        parts.push(format!("header {} {kind} {:?}{case}", h.name, h.value));
    }
    if parts.is_empty() {
        "any request".into()
    } else {
        parts.join(" and ")
    }
}

/// Live health by (target group, target id, port), when a running Trellis answered.
type Health = HashMap<(String, String, u64), (String, Option<String>)>;

fn print_action(config: &Config, action: &Action, indent: &str, health: Option<&Health>) {
    match action {
        Action::FixedResponse { status_code } => println!("{indent}→ fixed response {status_code}"),
        Action::Forward(groups) => {
            let total: u32 = groups.iter().map(|g| u32::from(g.weight)).sum();
            for w in groups {
                let tg = &config.target_groups[w.target_group];
                let share = if total == 0 {
                    0.0
                } else {
                    100.0 * f64::from(w.weight) / f64::from(total)
                };
                let how = match tg.kind {
                    TargetGroupType::Lambda => {
                        format!("LAMBDA {:?}", tg.lambda_event_structure_version)
                    }
                    kind => format!(
                        "{} {}:{} {}",
                        kind.as_str(),
                        tg.protocol.as_str(),
                        tg.port,
                        tg.protocol_version.as_str()
                    ),
                };
                println!(
                    "{indent}→ {share:5.1}% {} (weight {}, {how})",
                    tg.name, w.weight
                );
                for t in &tg.targets {
                    let live = health
                        .and_then(|h| h.get(&(tg.name.clone(), t.id.clone(), u64::from(t.port))))
                        .map(|(status, reason)| match reason {
                            Some(r) => format!("  {status} ({r})"),
                            None => format!("  {status}"),
                        })
                        .unwrap_or_default();
                    if tg.kind == TargetGroupType::Lambda {
                        println!("{indent}      function {}{live}", t.id);
                    } else {
                        println!("{indent}      {}:{}{live}", t.id, t.port);
                    }
                }
                if tg.health_check.enabled {
                    let hc = &tg.health_check;
                    println!(
                        "{indent}      health check {} {} every {}s (healthy {}, unhealthy {}, matcher {})",
                        hc.protocol.as_str(),
                        hc.path,
                        hc.interval_seconds,
                        hc.healthy_threshold,
                        hc.unhealthy_threshold,
                        hc.matcher_text()
                    );
                }
            }
        }
    }
}
