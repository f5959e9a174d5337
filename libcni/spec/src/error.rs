//! The one error type of the suite. Every failure a plugin can meet ends up
//! here with a CNI error code, so `skel` can print the spec's error JSON.

use std::fmt;

/// Error codes from the CNI spec's table (plus the two the Go reference
/// uses beyond it, so callers that switch on them keep working).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// The network namespace is invalid (Go reference, not in the spec table).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may be degraded.
    pub const NOT_AVAILABLE_DEGRADED: u32 = 51;
    /// First plugin-specific code.
    pub const PLUGIN_BASE: u32 = 100;
    /// Internal error (Go reference; we use it for caught panics).
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: the code from the spec's table, a short message and
/// optional details for humans. Serialised by `skel` as the spec's error
/// JSON. What code inside the suite decides on (the kernel's errno: "already
/// there", "gone") travels as a typed field and never reaches the wire, so
/// nothing is parsed back out of text, and a delegated plugin's `details`
/// cannot change how its error is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: u32,
    pub msg: String,
    pub details: String,
    /// The OS or kernel errno behind the failure, if there was one.
    pub errno: Option<i32>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
            errno: None,
        }
    }

    /// Attach the errno that caused the failure.
    pub fn with_errno(mut self, errno: i32) -> Self {
        self.errno = Some(errno);
        self
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(code::INCOMPATIBLE_VERSION, msg)
    }
    pub fn unsupported_field(msg: impl Into<String>) -> Self {
        Self::new(code::UNSUPPORTED_FIELD, msg)
    }
    pub fn unknown_container(msg: impl Into<String>) -> Self {
        Self::new(code::UNKNOWN_CONTAINER, msg)
    }
    /// The message must name the variable (the spec requires it).
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, msg)
    }
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(code::IO, msg)
    }
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(code::DECODE, msg)
    }
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, msg)
    }
    pub fn invalid_netns(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_NETNS, msg)
    }
    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(code::TRY_AGAIN, msg)
    }
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::new(code::NOT_AVAILABLE, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(code::INTERNAL, msg)
    }

    /// Prefix the message with what was being done, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// An I/O error with the operation and path it concerns (errno kept).
    pub fn from_io(what: impl fmt::Display, err: std::io::Error) -> Self {
        let e = Self::io(format!("{what}: {err}"));
        match err.raw_os_error() {
            Some(n) => e.with_errno(n),
            None => e,
        }
    }

    /// The spec's error JSON for the given version.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = serde_json::Value::String(self.details.clone());
        }
        v
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let e = Self::io(err.to_string());
        match err.raw_os_error() {
            Some(n) => e.with_errno(n),
            None => e,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(err: nix::Error) -> Self {
        Self::io(err.desc().to_string()).with_errno(err as i32)
    }
}

/// Collects failures of a best-effort teardown (DEL, GC): every step runs,
/// and all failures are reported together at the end.
#[derive(Debug, Default)]
pub struct ErrorList {
    errors: Vec<Error>,
}

impl ErrorList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record the error of one step, if any, and go on.
    pub fn check<T>(&mut self, res: Result<T>) -> Option<T> {
        match res {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, err: Error) {
        self.errors.push(err);
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Ok if no step failed; otherwise one error carrying the first code and
    /// every message.
    pub fn into_result(self) -> Result<()> {
        let mut it = self.errors.into_iter();
        let Some(first) = it.next() else {
            return Ok(());
        };
        let rest: Vec<String> = it.map(|e| e.msg).collect();
        if rest.is_empty() {
            return Err(first);
        }
        let mut msg = first.msg;
        for m in rest {
            msg.push_str("; ");
            msg.push_str(&m);
        }
        Err(Error {
            code: first.code,
            msg,
            details: first.details,
            errno: first.errno,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_omits_empty_details() {
        let e = Error::invalid_env("CNI_IFNAME is missing");
        let v = e.to_json("1.0.0");
        assert_eq!(v["code"], 4);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(v.get("details").is_none());
        let v = e.with_details("x").to_json("1.0.0");
        assert_eq!(v["details"], "x");
    }

    #[test]
    fn error_list_joins_messages_and_keeps_first_code() {
        let mut l = ErrorList::new();
        assert!(l.check(Ok::<_, Error>(1)).is_some());
        l.check::<()>(Err(Error::io("a")));
        l.check::<()>(Err(Error::invalid_config("b")));
        let e = l.into_result().unwrap_err();
        assert_eq!(e.code, code::IO);
        assert_eq!(e.msg, "a; b");
        assert!(ErrorList::new().into_result().is_ok());
    }
}
