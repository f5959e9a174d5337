//! Routes (IPv4 and IPv6).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope as NlScope, RouteType as NlType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use cni_spec::error::{Error, Result};

/// The main routing table, where routes go unless told otherwise.
pub const RT_TABLE_MAIN: u32 = 254;

/// A route to add, delete, or as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// None: the default route (of the gateway's family).
    pub dst: Option<IpNetwork>,
    pub gateway: Option<IpAddr>,
    /// Output link index.
    pub oif: Option<u32>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// None: link scope for an IPv4 route without gateway (as `ip route`
    /// does), universe otherwise.
    pub scope: Option<RouteScope>,
    /// None: the main table.
    pub table: Option<u32>,
    /// Metric (RTA_PRIORITY).
    pub metric: Option<u32>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    /// Take the gateway as directly reachable on `oif` even if no address
    /// of `oif` covers it.
    pub onlink: bool,
    /// None: unicast when adding; in listings the kernel's type.
    pub kind: Option<RouteType>,
}

/// Route scope (rtm_scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScope {
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
    Other(u8),
}

/// Route type (rtm_type), the ones a listing is likely to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Other(u8),
}

impl Netlink {
    /// Add a route; EEXIST if an equal one exists, unless `replace`.
    pub fn add_route(&mut self, route: &Route, replace: bool) -> Result<()> {
        let msg = route_msg(route, false)?;
        let flags = if replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            flags,
            format_args!("add route {}", describe(route)),
        )?;
        Ok(())
    }

    /// Delete the route matching the given fields; ESRCH
    /// ([`super::is_not_found`]) if there is none.
    pub fn del_route(&mut self, route: &Route) -> Result<()> {
        let msg = route_msg(route, true)?;
        self.request(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            format_args!("delete route {}", describe(route)),
        )?;
        Ok(())
    }

    /// Routes of one family (None: both), all tables; filter `table` on the
    /// result (most callers want [`RT_TABLE_MAIN`]).
    pub fn routes(&mut self, v6: Option<bool>) -> Result<Vec<Route>> {
        let mut all = Vec::new();
        let families: &[AddressFamily] = match v6 {
            Some(false) => &[AddressFamily::Inet],
            Some(true) => &[AddressFamily::Inet6],
            None => &[AddressFamily::Inet, AddressFamily::Inet6],
        };
        for fam in families {
            let mut msg = RouteMessage::default();
            msg.header.address_family = *fam;
            let replies = self.request(
                RouteNetlinkMessage::GetRoute(msg),
                NLM_F_DUMP,
                "list routes",
            )?;
            all.extend(replies.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse_route(r),
                _ => None,
            }));
        }
        Ok(all)
    }
}

fn describe(r: &Route) -> String {
    let mut s = match r.dst {
        Some(d) => d.to_string(),
        None => "default".to_string(),
    };
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = r.oif {
        s.push_str(&format!(" dev #{oif}"));
    }
    if let Some(t) = r.table {
        s.push_str(&format!(" table {t}"));
    }
    s
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// Build the message; a delete leaves protocol, scope and type unspecified
/// so that it matches whatever the route was added with.
pub(super) fn route_msg(r: &Route, delete: bool) -> Result<RouteMessage> {
    let v6 = match (r.dst, r.gateway) {
        (Some(d), _) => d.is_ipv6(),
        (None, Some(g)) => g.is_ipv6(),
        (None, None) => {
            return Err(Error::invalid_config(
                "route needs a destination or a gateway",
            ))
        }
    };
    if let Some(g) = r.gateway {
        if g.is_ipv6() != v6 {
            return Err(Error::invalid_config(format!(
                "route {}: gateway family differs from destination's",
                describe(r)
            )));
        }
    }
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let table = r.table.unwrap_or(RT_TABLE_MAIN);
    // The header holds 8 bits; RTA_TABLE carries the full id.
    h.table = u8::try_from(table).unwrap_or(0);
    if delete {
        h.protocol = RouteProtocol::Unspec;
        h.scope = r.scope.map(scope_to_nl).unwrap_or(NlScope::NoWhere);
        h.kind = r.kind.map(type_to_nl).unwrap_or(NlType::Unspec);
    } else {
        h.protocol = RouteProtocol::Boot;
        h.scope = match r.scope {
            Some(s) => scope_to_nl(s),
            None if !v6 && r.gateway.is_none() => NlScope::Link,
            None => NlScope::Universe,
        };
        h.kind = r.kind.map(type_to_nl).unwrap_or(NlType::Unicast);
    }
    if r.onlink {
        h.flags |= RouteFlags::Onlink;
    }
    if let Some(dst) = r.dst {
        h.destination_prefix_length = dst.prefix();
        // The kernel wants the network address, not a host inside it.
        msg.attributes
            .push(RouteAttribute::Destination(route_addr(dst.network())));
    }
    msg.attributes.push(RouteAttribute::Table(table));
    if let Some(gw) = r.gateway {
        msg.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
    }
    if let Some(oif) = r.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(src) = r.src {
        msg.attributes
            .push(RouteAttribute::PrefSource(route_addr(src)));
    }
    if let Some(m) = r.metric {
        msg.attributes.push(RouteAttribute::Priority(m));
    }
    let mut metrics = Vec::new();
    if let Some(mtu) = r.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(mss) = r.advmss {
        metrics.push(RouteMetric::Advmss(mss));
    }
    if !metrics.is_empty() {
        msg.attributes.push(RouteAttribute::Metrics(metrics));
    }
    Ok(msg)
}

fn parse_route(msg: RouteMessage) -> Option<Route> {
    let h = &msg.header;
    let mut r = Route {
        table: Some(u32::from(h.table)),
        scope: Some(scope_from_nl(h.scope)),
        kind: Some(type_from_nl(h.kind)),
        onlink: h.flags.contains(RouteFlags::Onlink),
        ..Route::default()
    };
    let dst_len = h.destination_prefix_length;
    if !matches!(h.address_family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let mut dst = None;
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = addr_of(a),
            RouteAttribute::Gateway(a) => r.gateway = addr_of(a),
            RouteAttribute::PrefSource(a) => r.src = addr_of(a),
            RouteAttribute::Oif(i) => r.oif = Some(i),
            RouteAttribute::Priority(p) => r.metric = Some(p),
            RouteAttribute::Table(t) => r.table = Some(t),
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    match m {
                        RouteMetric::Mtu(v) => r.mtu = Some(v),
                        RouteMetric::Advmss(v) => r.advmss = Some(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    r.dst = match dst {
        Some(ip) => Some(IpNetwork::new(ip, dst_len).ok()?),
        // No RTA_DST: the default route, 0.0.0.0/0 or ::/0.
        None if dst_len == 0 => None,
        None => return None,
    };
    Some(r)
}

fn addr_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(v)),
        _ => None,
    }
}

fn scope_to_nl(s: RouteScope) -> NlScope {
    match s {
        RouteScope::Universe => NlScope::Universe,
        RouteScope::Site => NlScope::Site,
        RouteScope::Link => NlScope::Link,
        RouteScope::Host => NlScope::Host,
        RouteScope::Nowhere => NlScope::NoWhere,
        RouteScope::Other(v) => NlScope::from(v),
    }
}

fn scope_from_nl(s: NlScope) -> RouteScope {
    match s {
        NlScope::Universe => RouteScope::Universe,
        NlScope::Site => RouteScope::Site,
        NlScope::Link => RouteScope::Link,
        NlScope::Host => RouteScope::Host,
        NlScope::NoWhere => RouteScope::Nowhere,
        other => RouteScope::Other(u8::from(other)),
    }
}

fn type_to_nl(t: RouteType) -> NlType {
    match t {
        RouteType::Unicast => NlType::Unicast,
        RouteType::Local => NlType::Local,
        RouteType::Broadcast => NlType::Broadcast,
        RouteType::Anycast => NlType::Anycast,
        RouteType::Multicast => NlType::Multicast,
        RouteType::Blackhole => NlType::BlackHole,
        RouteType::Unreachable => NlType::Unreachable,
        RouteType::Prohibit => NlType::Prohibit,
        RouteType::Other(v) => NlType::from(v),
    }
}

fn type_from_nl(t: NlType) -> RouteType {
    match t {
        NlType::Unicast => RouteType::Unicast,
        NlType::Local => RouteType::Local,
        NlType::Broadcast => RouteType::Broadcast,
        NlType::Anycast => RouteType::Anycast,
        NlType::Multicast => RouteType::Multicast,
        NlType::BlackHole => RouteType::Blackhole,
        NlType::Unreachable => RouteType::Unreachable,
        NlType::Prohibit => RouteType::Prohibit,
        other => RouteType::Other(u8::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_route_defaults_to_link_scope_and_main_table() {
        let r = Route {
            dst: Some("10.1.2.3/24".parse().unwrap()),
            oif: Some(3),
            ..Route::default()
        };
        let m = route_msg(&r, false).unwrap();
        assert_eq!(m.header.scope, NlScope::Link);
        assert_eq!(m.header.table, 254);
        assert_eq!(m.header.destination_prefix_length, 24);
        // Host bits are cleared.
        assert!(m
            .attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                "10.1.2.0".parse().unwrap()
            ))));
    }

    #[test]
    fn default_route_takes_gateway_family() {
        let r = Route {
            gateway: Some("fd00::1".parse().unwrap()),
            ..Route::default()
        };
        let m = route_msg(&r, false).unwrap();
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        assert_eq!(m.header.scope, NlScope::Universe);
        assert_eq!(m.header.destination_prefix_length, 0);
    }

    #[test]
    fn route_needs_dst_or_gateway_and_one_family() {
        assert!(route_msg(&Route::default(), false).is_err());
        let r = Route {
            dst: Some("10.0.0.0/8".parse().unwrap()),
            gateway: Some("fd00::1".parse().unwrap()),
            ..Route::default()
        };
        assert!(route_msg(&r, false).is_err());
    }

    #[test]
    fn big_table_goes_in_attribute_and_round_trips() {
        let r = Route {
            dst: Some("10.0.0.0/8".parse().unwrap()),
            gateway: Some("10.0.0.1".parse().unwrap()),
            table: Some(1000),
            metric: Some(50),
            mtu: Some(1400),
            advmss: Some(1360),
            onlink: true,
            ..Route::default()
        };
        let m = route_msg(&r, false).unwrap();
        assert_eq!(m.header.table, 0);
        let back = parse_route(m).unwrap();
        assert_eq!(back.table, Some(1000));
        assert_eq!(back.dst, r.dst);
        assert_eq!(back.gateway, r.gateway);
        assert_eq!(back.metric, Some(50));
        assert_eq!(back.mtu, Some(1400));
        assert_eq!(back.advmss, Some(1360));
        assert!(back.onlink);
    }

    #[test]
    fn delete_matches_any_scope_and_protocol() {
        let r = Route {
            dst: Some("10.0.0.0/8".parse().unwrap()),
            ..Route::default()
        };
        let m = route_msg(&r, true).unwrap();
        assert_eq!(m.header.scope, NlScope::NoWhere);
        assert_eq!(m.header.protocol, RouteProtocol::Unspec);
        assert_eq!(m.header.kind, NlType::Unspec);
    }
}
