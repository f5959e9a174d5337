//! `cnitool network ...` and `cnitool sandbox ...`: Docker's network
//! commands, their flags and their output, over the registry and runtime.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use super::endpoints::{self, ConnectOptions, Endpoint, Sandbox};
use super::model::{Driver, Network, Pool};
use super::registry::{self, Entry, Registry};
use super::remote;
use clap::{Args, Subcommand};
use cni_runtime::CniConfig;
use cni_spec::error::{Error, ErrorList, Result};
use cni_spec::Attachment;

/// Where the CLI reads and writes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub conf_dir: PathBuf,
    pub cni: CniConfig,
}

impl Settings {
    pub(crate) fn registry(&self) -> Registry {
        Registry {
            conf_dir: self.conf_dir.clone(),
            data_dir: std::env::var_os("CNI_IPAM_DATA_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            dns_available: self
                .cni
                .path
                .iter()
                .any(|d| d.join(super::drivers::DNS_PLUGIN).is_file()),
        }
    }
}

/// `cnitool network ...`: Docker's network commands, flags and spellings.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network (a conflist in NETCONFPATH)
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all networks without endpoints
    Prune(PruneArgs),
    /// Connect a sandbox to a network
    Connect(ConnectArgs),
    /// Disconnect a sandbox from a network
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver: bridge, macvlan, overlay, or any CNI plugin on CNI_PATH
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format (repeat for several pools)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Allocate addresses from a sub-range of a subnet
    #[arg(long = "ip-range", value_name = "CIDR")]
    pub ip_range: Vec<String>,
    /// Gateway of a subnet
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// Address of a subnet the allocator must not hand out
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    pub aux_address: Vec<String>,
    /// No masquerading and no default route: no way out of the network
    /// (its names resolve, other names are not forwarded)
    #[arg(long)]
    pub internal: bool,
    /// Enable IPv6 (needed for an IPv6 --subnet)
    #[arg(long)]
    pub ipv6: bool,
    /// Accepted for Docker compatibility: every network is attachable
    #[arg(long)]
    pub attachable: bool,
    /// Driver option (for a CNI plugin driver, a key of its config);
    /// `dns=false` turns name resolution between containers off
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Metadata on the network
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: driver, id, label, name, scope, type (builtin|custom)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output format: json
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate network IDs
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Accepted for Docker compatibility: the output is always JSON
    #[arg(short, long)]
    pub format: Option<String>,
    /// Accepted for Docker compatibility
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Accepted for Docker compatibility
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt (cnitool never prompts)
    #[arg(short, long)]
    pub force: bool,
    /// Only prune the networks that match (keys as for ls)
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address for the endpoint
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// IPv6 address for the endpoint
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// Network-scoped alias of the sandbox: another name it resolves as
    #[arg(long)]
    pub alias: Vec<String>,
    pub network: String,
    pub sandbox: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Accepted for Docker compatibility
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub sandbox: String,
}

/// `cnitool sandbox ...`: named network namespaces that stand for
/// containers.
#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Create a sandbox: a named network namespace with only lo
    Create { name: String },
    /// List sandboxes and the networks they are on
    #[command(visible_alias = "list")]
    Ls,
    /// Disconnect sandboxes from every network and delete them
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

fn key_value(s: &str, what: &str) -> Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| Error::invalid_config(format!("invalid {what} {s:?}: expected KEY=VALUE")))
}

fn cidr(s: &str, what: &str) -> Result<IpNetwork> {
    s.parse()
        .map_err(|_| Error::invalid_config(format!("invalid {what} {s:?}: expected a CIDR")))
}

fn ip(s: &str, what: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|_| Error::invalid_config(format!("invalid {what} {s:?}: expected an IP address")))
}

/// `cnitool network ...`
pub fn network(cmd: NetworkCmd, s: &Settings) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => create(&a, s),
        NetworkCmd::Ls(a) => ls(&a, s),
        NetworkCmd::Inspect(a) => inspect(&a, s),
        NetworkCmd::Rm(a) => rm(&a, s),
        NetworkCmd::Prune(a) => prune(&a, s),
        NetworkCmd::Connect(a) => connect(&a, s),
        NetworkCmd::Disconnect(a) => disconnect(&a, s),
    }
}

/// Pair each `--subnet` with the `--ip-range`/`--gateway` that falls in
/// it, and each `--aux-address` likewise, as Docker does.
fn pools_from(a: &CreateArgs) -> Result<Vec<Pool>> {
    let mut pools: Vec<Pool> = a
        .subnet
        .iter()
        .map(|s| {
            Ok(Pool {
                subnet: super::pools::canonical(cidr(s, "subnet")?),
                ip_range: None,
                gateway: None,
                aux_addresses: BTreeMap::new(),
            })
        })
        .collect::<Result<_>>()?;
    let missing_subnet =
        |what: &str| Error::invalid_config(format!("{what} needs a --subnet it belongs to"));
    for r in &a.ip_range {
        let r = cidr(r, "ip-range")?;
        if pools.is_empty() {
            return Err(missing_subnet("--ip-range"));
        }
        let idx = pools
            .iter()
            .position(|p| p.subnet.contains(r.network()))
            .ok_or_else(|| Error::invalid_config(format!("no matching subnet for range {r}")))?;
        pools[idx].ip_range = Some(r);
    }
    for g in &a.gateway {
        let g = ip(g, "gateway")?;
        if pools.is_empty() {
            return Err(missing_subnet("--gateway"));
        }
        let idx = pools
            .iter()
            .position(|p| p.subnet.contains(g))
            .ok_or_else(|| Error::invalid_config(format!("no matching subnet for gateway {g}")))?;
        pools[idx].gateway = Some(g);
    }
    for aux in &a.aux_address {
        let (name, addr) = key_value(aux, "aux-address")?;
        let addr = ip(&addr, "aux-address")?;
        let idx = pools
            .iter()
            .position(|p| p.subnet.contains(addr))
            .ok_or_else(|| {
                Error::invalid_config(format!("no matching subnet for aux-address {addr}"))
            })?;
        pools[idx].aux_addresses.insert(name, addr);
    }
    Ok(pools)
}

fn create(a: &CreateArgs, s: &Settings) -> Result<()> {
    let driver = remote::resolve(&a.driver, &s.cni.path)?;
    let options = a
        .opt
        .iter()
        .map(|o| key_value(o, "option"))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let labels = a
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let net = Network {
        name: a.name.clone(),
        driver,
        created: String::new(),
        internal: a.internal,
        ipv6: a.ipv6,
        ipam: pools_from(a)?,
        options,
        labels,
        builtin: false,
        cluster: false,
    };
    let e = if net.driver == Driver::Overlay && super::cluster::joined() {
        super::cluster::create_overlay(net, s)?
    } else {
        s.registry().create(net)?
    };
    println!("{}", e.id);
    Ok(())
}

fn parse_filters(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter().map(|f| key_value(f, "filter")).collect()
}

/// `--filter` as Docker applies it: every given key must match.
fn matches_filters(e: &Entry, filters: &[(String, String)]) -> Result<bool> {
    for (k, v) in filters {
        let ok = match k.as_str() {
            "driver" => e.driver == *v,
            "name" => e.name.contains(v.as_str()),
            "id" => e.id.starts_with(v.as_str()),
            "scope" => e.scope == *v,
            "type" => match v.as_str() {
                "builtin" => e.builtin,
                "custom" => !e.builtin,
                _ => return Err(Error::invalid_config(format!("invalid filter 'type={v}'"))),
            },
            "label" => {
                let labels = e.network.as_ref().map(|n| &n.labels);
                match v.split_once('=') {
                    Some((lk, lv)) => labels.and_then(|l| l.get(lk)).is_some_and(|x| x == lv),
                    None => labels.is_some_and(|l| l.contains_key(v.as_str())),
                }
            }
            _ => return Err(Error::invalid_config(format!("invalid filter '{k}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn ls(a: &LsArgs, s: &Settings) -> Result<()> {
    let filters = parse_filters(&a.filter)?;
    let mut rows = Vec::new();
    for e in s.registry().list()? {
        if matches_filters(&e, &filters)? {
            rows.push(e);
        }
    }
    let full = a.no_trunc;
    let id = |e: &Entry| {
        if full {
            e.id.clone()
        } else {
            e.id[..12].to_string()
        }
    };
    if a.quiet {
        for e in &rows {
            println!("{}", id(e));
        }
        return Ok(());
    }
    match a.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for e in &rows {
                let n = e.network.as_ref();
                println!(
                    "{}",
                    json!({
                        "CreatedAt": n.map(|n| n.created.clone()).unwrap_or_default(),
                        "Driver": e.driver,
                        "ID": id(e),
                        "IPv4": n.is_none_or(|n| n.ipam.iter().any(|p| p.subnet.is_ipv4()) || n.ipam.is_empty()).to_string(),
                        "IPv6": n.is_some_and(|n| n.ipv6).to_string(),
                        "Internal": n.is_some_and(|n| n.internal).to_string(),
                        "Labels": n.map(|n| n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")).unwrap_or_default(),
                        "Name": e.name,
                        "Scope": e.scope,
                    })
                );
            }
            Ok(())
        }
        Some(other) => Err(Error::invalid_config(format!(
            "unsupported --format {other:?}: use json"
        ))),
        None => {
            let table: Vec<[String; 4]> = rows
                .iter()
                .map(|e| [id(e), e.name.clone(), e.driver.clone(), e.scope.clone()])
                .collect();
            print_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &table);
            Ok(())
        }
    }
}

pub(crate) fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn inspect_json(e: &Entry, eps: &[Endpoint]) -> Value {
    let n = e.network.as_ref();
    let config: Vec<Value> = n
        .map(|n| {
            n.ipam
                .iter()
                .map(|p| {
                    let mut c = json!({"Subnet": p.subnet.to_string()});
                    if let Some(r) = p.ip_range {
                        c["IPRange"] = json!(r.to_string());
                    }
                    if let Some(g) = p.gateway {
                        c["Gateway"] = json!(g.to_string());
                    }
                    if !p.aux_addresses.is_empty() {
                        c["AuxiliaryAddresses"] = json!(p
                            .aux_addresses
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v.to_string())))
                            .collect::<serde_json::Map<_, _>>());
                    }
                    c
                })
                .collect()
        })
        .unwrap_or_default();
    let containers: serde_json::Map<String, Value> = eps
        .iter()
        .map(|ep| {
            let mut c = json!({
                "Name": ep.container_id,
                "EndpointID": ep.id(),
                "MacAddress": ep.mac.clone().unwrap_or_default(),
                "IPv4Address": ep.ipv4.clone().unwrap_or_default(),
                "IPv6Address": ep.ipv6.clone().unwrap_or_default(),
                "Interface": ep.ifname,
                "Sandbox": ep.netns,
            });
            if !ep.aliases.is_empty() {
                c["Aliases"] = json!(ep.aliases);
            }
            let names = ep.dns_names();
            if !names.is_empty() {
                c["DNSNames"] = json!(names);
            }
            (ep.container_id.clone(), c)
        })
        .collect();
    json!({
        "Name": e.name,
        "Id": e.id,
        "Created": n.map(|n| n.created.clone()).unwrap_or_default(),
        "Scope": e.scope,
        "Driver": e.driver,
        "EnableIPv6": n.is_some_and(|n| n.ipv6),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.is_some_and(|n| n.internal),
        "Attachable": false,
        "Ingress": false,
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.map(|n| json!(n.options)).unwrap_or(json!({})),
        "Labels": n.map(|n| json!(n.labels)).unwrap_or(json!({})),
        "ConfigFile": e.list.as_ref().map(|l| l.source.display().to_string()).unwrap_or_default(),
    })
}

fn inspect(a: &InspectArgs, s: &Settings) -> Result<()> {
    let reg = s.registry();
    let mut out = Vec::new();
    for key in &a.networks {
        let e = reg.find(key)?;
        let eps = endpoints::endpoints(&s.cni, Some(&e.name))?;
        out.push(inspect_json(&e, &eps));
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}

/// Remove one network: refused while endpoints exist; then GC tells the
/// plugins nothing of it is valid any more (rules, leases), and what the
/// network left on the host (its bridge, its lease directory) goes too.
fn remove(e: &Entry, s: &Settings) -> Result<()> {
    if e.builtin {
        return Err(Error::invalid_config(format!(
            "{} is a pre-defined network and cannot be removed",
            e.name
        )));
    }
    let eps = endpoints::endpoints(&s.cni, Some(&e.name))?;
    if !eps.is_empty() {
        return Err(Error::invalid_config(format!(
            "error while removing network: network {} id {} has active endpoints ({})",
            e.name,
            e.id,
            eps.iter()
                .map(|ep| ep.container_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // A cluster network goes cluster-wide first (refused while any host
    // has endpoints on it); every host's daemon then removes its conflist.
    if e.network.as_ref().is_some_and(|n| n.cluster) {
        super::cluster::remove_network(e, s)?;
    }
    let mut errs = ErrorList::new();
    if let Some(list) = &e.list {
        errs.check(s.cni.gc(list, &[] as &[Attachment]));
        if let Some(n) = &e.network {
            if n.driver == Driver::Bridge {
                errs.check(remove_idle_bridge(&super::drivers::bridge_name(n)));
            }
        }
        if let Some(dir) = registry::ipam_data_dir(&list.list) {
            errs.check(remove_lease_dir(&dir));
        }
    }
    errs.check(s.registry().remove_file(e));
    errs.into_result()
}

/// Delete the network's bridge if nothing is attached to it any more.
fn remove_idle_bridge(name: &str) -> Result<()> {
    let mut nl = cni_net::netlink::Netlink::new()?;
    let Some(br) = nl.link_by_name_opt(name)? else {
        return Ok(());
    };
    let busy = nl.links()?.iter().any(|l| l.master == Some(br.index));
    if busy {
        return Ok(());
    }
    match nl.delete_link(br.index) {
        Err(e) if cni_net::netlink::is_not_found(&e) => Ok(()),
        other => other,
    }
}

/// host-local's per-network directory, once it holds no lease: only its
/// lock and last-reserved markers.
fn remove_lease_dir(dir: &std::path::Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let only_markers = names
        .iter()
        .all(|n| n == "lock" || n.starts_with("last_reserved_ip") || n.starts_with('.'));
    if only_markers {
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error::from_io(format!("remove {}", dir.display()), e))?;
    }
    Ok(())
}

fn rm(a: &RmArgs, s: &Settings) -> Result<()> {
    let reg = s.registry();
    let mut errs = ErrorList::new();
    for key in &a.networks {
        match reg.find(key).and_then(|e| remove(&e, s)) {
            Ok(()) => println!("{key}"),
            Err(e) => errs.push(e),
        }
    }
    errs.into_result()
}

fn prune(a: &PruneArgs, s: &Settings) -> Result<()> {
    let filters = parse_filters(&a.filter)?;
    let mut removed = Vec::new();
    let mut errs = ErrorList::new();
    for e in s.registry().list()? {
        if e.builtin
            || !matches_filters(&e, &filters)?
            || !endpoints::endpoints(&s.cni, Some(&e.name))?.is_empty()
        {
            continue;
        }
        match remove(&e, s) {
            Ok(()) => removed.push(e.name),
            Err(err) => errs.push(err),
        }
    }
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for n in removed {
            println!("{n}");
        }
    }
    errs.into_result()
}

fn connect(a: &ConnectArgs, s: &Settings) -> Result<()> {
    let opts = ConnectOptions {
        ip: a.ip.as_deref().map(|v| ip(v, "--ip")).transpose()?,
        ip6: a.ip6.as_deref().map(|v| ip(v, "--ip6")).transpose()?,
        aliases: a.alias.clone(),
    };
    let e = s.registry().find(&a.network)?;
    let sb = Sandbox::resolve(&a.sandbox)?;
    let Some(result) = endpoints::connect(&s.cni, &e, &sb, &opts)? else {
        println!(
            "network host: sandbox {} needs no attachment; a container on the host network uses the host's own namespace",
            sb.name
        );
        return Ok(());
    };
    super::resolv::write_first(&sb, &result)
}

fn disconnect(a: &DisconnectArgs, s: &Settings) -> Result<()> {
    let e = s.registry().find(&a.network)?;
    endpoints::disconnect(&s.cni, &e, &Sandbox::resolve(&a.sandbox)?)
}

/// `cnitool sandbox create|ls|rm NAME`
pub fn sandbox(cmd: SandboxCmd, s: &Settings) -> Result<()> {
    match cmd {
        SandboxCmd::Create { name } => {
            endpoints::create_sandbox(&Sandbox::resolve(&name)?, s.cni.cache.root())
        }
        SandboxCmd::Ls => {
            let eps = endpoints::endpoints(&s.cni, None)?;
            let rows: Vec<[String; 2]> = endpoints::list_sandboxes(s.cni.cache.root(), &eps)?
                .into_iter()
                .map(|name| {
                    let nets: Vec<String> = eps
                        .iter()
                        .filter(|e| e.container_id == name)
                        .map(|e| format!("{}({})", e.network, e.ifname))
                        .collect();
                    [name, nets.join(",")]
                })
                .collect();
            print_table(["SANDBOX", "NETWORKS"], &rows);
            Ok(())
        }
        SandboxCmd::Rm { names } => {
            let nets = s.registry().list()?;
            let mut errs = ErrorList::new();
            for name in &names {
                let sb = Sandbox::resolve(name)?;
                errs.check(endpoints::disconnect_all(&s.cni, &sb, &nets));
                errs.check(endpoints::delete_sandbox(&sb, s.cni.cache.root()));
                errs.check(super::resolv::remove(&sb));
            }
            errs.into_result()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    }

    fn create_args(v: &[&str]) -> CreateArgs {
        let argv = ["network", "create"].iter().chain(v).copied();
        match Network::try_parse_from(argv).unwrap().cmd {
            NetworkCmd::Create(a) => a,
            other => panic!("not create: {other:?}"),
        }
    }

    #[test]
    fn flags_take_values_inline_or_next_and_repeat() {
        let a = create_args(&[
            "--subnet=10.0.0.0/24",
            "--subnet",
            "10.1.0.0/24",
            "-d",
            "ptp",
            "-o",
            "mtu=1400",
            "--opt=ipMasq=true",
            "--internal",
            "--",
            "-n1",
        ]);
        assert_eq!(a.subnet, ["10.0.0.0/24", "10.1.0.0/24"]);
        assert_eq!(a.driver, "ptp");
        assert_eq!(a.opt, ["mtu=1400", "ipMasq=true"]);
        assert!(a.internal && !a.ipv6);
        assert_eq!(a.name, "-n1", "-- ends the flags");
        assert_eq!(create_args(&["n"]).driver, "bridge");
        let argv = |v: &[&'static str]| ["network"].iter().chain(v).copied().collect::<Vec<_>>();
        for bad in [
            &["create", "--bogus", "n"][..],
            &["create", "--subnet"],
            &["create"],
            &["connect", "n"],
            &["ls", "extra"],
        ] {
            assert!(Network::try_parse_from(argv(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn docker_spellings_of_the_other_verbs() {
        let p = |v: &[&str]| {
            Network::try_parse_from(["network"].iter().chain(v).copied())
                .unwrap()
                .cmd
        };
        let NetworkCmd::Ls(l) = p(&["list", "-q", "-f", "driver=bridge", "--no-trunc"]) else {
            panic!()
        };
        assert!(l.quiet && l.no_trunc);
        assert_eq!(l.filter, ["driver=bridge"]);
        let NetworkCmd::Connect(c) = p(&["connect", "--ip", "10.0.0.9", "--alias", "a", "n", "s"])
        else {
            panic!()
        };
        assert_eq!(
            (c.ip.as_deref(), c.network.as_str()),
            (Some("10.0.0.9"), "n")
        );
        assert!(
            matches!(p(&["remove", "-f", "a", "b"]), NetworkCmd::Rm(r) if r.force && r.networks.len() == 2)
        );
        assert!(matches!(p(&["inspect", "-v", "a"]), NetworkCmd::Inspect(i) if i.verbose));
        assert!(
            matches!(p(&["prune", "-f", "--filter", "label=x"]), NetworkCmd::Prune(r) if r.force)
        );
    }

    #[test]
    fn pools_pair_ranges_and_gateways_with_their_subnet() {
        let a = create_args(&[
            "--subnet",
            "10.1.0.0/16",
            "--subnet",
            "10.2.0.0/16",
            "--ip-range",
            "10.2.5.0/24",
            "--gateway",
            "10.1.0.254",
            "--aux-address",
            "router=10.2.0.2",
            "n",
        ]);
        let p = pools_from(&a).unwrap();
        assert_eq!(p[0].gateway.unwrap().to_string(), "10.1.0.254");
        assert_eq!(p[1].ip_range.unwrap().to_string(), "10.2.5.0/24");
        assert_eq!(p[1].aux_addresses["router"].to_string(), "10.2.0.2");
        let bad = create_args(&["--subnet", "10.1.0.0/16", "--gateway", "10.9.0.1", "n"]);
        assert!(pools_from(&bad)
            .unwrap_err()
            .msg
            .contains("no matching subnet for gateway"));
        assert!(pools_from(&create_args(&["--gateway", "10.9.0.1", "n"])).is_err());
    }
}
