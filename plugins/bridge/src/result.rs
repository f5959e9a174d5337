//! Shaping the IPAM result into the bridge's result: gateways, default
//! routes, and the subnets the network's rules cover.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_spec::{CniResult, Route};
use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;

/// `isGateway`: fill in a missing gateway with the subnet's first address
/// (as the reference does).
pub fn fill_gateways(result: &mut CniResult) {
    for ip in &mut result.ips {
        if ip.gateway.is_none() {
            ip.gateway = Some(first_host(ip.address));
        }
    }
}

/// The gateway addresses for the bridge: gateway IP with the subnet's
/// prefix, one per subnet.
pub fn gateway_addresses(result: &CniResult) -> Result<Vec<IpNetwork>> {
    let mut gws: Vec<IpNetwork> = Vec::new();
    for ip in &result.ips {
        let Some(gw) = ip.gateway else {
            continue;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> CniResult {
        CniResult::from_slice(json.as_bytes()).unwrap()
    }

    #[test]
    fn gateways_are_filled_once_per_subnet() {
        let mut r = result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},
                {"address":"fd00:1::5/64","gateway":"fd00:1::fe"},{"address":"10.1.0.6/24"}]}"#,
        );
        fill_gateways(&mut r);
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.1.0.1");
        assert_eq!(r.ips[1].gateway.unwrap().to_string(), "fd00:1::fe");
        let gws = gateway_addresses(&r).unwrap();
        let gws: Vec<String> = gws.iter().map(|g| g.to_string()).collect();
        assert_eq!(gws, ["10.1.0.1/24", "fd00:1::fe/64"]);
        let r2 = result(r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}]}"#);
        assert!(gateway_addresses(&r2).unwrap().is_empty());
    }

    #[test]
    fn a_gateway_of_another_family_is_a_config_error() {
        let r = result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64","gateway":"10.1.0.1"}]}"#,
        );
        assert_eq!(gateway_addresses(&r).unwrap_err().code, 7);
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
