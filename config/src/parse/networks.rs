//! `serviceNetworks`: which services and VPCs each network associates, its auth and access
//! logs.

use super::Ctx;
use super::checks::{Named, named, resolve};
use super::section::{Item, NameRule, NameSyntax, Section};
use crate::decode::{Fields, item, list, string};
use crate::model::*;

const NETWORKS: Section = Section {
    key: "serviceNetworks",
    keys: &[
        "name",
        "authType",
        "authPolicy",
        "services",
        "vpcs",
        "accessLogs",
    ],
    required: None,
    name: NameRule {
        what: "service network name",
        syntax: NameSyntax::Lattice {
            min: 3,
            max: 63,
            reserved_prefix: None,
        },
    },
};

impl Ctx<'_> {
    pub(super) fn service_networks(
        &mut self,
        top: &Fields<'_>,
        services: &[Service],
        vpcs: &[Vpc],
    ) -> Vec<ServiceNetwork> {
        let services = named(services, |x| (&x.name, &x.id, &x.arn));
        let vpcs = named(vpcs, |x| (&x.name, &x.id, &x.arn));
        self.section(top, &NETWORKS, |ctx, item| {
            ctx.service_network(item, &services, &vpcs)
        })
    }

    fn service_network(
        &mut self,
        Item { f, at, name }: Item<'_>,
        svc_named: &[Named<'_>],
        vpc_named: &[Named<'_>],
    ) -> ServiceNetwork {
        let id = format!("sn-{}", self.id("servicenetwork", &name));
        let arn = self.arn(&format!("servicenetwork/{id}"));
        let auth_type = self.auth_type(&f);
        let auth_policy = self.auth_policy(&f);
        let mut refs = |key: &str, what: &str, named: &[Named<'_>]| -> Vec<usize> {
            let rloc = f.loc(key);
            let mut found = Vec::new();
            for (j, n) in list(self.problems, f.get(key), &rloc).iter().enumerate() {
                let iloc = item(&rloc, j, n);
                if let Some(idx) = string(self.problems, n, &iloc)
                    .and_then(|t| resolve(self.problems, &t, &iloc, what, named))
                {
                    if found.contains(&idx) {
                        self.problems.add(
                            &iloc,
                            format!("{what} \"{}\" is listed twice", named[idx].name),
                            None,
                        );
                    } else {
                        found.push(idx);
                    }
                }
            }
            found
        };
        let services = refs("services", "service", svc_named);
        let vpcs = refs("vpcs", "VPC", vpc_named);
        let access_logs = self.access_logs(&f);
        ServiceNetwork {
            name,
            id,
            arn,
            auth_type,
            auth_policy,
            services,
            vpcs,
            access_logs,
            at,
        }
    }
}
