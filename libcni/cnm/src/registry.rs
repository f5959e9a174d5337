//! The networks a host knows: the pre-created `bridge`, `host` and `none`,
//! and one conflist per user network in the config directory. Conflists
//! written by others are listed too, described from their first plugin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::drivers;
use super::model::{network_id, Driver, Network, Pool};
use super::pools;
use cni_runtime::conf::{self, LoadedList};
use cni_spec::error::{Error, Result};
use cni_spec::{validate, NetConfList};
use cni_state::{self as store, Durability};

/// Names Docker reserves for its pre-created networks.
pub const BUILTIN: &[&str] = &["bridge", "host", "none"];
/// The default bridge network's device and subnet (Docker: docker0,
/// 172.17.0.0/16; the device is renamed so a real Docker keeps its own).
pub const DEFAULT_BRIDGE: &str = "cnm0";
pub const DEFAULT_SUBNET: &str = "172.17.0.0/16";

/// One listed network: our description, and the chain to run (none for
/// `host`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub id: String,
    /// The driver as shown to the user (a plugin type for foreign lists).
    pub driver: String,
    pub scope: String,
    pub network: Option<Network>,
    pub list: Option<LoadedList>,
    pub builtin: bool,
}

impl Entry {
    pub fn subnets(&self) -> Vec<IpNetwork> {
        if let Some(n) = &self.network {
            return n.ipam.iter().map(|p| p.subnet).collect();
        }
        self.list
            .as_ref()
            .map(|l| foreign_subnets(&l.list))
            .unwrap_or_default()
    }
}

/// Subnets named anywhere in a foreign conflist's IPAM blocks.
fn foreign_subnets(list: &NetConfList) -> Vec<IpNetwork> {
    let mut out = Vec::new();
    for p in &list.plugins {
        let Some(ipam) = p.get("ipam") else { continue };
        if let Some(s) = ipam.get("subnet").and_then(Value::as_str) {
            out.extend(s.parse::<IpNetwork>().ok().map(pools::canonical));
        }
        for set in ipam
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for r in set.as_array().into_iter().flatten() {
                if let Some(s) = r.get("subnet").and_then(Value::as_str) {
                    out.extend(s.parse::<IpNetwork>().ok().map(pools::canonical));
                }
            }
        }
    }
    out
}

/// Where networks live and where their IPAM keeps leases.
#[derive(Debug, Clone)]
pub struct Registry {
    pub conf_dir: PathBuf,
    /// host-local `dataDir` written into new networks (None: its default).
    pub data_dir: Option<PathBuf>,
    /// `dnsname` is on CNI_PATH: new networks chain it (see
    /// [`drivers::wants_dns`]).
    pub dns_available: bool,
}

impl Registry {
    fn builtin(&self, name: &str) -> Result<Entry> {
        let (driver, pools) = match name {
            "bridge" => (
                Driver::Bridge,
                vec![pools::complete_pool(Pool {
                    subnet: DEFAULT_SUBNET
                        .parse()
                        .map_err(|_| Error::internal("bad default subnet"))?,
                    ip_range: None,
                    gateway: None,
                    aux_addresses: BTreeMap::new(),
                })?],
            ),
            "host" => (Driver::Host, vec![]),
            _ => (Driver::Null, vec![]),
        };
        let mut options = BTreeMap::new();
        if driver == Driver::Bridge {
            options.insert(
                "com.docker.network.bridge.name".into(),
                DEFAULT_BRIDGE.into(),
            );
        }
        let network = Network {
            name: name.into(),
            driver: driver.clone(),
            created: String::new(),
            internal: false,
            ipv6: false,
            ipam: pools,
            options,
            labels: BTreeMap::new(),
            builtin: true,
            cluster: false,
        };
        let list = if driver == Driver::Host {
            None
        } else {
            let v = drivers::conflist(&network, self.data_dir.as_deref(), false)?;
            let bytes = serde_json::to_vec(&v).map_err(|e| Error::internal(e.to_string()))?;
            Some(LoadedList {
                list: NetConfList::from_slice(&bytes)?,
                bytes,
                source: PathBuf::from(format!("(built in: {name})")),
            })
        };
        Ok(Entry {
            name: name.into(),
            id: network_id(name),
            driver: driver.as_str().into(),
            scope: driver.scope().into(),
            network: Some(network),
            list,
            builtin: true,
        })
    }

    fn entry_of(list: LoadedList) -> Entry {
        let network = list.list.raw.get("cnm").and_then(|v| {
            let mut n: Network = serde_json::from_value(v.clone()).ok()?;
            n.name = list.list.name.clone();
            Some(n)
        });
        let (driver, scope) = match &network {
            Some(n) => (n.driver.as_str().to_string(), n.scope().to_string()),
            None => {
                let t = list.list.plugins[0]
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                (t.to_string(), "local".to_string())
            }
        };
        Entry {
            name: list.list.name.clone(),
            id: network_id(&list.list.name),
            driver,
            scope,
            network,
            list: Some(list),
            builtin: false,
        }
    }

    /// Every network: the pre-created ones first, then the config dir's.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let mut out = BUILTIN
            .iter()
            .map(|n| self.builtin(n))
            .collect::<Result<Vec<_>>>()?;
        for l in conf::load_all(&self.conf_dir)? {
            if !BUILTIN.contains(&l.list.name.as_str()) {
                out.push(Self::entry_of(l));
            }
        }
        Ok(out)
    }

    /// By name, full ID or unique ID prefix, as Docker resolves them.
    pub fn find(&self, key: &str) -> Result<Entry> {
        let all = self.list()?;
        if let Some(e) = all.iter().find(|e| e.name == key || e.id == key) {
            return Ok(e.clone());
        }
        let by_prefix: Vec<&Entry> = all
            .iter()
            .filter(|e| key.len() >= 3 && e.id.starts_with(key))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::invalid_config(format!("network {key} not found"))),
            _ => Err(Error::invalid_config(format!(
                "network {key} is ambiguous ({} matches)",
                by_prefix.len()
            ))),
        }
    }

    fn conf_path(&self, name: &str) -> PathBuf {
        self.conf_dir.join(format!("{name}.conflist"))
    }

    /// Create a user network: validate like Docker (name free, pools sane
    /// and not overlapping any other network here), write its conflist.
    pub fn create(&self, mut n: Network) -> Result<Entry> {
        validate::network_name(&n.name)?;
        if BUILTIN.contains(&n.name.as_str()) {
            return Err(Error::invalid_config(format!(
                "network with name {} already exists (pre-defined)",
                n.name
            )));
        }
        if matches!(n.driver, Driver::Host | Driver::Null) {
            return Err(Error::invalid_config(format!(
                "only one instance of \"{}\" network is allowed",
                n.driver.as_str()
            )));
        }
        std::fs::create_dir_all(&self.conf_dir)
            .map_err(|e| Error::from_io(format!("create {}", self.conf_dir.display()), e))?;
        let dir = store::Dir::open(&self.conf_dir)
            .map_err(|e| Error::from_io(format!("open {}", self.conf_dir.display()), e))?;
        // Two creates at once must not both pass the checks below.
        let _lock = dir
            .lock(".cnm.lock")
            .map_err(|e| Error::from_io("lock config dir", e))?;
        let existing = self.list()?;
        if existing.iter().any(|e| e.name == n.name) {
            return Err(Error::invalid_config(format!(
                "network with name {} already exists",
                n.name
            )));
        }
        let taken: Vec<IpNetwork> = existing.iter().flat_map(Entry::subnets).collect();
        if n.ipam.is_empty() {
            n.ipam.push(Pool {
                subnet: pools::default_subnet(&taken)?,
                ip_range: None,
                gateway: None,
                aux_addresses: BTreeMap::new(),
            });
        }
        n.ipam = n
            .ipam
            .into_iter()
            .map(pools::complete_pool)
            .collect::<Result<_>>()?;
        if n.ipam.iter().any(|p| p.subnet.is_ipv6()) && !n.ipv6 {
            return Err(Error::invalid_config(
                "an IPv6 subnet needs --ipv6 to enable IPv6 on the network",
            ));
        }
        for (i, p) in n.ipam.iter().enumerate() {
            for q in &n.ipam[i + 1..] {
                if pools::overlaps(&p.subnet, &q.subnet) {
                    return Err(Error::invalid_config(format!(
                        "invalid pool request: subnets {} and {} overlap",
                        p.subnet, q.subnet
                    )));
                }
            }
            if let Some(other) = existing
                .iter()
                .find(|e| e.subnets().iter().any(|s| pools::overlaps(s, &p.subnet)))
            {
                return Err(Error::invalid_config(format!(
                    "invalid pool request: Pool overlaps with other one on this address space (subnet {} of network {})",
                    p.subnet, other.name
                )));
            }
        }
        if n.created.is_empty() {
            n.created = super::model::now_rfc3339();
        }
        let value = drivers::conflist(&n, self.data_dir.as_deref(), self.dns_available)?;
        let bytes =
            serde_json::to_vec_pretty(&value).map_err(|e| Error::internal(e.to_string()))?;
        let path = self.conf_path(&n.name);
        store::write_atomic(&path, &bytes, 0o644, Durability::Full)
            .map_err(|e| Error::from_io(format!("write {}", path.display()), e))?;
        Ok(Self::entry_of(conf::load_conflist(&path)?))
    }

    /// Delete a user network's conflist (the caller checked endpoints).
    pub fn remove_file(&self, e: &Entry) -> Result<()> {
        if e.builtin {
            return Err(Error::invalid_config(format!(
                "{} is a pre-defined network and cannot be removed",
                e.name
            )));
        }
        let Some(list) = &e.list else { return Ok(()) };
        match std::fs::remove_file(&list.source) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::from_io(
                format!("remove {}", list.source.display()),
                err,
            )),
        }
    }
}

/// The host-local data directory a network's chain uses (for cleanup).
pub fn ipam_data_dir(list: &NetConfList) -> Option<PathBuf> {
    let ipam = list.plugins.first()?.get("ipam")?;
    if ipam.get("type").and_then(Value::as_str) != Some("host-local") {
        return None;
    }
    let base = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or("/var/lib/cni/networks");
    Some(Path::new(base).join(&list.name))
}
