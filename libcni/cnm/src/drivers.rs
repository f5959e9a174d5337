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

/// Options each driver understands; anything else is refused, as Docker
/// refuses unknown driver options for most drivers.
fn known_options(d: Driver) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = OPT_MTU.to_vec();
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
        Driver::Host | Driver::Null => {}
    }
    k
}

pub fn check_options(n: &Network) -> Result<()> {
    let known = known_options(n.driver);
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

fn num_opt(n: &Network, keys: &[&str]) -> Result<Option<u64>> {
    n.option(keys)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                Error::invalid_config(format!("option {} must be a number, got {v:?}", keys[0]))
            })
        })
        .transpose()
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

/// The plugins of a network's chain.
pub fn plugins(n: &Network, data_dir: Option<&Path>) -> Result<Vec<Value>> {
    check_options(n)?;
    let mtu = num_opt(n, OPT_MTU)?;
    let caps = json!({"ips": true, "mac": true});
    let mut main = match n.driver {
        Driver::Bridge => {
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
            let parent = n.option(OPT_PARENT).ok_or_else(|| {
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
            let vni = num_opt(n, OPT_VNI)?.ok_or_else(|| {
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
            if let Some(peers) = n.option(OPT_PEERS) {
                let list: Vec<&str> = peers.split(',').filter(|s| !s.is_empty()).collect();
                p["peers"] = json!(list);
            }
            if let Some(port) = num_opt(n, OPT_PORT)? {
                p["port"] = json!(port);
            }
            if let Some(d) = n.option(OPT_UNDERLAY) {
                p["underlayDevice"] = json!(d);
            }
            if let Some(ip) = n.option(OPT_LOCAL_IP) {
                p["localIP"] = json!(ip);
            }
            if let Some(b) = n.option(OPT_BRIDGE_NAME) {
                p["bridge"] = json!(b);
            }
            p
        }
        Driver::Null => json!({"type": "loopback"}),
        Driver::Host => return Err(Error::invalid_config(
            "the host driver has no plugins: a sandbox on the host network is the host namespace",
        )),
    };
    if let (Some(m), Value::Object(o)) = (mtu, &mut main) {
        o.insert("mtu".into(), json!(m));
    }
    Ok(vec![main])
}

/// The whole conflist, with the CNM description under `cnm`.
pub fn conflist(n: &Network, data_dir: Option<&Path>) -> Result<Value> {
    let mut cnm = serde_json::to_value(n).map_err(|e| Error::internal(e.to_string()))?;
    if let Value::Object(o) = &mut cnm {
        o.insert("id".into(), json!(n.id()));
    }
    let mut list = Map::new();
    list.insert("cniVersion".into(), json!(CONF_VERSION));
    list.insert("cniVersions".into(), json!(["0.4.0", "1.0.0", "1.1.0"]));
    list.insert("name".into(), json!(n.name));
    list.insert("cnm".into(), cnm);
    list.insert("plugins".into(), Value::Array(plugins(n, data_dir)?));
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
        let l = conflist(&n, Some(Path::new("/tmp/ipam"))).unwrap();
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
        let p = &plugins(&n, None).unwrap()[0];
        assert_eq!(p["ipMasq"], false);
        assert!(p["ipam"].get("routes").is_none());
    }

    #[test]
    fn driver_requirements_and_unknown_options() {
        assert!(plugins(&net(Driver::Macvlan, &[]), None)
            .unwrap_err()
            .msg
            .contains("parent"));
        let m = &plugins(
            &net(
                Driver::Macvlan,
                &[("parent", "eth1"), ("macvlan_mode", "private")],
            ),
            None,
        )
        .unwrap()[0];
        assert_eq!(
            (m["master"].as_str(), m["mode"].as_str()),
            (Some("eth1"), Some("private"))
        );
        assert!(plugins(&net(Driver::Overlay, &[]), None)
            .unwrap_err()
            .msg
            .contains("vni"));
        let o = &plugins(
            &net(
                Driver::Overlay,
                &[("vni", "4097"), ("peers", "192.0.2.1,192.0.2.2")],
            ),
            None,
        )
        .unwrap()[0];
        assert_eq!(o["vni"], 4097);
        assert_eq!(o["subnets"][0], "10.9.0.0/24");
        assert_eq!(o["peers"][1], "192.0.2.2");
        let e = plugins(&net(Driver::Bridge, &[("bogus", "1")]), None).unwrap_err();
        assert!(e.msg.contains("bogus"));
        assert_eq!(
            plugins(&net(Driver::Null, &[]), None).unwrap()[0]["type"],
            "loopback"
        );
    }
}
