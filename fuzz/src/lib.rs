//! Helpers of the fuzz targets. The parsers under test come from the real
//! crates (`host-local` and `bridge` are library + binary crates), so the
//! fuzzers test exactly the code the binaries run.

/// host-local's parsers of untrusted input.
pub mod host_local {
    pub use host_local::config::IpamConfig;
    pub use host_local::store::disk::parse_last_reserved;
    pub use host_local::store::index::parse_bucket;
    pub use host_local::store::LeaseOwner;
}

/// The bridge plugin's config parser.
pub use bridge::config as bridge_config;

/// Split fuzz input into `n` fields at the first `n - 1` NUL bytes (the
/// last field takes the rest).
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}
