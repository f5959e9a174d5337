//! The CNI wire format: configurations, results, arguments and versions.
//! Pure data and conversions, no I/O.

pub mod args;
pub mod config;
pub mod result;
pub mod validate;
pub mod version;

pub use args::CniArgs;
pub use config::{Attachment, NetConf, NetConfList};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{Version, SUPPORTED};
