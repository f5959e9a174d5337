//! The result's interfaces: bridge, host veth, container (in its
//! namespace). The IPs point at the container's.

use std::path::Path;

use cni_net::netlink::{format_mac, Link};
use cni_spec::Interface;

/// Index of the container interface in `interfaces` (bridge, host veth,
/// container), where the reference bridge puts it too.
pub const CONTAINER_IF: usize = 2;

/// bridge, host veth, container interface (with its namespace, and its MTU
/// when `mtu`).
pub fn interfaces(
    bridge: &Link,
    host: &Link,
    container: &Link,
    netns: &Path,
    mtu: bool,
) -> Vec<Interface> {
    vec![
        iface(bridge, None, false),
        iface(host, None, false),
        iface(container, Some(netns), mtu),
    ]
}

fn iface(link: &Link, sandbox: Option<&Path>, mtu: bool) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.as_ref().map(format_mac),
        mtu: mtu.then_some(link.mtu),
        sandbox: sandbox.map(|p| p.to_string_lossy().into_owned()),
        ..Interface::default()
    }
}
