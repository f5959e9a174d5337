//! Cluster-wide address allocation, calico's way: the subnet is cut into
//! blocks (/26 by default), a host claims a whole block with one etcd
//! transaction (create-if-absent `blocks/<net>/<block>` = host) and hands
//! out addresses inside its blocks locally, with a lease file per address.
//! No address is handed out twice cluster-wide because no block has two
//! owners; an ADD costs no etcd round trip once a block with room is held.
//! Leases live in `<state>/cluster-ipam/<net>/<ip>` and survive a daemon
//! restart. They are not synced to disk (as host-local's): a power loss
//! takes the containers with it, and the page cache outlives a crash.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnetwork::{IpNetwork, Ipv4Network};
use serde::{Deserialize, Serialize};

/// Default block size: 64 addresses per host and claim.
pub const BLOCK_PREFIX: u8 = 26;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
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
                if let Some(o) = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Owner>(&b).ok())
                {
                    m.insert(ip, o);
                }
            }
            self.loaded.insert(net.to_string(), m);
        }
        self.loaded.entry(net.to_string()).or_default()
    }

    pub fn find(&mut self, net: &str, owner: &Owner) -> Option<IpAddr> {
        self.of(net)
            .iter()
            .find(|(_, o)| *o == owner)
            .map(|(ip, _)| *ip)
    }

    /// Take `ip` for `owner`; `Ok(false)` when its file exists already.
    pub fn take(&mut self, net: &str, ip: IpAddr, owner: &Owner) -> io::Result<bool> {
        let dir = cni_state::Dir::create_all(&self.dir(net), 0o700)?;
        let bytes = serde_json::to_vec(owner).map_err(io::Error::other)?;
        let created =
            dir.create_exclusive(&ip.to_string(), &bytes, 0o600, cni_state::Durability::None)?;
        if created {
            self.of(net).insert(ip, owner.clone());
        }
        Ok(created)
    }

    /// Keep a copy of the published endpoint beside its lease, so a host
    /// that comes back after being cut off can publish it again.
    pub fn set_endpoint(&mut self, net: &str, ip: IpAddr, rec: &[u8]) -> io::Result<()> {
        let dir = cni_state::Dir::create_all(&self.dir(net), 0o700)?;
        dir.write_atomic(&format!("{ip}.ep"), rec, 0o600, cni_state::Durability::None)
    }

    pub fn endpoint(&self, net: &str, ip: IpAddr) -> Option<Vec<u8>> {
        std::fs::read(self.dir(net).join(format!("{ip}.ep"))).ok()
    }

    pub fn release(&mut self, net: &str, ip: IpAddr) -> io::Result<()> {
        self.of(net).remove(&ip);
        let _ = std::fs::remove_file(self.dir(net).join(format!("{ip}.ep")));
        match std::fs::remove_file(self.dir(net).join(ip.to_string())) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every network's leases (for reconciling the store with the disk).
    pub fn networks(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
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
        let mut again = Leases::new(dir.clone());
        assert_eq!(again.find("n", &o), Some(ip));
        again.release("n", ip).unwrap();
        assert_eq!(Leases::new(dir.clone()).find("n", &o), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
