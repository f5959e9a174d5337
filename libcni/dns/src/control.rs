//! The control socket's protocol: one JSON request per line, one JSON
//! reply per line. Plugins are its only clients (the socket is root-only),
//! and every request is idempotent, so a plugin can always retry.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::RecordKey;

/// Longest request line the daemon reads; a record key is far shorter.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Is the daemon alive?
    Ping,
    /// (Re)read this record's file and serve it (open its listener).
    Add { key: RecordKey },
    /// Forget this record and close its listener if it was the last
    /// record of its namespace. The file is already gone.
    Del { key: RecordKey },
    /// For CHECK: what the daemon answers for the record's first name
    /// from inside the record's own namespace, and whether it listens there.
    Check { key: RecordKey },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Check: whether a listener is open in the record's namespace.
    #[serde(default)]
    pub serving: bool,
    /// Check: the addresses answered for the record's first name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply {
            ok: true,
            ..Default::default()
        }
    }

    pub fn error(msg: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(msg.into()),
            ..Default::default()
        }
    }
}

/// Send one request and wait (at most `timeout`) for its reply.
/// A refused or missing socket is `NotFound`/`ConnectionRefused`: the
/// daemon is not running.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> io::Result<Reply> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(&stream).take(MAX_LINE as u64);
    let mut buf = String::new();
    if reader.read_line(&mut buf)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "daemon closed the connection without a reply",
        ));
    }
    serde_json::from_str(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_lines() {
        let k = RecordKey {
            network: "n".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
        };
        let s = serde_json::to_string(&Request::Add { key: k.clone() }).unwrap();
        assert_eq!(
            s,
            r#"{"op":"add","key":{"network":"n","containerID":"c","ifname":"eth0"}}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"ping"}"#).unwrap(),
            Request::Ping
        );
    }
}
