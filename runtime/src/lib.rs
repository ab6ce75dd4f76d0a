//! trellis-runtime: Lambda semantics — the VPC Lattice event codec (V1/V2), Trellis's Lambda
//! Runtime API, and function pools — wrapping functions into router targets.
//!
//! Not built yet: LAMBDA target groups are validated by `trellis-config`, and `trellis up`
//! refuses to start them with a clear message until this crate grows the function runtime.
