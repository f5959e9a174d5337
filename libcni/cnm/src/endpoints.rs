//! Sandboxes and endpoints: `network connect|disconnect` and `sandbox
//! create|ls|rm`. A sandbox is a named network namespace; an endpoint is
//! one attachment of it to a network, remembered in the result cache
//! (which is also where `inspect` reads IPs and MACs from).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::model::Driver;
use super::registry::Entry;
use cni_runtime::cache::CachedAttachment;
use cni_runtime::conf::LoadedList;
use cni_runtime::{CniConfig, RuntimeConf};
use cni_spec::error::{Error, ErrorList, Result};
use cni_spec::{validate, CniResult, NetConfList};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// A sandbox: its name (also the container ID of its endpoints) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub name: String,
    pub path: PathBuf,
}

impl Sandbox {
    /// A name means `/var/run/netns/<name>`; a path is used as given and
    /// named after its last component.
    pub fn resolve(arg: &str) -> Result<Sandbox> {
        let (name, path) = if arg.contains('/') {
            let p = PathBuf::from(arg);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, p)
        } else {
            (arg.to_string(), Path::new(NETNS_DIR).join(arg))
        };
        validate::container_id(&name)
            .map_err(|_| Error::invalid_config(format!("invalid sandbox name {name:?}")))?;
        Ok(Sandbox { name, path })
    }
}

/// One endpoint as `inspect` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub mac: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub aliases: Vec<String>,
}

impl Endpoint {
    fn from_cache(c: &CachedAttachment) -> Endpoint {
        let result = c
            .result
            .as_ref()
            .and_then(|r| CniResult::from_value(r).ok());
        let (mut mac, mut ipv4, mut ipv6) = (None, None, None);
        if let Some(r) = &result {
            let sandbox_if = r.interfaces.iter().position(|i| i.sandbox.is_some());
            if let Some(i) = sandbox_if {
                mac = r.interfaces[i].mac.clone();
            }
            for ip in &r.ips {
                if sandbox_if.is_some() && ip.interface.is_some() && ip.interface != sandbox_if {
                    continue;
                }
                let slot = if ip.is_ipv4() { &mut ipv4 } else { &mut ipv6 };
                slot.get_or_insert_with(|| ip.address.to_string());
            }
        }
        // The conventions' map (network -> aliases); a bare list from
        // older cache entries.
        let aliases = c
            .capability_args
            .get("aliases")
            .and_then(|a| match a {
                Value::Object(m) => m.get(&c.network),
                other => Some(other),
            })
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Endpoint {
            network: c.network.clone(),
            container_id: c.container_id.clone(),
            ifname: c.ifname.clone(),
            netns: c.netns.clone(),
            mac,
            ipv4,
            ipv6,
            aliases,
        }
    }

    /// A stable endpoint ID: sha256 of network/container/ifname.
    pub fn id(&self) -> String {
        super::model::network_id(&format!(
            "{}/{}/{}",
            self.network, self.container_id, self.ifname
        ))
    }
}

/// Every cached endpoint, optionally of one network.
pub fn endpoints(cni: &CniConfig, network: Option<&str>) -> Result<Vec<Endpoint>> {
    let mut out: Vec<Endpoint> = cni
        .cache
        .list()?
        .iter()
        .filter(|c| network.is_none_or(|n| c.network == n))
        .map(Endpoint::from_cache)
        .collect();
    out.sort_by(|a, b| (&a.network, &a.container_id).cmp(&(&b.network, &b.container_id)));
    Ok(out)
}

/// The first `ethN` the sandbox does not use yet.
fn free_ifname(cni: &CniConfig, sandbox: &Sandbox) -> Result<String> {
    let used: Vec<String> = cni
        .cache
        .list()?
        .into_iter()
        .filter(|c| c.container_id == sandbox.name)
        .map(|c| c.ifname)
        .collect();
    (0..64)
        .map(|i| format!("eth{i}"))
        .find(|n| !used.contains(n))
        .ok_or_else(|| Error::invalid_config("sandbox has too many endpoints"))
}

/// Options of `network connect`.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub ip: Option<IpAddr>,
    pub ip6: Option<IpAddr>,
    pub aliases: Vec<String>,
}

/// Attach a sandbox to a network. `host` needs nothing: the message says so.
pub fn connect(
    cni: &CniConfig,
    net: &Entry,
    sandbox: &Sandbox,
    opts: &ConnectOptions,
) -> Result<Option<Value>> {
    if net
        .network
        .as_ref()
        .is_some_and(|n| n.driver == Driver::Host)
    {
        return Ok(None);
    }
    let list = net
        .list
        .as_ref()
        .ok_or_else(|| Error::invalid_config(format!("network {} has no plugins", net.name)))?;
    if !sandbox.path.exists() {
        return Err(Error::invalid_config(format!(
            "sandbox {} does not exist (create it with `cnitool sandbox create {}`)",
            sandbox.name, sandbox.name
        )));
    }
    if cni
        .cache
        .list()?
        .iter()
        .any(|c| c.container_id == sandbox.name && c.network == net.name)
    {
        return Err(Error::invalid_config(format!(
            "endpoint with name {} already exists in network {}",
            sandbox.name, net.name
        )));
    }
    let mut caps = Map::new();
    let ips: Vec<String> = [opts.ip, opts.ip6]
        .into_iter()
        .flatten()
        .map(|ip| ip.to_string())
        .collect();
    if !ips.is_empty() {
        caps.insert("ips".into(), json!(ips));
    }
    if !opts.aliases.is_empty() {
        // The CNI conventions' `aliases` capability (podman's, dnsname's):
        // network name -> aliases.
        caps.insert("aliases".into(), json!({ net.name.clone(): opts.aliases }));
    }
    // The none network is loopback only: always `lo`.
    let none = net
        .network
        .as_ref()
        .is_some_and(|n| n.driver == Driver::Null);
    // As in Docker, the default route comes from the first network a
    // sandbox joins; later ones add only their own subnet.
    let has_endpoint = cni
        .cache
        .list()?
        .iter()
        .any(|c| c.container_id == sandbox.name && c.ifname != "lo");
    let list = if has_endpoint && !none {
        without_default_routes(list)?
    } else {
        list.clone()
    };
    let rt = RuntimeConf {
        container_id: sandbox.name.clone(),
        netns: Some(sandbox.path.clone()),
        ifname: if none {
            "lo".into()
        } else {
            free_ifname(cni, sandbox)?
        },
        args: Vec::new(),
        capability_args: caps,
    };
    cni.add(&list, &rt).map(Some)
}

/// The chain with every IPAM default route (`0.0.0.0/0`, `::/0`) removed.
fn without_default_routes(list: &LoadedList) -> Result<LoadedList> {
    let mut raw = list.list.raw.clone();
    if let Some(Value::Array(plugins)) = raw.get_mut("plugins") {
        for p in plugins {
            if let Some(Value::Array(routes)) = p.get_mut("ipam").and_then(|i| i.get_mut("routes"))
            {
                routes.retain(|r| {
                    !matches!(
                        r.get("dst").and_then(Value::as_str),
                        Some("0.0.0.0/0") | Some("::/0")
                    )
                });
            }
        }
    }
    let bytes = serde_json::to_vec(&raw).map_err(|e| Error::internal(e.to_string()))?;
    Ok(LoadedList {
        list: NetConfList::from_slice(&bytes)?,
        bytes,
        source: list.source.clone(),
    })
}

/// The chain an endpoint was made with: the network's current list, or
/// the one cached with the endpoint when the network is gone.
fn list_for(c: &CachedAttachment, current: Option<&LoadedList>) -> Result<LoadedList> {
    if let Some(l) = current {
        return Ok(l.clone());
    }
    Ok(LoadedList {
        list: NetConfList::from_slice(&c.config)?,
        bytes: c.config.clone(),
        source: PathBuf::from("(cached)"),
    })
}

fn rt_of(c: &CachedAttachment) -> RuntimeConf {
    RuntimeConf {
        container_id: c.container_id.clone(),
        netns: (!c.netns.is_empty()).then(|| PathBuf::from(&c.netns)),
        ifname: c.ifname.clone(),
        args: c.cni_args.clone(),
        capability_args: c.capability_args.clone(),
    }
}

/// Detach a sandbox from a network.
pub fn disconnect(cni: &CniConfig, net: &Entry, sandbox: &Sandbox) -> Result<()> {
    if net
        .network
        .as_ref()
        .is_some_and(|n| n.driver == Driver::Host)
    {
        return Ok(());
    }
    let attached: Vec<CachedAttachment> = cni
        .cache
        .list()?
        .into_iter()
        .filter(|c| c.container_id == sandbox.name && c.network == net.name)
        .collect();
    if attached.is_empty() {
        return Err(Error::invalid_config(format!(
            "container {} is not connected to network {}",
            sandbox.name, net.name
        )));
    }
    let mut errs = ErrorList::new();
    for c in &attached {
        let list = list_for(c, net.list.as_ref())?;
        errs.check(cni.del(&list, &rt_of(c)));
    }
    errs.into_result()
}

/// Detach a sandbox from everything it is attached to (`sandbox rm`).
pub fn disconnect_all(cni: &CniConfig, sandbox: &Sandbox, nets: &[Entry]) -> Result<()> {
    let mut errs = ErrorList::new();
    for c in cni.cache.list()? {
        if c.container_id != sandbox.name {
            continue;
        }
        let current = nets
            .iter()
            .find(|e| e.name == c.network)
            .and_then(|e| e.list.as_ref());
        match list_for(&c, current) {
            Ok(list) => {
                errs.check(cni.del(&list, &rt_of(&c)));
            }
            Err(e) => errs.push(e),
        }
    }
    errs.into_result()
}

/// Sandboxes this tool created are remembered as empty marker files
/// under `<state>/sandboxes/`, so `sandbox ls` shows ours and not every
/// namespace on the machine.
fn marker_dir(state: &Path) -> PathBuf {
    state.join("sandboxes")
}

/// Create a named namespace with `lo` up (what every Docker sandbox has).
pub fn create_sandbox(sandbox: &Sandbox, state: &Path) -> Result<()> {
    if sandbox.path.exists() {
        return Err(Error::invalid_config(format!(
            "sandbox {} already exists",
            sandbox.name
        )));
    }
    if sandbox.path.parent() != Some(Path::new(NETNS_DIR)) {
        return Err(Error::invalid_config(
            "sandboxes are created by name, under /var/run/netns",
        ));
    }
    run_ip(&["netns", "add", &sandbox.name])?;
    let setup = || -> Result<()> {
        let ns = cni_net::netns::NetNs::open(&sandbox.path)?;
        let mut nl = cni_net::netlink::Netlink::new_in(&ns)?;
        let lo = nl.link_by_name("lo")?;
        nl.set_link_up(lo.index)?;
        let dir = marker_dir(state);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::from_io(format!("create {}", dir.display()), e))?;
        cni_state::write_atomic(
            &dir.join(&sandbox.name),
            b"",
            0o600,
            cni_state::Durability::None,
        )
        .map_err(|e| Error::from_io("record sandbox", e))
    };
    if let Err(e) = setup() {
        let _ = run_ip(&["netns", "delete", &sandbox.name]);
        return Err(e);
    }
    Ok(())
}

pub fn delete_sandbox(sandbox: &Sandbox, state: &Path) -> Result<()> {
    let _ = std::fs::remove_file(marker_dir(state).join(&sandbox.name));
    if !sandbox.path.exists() {
        return Ok(());
    }
    run_ip(&["netns", "delete", &sandbox.name])
}

/// The sandboxes this tool created that still exist, and any other
/// namespace that holds one of our endpoints.
pub fn list_sandboxes(state: &Path, eps: &[Endpoint]) -> Result<Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(marker_dir(state)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && Path::new(NETNS_DIR).join(n).exists())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::from_io("list sandboxes", e)),
    };
    names.extend(eps.iter().map(|e| e.container_id.clone()));
    names.sort();
    names.dedup();
    Ok(names)
}

/// Named namespaces are iproute2's bind mounts; `ip` makes them the way
/// every other tool expects to find them.
fn run_ip(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::from_io("run ip (is iproute2 installed?)", e))?;
    if !out.status.success() {
        return Err(Error::io(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_names_and_paths() {
        let s = Sandbox::resolve("web1").unwrap();
        assert_eq!(s.path, Path::new("/var/run/netns/web1"));
        let p = Sandbox::resolve("/proc/123/ns/net").unwrap();
        assert_eq!(p.name, "net");
        assert!(Sandbox::resolve("..").is_err());
        assert!(Sandbox::resolve("a b").is_err());
        assert!(Sandbox::resolve("-x").is_err());
    }

    #[test]
    fn endpoints_read_ips_and_mac_of_the_container_interface() {
        let c = CachedAttachment {
            kind: "cniCacheV1".into(),
            container_id: "c1".into(),
            config: vec![],
            ifname: "eth0".into(),
            network: "n1".into(),
            netns: "/var/run/netns/c1".into(),
            cni_args: vec![],
            capability_args: json!({"aliases": {"n1": ["web"], "n2": ["other"]}})
                .as_object()
                .unwrap()
                .clone(),
            result: Some(json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "br0", "mac": "aa:00:00:00:00:01"},
                               {"name": "eth0", "mac": "aa:00:00:00:00:02", "sandbox": "/var/run/netns/c1"}],
                "ips": [{"interface": 1, "address": "10.0.0.2/24"}, {"interface": 1, "address": "fd00::2/64"}]
            })),
        };
        let e = Endpoint::from_cache(&c);
        assert_eq!(e.mac.as_deref(), Some("aa:00:00:00:00:02"));
        assert_eq!(e.ipv4.as_deref(), Some("10.0.0.2/24"));
        assert_eq!(e.ipv6.as_deref(), Some("fd00::2/64"));
        assert_eq!(e.aliases, vec!["web"]);
        assert_eq!(e.id().len(), 64);
    }
}
