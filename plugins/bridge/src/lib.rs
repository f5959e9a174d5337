//! The bridge plugin's configuration parser, as a library so that the
//! fuzzers (`fuzz/`) test exactly the code the plugin binary runs.

pub mod config;
