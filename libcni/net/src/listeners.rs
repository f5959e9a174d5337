//! Sockets bound on this namespace's ports, from `/proc/thread-self/net`
//! (`tcp`, `tcp6`, `udp`, `udp6`): what a published port would silently
//! steal traffic from. TCP counts when listening, UDP when bound and not
//! connected. Sockets held by our parent process are left out: podman binds
//! the host ports it is about to publish and keeps them open (a reservation
//! for the very container it is setting up).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A bound socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// "tcp" or "udp".
    pub proto: &'static str,
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

impl Listener {
    /// Whether it takes traffic to `port`/`proto` at `host_ip` (None: any
    /// local address of the family `v6`). A wildcard IPv6 socket may be
    /// dual-stack, so it counts for IPv4 too.
    pub fn covers(&self, proto: &str, v6: bool, host_ip: Option<IpAddr>, port: u16) -> bool {
        if self.proto != proto || self.port != port {
            return false;
        }
        let addr = canonical(self.addr);
        let wildcard = addr.is_unspecified();
        let same_family = addr.is_ipv6() == v6 || (self.addr.is_ipv6() && wildcard);
        if !same_family {
            return false;
        }
        match host_ip {
            None => true,
            Some(h) => wildcard || canonical(h) == addr,
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they stand for.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `port`/`proto` at `host_ip` (None: any local address of the
/// family `v6`) is certainly free: we could bind it ourselves. Reading the
/// socket tables walks the kernel's global hash tables (about 2 ms a read
/// here, whatever the namespace holds), a bind costs microseconds, so
/// callers scan with [`bound_sockets`] only when this says no. A bind can
/// fail for reasons that are no conflict (an address not on this host, a
/// socket of ours that the caller holds): then the scan decides.
pub fn certainly_free(proto: &str, v6: bool, host_ip: Option<IpAddr>, port: u16) -> bool {
    use std::net::{SocketAddr, TcpListener, UdpSocket};
    let ip = host_ip.map(canonical).unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let at = SocketAddr::new(ip, port);
    match proto {
        // std sets SO_REUSEADDR: connections in TIME_WAIT do not count.
        "tcp" => TcpListener::bind(at).is_ok(),
        "udp" => UdpSocket::bind(at).is_ok(),
        _ => false,
    }
}

/// The bound sockets of the calling thread's namespace, except the
/// parent process's. Unreadable tables (no IPv6, a restricted /proc) are
/// skipped: this is a courtesy check, the rules are the real guard.
pub fn bound_sockets() -> Vec<Listener> {
    let exempt = parent_socket_inodes();
    let mut out = Vec::new();
    for (file, proto, v6) in [
        ("tcp", "tcp", false),
        ("tcp6", "tcp", true),
        ("udp", "udp", false),
        ("udp6", "udp", true),
    ] {
        let path = format!("/proc/thread-self/net/{file}");
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.extend(
                parse(&text, proto, v6)
                    .into_iter()
                    .filter(|l| !exempt.contains(&l.inode)),
            );
        }
    }
    out
}

fn parent_socket_inodes() -> HashSet<u64> {
    let ppid = nix::unistd::getppid();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{ppid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| {
        let target = std::fs::read_link(e.ok()?.path()).ok()?;
        let t = target.to_str()?;
        t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// The bound sockets in one `/proc/net/{tcp,udp}{,6}` table.
pub fn parse(text: &str, proto: &'static str, v6: bool) -> Vec<Listener> {
    // TCP_LISTEN and TCP_CLOSE (an unconnected UDP socket reports "07").
    let wanted = if proto == "tcp" { "0A" } else { "07" };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != wanted {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some(Listener {
                proto,
                addr: parse_addr(addr, v6)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address as a native-endian
/// number in hex.
fn parse_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let words = if v6 { 4 } else { 1 };
    if hex.len() != 8 * words || !hex.is_ascii() {
        return None;
    }
    let mut bytes = Vec::with_capacity(4 * words);
    for i in 0..words {
        let w = u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).ok()?;
        bytes.extend_from_slice(&w.to_ne_bytes());
    }
    Some(if v6 {
        let b: [u8; 16] = bytes.try_into().ok()?;
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        let b: [u8; 4] = bytes.try_into().ok()?;
        IpAddr::V4(Ipv4Addr::from(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0
   2: 0100007F:1F91 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0
   3: garbage
";

    #[test]
    fn reads_listening_tcp_sockets_only() {
        let l = parse(TCP, "tcp", false);
        assert_eq!(l.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(l[0].addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        assert_eq!((l[0].port, l[0].inode), (8080, 1234));
        assert_eq!(l[1].addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(l[1].covers("tcp", false, None, 80));
        assert!(l[1].covers("tcp", false, Some("10.0.0.1".parse().unwrap()), 80));
        assert!(!l[1].covers("udp", false, None, 80));
        assert!(!l[1].covers("tcp", true, None, 80));
        assert!(!l[1].covers("tcp", false, None, 81));
    }

    #[test]
    fn specific_and_wildcard_v6_addresses() {
        let any6 = Listener {
            proto: "udp",
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port: 53,
            inode: 1,
        };
        assert!(any6.covers("udp", false, None, 53));
        assert!(any6.covers("udp", true, Some("fd00::1".parse().unwrap()), 53));
        let one = Listener {
            addr: "10.0.0.1".parse().unwrap(),
            ..any6
        };
        assert!(one.covers("udp", false, None, 53));
        assert!(one.covers("udp", false, Some("::ffff:10.0.0.1".parse().unwrap()), 53));
        assert!(!one.covers("udp", false, Some("10.0.0.2".parse().unwrap()), 53));
    }

    #[test]
    fn hostile_lines_are_skipped() {
        assert!(parse(
            "x\n 0: 1:2 3 0A\n 1: ZZZZZZZZ:0050 0 0A 0 0 0 0 0 5",
            "tcp",
            false
        )
        .is_empty());
        assert!(parse("", "udp", true).is_empty());
        assert!(parse_addr("é0000000", false).is_none());
    }
}
