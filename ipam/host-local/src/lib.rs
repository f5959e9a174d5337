//! host-local's allocation logic and lease store, as a library so that the
//! fuzzers (`fuzz/`) test exactly the parsers the plugin binary runs.

pub mod allocator;
pub mod config;
pub mod dns;
pub mod range;
pub mod store;
