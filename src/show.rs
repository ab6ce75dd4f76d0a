//! The read-only commands: `validate`, `services`, `routes`.

use std::path::Path;

use trellis_config::{
    Action, Config, HeaderMatchKind, HttpMatch, PathMatchKind, Service, TargetGroupType,
};

use crate::{EXIT_BAD_CONFIG, load_config, log};

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

pub fn services(file: &Path) -> u8 {
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
    }
    0
}

fn auth(svc: &Service) -> &'static str {
    match svc.auth_type {
        trellis_config::AuthType::None => "NONE",
        trellis_config::AuthType::AwsIam => "AWS_IAM",
    }
}

pub fn routes(file: &Path, service: &str) -> u8 {
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
    for l in &svc.listeners {
        println!("  listener {} {}:{}", l.name, l.protocol.as_str(), l.port);
        for r in &l.rules {
            println!(
                "    rule {} (priority {}): {}",
                r.name,
                r.priority,
                describe_match(&r.http_match)
            );
            print_action(&config, &r.action, "      ");
        }
        println!("    default:");
        print_action(&config, &l.default_action, "      ");
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

fn print_action(config: &Config, action: &Action, indent: &str) {
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
                    if tg.kind == TargetGroupType::Lambda {
                        println!("{indent}      function {}", t.id);
                    } else {
                        println!("{indent}      {}:{}", t.id, t.port);
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
