//! Cluster-wide address allocation, calico's way: the subnet is cut into
//! blocks (/26 by default), a host claims a whole block with one etcd
//! transaction (create-if-absent `blocks/<net>/<block>` = host) and hands
//! out addresses inside its blocks locally, with a lease file per address.
//! No address is handed out twice cluster-wide because no block has two
//! owners; an ADD costs no etcd round trip once a block with room is held.
//! Leases live in `<state>/cluster-ipam/<net>/<ip>` and survive a daemon
//! restart. They are not synced to disk (as host-local's): a power loss
//! takes the containers with it, and the page cache outlives a crash.
//!
//! A new inode is most of a small file's cost on this kind of disk (about
//! 1 ms on the test VM's ext4), and an ADD used to make two: so released
//! lease files are parked in `<state>/cluster-ipam/.pool` and reused, as
//! host-local does, and the published endpoint record is appended to its
//! lease file as a second line (one `write`, whole or absent after a
//! `kill -9`) instead of a file of its own.
//!
//! IPv6 subnets are cut the same way, into /122 blocks (64 addresses, as
//! calico does), so a dual-stack overlay hands each container one address
//! of each family, each from this host's block of that subnet.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

/// Default block size: 64 addresses per host and claim.
pub const BLOCK_PREFIX: u8 = 26;
/// The same 64 addresses for IPv6.
pub const BLOCK_PREFIX_V6: u8 = 122;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// Parked lease files kept for reuse, at most.
const POOL_CAP: usize = 64;
const POOL: &str = ".pool";

/// The lease file's first line: its owner.
fn owner_of(bytes: &[u8]) -> Option<Owner> {
    let first = bytes.split(|b| *b == b'\n').next()?;
    serde_json::from_slice(first).ok()
}

/// The lease file's last endpoint record, if it was published.
fn endpoint_of(bytes: &[u8]) -> Option<Vec<u8>> {
    bytes
        .split(|b| *b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
        .last()
        .map(<[u8]>::to_vec)
}

/// This host's leases, per network, as on disk.
pub struct Leases {
    root: PathBuf,
    loaded: BTreeMap<String, BTreeMap<IpAddr, Owner>>,
}

impl Leases {
    pub fn new(root: PathBuf) -> Self {
        Leases {
            root,
            loaded: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, net: &str) -> PathBuf {
        self.root.join(net)
    }

    /// The network's leases, read from disk the first time.
    pub fn of(&mut self, net: &str) -> &mut BTreeMap<IpAddr, Owner> {
        if !self.loaded.contains_key(net) {
            let mut m = BTreeMap::new();
            for e in std::fs::read_dir(self.dir(net))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(ip) = name.parse::<IpAddr>() else {
                    continue;
                };
                if let Some(o) = std::fs::read(e.path()).ok().and_then(|b| owner_of(&b)) {
                    m.insert(ip, o);
                }
            }
            self.loaded.insert(net.to_string(), m);
        }
        self.loaded.entry(net.to_string()).or_default()
    }

    /// The owner's address in `subnet` (one per family in a dual-stack
    /// network).
    pub fn find(&mut self, net: &str, owner: &Owner, subnet: &IpNetwork) -> Option<IpAddr> {
        self.of(net)
            .iter()
            .find(|(ip, o)| *o == owner && subnet.contains(**ip))
            .map(|(ip, _)| *ip)
    }

    /// Every address the owner holds in the network.
    pub fn find_all(&mut self, net: &str, owner: &Owner) -> Vec<IpAddr> {
        self.of(net)
            .iter()
            .filter(|(_, o)| *o == owner)
            .map(|(ip, _)| *ip)
            .collect()
    }

    fn pool(&self) -> io::Result<cni_state::Dir> {
        cni_state::Dir::create_all(&self.root.join(POOL), 0o700)
    }

    /// Take `ip` for `owner`; `Ok(false)` when its file exists already.
    pub fn take(&mut self, net: &str, ip: IpAddr, owner: &Owner) -> io::Result<bool> {
        let dir = cni_state::Dir::create_all(&self.dir(net), 0o700)?;
        let bytes = serde_json::to_vec(owner).map_err(io::Error::other)?;
        let created =
            dir.create_exclusive_reusing(&self.pool()?, &ip.to_string(), &bytes, 0o600)?;
        if created {
            self.of(net).insert(ip, owner.clone());
        }
        Ok(created)
    }

    /// Keep the published endpoint with its lease (appended as a line),
    /// so a restarted daemon, or a host back from being cut off, can
    /// publish it again. The lease must exist.
    pub fn set_endpoint(&mut self, net: &str, ip: IpAddr, rec: &[u8]) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut line = Vec::with_capacity(rec.len() + 1);
        line.push(b'\n');
        line.extend(rec.iter().filter(|b| **b != b'\n'));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir(net).join(ip.to_string()))?;
        f.write_all(&line)
    }

    pub fn endpoint(&self, net: &str, ip: IpAddr) -> Option<Vec<u8>> {
        let lease = std::fs::read(self.dir(net).join(ip.to_string())).ok()?;
        // Before records were appended they had a file of their own.
        endpoint_of(&lease).or_else(|| std::fs::read(self.dir(net).join(format!("{ip}.ep"))).ok())
    }

    pub fn release(&mut self, net: &str, ip: IpAddr) -> io::Result<()> {
        self.of(net).remove(&ip);
        let _ = std::fs::remove_file(self.dir(net).join(format!("{ip}.ep")));
        let dir = match cni_state::Dir::open(&self.dir(net)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        dir.park_or_remove(&ip.to_string(), &self.pool()?, POOL_CAP)
            .map(|_| ())
    }

    /// Remove the parked files (the host leaves the cluster).
    pub fn drop_pool(&self) {
        let _ = std::fs::remove_dir_all(self.root.join(POOL));
    }

    /// Every network's leases (for reconciling the store with the disk).
    pub fn networks(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Forget a network entirely (it left the cluster, or we did).
    pub fn drop_network(&mut self, net: &str) {
        self.loaded.remove(net);
        let _ = std::fs::remove_dir_all(self.dir(net));
    }

    pub fn total(&mut self) -> usize {
        let nets = self.networks();
        nets.iter().map(|n| self.of(n).len()).sum()
    }
}

/// The blocks a subnet of either family is cut into, in order (lazily:
/// a /64 has 2^58 of them).
pub fn blocks_of(subnet: IpNetwork) -> Box<dyn Iterator<Item = IpNetwork> + Send> {
    match subnet {
        IpNetwork::V4(s) => Box::new(blocks(s, BLOCK_PREFIX).map(IpNetwork::V4)),
        IpNetwork::V6(s) => Box::new(blocks_v6(s, BLOCK_PREFIX_V6).map(IpNetwork::V6)),
    }
}

/// The addresses of `block` a container may get, either family.
pub fn usable_of(subnet: IpNetwork, block: IpNetwork) -> Box<dyn Iterator<Item = IpAddr> + Send> {
    match (subnet, block) {
        (IpNetwork::V4(s), IpNetwork::V4(b)) => Box::new(usable(s, b).map(IpAddr::V4)),
        (IpNetwork::V6(s), IpNetwork::V6(b)) => Box::new(usable_v6(s, b).map(IpAddr::V6)),
        _ => Box::new(std::iter::empty()),
    }
}

/// The block of `subnet` that holds `ip`, computed (not searched: a /64
/// has too many blocks to walk).
pub fn block_containing(subnet: IpNetwork, ip: IpAddr) -> Option<IpNetwork> {
    if !subnet.contains(ip) {
        return None;
    }
    let prefix = match subnet {
        IpNetwork::V4(_) => BLOCK_PREFIX,
        IpNetwork::V6(_) => BLOCK_PREFIX_V6,
    }
    .max(subnet.prefix());
    IpNetwork::new(ip, prefix).ok().map(normalize)
}

/// A subnet with its host bits cleared (`10.0.0.7/24` is `10.0.0.0/24`).
pub fn normalize(subnet: IpNetwork) -> IpNetwork {
    IpNetwork::new(subnet.network(), subnet.prefix()).unwrap_or(subnet)
}

fn blocks_v6(subnet: Ipv6Network, prefix: u8) -> impl Iterator<Item = Ipv6Network> {
    let prefix = prefix.max(subnet.prefix());
    let shift = 128 - u32::from(prefix);
    let bits = u32::from(prefix - subnet.prefix());
    // More blocks than u64 counts never get walked to the end anyway.
    let count: u64 = if bits >= 64 { u64::MAX } else { 1u64 << bits };
    let base = u128::from(subnet.network());
    (0..count).filter_map(move |i| {
        let start = base + (u128::from(i) << shift);
        Ipv6Network::new(Ipv6Addr::from(start), prefix).ok()
    })
}

/// IPv6 has no broadcast; the subnet's first address is the routers'
/// anycast address, never a container's.
fn usable_v6(subnet: Ipv6Network, block: Ipv6Network) -> impl Iterator<Item = Ipv6Addr> {
    let first = u128::from(block.network());
    let size = 1u128 << (128 - u32::from(block.prefix()));
    (0..size)
        .map(move |i| Ipv6Addr::from(first + i))
        .filter(move |a| *a != subnet.network())
}

/// The blocks a subnet is cut into, in order.
pub fn blocks(subnet: Ipv4Network, prefix: u8) -> impl Iterator<Item = Ipv4Network> {
    let prefix = prefix.max(subnet.prefix());
    let size: u64 = 1u64 << (32 - prefix);
    let count: u64 = 1u64 << (prefix - subnet.prefix());
    let base = u32::from(subnet.network()) as u64;
    (0..count).filter_map(move |i| {
        let start = base + i * size;
        Ipv4Network::new(Ipv4Addr::from(start as u32), prefix).ok()
    })
}

/// The addresses of `block` a container may get: never the subnet's own
/// network or broadcast address.
pub fn usable(subnet: Ipv4Network, block: Ipv4Network) -> impl Iterator<Item = Ipv4Addr> {
    block
        .iter()
        .filter(move |a| *a != subnet.network() && *a != subnet.broadcast())
}

/// Parse the key part `a.b.c.d_len` back into a block.
pub fn parse_block(s: &str) -> Option<IpNetwork> {
    let (ip, len) = s.split_once('_')?;
    IpNetwork::new(ip.parse().ok()?, len.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_24_is_four_blocks_of_64_and_skips_network_and_broadcast() {
        let s: Ipv4Network = "10.9.0.0/24".parse().unwrap();
        let b: Vec<_> = blocks(s, 26).collect();
        assert_eq!(b.len(), 4);
        assert_eq!(b[3].to_string(), "10.9.0.192/26");
        assert_eq!(usable(s, b[0]).count(), 63);
        assert_eq!(usable(s, b[3]).last().unwrap().to_string(), "10.9.0.254");
        // A subnet smaller than a block is one block.
        let small: Ipv4Network = "10.9.0.0/28".parse().unwrap();
        assert_eq!(blocks(small, 26).count(), 1);
        assert_eq!(
            parse_block("10.9.0.64_26").unwrap().to_string(),
            "10.9.0.64/26"
        );
    }

    #[test]
    fn an_ipv6_subnet_is_cut_into_blocks_of_64_without_its_anycast_address() {
        let s: IpNetwork = "fd00:1::/64".parse().unwrap();
        let mut b = blocks_of(s);
        let first = b.next().unwrap();
        assert_eq!(first.to_string(), "fd00:1::/122");
        assert_eq!(b.next().unwrap().to_string(), "fd00:1::40/122");
        let u: Vec<IpAddr> = usable_of(s, first).collect();
        assert_eq!(u.len(), 63);
        assert_eq!(u[0].to_string(), "fd00:1::1");
        assert_eq!(
            parse_block("fd00:1::40_122").unwrap().to_string(),
            "fd00:1::40/122"
        );
        // A subnet smaller than a block is one block; families never mix.
        let small: IpNetwork = "fd00:2::/124".parse().unwrap();
        assert_eq!(blocks_of(small).count(), 1);
        let v4: IpNetwork = "10.0.0.0/24".parse().unwrap();
        assert_eq!(usable_of(v4, first).count(), 0);
        assert_eq!(
            block_containing(s, "fd00:1::47".parse().unwrap()).map(|b| b.to_string()),
            Some("fd00:1::40/122".to_string())
        );
        assert_eq!(block_containing(v4, "fd00:1::47".parse().unwrap()), None);
        assert_eq!(
            normalize("fd00:3::9/64".parse().unwrap()).to_string(),
            "fd00:3::/64"
        );
    }

    #[test]
    fn leases_are_exclusive_files() {
        let dir = std::env::temp_dir().join(format!("cl-ipam-{}", std::process::id()));
        let mut l = Leases::new(dir.clone());
        let o = Owner {
            container_id: "c".into(),
            ifname: "eth0".into(),
        };
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.take("n", ip, &o).unwrap());
        assert!(!l.take("n", ip, &o).unwrap());
        let v4: IpNetwork = "10.0.0.0/24".parse().unwrap();
        let v6: IpNetwork = "fd00::/64".parse().unwrap();
        let ip6: IpAddr = "fd00::1".parse().unwrap();
        assert!(l.take("n", ip6, &o).unwrap());
        let mut again = Leases::new(dir.clone());
        assert_eq!(again.find("n", &o, &v4), Some(ip));
        assert_eq!(again.find("n", &o, &v6), Some(ip6));
        assert_eq!(again.find_all("n", &o).len(), 2);
        // The endpoint record rides in the lease file; the owner stays readable.
        again
            .set_endpoint("n", ip, b"{\"ip\":\"10.0.0.1\"}")
            .unwrap();
        again
            .set_endpoint("n", ip, b"{\"ip\":\"10.0.0.1\",\"v\":2}")
            .unwrap();
        assert_eq!(
            again.endpoint("n", ip).unwrap(),
            b"{\"ip\":\"10.0.0.1\",\"v\":2}".to_vec()
        );
        assert_eq!(Leases::new(dir.clone()).find("n", &o, &v4), Some(ip));
        assert_eq!(again.endpoint("n", ip6), None);
        again.release("n", ip).unwrap();
        again.release("n", ip6).unwrap();
        assert_eq!(Leases::new(dir.clone()).find("n", &o, &v4), None);
        assert_eq!(
            again.networks(),
            vec!["n".to_string()],
            "the pool is no network"
        );
        // A released file is reused: taken again, it holds the new owner only.
        let o2 = Owner {
            container_id: "d".into(),
            ifname: "eth0".into(),
        };
        assert!(again.take("n", ip, &o2).unwrap());
        assert_eq!(Leases::new(dir.clone()).find("n", &o2, &v4), Some(ip));
        assert_eq!(again.endpoint("n", ip), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
