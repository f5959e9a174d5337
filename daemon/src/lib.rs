//! The suite's one long-running process per host. Its first job is name
//! resolution for containers ([`dns`]): it serves the records that the
//! `dnsname` plugin writes ([`records`]) at 127.0.0.11 inside each
//! container's namespace ([`listeners`]), and takes orders from plugins on
//! a Unix socket ([`control`]). It owns nothing a plugin cannot rebuild:
//! the record files are the truth, so a `kill -9` is healed by the next
//! plugin call that starts it again. Its second job is cluster scope
//! ([`cluster`]): the host's membership in the etcd store, kept alive and
//! watched, and the allocation and publication requests of the cluster
//! plugins.

pub mod cluster;
pub mod control;
pub mod dns;
pub mod listeners;
pub mod log;
pub mod records;
pub mod service;
