//! IAM auth for Trellis, as VPC Lattice does it: who signed a request (SigV4 and SigV4A
//! verification against the configured local identities) and whether an auth policy lets that
//! caller invoke a service. It also signs (SigV4, [`sigv4::sign()`]) as one of those identities,
//! for the web console's "send a request" form.
//!
//! This crate depends on no other Trellis crate: the config crate uses it to validate
//! `authPolicy` and `identities` when a config loads, and the router calls it in the
//! authenticate and authorize phases of a request. It is the part a security reviewer reads
//! first, so it never panics on any input and compares secrets in constant time.

#![forbid(unsafe_code)]

pub mod identity;
pub mod policy;
pub mod sigv4;
#[cfg(test)]
mod test_rng;

pub use identity::{Caller, Identity, PrincipalType};
pub use policy::{Decision, Denied, Layer, Policy, PolicyError, authorize};
pub use sigv4::{SignatureError, SignedRequest, Verifier};
