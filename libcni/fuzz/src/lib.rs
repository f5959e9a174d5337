//! The plugins' parsers of untrusted input, compiled into the fuzzers.
//! host-local and bridge are binary crates: their config and store
//! modules are included here by path (they depend only on libcni and
//! each other), so the fuzzers test exactly the code the binaries run.

#![allow(dead_code, unused_imports, clippy::all)]

#[path = "../../../ipam/host-local/src/config.rs"]
pub mod config;
#[path = "../../../ipam/host-local/src/dns.rs"]
pub mod dns;
#[path = "../../../ipam/host-local/src/range.rs"]
pub mod range;
#[path = "../../../ipam/host-local/src/store/mod.rs"]
pub mod store;

#[path = "../../../plugins/bridge/src/config.rs"]
pub mod bridge_config;

/// host-local's config parser under its plugin's name.
pub mod host_local {
    pub use crate::config::IpamConfig;
    pub use crate::store::disk::parse_last_reserved;
    pub use crate::store::index::parse_bucket;
    pub use crate::store::LeaseOwner;
}

/// Split fuzz input into `n` fields at the first `n - 1` NUL bytes (the
/// last field takes the rest).
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}
