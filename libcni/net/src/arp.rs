//! IPv4 address conflict detection (RFC 5227) over a raw ARP socket.
//!
//! IPAM only knows the addresses it handed out itself; on a network shared
//! with other hosts (macvlan puts containers straight on the LAN) an address
//! may already be taken by a machine IPAM never heard of. Before the address
//! is configured we ask the wire: ARP probes (sender IP 0.0.0.0, so no cache
//! anywhere is polluted) for the candidate; any answer, or another host's
//! probe for the same address, means it is taken.
//!
//! RFC 5227's own timings (three probes 1-2 s apart) would make every ADD
//! take seconds; a container network on a LAN answers within a millisecond,
//! so the probe count and spacing are the caller's choice, with defaults of
//! three probes 50 ms apart (about 150 ms in all).
//!
//! The socket is an `AF_PACKET` socket bound to the interface: it must be
//! opened inside the container's namespace ([`ArpSocket::open_in`] enters it
//! only for the `socket(2)` call), and it keeps working from outside.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recvfrom, sendto, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType,
    SockaddrLike,
};
use std::time::{Duration, Instant};

use crate::netlink::{format_mac, Mac};
use crate::netns::NetNs;
use cni_spec::error::{Error, Result};

const ETH_P_ARP: u16 = 0x0806;
/// `sll_pkttype` of a frame we sent ourselves (nix has no constant for it).
const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;
const ETH_P_IP: u16 = 0x0800;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// Ethernet header (14) + ARP for IPv4 over Ethernet (28).
const FRAME_LEN: usize = 42;
const BROADCAST: Mac = [0xff; 6];

/// How hard to look for a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Probes to send (RFC 5227 PROBE_NUM is 3).
    pub probes: u32,
    /// Time between probes; after the last one we wait as long again.
    pub interval: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            probes: 3,
            interval: Duration::from_millis(50),
        }
    }
}

impl ProbeOptions {
    /// Worst-case time a probe run takes when nobody answers.
    pub fn total(&self) -> Duration {
        self.interval.saturating_mul(self.probes)
    }
}

/// Who else claims the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is in use by {}", self.ip, format_mac(&self.mac))
    }
}

/// A raw ARP socket bound to one interface.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
    ifindex: u32,
    mac: Mac,
}

impl ArpSocket {
    /// Open the socket inside `ns` for interface `ifindex` whose hardware
    /// address is `mac` (our own frames are recognised by it).
    pub fn open_in(ns: &NetNs, ifindex: u32, mac: Mac) -> Result<ArpSocket> {
        ns.run(|| Self::open(ifindex, mac))?
    }

    /// Open the socket in the calling thread's namespace.
    pub fn open(ifindex: u32, mac: Mac) -> Result<ArpSocket> {
        // Protocol 0: the socket receives nothing until bind, which then
        // hooks it to ETH_P_ARP (from the address), so no frame of another
        // protocol is ever queued. nix's SockProtocol has no ETH_P_ARP.
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| Error::from_io("open ARP socket", e.into()))?;
        let sa = link_addr(ifindex, &[0; 6])?;
        bind(fd.as_raw_fd(), &sa).map_err(|e| {
            Error::from_io(format_args!("bind ARP socket to link #{ifindex}"), e.into())
        })?;
        Ok(ArpSocket { fd, ifindex, mac })
    }

    /// Probe for `ip`; `Some` names the host that answered. The interface
    /// must be up and must not carry `ip` yet.
    pub fn probe(&self, ip: Ipv4Addr, opts: ProbeOptions) -> Result<Option<Conflict>> {
        let probe = frame(ARP_REQUEST, &self.mac, Ipv4Addr::UNSPECIFIED, &[0; 6], ip);
        let start = Instant::now();
        for n in 0..opts.probes.max(1) {
            self.send(&probe)?;
            let until = start + opts.interval.saturating_mul(n + 1);
            if let Some(c) = self.listen(ip, until)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Announce `ip` as ours (a gratuitous ARP request), so neighbours that
    /// cached an earlier owner's MAC update it at once.
    pub fn announce(&self, ip: Ipv4Addr) -> Result<()> {
        self.send(&frame(ARP_REQUEST, &self.mac, ip, &[0; 6], ip))
    }

    fn send(&self, frame: &[u8; FRAME_LEN]) -> Result<()> {
        let sa = link_addr(self.ifindex, &BROADCAST)?;
        sendto(self.fd.as_raw_fd(), frame, &sa, MsgFlags::empty()).map_err(|e| {
            Error::from_io(
                format_args!("send ARP probe on link #{}", self.ifindex),
                e.into(),
            )
        })?;
        Ok(())
    }

    /// Read frames until `until`; the first that claims `ip` is a conflict.
    fn listen(&self, ip: Ipv4Addr, until: Instant) -> Result<Option<Conflict>> {
        let mut buf = [0u8; 128];
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let wait = PollTimeout::try_from((until - now).max(Duration::from_millis(1)))
                .unwrap_or(PollTimeout::MAX);
            let mut pfd = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut pfd, wait) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(Error::from_io("wait for ARP replies", e.into())),
            }
            // Readable: a frame is queued on this socket of ours.
            let (n, from) = match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf) {
                Ok(r) => r,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(Error::from_io("read ARP reply", e.into())),
            };
            if from.is_some_and(|f| f.pkttype() == PACKET_OUTGOING) {
                continue;
            }
            if let Some(c) = conflict_in(&buf[..n.min(buf.len())], ip, &self.mac) {
                return Ok(Some(c));
            }
        }
    }
}

/// The link-layer address of `dst` on link `ifindex` for ARP frames. nix can
/// read a `LinkAddr` but not build one, so the sockaddr_ll is filled here.
fn link_addr(ifindex: u32, dst: &Mac) -> Result<LinkAddr> {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = ETH_P_ARP.to_be();
    sa.sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| Error::io(format!("link index {ifindex} out of range")))?;
    sa.sll_halen = 6;
    sa.sll_addr[..6].copy_from_slice(dst);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sa` is a valid, initialised sockaddr_ll of `len` bytes.
    unsafe { LinkAddr::from_raw((&sa as *const libc::sockaddr_ll).cast(), Some(len)) }
        .ok_or_else(|| Error::io("build link-layer address"))
}

/// An Ethernet frame carrying an ARP packet, broadcast.
fn frame(op: u16, sha: &Mac, spa: Ipv4Addr, tha: &Mac, tpa: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(sha);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&op.to_be_bytes());
    f[22..28].copy_from_slice(sha);
    f[28..32].copy_from_slice(&spa.octets());
    f[32..38].copy_from_slice(tha);
    f[38..42].copy_from_slice(&tpa.octets());
    f
}

/// RFC 5227 section 2.1.1: a conflict is any ARP packet whose sender IP is
/// the candidate, or another host's probe (sender IP 0) for the candidate.
fn conflict_in(f: &[u8], ip: Ipv4Addr, ours: &Mac) -> Option<Conflict> {
    if f.len() < FRAME_LEN || f[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let a = &f[14..];
    if a[0..2] != 1u16.to_be_bytes() || a[2..4] != ETH_P_IP.to_be_bytes() || a[4] != 6 || a[5] != 4
    {
        return None;
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    let sha: Mac = a[8..14].try_into().ok()?;
    let spa = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let tpa = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    if &sha == ours {
        return None;
    }
    let claims = spa == ip && (op == ARP_REQUEST || op == ARP_REPLY);
    let probes = op == ARP_REQUEST && spa.is_unspecified() && tpa == ip;
    (claims || probes).then_some(Conflict { ip, mac: sha })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = [2, 0, 0, 0, 0, 1];
    const THEIRS: Mac = [2, 0, 0, 0, 0, 2];
    const IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);

    #[test]
    fn a_reply_from_the_owner_is_a_conflict() {
        let f = frame(ARP_REPLY, &THEIRS, IP, &OURS, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            conflict_in(&f, IP, &OURS),
            Some(Conflict {
                ip: IP,
                mac: THEIRS
            })
        );
    }

    #[test]
    fn another_hosts_probe_is_a_conflict_ours_is_not() {
        let theirs = frame(ARP_REQUEST, &THEIRS, Ipv4Addr::UNSPECIFIED, &[0; 6], IP);
        assert!(conflict_in(&theirs, IP, &OURS).is_some());
        let ours = frame(ARP_REQUEST, &OURS, Ipv4Addr::UNSPECIFIED, &[0; 6], IP);
        assert!(conflict_in(&ours, IP, &OURS).is_none());
    }

    #[test]
    fn unrelated_traffic_and_garbage_are_ignored() {
        let other = frame(
            ARP_REQUEST,
            &THEIRS,
            Ipv4Addr::new(10, 1, 0, 9),
            &[0; 6],
            Ipv4Addr::new(10, 1, 0, 1),
        );
        assert!(conflict_in(&other, IP, &OURS).is_none());
        assert!(conflict_in(&[0u8; 10], IP, &OURS).is_none());
        let mut not_arp = frame(ARP_REPLY, &THEIRS, IP, &OURS, IP);
        not_arp[12] = 0x08;
        not_arp[13] = 0x00;
        assert!(conflict_in(&not_arp, IP, &OURS).is_none());
    }

    #[test]
    fn probe_frame_layout() {
        let f = frame(ARP_REQUEST, &OURS, Ipv4Addr::UNSPECIFIED, &[0; 6], IP);
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[0, 0, 0, 0]);
        assert_eq!(&f[38..42], &[10, 1, 0, 5]);
        assert_eq!(ProbeOptions::default().total(), Duration::from_millis(150));
    }
}
