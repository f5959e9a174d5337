//! Crash-safe state on disk for plugins and runtimes: host-local's leases,
//! the result cache, the CNM registry and the plugins' locks all go through
//! [`Dir`] (no-follow, atomic writes) and [`lock`] (flock, one folder).

mod dir;
pub mod lock;

pub use dir::*;
pub use lock::{FileLock, LockMode};
