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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, mac: u8, mtu: u32) -> Link {
        Link {
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, mac]),
            mtu,
            ..Link::default()
        }
    }

    #[test]
    fn bridge_host_end_then_the_container_in_its_namespace() {
        let (br, host, ctr) = (
            link("cni0", 1, 1500),
            link("veth0", 2, 1450),
            link("eth0", 3, 1450),
        );
        let ns = Path::new("/run/netns/c1");
        let ifs = interfaces(&br, &host, &ctr, ns, false);
        let names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["cni0", "veth0", "eth0"]);
        assert_eq!(ifs[CONTAINER_IF].sandbox.as_deref(), Some("/run/netns/c1"));
        assert_eq!(ifs[CONTAINER_IF].mac.as_deref(), Some("02:00:00:00:00:03"));
        assert!(ifs[..CONTAINER_IF].iter().all(|i| i.sandbox.is_none()));
        assert!(ifs.iter().all(|i| i.mtu.is_none()));
        let with_mtu = interfaces(&br, &host, &ctr, ns, true);
        assert_eq!(with_mtu[CONTAINER_IF].mtu, Some(1450));
        assert!(with_mtu[..CONTAINER_IF].iter().all(|i| i.mtu.is_none()));
    }
}
