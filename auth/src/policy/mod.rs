//! The IAM auth-policy language: parse, validate, evaluate. (Being written.)
