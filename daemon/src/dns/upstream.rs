//! Forwarding to the host's resolvers, from the daemon's own (host)
//! namespace, so a loopback upstream such as 127.0.0.53 works for every
//! container. The upstreams come from resolv.conf, re-read when it changes.
//! UDP first; a truncated UDP answer is asked again over TCP; a query that
//! came over TCP goes over TCP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Environment override of the resolv.conf to read (tests).
pub const ENV_RESOLV_CONF: &str = "CNI_RS_DNS_RESOLV_CONF";

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How long one upstream may take before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// resolv.conf's own limit (MAXNS).
const MAX_UPSTREAMS: usize = 3;

/// Our own address: never forward to it (that would loop).
const OURSELVES: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11));

/// The upstreams of resolv.conf, cached by the file's identity and mtime.
pub struct Upstreams {
    path: PathBuf,
    cache: Mutex<Option<(Stamp, Vec<SocketAddr>)>>,
}

type Stamp = (u64, u64, i64, i64, u64);

impl Upstreams {
    pub fn from_env() -> Self {
        let path = std::env::var_os(ENV_RESOLV_CONF)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(RESOLV_CONF));
        Upstreams {
            path,
            cache: Mutex::new(None),
        }
    }

    /// The current upstreams (re-read when the file changed).
    pub fn current(&self) -> Vec<SocketAddr> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.len()));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(s), Some((old, servers))) = (stamp, cache.as_ref()) {
            if *old == s {
                return servers.clone();
            }
        }
        let servers = std::fs::read_to_string(&self.path)
            .map(|t| parse_resolv_conf(&t))
            .unwrap_or_default();
        *cache = stamp.map(|s| (s, servers.clone()));
        servers
    }
}

/// `nameserver` lines, port 53, at most three; zone-scoped IPv6 and our
/// own address are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|a| *a != OURSELVES)
        .map(|a| SocketAddr::new(a, 53))
        .take(MAX_UPSTREAMS)
        .collect()
}

/// Forward a UDP client's query; the upstream's full reply (the caller
/// fits it to the client), or `None` when every upstream failed.
pub async fn forward_udp(query: &[u8], servers: &[SocketAddr]) -> Option<Vec<u8>> {
    for s in servers {
        match timeout(UPSTREAM_TIMEOUT, udp_exchange(query, *s)).await {
            Ok(Some(reply)) if is_truncated(&reply) => {
                if let Ok(Some(full)) = timeout(UPSTREAM_TIMEOUT, tcp_exchange(query, *s)).await {
                    return Some(full);
                }
                return Some(reply);
            }
            Ok(Some(reply)) => return Some(reply),
            _ => continue,
        }
    }
    None
}

/// Forward a TCP client's query over TCP.
pub async fn forward_tcp(query: &[u8], servers: &[SocketAddr]) -> Option<Vec<u8>> {
    for s in servers {
        if let Ok(Some(reply)) = timeout(UPSTREAM_TIMEOUT, tcp_exchange(query, *s)).await {
            return Some(reply);
        }
    }
    None
}

fn is_truncated(reply: &[u8]) -> bool {
    reply.len() > 2 && reply[2] & 0x02 != 0
}

fn same_id(query: &[u8], reply: &[u8]) -> bool {
    query.len() >= 2 && reply.len() >= 12 && query[..2] == reply[..2]
}

async fn udp_exchange(query: &[u8], server: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await.ok()?;
    // Connected: the kernel drops datagrams from anybody but the server.
    sock.connect(server).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.ok()?;
        if same_id(query, &buf[..n]) {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn tcp_exchange(query: &[u8], server: SocketAddr) -> Option<Vec<u8>> {
    let len = u16::try_from(query.len()).ok()?;
    let mut s = TcpStream::connect(server).await.ok()?;
    let mut msg = Vec::with_capacity(query.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(query);
    s.write_all(&msg).await.ok()?;
    let n = s.read_u16().await.ok()? as usize;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.ok()?;
    same_id(query, &buf).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_skip_ourselves_and_stop_at_three() {
        let t = "# c\nsearch x\nnameserver 127.0.0.53\nnameserver 127.0.0.11\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n";
        let v: Vec<String> = parse_resolv_conf(t).iter().map(|s| s.to_string()).collect();
        assert_eq!(v, ["127.0.0.53:53", "[::1]:53", "1.1.1.1:53"]);
    }
}
