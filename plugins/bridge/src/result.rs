//! Shaping the IPAM result into the bridge's result: IPs on the container
//! interface, gateways, default routes and the three interfaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_net::netlink::{format_mac, Link};
use cni_spec::{CniResult, Interface, Route};
use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;

/// Index of the container interface in `interfaces` (bridge, host veth,
/// container), where the reference puts it too.
pub const CONTAINER_IF: usize = 2;

/// Point every IP at the container interface; with `is_gateway`, fill in a
/// missing gateway with the subnet's first address (as the reference does).
/// Returns the gateway addresses for the bridge: gateway IP with the
/// subnet's prefix, one per subnet.
pub fn assign_gateways(result: &mut CniResult, is_gateway: bool) -> Result<Vec<IpNetwork>> {
    let mut gws: Vec<IpNetwork> = Vec::new();
    for ip in &mut result.ips {
        ip.interface = Some(CONTAINER_IF);
        if !is_gateway {
            continue;
        }
        let gw = match ip.gateway {
            Some(g) => g,
            None => {
                let g = first_host(ip.address);
                ip.gateway = Some(g);
                g
            }
        };
        let net = IpNetwork::new(gw, ip.address.prefix())
            .map_err(|e| Error::invalid_config(format!("gateway {gw} for {}: {e}", ip.address)))?;
        if !gws.contains(&net) {
            gws.push(net);
        }
    }
    Ok(gws)
}

/// The first address after the network address ("10.1.0.1" for
/// 10.1.0.5/24).
fn first_host(addr: IpNetwork) -> IpAddr {
    match addr {
        IpNetwork::V4(n) => IpAddr::V4((u32::from(n.network()).wrapping_add(1)).into()),
        IpNetwork::V6(n) => IpAddr::V6((u128::from(n.network()).wrapping_add(1)).into()),
    }
}

/// `isDefaultGateway`: a default route via the gateway of each family. An
/// IPAM default route via another gateway makes the option ineffective:
/// an error, as in the reference.
pub fn add_default_routes(result: &mut CniResult) -> Result<()> {
    for v4 in [true, false] {
        let Some(gw) = result
            .ips
            .iter()
            .filter(|ip| ip.is_ipv4() == v4)
            .find_map(|ip| ip.gateway)
        else {
            continue;
        };
        let any: IpAddr = if v4 {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let Ok(default) = IpNetwork::new(any, 0) else {
            continue;
        };
        match result.routes.iter().find(|r| r.dst == default) {
            Some(r) if r.gw.is_some_and(|g| g != gw) => {
                return Err(Error::invalid_config(format!(
                    "isDefaultGateway ineffective because IPAM sets default route via {}",
                    r.gw.map(|g| g.to_string()).unwrap_or_default()
                )))
            }
            Some(_) => {}
            None => result.routes.push(Route::new(default, Some(gw))),
        }
    }
    Ok(())
}

/// The subnets of the result's addresses, for the network's rules.
pub fn subnets(result: &CniResult) -> Vec<IpNetwork> {
    let mut out: Vec<IpNetwork> = Vec::new();
    for ip in &result.ips {
        if let Ok(n) = IpNetwork::new(ip.address.network(), ip.address.prefix()) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

fn iface(link: &Link, sandbox: Option<String>) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.as_ref().map(format_mac),
        sandbox,
        ..Interface::default()
    }
}

/// bridge, host veth, container interface (with its namespace).
pub fn interfaces(bridge: &Link, host: &Link, container: &Link, netns: &str) -> Vec<Interface> {
    vec![
        iface(bridge, None),
        iface(host, None),
        iface(container, Some(netns.to_string())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> CniResult {
        CniResult::from_slice(json.as_bytes()).unwrap()
    }

    #[test]
    fn gateways_are_filled_and_ips_point_at_the_container() {
        let mut r = result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},
                {"address":"fd00:1::5/64","gateway":"fd00:1::fe"}]}"#,
        );
        let gws = assign_gateways(&mut r, true).unwrap();
        assert_eq!(r.ips[0].interface, Some(2));
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.1.0.1");
        let gws: Vec<String> = gws.iter().map(|g| g.to_string()).collect();
        assert_eq!(gws, ["10.1.0.1/24", "fd00:1::fe/64"]);
        let mut r2 = result(r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}]}"#);
        assert!(assign_gateways(&mut r2, false).unwrap().is_empty());
        assert_eq!(r2.ips[0].gateway, None);
    }

    #[test]
    fn default_routes_per_family_and_conflicts() {
        let mut r = result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}"#,
        );
        add_default_routes(&mut r).unwrap();
        add_default_routes(&mut r).unwrap();
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        let mut bad = result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.9"}]}"#,
        );
        assert_eq!(add_default_routes(&mut bad).unwrap_err().code, 7);
    }

    #[test]
    fn subnets_are_unique_networks() {
        let r = result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},{"address":"10.1.0.6/24"}]}"#,
        );
        let s: Vec<String> = subnets(&r).iter().map(|n| n.to_string()).collect();
        assert_eq!(s, ["10.1.0.0/24"]);
    }
}
