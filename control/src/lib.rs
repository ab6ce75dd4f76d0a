//! trellis-control: the VPC Lattice control-plane API (REST-JSON, the shapes of the AWS model
//! in `model/vpc-lattice-service-2.json`) over a durable store, layered on the config file.
//!
//! Two halves meet at [`Operations`]:
//! - the REST layer turns an HTTP request into a [`Call`] (the operation the AWS model routes
//!   it to, and its input members) and an outcome into an HTTP answer (the model's success
//!   code, or an error as AWS sends it: [`ApiError`]);
//! - the operations answer calls from the effective config (the file layered with the store)
//!   and change the store, never the routing table: a change is validated by the config crate
//!   and applied by the binary through the same path a reload takes.

#![forbid(unsafe_code)]

mod error;
mod ops;
mod plane;
pub mod rest;
mod shapes;
pub mod store;
mod terms;
mod time;

pub use ops::OPERATIONS;
pub use plane::{DataPlane, OpenError, Plane, ReloadError, compose_read_only};
pub use shapes::HOSTED_ZONE_ID;

pub use error::{ApiError, FieldError};

use std::future::Future;
use std::pin::Pin;

/// One API call, decoded: the operation's name as the AWS model spells it (`CreateService`)
/// and its input members — URI labels, query-string members and body members merged into one
/// object, keyed by member name, typed as the model says (`maxResults` a number).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub operation: String,
    pub input: serde_json::Map<String, serde_json::Value>,
}

/// The output members of a successful call (the REST layer writes them as the JSON body with
/// the operation's success code).
pub type Outcome = Result<serde_json::Map<String, serde_json::Value>, ApiError>;

/// A boxed future of an [`Outcome`].
pub type Pending<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// What answers calls. The REST layer asks [`Operations::implements`] first: an operation of the
/// model that Trellis does not implement answers an error naming it, without a call.
pub trait Operations: Send + Sync {
    /// The region of the effective config: a signed request's credential scope must name it.
    fn region(&self) -> String;
    /// Whether Trellis implements `operation`.
    fn implements(&self, operation: &str) -> bool;
    /// Answers `call`.
    fn call(&self, call: Call) -> Pending<'_>;
}

#[cfg(test)]
mod tests;
