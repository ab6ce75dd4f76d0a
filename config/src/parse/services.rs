//! `services`: each service's names, auth, access logs, tags and listeners. A listener's rules and
//! actions are in [`super::rules`].

use std::collections::HashMap;

use super::Ctx;
use super::checks::{Named, check_host_names, named};
use super::section::{Item, NameRule, NameSyntax, Section};
use crate::decode::{Fields, Loc, fields, one_of, string};
use crate::ids::service_dns_name;
use crate::model::*;
use crate::yaml::Node;

const SERVICES: Section = Section {
    key: "services",
    keys: &[
        "name",
        "customDomainName",
        "authType",
        "authPolicy",
        "idleTimeoutSeconds",
        "accessLogs",
        "tags",
        "listeners",
    ],
    required: None,
    name: NameRule {
        what: "service name",
        syntax: NameSyntax::Lattice {
            min: 3,
            max: 40,
            reserved_prefix: Some("svc-"),
        },
    },
};

const LISTENERS: Section = Section {
    key: "listeners",
    keys: &["name", "protocol", "port", "tls", "defaultAction", "rules"],
    required: Some(
        "a service needs at least one listener, e.g. {name: http, protocol: HTTP, port: 8080, defaultAction: ...}",
    ),
    name: NameRule {
        what: "listener name",
        syntax: NameSyntax::Lattice {
            min: 3,
            max: 63,
            reserved_prefix: Some("listener-"),
        },
    },
};

const DEFAULT_ACTION_HINT: &str = "what to do when no rule matches, e.g. {forward: {targetGroups: [{targetGroupIdentifier: my-tg}]}} or {fixedResponse: {statusCode: 404}}";

impl Ctx<'_> {
    pub(super) fn services(&mut self, top: &Fields<'_>, tgs: &[TargetGroup]) -> Vec<Service> {
        let named = named(tgs, |x| (&x.name, &x.id, &x.arn));
        // Where each service's custom domain is written, in the order of the services, for
        // the host-name clashes checked once every service is known.
        let mut domain_at = Vec::new();
        let services = self.section(top, &SERVICES, |ctx, item| {
            domain_at.push(item.f.loc("customDomainName"));
            ctx.service(item, &named)
        });
        check_host_names(self.problems, &services, &domain_at);
        services
    }

    fn service(&mut self, Item { f, at, name }: Item<'_>, tgs: &[Named<'_>]) -> Service {
        let id17 = self.id("service", &name);
        let id = format!("svc-{id17}");
        let arn = self.arn(&format!("service/{id}"));
        let dns_name = service_dns_name(&name, &id17, &self.region);
        let custom_domain_name = self.str_field(&f, "customDomainName");
        if let Some(d) = custom_domain_name.as_ref().filter(|d| d.contains('*')) {
            // Lattice has wildcards only in certificates' names, never in a custom domain:
            // a request must name one service.
            self.problems.add(
                &f.loc("customDomainName"),
                format!("\"{d}\" is a wildcard; a custom domain names exactly one host"),
                Some("give the service one name such as parking.example.com; a *.example.com name belongs in the certificate of an HTTPS listener (tls.certificate), which then serves every service under example.com".into()),
            );
        } else if let Some(d) = &custom_domain_name {
            let ok = (3..=255).contains(&d.len())
                && d.split('.').count() >= 2
                && d.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                self.problems.add(
                    &f.loc("customDomainName"),
                    format!("\"{d}\" is not a domain name"),
                    Some("a custom domain is a DNS name such as parking.example.com".into()),
                );
            }
        }
        let auth_type = self.auth_type(&f);
        let auth_policy = self.auth_policy(&f);
        let idle_timeout_seconds = self
            .int_field(&f, "idleTimeoutSeconds", 60, 600, "idleTimeoutSeconds")
            .unwrap_or(60) as u32;
        let access_logs = self.access_logs(&f);
        let tags = self.tags(&f);
        let listeners = self.listeners(&f, &arn, tgs);
        Service {
            name,
            id,
            arn,
            dns_name,
            custom_domain_name,
            auth_type,
            auth_policy,
            idle_timeout_seconds,
            access_logs,
            tags,
            listeners,
            at,
        }
    }

    fn listeners(
        &mut self,
        svc: &Fields<'_>,
        service_arn: &str,
        tgs: &[Named<'_>],
    ) -> Vec<Listener> {
        let out = self.section(svc, &LISTENERS, |ctx, item| {
            ctx.listener(item, service_arn, tgs)
        });
        let mut by_port: HashMap<u16, &Listener> = HashMap::new();
        for l in &out {
            if let Some(first) = by_port.get(&l.port) {
                self.problems.add(
                    &l.at,
                    format!(
                        "port {} is already used by listener \"{}\" of this service",
                        l.port, first.name
                    ),
                    Some("each listener of a service needs its own port".into()),
                );
            } else {
                by_port.insert(l.port, l);
            }
        }
        out
    }

    fn listener(
        &mut self,
        Item { f, at, name }: Item<'_>,
        service_arn: &str,
        tgs: &[Named<'_>],
    ) -> Listener {
        let protocol = match f
            .require(self.problems, "protocol", "HTTP or HTTPS")
            .and_then(|n| {
                one_of(
                    self.problems,
                    n,
                    &f.loc("protocol"),
                    &["HTTP", "HTTPS", "TLS_PASSTHROUGH"],
                )
            })
            .as_deref()
        {
            Some("HTTPS") => ListenerProtocol::Https,
            Some("TLS_PASSTHROUGH") => {
                self.problems.add(
                    &f.loc("protocol"),
                    "TLS_PASSTHROUGH listeners are not supported by Trellis yet",
                    Some("use HTTP or HTTPS".into()),
                );
                ListenerProtocol::Http
            }
            _ => ListenerProtocol::Http,
        };
        let port = self
            .int_field(&f, "port", 1, 65535, "a listener port")
            .map(|p| p as u16)
            .unwrap_or(if protocol == ListenerProtocol::Https {
                443
            } else {
                80
            });
        let tls = f.get("tls").and_then(|n| self.tls(n, &f.loc("tls")));
        if tls.is_some() && protocol != ListenerProtocol::Https {
            self.problems
                .add(&f.loc("tls"), "\"tls\" is only for HTTPS listeners", None);
        }
        let id = format!(
            "listener-{}",
            self.id("listener", &format!("{service_arn}/{name}"))
        );
        let arn = format!("{service_arn}/listener/{id}");
        let default_action = f
            .require(self.problems, "defaultAction", DEFAULT_ACTION_HINT)
            .and_then(|n| self.action(n, &f.loc("defaultAction"), tgs))
            .unwrap_or(Action::FixedResponse { status_code: 404 });
        let rules = self.rules(&f, &arn, tgs);
        Listener {
            name,
            id,
            arn,
            protocol,
            port,
            tls,
            default_action,
            rules,
            at,
        }
    }

    fn tls(&mut self, node: &Node, loc: &Loc) -> Option<TlsFiles> {
        let f = fields(self.problems, node, loc, &["certificate", "key"])?;
        let certificate = f
            .require(self.problems, "certificate", "a PEM certificate chain file")
            .and_then(|n| string(self.problems, n, &f.loc("certificate")));
        let key = f
            .require(self.problems, "key", "a PEM private key file")
            .and_then(|n| string(self.problems, n, &f.loc("key")));
        Some(TlsFiles {
            certificate: certificate?.into(),
            key: key?.into(),
        })
    }
}
