//! trellis-export: the effective configuration (the file layered with the API store, as the
//! config crate validated it) written out again — as a Trellis YAML file that `trellis up`
//! serves identically, or as a CloudFormation template of `AWS::VpcLattice::*` resources, the
//! way to take a local setup to AWS.

#![forbid(unsafe_code)]
