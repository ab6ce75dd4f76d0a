//! trellis-invokers: the compute backends behind target groups. Each backend turns a registered
//! target into a router [`Target`](trellis_router::Target):
//!
//! - INSTANCE, IP and ALB targets: an HTTP(S) proxy with pooled keep-alive connections
//!   ([`http::HttpTarget`]).
//! - LAMBDA targets (wasm, process and container functions) come with the function runtime.

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use trellis_config::{
    ProtocolVersion, Target as TargetConfig, TargetGroup, TargetGroupType, TargetProtocol,
};
use trellis_router::{Target, TargetFactory};

use crate::http::{HttpClients, HttpTarget, HttpTargetError, UpstreamVersion};

/// Builds targets for the routing table, sharing connection pools between them.
pub struct Invokers {
    http: HttpClients,
    /// How long an HTTP target may take to send its response head.
    target_timeout: Duration,
}

impl Invokers {
    pub fn new(target_timeout: Duration) -> Result<Invokers, HttpTargetError> {
        Ok(Invokers {
            http: HttpClients::new()?,
            target_timeout,
        })
    }
}

impl TargetFactory for Invokers {
    fn make(&self, group: &TargetGroup, target: &TargetConfig) -> Result<Arc<dyn Target>, String> {
        match group.kind {
            TargetGroupType::Instance | TargetGroupType::Ip | TargetGroupType::Alb => {
                let version = match group.protocol_version {
                    ProtocolVersion::Http1 => UpstreamVersion::Http1,
                    ProtocolVersion::Http2 | ProtocolVersion::Grpc => UpstreamVersion::Http2,
                };
                let tls = group.protocol == TargetProtocol::Https;
                HttpTarget::new(
                    &self.http,
                    &target.id,
                    target.port,
                    tls,
                    version,
                    self.target_timeout,
                )
                .map(|t| Arc::new(t) as Arc<dyn Target>)
                .map_err(|e| e.to_string())
            }
            TargetGroupType::Lambda => Err(format!(
                "function \"{}\" cannot run: this version of Trellis has no function runtime yet \
                 (LAMBDA target groups validate, but only INSTANCE, IP and ALB targets are served)",
                target.id
            )),
        }
    }
}
