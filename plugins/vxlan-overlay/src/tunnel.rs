//! The network's shared devices on one host: the bridge (from
//! `attach::bridge`), the VXLAN device enslaved to it, and the VXLAN
//! device's flooding entries, one per peer.
//!
//! Every ADD reconciles them with the config, so a host converges on the
//! config whatever state it was left in: a VXLAN device whose VNI, port,
//! local address or underlay differ is replaced (reusing it would silently
//! tunnel to the wrong place); flooding entries for peers no longer listed
//! are removed with every other FDB entry pointing at them (learned MACs
//! behind a gone host would otherwise black-hole traffic until they age
//! out). Callers hold the network's exclusive lock, so two ADDs never
//! replace the device under each other; creation still treats "already
//! exists" as success and then verifies what exists.

use std::net::IpAddr;

use cni_attach::bridge::{self, BridgeOpts};
use cni_net::netlink::{self, Link, NeighFamily, NeighMode, Neighbour, Netlink, VxlanSpec};
use cni_plugin::log;
use cni_spec::{Error, Result};

use crate::config::Conf;
use crate::underlay::Underlay;

/// The all-zero MAC: an FDB entry for it floods broadcast, multicast and
/// unknown unicast to its remote (head-end replication).
const FLOOD: netlink::Mac = [0; 6];

/// What the VXLAN device must look like.
#[derive(Debug, Clone)]
pub struct Want {
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    pub underlay: u32,
    pub mtu: u32,
    /// Remote VTEPs (this host excluded).
    pub peers: Vec<IpAddr>,
    /// ARP answered from the neighbour table the cluster's daemon fills.
    pub proxy: bool,
}

impl Want {
    pub fn new(conf: &Conf, under: &Underlay) -> Self {
        Want {
            vni: conf.vni,
            port: conf.port,
            local: under.local,
            underlay: under.link.index,
            mtu: under.overlay_mtu(conf),
            peers: conf.remote_peers(under.local),
            proxy: conf.cluster,
        }
    }
}

/// Bring the network's bridge and VXLAN device to the config. Returns the
/// bridge.
pub fn ensure(nl: &mut Netlink, conf: &Conf, want: &Want) -> Result<Link> {
    let br = bridge::ensure_bridge(
        nl,
        &BridgeOpts {
            name: conf.bridge.clone(),
            mtu: Some(want.mtu),
            ..BridgeOpts::default()
        },
    )?;
    if br.mtu != want.mtu {
        nl.set_mtu(br.index, want.mtu)?;
    }
    let vx = ensure_vxlan(nl, &conf.vxlan, want)?;
    if vx.mtu != want.mtu {
        nl.set_mtu(vx.index, want.mtu)?;
    }
    if vx.master != Some(br.index) {
        nl.set_master(vx.index, Some(br.index))?;
    }
    if !vx.up {
        nl.set_link_up(vx.index)?;
    }
    // In a cluster the daemon programs the entries from the store.
    if !conf.cluster {
        sync_fdb(nl, vx.index, &want.peers)?;
    }
    nl.link_by_index(br.index)
}

/// Find, create or replace the VXLAN device.
fn ensure_vxlan(nl: &mut Netlink, name: &str, want: &Want) -> Result<Link> {
    if let Some(l) = nl.link_by_name_opt(name)? {
        if mismatch(&l, want).is_none() {
            return Ok(l);
        }
        if l.kind.as_deref() != Some("vxlan") {
            return Err(Error::io(format!(
                "{name:?} exists but is not a VXLAN device (kind {})",
                l.kind.as_deref().unwrap_or("none")
            )));
        }
        log::info(&format!(
            "replacing {name}: {}",
            mismatch(&l, want).unwrap_or_default()
        ));
        match nl.delete_link(l.index) {
            Err(e) if !netlink::is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    let spec = VxlanSpec {
        name: name.to_string(),
        vni: want.vni,
        port: Some(want.port),
        local: Some(want.local),
        underlay: Some(want.underlay),
        learning: true,
        proxy: want.proxy,
        mtu: Some(want.mtu),
        ..VxlanSpec::default()
    };
    match nl.create_vxlan(&spec) {
        Ok(()) => {}
        Err(e) if netlink::is_exists(&e) => {}
        Err(e) => return Err(e),
    }
    let Some(l) = nl.link_by_name_opt(name)? else {
        // EEXIST without a link of our name: the kernel refuses a second
        // device with the same VNI, port and local address.
        return Err(Error::io(format!(
            "cannot create {name}: another VXLAN device already uses VNI {} on port {} \
             from {}",
            want.vni, want.port, want.local
        )));
    };
    match mismatch(&l, want) {
        None => Ok(l),
        Some(why) => Err(Error::io(format!("{name} after creation: {why}"))),
    }
}

/// Why an existing link cannot serve as our VXLAN device, if it cannot.
pub fn mismatch(l: &Link, want: &Want) -> Option<String> {
    if l.kind.as_deref() != Some("vxlan") {
        return Some("not a VXLAN device".into());
    }
    let info = l.vxlan.unwrap_or_default();
    let checks = [
        (
            l.vxlan_id == Some(want.vni),
            "VNI",
            format!("{:?}", l.vxlan_id),
        ),
        (
            info.port == Some(want.port),
            "port",
            format!("{:?}", info.port),
        ),
        (
            info.local == Some(want.local),
            "local address",
            format!("{:?}", info.local),
        ),
        (
            info.underlay == Some(want.underlay),
            "underlay device",
            format!("{:?}", info.underlay),
        ),
        (info.learning, "learning", "off".to_string()),
        (
            info.proxy == want.proxy,
            "ARP proxy",
            if info.proxy { "on" } else { "off" }.to_string(),
        ),
    ];
    checks
        .into_iter()
        .find(|(ok, _, _)| !ok)
        .map(|(_, what, have)| format!("{what} is {have}, config wants otherwise"))
}

/// Make the flooding entries exactly one per peer, and drop every entry
/// (flooding or learned) whose remote is no longer a peer.
fn sync_fdb(nl: &mut Netlink, index: u32, peers: &[IpAddr]) -> Result<()> {
    let entries = nl.neighbours(NeighFamily::Bridge, Some(index))?;
    for e in &entries {
        let Some(remote) = e.ip else { continue };
        if peers.contains(&remote) {
            continue;
        }
        match nl.del_neigh(&fdb_entry(e, index)) {
            Err(err) if !netlink::is_not_found(&err) => return Err(err),
            _ => {}
        }
    }
    for &p in peers {
        let present = entries
            .iter()
            .any(|e| e.ip == Some(p) && e.mac == Some(FLOOD));
        if present {
            continue;
        }
        match nl.add_neigh(&Neighbour::vxlan_fdb(index, FLOOD, p), NeighMode::Append) {
            Err(e) if !netlink::is_exists(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The delete request for an entry as listed (it needs MAC and remote).
fn fdb_entry(e: &Neighbour, index: u32) -> Neighbour {
    Neighbour::vxlan_fdb(
        index,
        e.mac.unwrap_or(FLOOD),
        e.ip.unwrap_or(IpAddr::from([0u8; 4])),
    )
}

/// The remotes of the device's flooding entries.
pub fn flood_remotes(nl: &mut Netlink, index: u32) -> Result<Vec<IpAddr>> {
    Ok(nl
        .neighbours(NeighFamily::Bridge, Some(index))?
        .into_iter()
        .filter(|e| e.mac == Some(FLOOD))
        .filter_map(|e| e.ip)
        .collect())
}

/// Remove the network's devices from this host. Gone already: fine. The
/// VXLAN device goes first so no frame is tunnelled into a half-removed
/// network.
pub fn remove(nl: &mut Netlink, conf: &Conf) -> Result<()> {
    for name in [&conf.vxlan, &conf.bridge] {
        match nl.delete_link_by_name(name) {
            Err(e) if !netlink::is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_net::netlink::VxlanInfo;

    fn want() -> Want {
        Want {
            vni: 42,
            port: 4789,
            local: "192.0.2.1".parse().unwrap(),
            underlay: 3,
            mtu: 1450,
            peers: vec![],
            proxy: false,
        }
    }

    fn link() -> Link {
        Link {
            kind: Some("vxlan".into()),
            vxlan_id: Some(42),
            vxlan: Some(VxlanInfo {
                port: Some(4789),
                local: Some("192.0.2.1".parse().unwrap()),
                underlay: Some(3),
                learning: true,
                proxy: false,
            }),
            ..Link::default()
        }
    }

    #[test]
    fn any_difference_in_the_tunnel_attributes_is_a_mismatch() {
        assert_eq!(mismatch(&link(), &want()), None);
        let w = want();
        for (f, what) in [
            (
                Box::new(|l: &mut Link| l.vxlan_id = Some(43)) as Box<dyn Fn(&mut Link)>,
                "VNI",
            ),
            (
                Box::new(|l: &mut Link| l.vxlan.as_mut().unwrap().port = Some(8472)),
                "port",
            ),
            (
                Box::new(|l: &mut Link| l.vxlan.as_mut().unwrap().local = None),
                "local",
            ),
            (
                Box::new(|l: &mut Link| l.vxlan.as_mut().unwrap().underlay = Some(9)),
                "underlay",
            ),
            (
                Box::new(|l: &mut Link| l.vxlan.as_mut().unwrap().learning = false),
                "learning",
            ),
            (
                Box::new(|l: &mut Link| l.kind = Some("bridge".into())),
                "not a VXLAN",
            ),
        ] {
            let mut l = link();
            f(&mut l);
            let m = mismatch(&l, &w).unwrap_or_default();
            assert!(m.contains(what), "{what}: {m}");
        }
    }
}
