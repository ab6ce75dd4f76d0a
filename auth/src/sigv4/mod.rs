//! SigV4 and SigV4A request verification. (Being written.)
