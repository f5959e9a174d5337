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
    fn registry(&self) -> Registry {
        Registry {
            conf_dir: self.conf_dir.clone(),
            data_dir: std::env::var_os("CNI_IPAM_DATA_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

const NETWORK_USAGE: &str = "\
usage: cnitool network COMMAND
  create [-d DRIVER] [--subnet CIDR] [--ip-range CIDR] [--gateway IP]
         [--aux-address NAME=IP] [--internal] [--ipv6] [-o KEY=VALUE]
         [--label KEY=VALUE] NAME
  ls [-q] [--filter KEY=VALUE] [--format json]
  inspect NETWORK...
  rm NETWORK...
  prune [-f]
  connect [--ip IP] [--ip6 IP] [--alias NAME] NETWORK SANDBOX
  disconnect NETWORK SANDBOX";

/// Flags and positionals of one command line.
struct Args {
    flags: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Args {
    /// `with_value` lists the flags that take a value (as `--f v` or
    /// `--f=v`); `switches` the ones that do not.
    fn parse(raw: &[String], with_value: &[&str], switches: &[&str]) -> Result<Args> {
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if !a.starts_with('-') || a == "-" {
                positional.push(a.clone());
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            if with_value.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| {
                        Error::invalid_config(format!("flag needs an argument: {name}"))
                    })?,
                };
                flags.push((name, v));
            } else if switches.contains(&name.as_str()) && inline.is_none() {
                flags.push((name, "true".into()));
            } else {
                return Err(Error::invalid_config(format!(
                    "unknown flag: {a}\n{NETWORK_USAGE}"
                )));
            }
        }
        Ok(Args { flags, positional })
    }

    fn all(&self, names: &[&str]) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, names: &[&str]) -> Option<&str> {
        self.all(names).last().copied()
    }

    fn has(&self, names: &[&str]) -> bool {
        !self.all(names).is_empty()
    }
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
pub fn network(args: &[String], s: &Settings) -> Result<()> {
    let Some(cmd) = args.first() else {
        return Err(Error::invalid_config(NETWORK_USAGE));
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "create" => create(rest, s),
        "ls" | "list" => ls(rest, s),
        "inspect" => inspect(rest, s),
        "rm" | "remove" => rm(rest, s),
        "prune" => prune(rest, s),
        "connect" => connect(rest, s),
        "disconnect" => disconnect(rest, s),
        _ => Err(Error::invalid_config(format!(
            "unknown network command {cmd:?}\n{NETWORK_USAGE}"
        ))),
    }
}

/// Pair each `--subnet` with the `--ip-range`/`--gateway` that falls in
/// it, and each `--aux-address` likewise, as Docker does.
fn pools_from(a: &Args) -> Result<Vec<Pool>> {
    let mut pools: Vec<Pool> = a
        .all(&["--subnet"])
        .into_iter()
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
    for r in a.all(&["--ip-range"]) {
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
    for g in a.all(&["--gateway"]) {
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
    for aux in a.all(&["--aux-address"]) {
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

fn create(args: &[String], s: &Settings) -> Result<()> {
    let a = Args::parse(
        args,
        &[
            "-d",
            "--driver",
            "--subnet",
            "--ip-range",
            "--gateway",
            "--aux-address",
            "-o",
            "--opt",
            "--label",
        ],
        &["--internal", "--ipv6", "--attachable"],
    )?;
    let [name] = a.positional.as_slice() else {
        return Err(Error::invalid_config(format!(
            "network create needs exactly one NAME\n{NETWORK_USAGE}"
        )));
    };
    let driver = Driver::parse(a.one(&["-d", "--driver"]).unwrap_or("bridge"))?;
    let options = a
        .all(&["-o", "--opt"])
        .into_iter()
        .map(|o| key_value(o, "option"))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let labels = a
        .all(&["--label"])
        .into_iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let net = Network {
        name: name.clone(),
        driver,
        created: String::new(),
        internal: a.has(&["--internal"]),
        ipv6: a.has(&["--ipv6"]),
        ipam: pools_from(&a)?,
        options,
        labels,
        builtin: false,
    };
    let e = s.registry().create(net)?;
    println!("{}", e.id);
    Ok(())
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

fn ls(args: &[String], s: &Settings) -> Result<()> {
    let a = Args::parse(
        args,
        &["-f", "--filter", "--format"],
        &["-q", "--quiet", "--no-trunc"],
    )?;
    let filters = a
        .all(&["-f", "--filter"])
        .into_iter()
        .map(|f| key_value(f, "filter"))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for e in s.registry().list()? {
        if matches_filters(&e, &filters)? {
            rows.push(e);
        }
    }
    let full = a.has(&["--no-trunc"]);
    let id = |e: &Entry| {
        if full {
            e.id.clone()
        } else {
            e.id[..12].to_string()
        }
    };
    if a.has(&["-q", "--quiet"]) {
        for e in &rows {
            println!("{}", id(e));
        }
        return Ok(());
    }
    match a.one(&["--format"]) {
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

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
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

fn inspect(args: &[String], s: &Settings) -> Result<()> {
    let a = Args::parse(args, &["-f", "--format"], &["-v", "--verbose"])?;
    if a.positional.is_empty() {
        return Err(Error::invalid_config(
            "network inspect needs at least one NETWORK",
        ));
    }
    let reg = s.registry();
    let mut out = Vec::new();
    for key in &a.positional {
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

fn rm(args: &[String], s: &Settings) -> Result<()> {
    let a = Args::parse(args, &[], &["-f", "--force"])?;
    if a.positional.is_empty() {
        return Err(Error::invalid_config(
            "network rm needs at least one NETWORK",
        ));
    }
    let reg = s.registry();
    let mut errs = ErrorList::new();
    for key in &a.positional {
        match reg.find(key).and_then(|e| remove(&e, s)) {
            Ok(()) => println!("{key}"),
            Err(e) => errs.push(e),
        }
    }
    errs.into_result()
}

fn prune(args: &[String], s: &Settings) -> Result<()> {
    Args::parse(args, &["--filter"], &["-f", "--force"])?;
    let mut removed = Vec::new();
    let mut errs = ErrorList::new();
    for e in s.registry().list()? {
        if e.builtin || !endpoints::endpoints(&s.cni, Some(&e.name))?.is_empty() {
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

fn connect(args: &[String], s: &Settings) -> Result<()> {
    let a = Args::parse(args, &["--ip", "--ip6", "--alias"], &[])?;
    let [net, sandbox] = a.positional.as_slice() else {
        return Err(Error::invalid_config(format!(
            "network connect needs NETWORK and SANDBOX\n{NETWORK_USAGE}"
        )));
    };
    let opts = ConnectOptions {
        ip: a.one(&["--ip"]).map(|v| ip(v, "--ip")).transpose()?,
        ip6: a.one(&["--ip6"]).map(|v| ip(v, "--ip6")).transpose()?,
        aliases: a
            .all(&["--alias"])
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    let e = s.registry().find(net)?;
    let sb = Sandbox::resolve(sandbox)?;
    if endpoints::connect(&s.cni, &e, &sb, &opts)?.is_none() {
        println!(
            "network host: sandbox {} needs no attachment; a container on the host network uses the host's own namespace",
            sb.name
        );
    }
    Ok(())
}

fn disconnect(args: &[String], s: &Settings) -> Result<()> {
    let a = Args::parse(args, &[], &["-f", "--force"])?;
    let [net, sandbox] = a.positional.as_slice() else {
        return Err(Error::invalid_config(
            "network disconnect needs NETWORK and SANDBOX",
        ));
    };
    let e = s.registry().find(net)?;
    endpoints::disconnect(&s.cni, &e, &Sandbox::resolve(sandbox)?)
}

/// `cnitool sandbox create|ls|rm NAME`
pub fn sandbox(args: &[String], s: &Settings) -> Result<()> {
    let usage = "usage: cnitool sandbox create|ls|rm NAME";
    match args {
        [cmd, name] if cmd == "create" => {
            endpoints::create_sandbox(&Sandbox::resolve(name)?, s.cni.cache.root())
        }
        [cmd] if cmd == "ls" || cmd == "list" => {
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
        [cmd, names @ ..] if (cmd == "rm" || cmd == "remove") && !names.is_empty() => {
            let nets = s.registry().list()?;
            let mut errs = ErrorList::new();
            for name in names {
                let sb = Sandbox::resolve(name)?;
                errs.check(endpoints::disconnect_all(&s.cni, &sb, &nets));
                errs.check(endpoints::delete_sandbox(&sb, s.cni.cache.root()));
            }
            errs.into_result()
        }
        _ => Err(Error::invalid_config(usage)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_take_values_inline_or_next() {
        let a = Args::parse(
            &strings(&["--subnet=10.0.0.0/24", "-d", "bridge", "--internal", "n1"]),
            &["--subnet", "-d"],
            &["--internal"],
        )
        .unwrap();
        assert_eq!(a.one(&["--subnet"]), Some("10.0.0.0/24"));
        assert_eq!(a.one(&["-d"]), Some("bridge"));
        assert!(a.has(&["--internal"]));
        assert_eq!(a.positional, ["n1"]);
        assert!(Args::parse(&strings(&["--bogus"]), &[], &[]).is_err());
        assert!(Args::parse(&strings(&["--subnet"]), &["--subnet"], &[]).is_err());
    }

    #[test]
    fn pools_pair_ranges_and_gateways_with_their_subnet() {
        let a = Args::parse(
            &strings(&[
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
            ]),
            &["--subnet", "--ip-range", "--gateway", "--aux-address"],
            &[],
        )
        .unwrap();
        let p = pools_from(&a).unwrap();
        assert_eq!(p[0].gateway.unwrap().to_string(), "10.1.0.254");
        assert_eq!(p[1].ip_range.unwrap().to_string(), "10.2.5.0/24");
        assert_eq!(p[1].aux_addresses["router"].to_string(), "10.2.0.2");
        let bad = Args::parse(
            &strings(&["--subnet", "10.1.0.0/16", "--gateway", "10.9.0.1"]),
            &["--subnet", "--gateway"],
            &[],
        )
        .unwrap();
        assert!(pools_from(&bad)
            .unwrap_err()
            .msg
            .contains("no matching subnet for gateway"));
        let bad = Args::parse(&strings(&["--gateway", "10.9.0.1"]), &["--gateway"], &[]).unwrap();
        assert!(pools_from(&bad).is_err());
    }
}
