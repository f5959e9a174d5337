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
    /// The cluster's requests (cnitool, cluster-ipam, vxlan-overlay).
    #[serde(rename = "cluster")]
    Cluster { req: ClusterRequest },
}

/// What cnitool and the cluster plugins ask of the daemon's cluster
/// watcher; only the daemon talks to etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "camelCase")]
pub enum ClusterRequest {
    /// Read the cluster file and register this host (`init`: create the
    /// cluster, with its grace period; otherwise it must exist).
    Join {
        init: bool,
        #[serde(
            default,
            rename = "gracePeriod",
            skip_serializing_if = "Option::is_none"
        )]
        grace_period: Option<u64>,
    },
    /// `cluster rm HOST`: release a gone host's endpoints and blocks now
    /// (a live one only with `force`).
    Remove { host: String, force: bool },
    /// cluster-ipam STATUS: can this host hand out addresses, and did the
    /// cluster reclaim any of its containers' addresses?
    Status,
    /// Counters for the bench and the scale run: data = {etcdCalls,
    /// watchEvents, rssKb}.
    Stats,
    /// Remove everything of this host from the store (refused while it
    /// holds endpoints unless `force`).
    Leave { force: bool },
    /// `cluster ls`: data = [{host, address, state, endpoints}].
    Hosts,
    /// A free VXLAN ID for `network`, reserved in the store: data = vni.
    Vni { network: String },
    /// Give back a VXLAN ID reserved by `Vni` when the create failed.
    VniRelease { network: String, vni: u32 },
    /// Store a cluster-scope network (create only): every host writes it.
    NetworkPut {
        network: String,
        conflist: serde_json::Value,
    },
    /// Remove a cluster-scope network, refused while endpoints exist.
    NetworkRm { network: String },
    /// cluster-ipam ADD: data = "address/prefix".
    IpamAdd {
        network: String,
        subnet: String,
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    },
    /// cluster-ipam DEL (also unpublishes the endpoint).
    IpamDel {
        network: String,
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    },
    /// cluster-ipam GC: release this host's leases of the network that
    /// belong to none of the `valid` (containerID, ifname) attachments.
    IpamGc {
        network: String,
        valid: Vec<(String, String)>,
    },
    /// cluster-ipam CHECK: the lease is still ours.
    IpamCheck {
        network: String,
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
        ip: IpAddr,
    },
    /// vxlan-overlay ADD: the endpoint's MAC, published for other hosts.
    Publish {
        network: String,
        ip: IpAddr,
        mac: String,
        #[serde(rename = "containerID")]
        container_id: String,
    },
    /// `service create` on a cluster network (cni-cnm's `ClusterSpec`):
    /// answered once every task runs; data = the service.
    ServiceCreate { spec: serde_json::Value },
    /// `service scale NAME=N` (`detach`: answer once the new tasks are
    /// placed, not once they run): data = the service.
    ServiceScale {
        name: String,
        replicas: u64,
        #[serde(default)]
        detach: bool,
    },
    /// `service rm` (from any host): data = the service removed.
    ServiceRm { name: String },
    /// `service ls|inspect`: data = every cluster service.
    ServiceLs,
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
    /// The CNI error code a plugin should report (11: try again later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// A cluster request's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply {
            ok: true,
            ..Default::default()
        }
    }

    pub fn with_data(data: serde_json::Value) -> Self {
        Reply {
            ok: true,
            data: Some(data),
            ..Default::default()
        }
    }

    pub fn error_code(code: u32, msg: impl Into<String>) -> Self {
        Reply {
            code: Some(code),
            ..Reply::error(msg)
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
