//! CNM drivers onto CNI plugin chains: what `docker network create -d X`
//! becomes as a conflist.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::model::{Driver, Network};
use super::pools;
use cni_spec::error::{Error, Result};

/// The conflist version we write: the newest, with older ones listed so a
/// runtime that stops at 1.0.0 still loads it.
pub const CONF_VERSION: &str = "1.1.0";

/// Docker's option names for the bridge driver, and our short aliases.
const OPT_BRIDGE_NAME: &[&str] = &["com.docker.network.bridge.name", "bridge"];
const OPT_MTU: &[&str] = &["com.docker.network.driver.mtu", "mtu"];
const OPT_ICC: &[&str] = &["com.docker.network.bridge.enable_icc", "icc"];
const OPT_MASQ: &[&str] = &[
    "com.docker.network.bridge.enable_ip_masquerade",
    "masquerade",
];
const OPT_ISOLATE: &[&str] = &["isolate"];
const OPT_PARENT: &[&str] = &["parent", "master"];
const OPT_MACVLAN_MODE: &[&str] = &["macvlan_mode", "mode"];
const OPT_VNI: &[&str] = &["com.docker.network.driver.overlay.vxlanid_list", "vni"];
const OPT_PEERS: &[&str] = &["peers"];
const OPT_PORT: &[&str] = &["port", "com.docker.network.driver.overlay.port"];
const OPT_UNDERLAY: &[&str] = &["underlay", "underlayDevice"];
const OPT_LOCAL_IP: &[&str] = &["localIP", "local_ip"];
/// Name resolution between the network's containers (the `dnsname` plugin
/// chained after the main one); `-o dns=false` turns it off.
pub const OPT_DNS: &[&str] = &["dns", "com.docker.network.enable_dns"];

/// The plugin that makes container names resolvable, chained when it is
/// on CNI_PATH at `network create` (podman does the same).
pub const DNS_PLUGIN: &str = "dnsname";

/// Keys a remote driver's `-o` may not set: the runtime owns them.
const RESERVED_KEYS: &[&str] = &[
    "type",
    "name",
    "cniVersion",
    "cniVersions",
    "ipam",
    "runtimeConfig",
    "prevResult",
];

/// Options each built-in driver understands; anything else is refused, as
/// Docker refuses unknown driver options for most drivers.
fn known_options(d: &Driver) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = OPT_MTU.to_vec();
    if serves_names(d) {
        k.extend_from_slice(OPT_DNS);
    }
    match d {
        Driver::Bridge => {
            for o in [OPT_BRIDGE_NAME, OPT_ICC, OPT_MASQ, OPT_ISOLATE] {
                k.extend_from_slice(o);
            }
        }
        Driver::Macvlan => {
            k.extend_from_slice(OPT_PARENT);
            k.extend_from_slice(OPT_MACVLAN_MODE);
        }
        Driver::Overlay => {
            for o in [
                OPT_VNI,
                OPT_PEERS,
                OPT_PORT,
                OPT_UNDERLAY,
                OPT_LOCAL_IP,
                OPT_BRIDGE_NAME,
            ] {
                k.extend_from_slice(o);
            }
        }
        Driver::Host | Driver::Null | Driver::Remote(_) => {}
    }
    k
}

/// Refuse what the driver cannot take, at `network create` rather than at
/// the first connect: unknown options, and values the kernel would refuse.
pub fn check_options(n: &Network) -> Result<()> {
    if let Driver::Remote(r) = &n.driver {
        if let Some(k) = n
            .options
            .keys()
            .find(|k| RESERVED_KEYS.contains(&k.as_str()))
        {
            return Err(Error::invalid_config(format!(
                "option {k:?} cannot be set for driver {}: the runtime sets it",
                r.plugin
            )));
        }
        return Ok(());
    }
    let known = known_options(&n.driver);
    for key in n.options.keys() {
        if !known.contains(&key.as_str()) {
            return Err(Error::invalid_config(format!(
                "driver {} does not understand option {key:?} (known: {})",
                n.driver.as_str(),
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn bool_opt(n: &Network, keys: &[&str], default: bool) -> Result<bool> {
    match n.option(keys) {
        None => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(Error::invalid_config(format!(
            "option {} must be true or false, got {v:?}",
            keys[0]
        ))),
    }
}

/// A numeric option within `range`; `what` names it in Docker's style
/// (`invalid MTU number: 99999999 (must be 68-65535)`).
fn num_opt(
    n: &Network,
    keys: &[&str],
    what: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>> {
    let Some(v) = n.option(keys) else {
        return Ok(None);
    };
    match v.parse::<u64>() {
        Ok(x) if range.contains(&x) => Ok(Some(x)),
        _ => Err(Error::invalid_config(format!(
            "invalid {what}: {v} (must be {}-{})",
            range.start(),
            range.end()
        ))),
    }
}

const MTU_RANGE: std::ops::RangeInclusive<u64> = 68..=65535;
const VNI_RANGE: std::ops::RangeInclusive<u64> = 1..=16_777_215;
const PORT_RANGE: std::ops::RangeInclusive<u64> = 1..=65535;

/// An option naming an interface: one the kernel accepts.
fn ifname_opt<'a>(n: &'a Network, keys: &[&str], what: &str) -> Result<Option<&'a str>> {
    let Some(v) = n.option(keys) else {
        return Ok(None);
    };
    cni_net::netlink::check_ifname(v)
        .map_err(|e| Error::invalid_config(format!("invalid {what} {v:?}: {}", e.msg)))?;
    Ok(Some(v))
}

/// A remote driver's `-o` value as a plugin key: JSON when it parses as a
/// number, boolean, list or object, else the string itself.
fn option_value(v: &str) -> Value {
    match serde_json::from_str::<Value>(v) {
        Ok(j @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => j,
        _ => Value::String(v.to_string()),
    }
}

/// Whether the network's options name a VXLAN ID.
pub fn has_vni(n: &Network) -> bool {
    n.option(OPT_VNI).is_some()
}

/// Docker names a user bridge `br-` + the first 12 hex of the network ID.
pub fn bridge_name(n: &Network) -> String {
    n.option(OPT_BRIDGE_NAME)
        .map(str::to_string)
        .unwrap_or_else(|| format!("br-{}", n.short_id()))
}

/// The host-local block for the network's pools.
fn ipam(n: &Network, data_dir: Option<&Path>, default_route: bool) -> Value {
    let ranges: Vec<Value> = n
        .ipam
        .iter()
        .map(|p| Value::Array(pools::range_set(p)))
        .collect();
    let mut ipam = json!({ "type": "host-local", "ranges": ranges });
    if default_route {
        let mut routes = Vec::new();
        if n.ipam.iter().any(|p| p.subnet.is_ipv4()) {
            routes.push(json!({"dst": "0.0.0.0/0"}));
        }
        if n.ipam.iter().any(|p| p.subnet.is_ipv6()) {
            routes.push(json!({"dst": "::/0"}));
        }
        ipam["routes"] = Value::Array(routes);
    }
    if let Some(d) = data_dir {
        ipam["dataDir"] = json!(d.display().to_string());
    }
    ipam
}

/// Drivers whose containers get Docker's name resolution: those with
/// addresses of their own on a user network (not `none`, not remote
/// plugins, whose chains are the vendor's).
fn serves_names(d: &Driver) -> bool {
    matches!(d, Driver::Bridge | Driver::Macvlan | Driver::Overlay)
}

/// Whether the network chains `dnsname`: on by default for user networks
/// of the built-in drivers when the plugin is there (`dns_available`), off
/// with `-o dns=false`; `-o dns=true` without the plugin is refused. The
/// pre-created `bridge` has none, as Docker's default bridge resolves no
/// names.
pub fn wants_dns(n: &Network, dns_available: bool) -> Result<bool> {
    if n.builtin || !serves_names(&n.driver) {
        return Ok(false);
    }
    match n.option(OPT_DNS) {
        None => Ok(dns_available),
        Some(_) if !bool_opt(n, OPT_DNS, true)? => Ok(false),
        Some(_) if dns_available => Ok(true),
        Some(_) => Err(Error::invalid_config(format!(
            "option dns=true needs the {DNS_PLUGIN} plugin on CNI_PATH"
        ))),
    }
}

/// The `dnsname` link: Docker resolves `<container>.<network>` too, so the
/// network's name is its domain (podman's `dns.podman` when the name is
/// not a valid domain); `--internal` networks get no upstream forwarding.
fn dns_plugin(n: &Network) -> Value {
    let domain = cni_dns::names::normalize(&n.name).unwrap_or_else(|_| "dns.podman".into());
    let mut p = json!({
        "type": DNS_PLUGIN,
        "domainName": domain,
        "capabilities": {"aliases": true},
    });
    if n.internal {
        p["forward"] = json!(false);
    }
    p
}

/// The plugins of a network's chain.
pub fn plugins(n: &Network, data_dir: Option<&Path>, dns_available: bool) -> Result<Vec<Value>> {
    check_options(n)?;
    let mtu = num_opt(n, OPT_MTU, "MTU number", MTU_RANGE)?;
    let caps = json!({"ips": true, "mac": true});
    let mut main = match &n.driver {
        Driver::Bridge => {
            ifname_opt(n, OPT_BRIDGE_NAME, "bridge name")?;
            let isolate = bool_opt(n, OPT_ISOLATE, true)?;
            let masq = bool_opt(n, OPT_MASQ, true)? && !n.internal;
            json!({
                "type": "bridge",
                "bridge": bridge_name(n),
                "isGateway": true,
                "ipMasq": masq,
                "hairpinMode": bool_opt(n, OPT_ICC, true)?,
                "isolation": isolate,
                "capabilities": caps,
                "ipam": ipam(n, data_dir, !n.internal),
            })
        }
        Driver::Macvlan => {
            let parent = ifname_opt(n, OPT_PARENT, "parent interface")?.ok_or_else(|| {
                Error::invalid_config("macvlan networks need -o parent=<interface>")
            })?;
            json!({
                "type": "macvlan",
                "master": parent,
                "mode": n.option(OPT_MACVLAN_MODE).unwrap_or("bridge"),
                "capabilities": caps,
                "ipam": ipam(n, data_dir, !n.internal),
            })
        }
        Driver::Overlay => {
            let vni = num_opt(n, OPT_VNI, "VXLAN ID", VNI_RANGE)?.ok_or_else(|| {
                Error::invalid_config("overlay networks need -o vni=<1-16777215>")
            })?;
            // The overlay's subnets span every host; the plugin refuses a
            // host range outside them.
            let subnets: Vec<String> = n.ipam.iter().map(|p| p.subnet.to_string()).collect();
            let mut p = json!({
                "type": "vxlan-overlay",
                "vni": vni,
                "subnets": subnets,
                "capabilities": caps,
                "ipam": ipam(n, data_dir, false),
            });
            if n.cluster {
                // Addresses from the cluster's blocks, peers and
                // forwarding entries from the store (the daemon).
                let subnet = n.ipam.iter().find(|p| p.subnet.is_ipv4()).ok_or_else(|| {
                    Error::invalid_config("a cluster overlay needs an IPv4 --subnet")
                })?;
                p["ipam"] = json!({"type": "cluster-ipam", "subnet": subnet.subnet.to_string()});
                // Dual stack: one address of each subnet, each from this
                // host's block of it.
                if n.ipam.len() > 1 {
                    p["ipam"] = json!({"type": "cluster-ipam", "subnets": subnets});
                }
                // The gateway `network inspect` shows and the aux addresses
                // are Docker's reserved addresses: never handed out.
                let reserved: Vec<String> = n
                    .ipam
                    .iter()
                    .flat_map(|p| p.gateway.iter().chain(p.aux_addresses.values()))
                    .map(ToString::to_string)
                    .collect();
                if !reserved.is_empty() {
                    p["ipam"]["reserved"] = json!(reserved);
                }
                p["cluster"] = json!(true);
                p["capabilities"] = json!({"mac": true});
            }
            if let Some(peers) = n.option(OPT_PEERS) {
                let list: Vec<&str> = peers.split(',').filter(|s| !s.is_empty()).collect();
                p["peers"] = json!(list);
            }
            if let Some(port) = num_opt(n, OPT_PORT, "VXLAN port", PORT_RANGE)? {
                p["port"] = json!(port);
            }
            if let Some(d) = ifname_opt(n, OPT_UNDERLAY, "underlay interface")? {
                p["underlayDevice"] = json!(d);
            }
            if let Some(ip) = n.option(OPT_LOCAL_IP) {
                p["localIP"] = json!(ip);
            }
            if let Some(b) = ifname_opt(n, OPT_BRIDGE_NAME, "bridge name")? {
                p["bridge"] = json!(b);
            }
            p
        }
        Driver::Remote(r) => {
            // Docker hands a remote driver its options as they are; the
            // MTU keeps its one spelling, `mtu`, set below.
            let mut p = Map::new();
            p.insert("type".into(), json!(r.plugin));
            p.insert("capabilities".into(), json!({"ips": true}));
            for (k, v) in n
                .options
                .iter()
                .filter(|(k, _)| !OPT_MTU.contains(&k.as_str()))
            {
                p.insert(k.clone(), option_value(v));
            }
            p.insert("ipam".into(), ipam(n, data_dir, !n.internal));
            Value::Object(p)
        }
        Driver::Null => json!({"type": "loopback"}),
        Driver::Host => return Err(Error::invalid_config(
            "the host driver has no plugins: a sandbox on the host network is the host namespace",
        )),
    };
    if let (Some(m), Value::Object(o)) = (mtu, &mut main) {
        o.insert("mtu".into(), json!(m));
    }
    let mut chain = vec![main];
    if n.cluster {
        // Names across hosts: the daemon serves every host's records of a
        // cluster network (Docker's embedded DNS on an overlay).
        chain.push(json!({"type": "dnsname", "capabilities": {"aliases": true}}));
    } else if wants_dns(n, dns_available)? {
        chain.push(dns_plugin(n));
    }
    Ok(chain)
}

/// The list's version and versions: ours, or for a remote driver the
/// newest of those both sides speak (a plugin that stops at 1.0.0 must
/// not be called as 1.1.0).
fn conf_versions(d: &Driver) -> (String, Vec<String>) {
    const OURS: &[&str] = &["0.4.0", "1.0.0", CONF_VERSION];
    match d {
        Driver::Remote(r) if !r.versions.is_empty() => {
            let newest = r.versions.iter().max_by_key(|v| version_key(v));
            (newest.cloned().unwrap_or_default(), r.versions.clone())
        }
        _ => (
            CONF_VERSION.to_string(),
            OURS.iter().map(|v| v.to_string()).collect(),
        ),
    }
}

/// `1.10.0` after `1.9.0`: versions compared number by number.
fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The whole conflist, with the CNM description under `cnm`.
pub fn conflist(n: &Network, data_dir: Option<&Path>, dns_available: bool) -> Result<Value> {
    let mut cnm = serde_json::to_value(n).map_err(|e| Error::internal(e.to_string()))?;
    if let Value::Object(o) = &mut cnm {
        o.insert("id".into(), json!(n.id()));
    }
    let mut list = Map::new();
    let (version, versions) = conf_versions(&n.driver);
    list.insert("cniVersion".into(), json!(version));
    list.insert("cniVersions".into(), json!(versions));
    list.insert("name".into(), json!(n.name));
    list.insert("cnm".into(), cnm);
    list.insert(
        "plugins".into(),
        Value::Array(plugins(n, data_dir, dns_available)?),
    );
    Ok(Value::Object(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pool;
    use std::collections::BTreeMap;

    fn net(driver: Driver, opts: &[(&str, &str)]) -> Network {
        Network {
            name: "n1".into(),
            driver,
            created: String::new(),
            internal: false,
            ipv6: false,
            ipam: vec![pools::complete_pool(Pool {
                subnet: "10.9.0.0/24".parse().unwrap(),
                ip_range: None,
                gateway: None,
                aux_addresses: BTreeMap::new(),
            })
            .unwrap()],
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: BTreeMap::new(),
            builtin: false,
            cluster: false,
        }
    }

    #[test]
    fn bridge_network_maps_docker_options() {
        let n = net(
            Driver::Bridge,
            &[
                ("com.docker.network.bridge.name", "br-test"),
                ("com.docker.network.driver.mtu", "1400"),
            ],
        );
        let l = conflist(&n, Some(Path::new("/tmp/ipam")), false).unwrap();
        let p = &l["plugins"][0];
        assert_eq!(p["type"], "bridge");
        assert_eq!(p["bridge"], "br-test");
        assert_eq!(p["mtu"], 1400);
        assert_eq!(p["ipMasq"], true);
        assert_eq!(p["ipam"]["dataDir"], "/tmp/ipam");
        assert_eq!(p["ipam"]["ranges"][0][0]["gateway"], "10.9.0.1");
        assert_eq!(p["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(l["cnm"]["driver"], "bridge");
        assert_eq!(l["cnm"]["id"].as_str().unwrap().len(), 64);
        let default_name = bridge_name(&net(Driver::Bridge, &[]));
        assert!(default_name.starts_with("br-") && default_name.len() == 15);
    }

    #[test]
    fn internal_networks_get_no_masquerade_or_default_route() {
        let mut n = net(Driver::Bridge, &[]);
        n.internal = true;
        let p = &plugins(&n, None, false).unwrap()[0];
        assert_eq!(p["ipMasq"], false);
        assert!(p["ipam"].get("routes").is_none());
    }

    #[test]
    fn driver_requirements_and_unknown_options() {
        assert!(plugins(&net(Driver::Macvlan, &[]), None, false)
            .unwrap_err()
            .msg
            .contains("parent"));
        let m = &plugins(
            &net(
                Driver::Macvlan,
                &[("parent", "eth1"), ("macvlan_mode", "private")],
            ),
            None,
            false,
        )
        .unwrap()[0];
        assert_eq!(
            (m["master"].as_str(), m["mode"].as_str()),
            (Some("eth1"), Some("private"))
        );
        assert!(plugins(&net(Driver::Overlay, &[]), None, false)
            .unwrap_err()
            .msg
            .contains("vni"));
        let o = &plugins(
            &net(
                Driver::Overlay,
                &[("vni", "4097"), ("peers", "192.0.2.1,192.0.2.2")],
            ),
            None,
            false,
        )
        .unwrap()[0];
        assert_eq!(o["vni"], 4097);
        assert_eq!(o["subnets"][0], "10.9.0.0/24");
        assert_eq!(o["peers"][1], "192.0.2.2");
        let e = plugins(&net(Driver::Bridge, &[("bogus", "1")]), None, false).unwrap_err();
        assert!(e.msg.contains("bogus"));
        assert_eq!(
            plugins(&net(Driver::Null, &[]), None, false).unwrap()[0]["type"],
            "loopback"
        );
    }

    #[test]
    fn a_cluster_overlay_asks_cluster_ipam_for_each_of_its_subnets() {
        let mut n = net(Driver::Overlay, &[("vni", "4097")]);
        n.cluster = true;
        let o = &plugins(&n, None, false).unwrap()[0];
        assert_eq!(
            o["ipam"],
            json!({"type": "cluster-ipam", "subnet": "10.9.0.0/24", "reserved": ["10.9.0.1"]})
        );
        n.ipv6 = true;
        n.ipam.push(
            pools::complete_pool(Pool {
                subnet: "fd00:9::/64".parse().unwrap(),
                ip_range: None,
                gateway: None,
                aux_addresses: BTreeMap::new(),
            })
            .unwrap(),
        );
        let o = &plugins(&n, None, false).unwrap()[0];
        assert_eq!(
            o["ipam"],
            json!({
                "type": "cluster-ipam",
                "subnets": ["10.9.0.0/24", "fd00:9::/64"],
                "reserved": ["10.9.0.1", "fd00:9::1"],
            })
        );
        assert_eq!(o["cluster"], true);
    }

    #[test]
    fn values_the_kernel_would_refuse_are_refused_at_create() {
        type Case<'a> = (Driver, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                Driver::Bridge,
                &[("com.docker.network.driver.mtu", "99999999")],
                "invalid MTU number: 99999999 (must be 68-65535)",
            ),
            (Driver::Bridge, &[("mtu", "67")], "invalid MTU number: 67"),
            (Driver::Bridge, &[("mtu", "big")], "invalid MTU number: big"),
            (
                Driver::Bridge,
                &[("com.docker.network.bridge.name", "../../x")],
                "invalid bridge name \"../../x\"",
            ),
            (
                Driver::Bridge,
                &[("bridge", "a-twenty-eight-char-long-nam")],
                "invalid bridge name",
            ),
            (
                Driver::Macvlan,
                &[("parent", "eth 1")],
                "invalid parent interface \"eth 1\"",
            ),
            (
                Driver::Overlay,
                &[("vni", "0")],
                "invalid VXLAN ID: 0 (must be 1-16777215)",
            ),
            (Driver::Overlay, &[("vni", "16777216")], "invalid VXLAN ID"),
            (
                Driver::Overlay,
                &[("vni", "7"), ("port", "65536")],
                "invalid VXLAN port: 65536",
            ),
            (
                Driver::Overlay,
                &[("vni", "7"), ("underlay", "x/y")],
                "invalid underlay interface",
            ),
            (
                Driver::Overlay,
                &[("vni", "7"), ("bridge", "")],
                "invalid bridge name",
            ),
        ];
        for (d, opts, want) in cases {
            let e = plugins(&net(d.clone(), opts), None, false).unwrap_err();
            assert!(e.msg.starts_with(want), "{opts:?}: {}", e.msg);
            assert_eq!(e.code, 7);
        }
        let ok = &plugins(
            &net(
                Driver::Bridge,
                &[("mtu", "68"), ("bridge", "br-fifteen-char")],
            ),
            None,
            false,
        )
        .unwrap()[0];
        assert_eq!(
            (ok["mtu"].as_u64(), ok["bridge"].as_str()),
            (Some(68), Some("br-fifteen-char"))
        );
    }

    #[test]
    fn user_networks_chain_dnsname_when_it_is_there_unless_told_not() {
        let types = |n: &Network, available: bool| -> Vec<String> {
            plugins(n, None, available)
                .unwrap()
                .iter()
                .map(|p| p["type"].as_str().unwrap().to_string())
                .collect()
        };
        let mut n = net(Driver::Bridge, &[]);
        assert_eq!(types(&n, true), ["bridge", "dnsname"]);
        assert_eq!(types(&n, false), ["bridge"], "no plugin on CNI_PATH");
        let dns = &plugins(&n, None, true).unwrap()[1];
        assert_eq!(dns["domainName"], "n1");
        assert_eq!(dns["capabilities"]["aliases"], true);
        assert!(dns.get("forward").is_none());
        n.internal = true;
        assert_eq!(plugins(&n, None, true).unwrap()[1]["forward"], false);
        n.name = "Not A Domain".into();
        assert_eq!(
            plugins(&n, None, true).unwrap()[1]["domainName"],
            "dns.podman"
        );
        for d in [Driver::Macvlan, Driver::Overlay] {
            let opts: &[(&str, &str)] = &[("parent", "eth0"), ("vni", "5")];
            let opts = if d == Driver::Macvlan {
                &opts[..1]
            } else {
                &opts[1..]
            };
            assert_eq!(types(&net(d, opts), true).last().unwrap(), "dnsname");
        }
        assert_eq!(
            types(&net(Driver::Bridge, &[("dns", "false")]), true),
            ["bridge"]
        );
        assert_eq!(
            types(
                &net(Driver::Bridge, &[("com.docker.network.enable_dns", "0")]),
                true
            ),
            ["bridge"]
        );
        let e = plugins(&net(Driver::Bridge, &[("dns", "true")]), None, false).unwrap_err();
        assert!(e.msg.contains("needs the dnsname plugin"), "{}", e.msg);
        assert_eq!(types(&net(Driver::Null, &[]), true), ["loopback"]);
        let mut builtin = net(Driver::Bridge, &[]);
        builtin.builtin = true;
        assert_eq!(
            types(&builtin, true),
            ["bridge"],
            "Docker's default bridge has no DNS"
        );
    }

    fn remote(plugin: &str, versions: &[&str]) -> Driver {
        Driver::Remote(crate::model::Remote {
            plugin: plugin.into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
        })
    }

    #[test]
    fn remote_drivers_pass_options_through_as_plugin_keys() {
        let n = net(
            remote("ptp", &["0.4.0", "1.0.0"]),
            &[
                ("ipMasq", "true"),
                ("mtu", "1400"),
                ("note", "hello"),
                ("count", "3"),
                ("list", "[1,2]"),
            ],
        );
        let l = conflist(&n, Some(Path::new("/tmp/ipam")), false).unwrap();
        assert_eq!(l["cniVersion"], "1.0.0", "no newer than the plugin speaks");
        assert_eq!(l["cniVersions"], json!(["0.4.0", "1.0.0"]));
        assert_eq!(l["cnm"]["driver"], "ptp");
        let p = &l["plugins"][0];
        assert_eq!(p["type"], "ptp");
        assert_eq!(p["ipMasq"], true);
        assert_eq!(p["mtu"], 1400);
        assert_eq!(p["count"], 3);
        assert_eq!(p["note"], "hello");
        assert_eq!(p["list"], json!([1, 2]));
        assert_eq!(p["ipam"]["type"], "host-local");
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.9.0.0/24");
        assert_eq!(p["ipam"]["ranges"][0][0]["gateway"], "10.9.0.1");
        assert_eq!(p["ipam"]["dataDir"], "/tmp/ipam");
        for key in ["type", "ipam", "cniVersion"] {
            let e = plugins(&net(remote("ptp", &[]), &[(key, "x")]), None, false).unwrap_err();
            assert!(e.msg.contains("cannot be set"), "{key}: {}", e.msg);
        }
        let e = plugins(&net(remote("ptp", &[]), &[("mtu", "1")]), None, false).unwrap_err();
        assert!(e.msg.starts_with("invalid MTU number"), "{}", e.msg);
        // Read back from a conflist, the list's own versions apply.
        assert_eq!(
            conflist(&net(remote("ptp", &[]), &[]), None, false).unwrap()["cniVersion"],
            CONF_VERSION
        );
    }
}
