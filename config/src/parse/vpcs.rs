//! `vpcs`: the client networks; a request's source address picks its VPC.

use std::net::IpAddr;

use super::Ctx;
use super::section::{Item, NameRule, NameSyntax, Section};
use crate::decode::{Fields, item, list, string};
use crate::model::*;

const VPCS: Section = Section {
    key: "vpcs",
    keys: &["name", "cidrs"],
    required: None,
    name: NameRule {
        what: "VPC name",
        syntax: NameSyntax::Lattice {
            min: 1,
            max: 63,
            reserved_prefix: Some("vpc-"),
        },
    },
};

impl Ctx<'_> {
    pub(super) fn vpcs(&mut self, top: &Fields<'_>) -> Vec<Vpc> {
        self.section(top, &VPCS, Self::vpc)
    }

    fn vpc(&mut self, Item { f, at, name }: Item<'_>) -> Vpc {
        let cidrs_loc = f.loc("cidrs");
        let mut cidrs = Vec::new();
        let required = f.require(
            self.problems,
            "cidrs",
            "the address blocks of the VPC's clients, e.g. [127.0.0.0/8]",
        );
        let items = list(self.problems, required, &cidrs_loc);
        for (j, c) in items.iter().enumerate() {
            let cloc = item(&cidrs_loc, j, c);
            if let Some(text) = string(self.problems, c, &cloc) {
                match parse_cidr(&text) {
                    Some(cidr) => cidrs.push(cidr),
                    None => self.problems.add(&cloc, format!("\"{text}\" is not a CIDR block"), Some("write an address and a prefix length, e.g. 10.0.0.0/16 or \"::1/128\" (quote IPv6 blocks)".into())),
                }
            }
        }
        let id = format!("vpc-{}", self.id("vpc", &name));
        let arn = format!("arn:aws:ec2:{}:{}:vpc/{id}", self.region, self.account_id);
        Vpc {
            name,
            id,
            arn,
            cidrs,
            at,
        }
    }
}

/// `10.0.0.0/16`, `::1/128`, or a bare address (a /32 or /128).
pub fn parse_cidr(text: &str) -> Option<Cidr> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(Cidr { addr, prefix })
}
