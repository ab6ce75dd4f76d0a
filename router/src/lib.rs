//! trellis-router: the data plane. Listeners accept connections, and each request goes through
//! the phases of `handler::handle` against an immutable [`RoutingTable`] that can be swapped
//! atomically. The router only knows [`Target`]s; what runs behind them is the invokers' job.

#![forbid(unsafe_code)]

pub mod accept;
pub mod accesslog;
mod body;
pub mod handler;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod path;
pub mod rescue;
pub mod server;
pub mod table;
pub mod target;
pub mod tls;

pub use table::{MakeError, RoutingTable, TargetFactory};
pub use target::Target;
