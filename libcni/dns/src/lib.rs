//! Service discovery's shared ground. The `dnsname` plugin (one-shot,
//! synchronous) writes a container's names as a [`record::Record`] file and
//! asks the per-host daemon over its [`control`] socket to serve them; the
//! daemon reads the same files at start, so a killed daemon loses nothing.
//! Both find every file through [`paths::StateDir`].

pub mod cluster;
pub mod control;
pub mod names;
pub mod paths;
pub mod record;
pub mod start;

pub use paths::StateDir;
pub use record::{Record, RecordKey, RecordStore};
