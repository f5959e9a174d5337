//! The host's cluster file: what a host needs to know of its cluster,
//! written by `cnitool cluster init|join`, read by the daemon. Its
//! presence is what makes a host clustered; without it nothing changes.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default location of the cluster file.
pub const DEFAULT_CONF: &str = "/etc/cni/cluster.json";

/// Environment override of the cluster file (tests: one per fake host).
pub const ENV_CONF: &str = "CNI_CLUSTER_CONF";

/// The key prefix of everything we keep in etcd.
pub const PREFIX: &str = "/cni-rs/";

/// Seconds a host's lease lives without a keepalive.
pub const DEFAULT_LEASE_TTL: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConf {
    /// etcd client endpoints, `host:port`.
    pub store: Vec<String>,
    /// This host's underlay address: its VXLAN endpoint.
    pub advertise: IpAddr,
    /// This host's name in the cluster (unique).
    pub host: String,
    /// Where this host's conflists live (the cluster's networks are
    /// written there).
    pub conf_dir: PathBuf,
    #[serde(default = "default_ttl")]
    pub lease_ttl: u64,
    /// TLS to etcd (`https://` stores): the CA that signed etcd's
    /// certificate, and this host's client certificate and key when etcd
    /// asks for one (`--client-cert-auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    pub ca: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

fn default_ttl() -> u64 {
    DEFAULT_LEASE_TTL
}

/// `$CNI_CLUSTER_CONF`, else [`DEFAULT_CONF`].
pub fn conf_path() -> PathBuf {
    std::env::var_os(ENV_CONF)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONF))
}

/// The cluster file, `None` when the host is not clustered.
pub fn load() -> io::Result<Option<ClusterConf>> {
    match std::fs::read(conf_path()) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write the cluster file atomically (0600: it names the store).
pub fn save(conf: &ClusterConf) -> io::Result<()> {
    let path = conf_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(conf).map_err(io::Error::other)?;
    cni_state::write_atomic(&path, &bytes, 0o600, cni_state::Durability::Full)
}

/// Forget the cluster (after `leave`).
pub fn remove() -> io::Result<()> {
    match std::fs::remove_file(conf_path()) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `etcd://a:2379,b:2379` (or `http://`, or bare) as `host:port` endpoints,
/// and whether the scheme asks for TLS (`https://`, `etcds://`).
pub fn parse_store(url: &str) -> Result<(Vec<String>, bool), String> {
    let secure = url.starts_with("https://") || url.starts_with("etcds://");
    let rest = ["etcd://", "http://", "https://", "etcds://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .unwrap_or(url);
    let eps: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                s.to_string()
            } else {
                format!("{s}:2379")
            }
        })
        .collect();
    if eps.is_empty() {
        return Err(format!("no etcd endpoint in {url:?}"));
    }
    Ok((eps, secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_become_endpoints() {
        assert_eq!(
            parse_store("etcd://10.0.0.1:2379,10.0.0.2").unwrap(),
            (
                vec!["10.0.0.1:2379".to_string(), "10.0.0.2:2379".to_string()],
                false
            )
        );
        assert!(parse_store("etcd://").is_err());
        assert_eq!(
            parse_store("https://x:2379").unwrap(),
            (vec!["x:2379".to_string()], true)
        );
    }
}

/// Why the daemon did not do what was asked: `code` is the CNI code to
/// report (11 when the store is out of reach).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskError {
    pub code: Option<u32>,
    pub msg: String,
}

/// Ask this host's daemon (started if needed) a cluster request; its
/// answer's data on success.
pub fn ask(
    req: crate::control::ClusterRequest,
    cni_path: &[PathBuf],
    timeout: std::time::Duration,
) -> Result<Option<serde_json::Value>, AskError> {
    let state = crate::StateDir::resolve(None);
    let req = crate::control::Request::Cluster { req };
    // The daemon usually runs: ask first, start it only when nobody answers.
    let reply = match crate::control::call(&state.socket(), &req, timeout) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            crate::start::ensure_running(&state, cni_path).map_err(|e| AskError {
                code: Some(11),
                msg: format!("the per-host daemon is not available: {e}"),
            })?;
            crate::control::call(&state.socket(), &req, timeout)
        }
        other => other,
    }
    .map_err(|e| AskError {
        code: Some(11),
        msg: format!("asking the per-host daemon: {e}"),
    })?;
    if reply.ok {
        Ok(reply.data)
    } else {
        Err(AskError {
            code: reply.code,
            msg: reply.error.unwrap_or_else(|| "the daemon refused".into()),
        })
    }
}
