//! The runtime side, like Go's libcni: load network configs, run plugin
//! chains, keep the result cache.

pub mod cache;
pub mod conf;
