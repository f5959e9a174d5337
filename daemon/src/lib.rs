//! The suite's one long-running process per host. Its first job is name
//! resolution for containers ([`dns`]): it serves the records that the
//! `dnsname` plugin writes ([`records`]) at 127.0.0.11 inside each
//! container's namespace ([`listeners`]), and takes orders from plugins on
//! a Unix socket ([`control`]). It owns nothing a plugin cannot rebuild:
//! the record files are the truth, so a `kill -9` is healed by the next
//! plugin call that starts it again.

pub mod control;
pub mod dns;
pub mod listeners;
pub mod log;
pub mod records;
pub mod service;
