//! Configuring a container interface from an IPAM result, and checking it
//! again for CHECK: the part of ADD every main plugin (bridge, macvlan,
//! overlay) shares, like Go's `ipam.ConfigureIface` and
//! `ip.ValidateExpected*`.
//!
//! Everything goes through a [`Netlink`] handle opened in the container's
//! namespace, so no namespace is entered here.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::netlink::{self, Netlink, RouteScope, RT_TABLE_MAIN};
use cni_spec::error::{Error, Result};
use cni_spec::{CniResult, IpConfig, Route};

/// The IPs of `result` that belong on interface `iface` (an index into
/// `result.interfaces`). IPs without an interface index are taken as the
/// plugin's own (an IPAM result has none).
pub fn ips_of(result: &CniResult, iface: usize) -> impl Iterator<Item = &IpConfig> {
    result
        .ips
        .iter()
        .filter(move |ip| ip.interface.is_none_or(|i| i == iface))
}

/// Addresses, then link up, then routes: the order of the reference, so
/// the kernel's gratuitous ARP on link up (`arp_notify`) already carries
/// the address, and routes via a gateway find their connected subnet.
pub fn configure(nl: &mut Netlink, index: u32, result: &CniResult, iface: usize) -> Result<()> {
    add_addresses(nl, index, result, iface)?;
    nl.set_link_up(index)?;
    add_routes(nl, index, result, iface)
}

/// Put every address of interface `iface` on link `index`.
pub fn add_addresses(nl: &mut Netlink, index: u32, result: &CniResult, iface: usize) -> Result<()> {
    for ip in ips_of(result, iface) {
        nl.add_address(index, ip.address, false)?;
    }
    Ok(())
}

/// Install `result.routes` via link `index`. A route without a gateway
/// goes via the gateway of the first address of its family that has one
/// (as the reference does); without any, it is a direct route.
pub fn add_routes(nl: &mut Netlink, index: u32, result: &CniResult, iface: usize) -> Result<()> {
    for r in &result.routes {
        let route = to_netlink(r, index, gateway_for(result, iface, r))?;
        nl.add_route(&route, false).map_err(|e| {
            if netlink::is_exists(&e) {
                e.context(format_args!("route to {} already present", r.dst))
            } else {
                e
            }
        })?;
    }
    Ok(())
}

/// CHECK: every address of interface `iface` is on link `index`, and every
/// route of the result is in its table.
pub fn verify(nl: &mut Netlink, index: u32, result: &CniResult, iface: usize) -> Result<()> {
    let have = nl.addresses(Some(index))?;
    for ip in ips_of(result, iface) {
        if !have.iter().any(|a| a.addr == ip.address) {
            return Err(Error::io(format!(
                "address {} of the result is missing from the interface",
                ip.address
            )));
        }
    }
    if result.routes.is_empty() {
        return Ok(());
    }
    let v4 = nl.routes(Some(false))?;
    let v6 = if result.routes.iter().any(|r| !r.dst.is_ipv4()) {
        nl.routes(Some(true))?
    } else {
        Vec::new()
    };
    for r in &result.routes {
        let want_gw = gateway_for(result, iface, r);
        let table = r.table.unwrap_or(RT_TABLE_MAIN);
        let family = if r.dst.is_ipv4() { &v4 } else { &v6 };
        let found = family.iter().any(|k| {
            k.table.unwrap_or(RT_TABLE_MAIN) == table
                && k.dst == default_as_none(r.dst)
                && (want_gw.is_none() || k.gateway == want_gw)
        });
        if !found {
            return Err(Error::io(format!(
                "route to {}{} of the result is missing",
                r.dst,
                want_gw.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

fn gateway_for(result: &CniResult, iface: usize, r: &Route) -> Option<IpAddr> {
    r.gw.or_else(|| {
        ips_of(result, iface)
            .filter(|ip| ip.is_ipv4() == r.dst.is_ipv4())
            .find_map(|ip| ip.gateway)
    })
}

/// The kernel reports a default route without RTA_DST; so do we.
fn default_as_none(dst: IpNetwork) -> Option<IpNetwork> {
    (dst.prefix() != 0).then_some(dst)
}

fn to_netlink(r: &Route, index: u32, gw: Option<IpAddr>) -> Result<netlink::Route> {
    if let Some(g) = gw {
        if g.is_ipv4() != r.dst.is_ipv4() {
            return Err(Error::invalid_config(format!(
                "route to {} has a gateway {g} of the other address family",
                r.dst
            )));
        }
    }
    let scope = match r.scope {
        None => None,
        Some(s) => Some(match s {
            0 => RouteScope::Universe,
            200 => RouteScope::Site,
            253 => RouteScope::Link,
            254 => RouteScope::Host,
            255 => RouteScope::Nowhere,
            other => RouteScope::Other(u8::try_from(other).map_err(|_| {
                Error::invalid_config(format!("route to {}: scope {other} out of range", r.dst))
            })?),
        }),
    };
    Ok(netlink::Route {
        dst: default_as_none(r.dst).or(Some(r.dst)),
        gateway: gw,
        oif: Some(index),
        scope,
        table: r.table,
        metric: r.priority,
        mtu: r.mtu,
        advmss: r.advmss,
        ..netlink::Route::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> CniResult {
        CniResult::from_slice(json.as_bytes()).unwrap()
    }

    #[test]
    fn routes_without_gateway_use_the_address_gateway_of_their_family() {
        let r = result(
            r#"{"cniVersion":"1.0.0",
                "ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"},
                       {"address":"fd00::5/64","gateway":"fd00::1"}],
                "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"},{"dst":"10.9.0.0/16","gw":"10.1.0.9"}]}"#,
        );
        let gws: Vec<_> = r
            .routes
            .iter()
            .map(|rt| gateway_for(&r, 0, rt).unwrap().to_string())
            .collect();
        assert_eq!(gws, ["10.1.0.1", "fd00::1", "10.1.0.9"]);
        let nl = to_netlink(&r.routes[0], 3, gateway_for(&r, 0, &r.routes[0])).unwrap();
        assert_eq!(nl.oif, Some(3));
        assert_eq!(nl.dst.unwrap().prefix(), 0);
    }

    #[test]
    fn ips_of_skips_other_interfaces() {
        let r = result(
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"a"},{"name":"b"}],
                "ips":[{"address":"10.1.0.5/24","interface":1},{"address":"10.2.0.5/24","interface":0},
                       {"address":"10.3.0.5/24"}]}"#,
        );
        let got: Vec<_> = ips_of(&r, 1).map(|i| i.address.to_string()).collect();
        assert_eq!(got, ["10.1.0.5/24", "10.3.0.5/24"]);
    }

    #[test]
    fn mixed_family_gateway_is_a_config_error() {
        let r = result(r#"{"cniVersion":"1.0.0","routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]}"#);
        let e = to_netlink(&r.routes[0], 1, r.routes[0].gw).unwrap_err();
        assert_eq!(e.code, 7);
    }
}
