//! The CNI wire format: configurations, results, arguments, versions, the
//! verbs and the error codes. Pure data and conversions, no I/O: every
//! other crate of the suite builds on it.

pub mod args;
pub mod command;
pub mod config;
pub mod error;
pub mod result;
pub mod validate;
pub mod version;

pub use args::CniArgs;
pub use command::Command;
pub use config::{Attachment, NetConf, NetConfList};
pub use error::{Error, ErrorList, Result};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{Version, SUPPORTED};
