//! Root tests against the kernel. Each runs in a thread that first unshares
//! a fresh network namespace, so the machine's own namespace is never
//! touched; the namespaces vanish with the thread and our handles.

use std::net::IpAddr;
use std::process::Command;

use ipnetwork::IpNetwork;
use nix::sched::{unshare, CloneFlags};

use super::super::*;
use crate::netns::NetNs;
use crate::testing::in_fresh_netns;

/// A second fresh namespace, entered by unsharing again; returns the one
/// the thread was in before (so callers get two: the returned handle and
/// the current one).
fn unshare_again() -> NetNs {
    let first = NetNs::current().unwrap();
    unshare(CloneFlags::CLONE_NEWNET).unwrap();
    first
}

/// `ip` output in the calling thread's namespace (a child inherits it).
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn root_loopback_up_down_and_addresses() {
    in_fresh_netns(|| {
        let mut nl = Netlink::new().unwrap();
        let lo = nl.link_by_name("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert!(!lo.up);
        assert_eq!(lo.kind, None);
        nl.set_link_up(lo.index).unwrap();
        let lo = nl.link_by_index(lo.index).unwrap();
        assert!(lo.up && lo.running, "{lo:?}");
        assert_eq!(lo.name, "lo");
        assert_eq!(lo.mtu, 65536);
        let addrs = nl.addresses(Some(lo.index)).unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.addr == net("127.0.0.1/8") && a.scope == AddrScope::Host),
            "{addrs:?}"
        );
        assert!(nl.links().unwrap().iter().any(|l| l.name == "lo"));
        nl.set_link_down(lo.index).unwrap();
        assert!(!nl.link_by_name("lo").unwrap().up);

        let e = nl.link_by_name("nosuchlink").unwrap_err();
        assert!(is_not_found(&e), "{e:?}");
        assert!(e.msg.contains("nosuchlink"), "{}", e.msg);
        assert!(nl.link_by_name_opt("nosuchlink").unwrap().is_none());
        assert!(is_not_found(&nl.link_by_index(9999).unwrap_err()));
    });
}

#[test]
fn root_bridge_veth_master_addresses() {
    in_fresh_netns(|| {
        let container = unshare_again(); // thread now in "host"; container is the other
        let mut host = Netlink::new().unwrap();
        let mut cont = Netlink::new_in(&container).unwrap();

        let mac = parse_mac("02:42:ac:11:00:01").unwrap();
        let br = BridgeSpec {
            name: "cni0".into(),
            mtu: Some(1400),
            mac: Some(mac),
        };
        host.create_bridge(&br).unwrap();
        let e = host.create_bridge(&br).unwrap_err();
        assert!(is_exists(&e), "{e:?}");
        assert!(
            e.msg.contains("create bridge cni0: File exists"),
            "{}",
            e.msg
        );
        let br = host.link_by_name("cni0").unwrap();
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        assert_eq!(br.mac, Some(mac));
        assert_eq!(br.mtu, 1400);
        host.set_link_up(br.index).unwrap();

        host.create_veth(&VethSpec {
            name: "veth1a2b3c4d".into(),
            mtu: Some(1400),
            peer_name: "eth0".into(),
            peer_mtu: Some(1400),
            peer_mac: Some(parse_mac("02:00:00:00:00:02").unwrap()),
            peer_netns: Some(&container),
            ..VethSpec::default()
        })
        .unwrap();
        let hv = host.link_by_name("veth1a2b3c4d").unwrap();
        assert_eq!(hv.kind.as_deref(), Some("veth"));
        assert_eq!(hv.mtu, 1400);
        assert!(hv.link_netnsid.is_some(), "{hv:?}");
        let cv = cont.link_by_name("eth0").unwrap();
        assert_eq!(cv.kind.as_deref(), Some("veth"));
        assert_eq!(cv.mac, Some(parse_mac("02:00:00:00:00:02").unwrap()));
        assert_eq!(hv.link, Some(cv.index), "host end points at its peer");
        assert!(
            host.link_by_name_opt("eth0").unwrap().is_none(),
            "peer not on host"
        );

        host.set_master(hv.index, Some(br.index)).unwrap();
        assert_eq!(host.link_by_index(hv.index).unwrap().master, Some(br.index));
        host.set_bridge_port(
            hv.index,
            &BridgePortFlags {
                hairpin: Some(true),
                learning: Some(false),
                isolated: Some(true),
                ..BridgePortFlags::default()
            },
        )
        .unwrap();
        let d = ip(&["-d", "link", "show", "veth1a2b3c4d"]);
        assert!(d.contains("hairpin on"), "{d}");
        assert!(d.contains("learning off"), "{d}");
        assert!(d.contains("isolated on"), "{d}");
        host.set_link_up(hv.index).unwrap();
        cont.set_link_up(cv.index).unwrap();
        host.set_promisc(br.index, true).unwrap();
        assert!(host.link_by_index(br.index).unwrap().promisc);
        host.set_mtu(hv.index, 1300).unwrap();
        assert_eq!(host.link_by_index(hv.index).unwrap().mtu, 1300);
        let m2 = parse_mac("02:00:00:00:00:99").unwrap();
        host.set_mac(hv.index, m2).unwrap();
        assert_eq!(host.link_by_index(hv.index).unwrap().mac, Some(m2));
        host.set_master(hv.index, None).unwrap();
        assert_eq!(host.link_by_index(hv.index).unwrap().master, None);

        // Addresses: EEXIST, replace, IPv4 broadcast, delete, gone.
        let gw = net("10.10.0.1/24");
        host.add_address(br.index, gw, false).unwrap();
        assert!(is_exists(
            &host.add_address(br.index, gw, false).unwrap_err()
        ));
        host.add_address(br.index, gw, true).unwrap();
        host.add_address(br.index, net("fd10::1/64"), false)
            .unwrap();
        let addrs = host.addresses(Some(br.index)).unwrap();
        assert!(addrs.iter().any(|a| a.addr == gw), "{addrs:?}");
        assert!(
            addrs.iter().any(|a| a.addr == net("fd10::1/64")),
            "{addrs:?}"
        );
        assert!(addrs.iter().all(|a| a.index == br.index));
        let shown = ip(&["-4", "addr", "show", "cni0"]);
        assert!(shown.contains("brd 10.10.0.255"), "{shown}");
        host.del_address(br.index, gw).unwrap();
        let e = host.del_address(br.index, gw).unwrap_err();
        assert!(is_not_found(&e), "{e:?}");

        // Delete: the peer goes with it.
        host.delete_link(hv.index).unwrap();
        assert!(is_not_found(&host.delete_link(hv.index).unwrap_err()));
        assert!(cont.link_by_name_opt("eth0").unwrap().is_none());
        host.delete_link_by_name("cni0").unwrap();
        assert!(is_not_found(&host.delete_link_by_name("cni0").unwrap_err()));
    });
}

#[test]
fn root_routes() {
    in_fresh_netns(|| {
        let mut nl = Netlink::new().unwrap();
        nl.create_veth(&VethSpec {
            name: "rt0".into(),
            peer_name: "rt0p".into(),
            ..VethSpec::default()
        })
        .unwrap();
        let rt0 = nl.link_by_name("rt0").unwrap();
        let rt0p = nl.link_by_name("rt0p").unwrap();
        nl.set_link_up(rt0.index).unwrap();
        nl.set_link_up(rt0p.index).unwrap();
        nl.add_address(rt0.index, net("10.10.0.2/24"), false)
            .unwrap();

        let r = Route {
            dst: Some(net("10.20.0.0/16")),
            gateway: Some(addr("10.10.0.1")),
            oif: Some(rt0.index),
            metric: Some(100),
            mtu: Some(1300),
            advmss: Some(1260),
            ..Route::default()
        };
        nl.add_route(&r, false).unwrap();
        let e = nl.add_route(&r, false).unwrap_err();
        assert!(is_exists(&e), "{e:?}");
        nl.add_route(&r, true).unwrap();
        let found: Vec<_> = nl
            .routes(Some(false))
            .unwrap()
            .into_iter()
            .filter(|x| x.dst == r.dst)
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(f.gateway, r.gateway);
        assert_eq!(f.oif, Some(rt0.index));
        assert_eq!(f.metric, Some(100));
        assert_eq!(f.mtu, Some(1300));
        assert_eq!(f.advmss, Some(1260));
        assert_eq!(f.table, Some(RT_TABLE_MAIN));

        // Default route, and an on-link gateway outside every subnet.
        let def = Route {
            gateway: Some(addr("10.10.0.1")),
            ..Route::default()
        };
        nl.add_route(&def, false).unwrap();
        let onlink = Route {
            dst: Some(net("10.30.0.0/16")),
            gateway: Some(addr("192.168.99.1")),
            oif: Some(rt0.index),
            onlink: true,
            ..Route::default()
        };
        nl.add_route(&onlink, false).unwrap();
        let all = nl.routes(Some(false)).unwrap();
        assert!(all
            .iter()
            .any(|x| x.dst.is_none() && x.gateway == def.gateway));
        assert!(all.iter().any(|x| x.dst == onlink.dst && x.onlink));
        // Link-scope route without gateway, in another table.
        let link_rt = Route {
            dst: Some(net("10.40.0.0/24")),
            oif: Some(rt0.index),
            table: Some(1000),
            ..Route::default()
        };
        nl.add_route(&link_rt, false).unwrap();
        let shown = ip(&["route", "show", "table", "1000"]);
        assert!(shown.contains("10.40.0.0/24 dev rt0 scope link"), "{shown}");

        for x in [&r, &def, &onlink, &link_rt] {
            nl.del_route(x).unwrap();
        }
        let e = nl.del_route(&r).unwrap_err();
        assert!(is_not_found(&e), "{e:?}");

        // IPv6 route (needs the address first for a reachable gateway).
        nl.add_address(rt0.index, net("fd10::2/64"), false).unwrap();
        let r6 = Route {
            dst: Some(net("fd20::/64")),
            gateway: Some(addr("fd10::1")),
            oif: Some(rt0.index),
            ..Route::default()
        };
        // DAD may still be running: onlink avoids depending on it.
        let r6 = Route { onlink: true, ..r6 };
        nl.add_route(&r6, false).unwrap();
        assert!(nl
            .routes(Some(true))
            .unwrap()
            .iter()
            .any(|x| x.dst == r6.dst && x.gateway == r6.gateway));
        nl.del_route(&r6).unwrap();
    });
}

#[test]
fn root_macvlan_created_in_target_ns_then_renamed() {
    in_fresh_netns(|| {
        let container = unshare_again();
        let mut host = Netlink::new().unwrap();
        let mut cont = Netlink::new_in(&container).unwrap();
        host.create_veth(&VethSpec {
            name: "uplink0".into(),
            peer_name: "uplink0p".into(),
            ..VethSpec::default()
        })
        .unwrap();
        let parent = host.link_by_name("uplink0").unwrap();
        host.set_link_up(parent.index).unwrap();

        for (i, mode) in [MacvlanMode::Bridge, MacvlanMode::Private, MacvlanMode::Vepa]
            .into_iter()
            .enumerate()
        {
            let tmp = format!("mvtmp{i}");
            host.create_macvlan(&MacvlanSpec {
                name: tmp.clone(),
                parent: parent.index,
                mode,
                mtu: Some(1400),
                netns: Some(&container),
                ..MacvlanSpec::default()
            })
            .unwrap();
            assert!(host.link_by_name_opt(&tmp).unwrap().is_none());
            let l = cont.link_by_name(&tmp).unwrap();
            assert_eq!(l.kind.as_deref(), Some("macvlan"));
            assert_eq!(l.macvlan_mode, Some(mode));
            assert_eq!(l.mtu, 1400);
            let final_name = format!("net{i}");
            cont.rename_link(l.index, &final_name).unwrap();
            assert_eq!(cont.link_by_index(l.index).unwrap().name, final_name);
        }
        assert_eq!(MacvlanMode::parse("").unwrap(), MacvlanMode::Bridge);
        assert!(MacvlanMode::parse("bogus").is_err());
        // A bad name is a config error before any kernel call.
        let e = host
            .create_macvlan(&MacvlanSpec {
                name: "way-too-long-name0".into(),
                parent: parent.index,
                ..MacvlanSpec::default()
            })
            .unwrap_err();
        assert_eq!(e.code, cni_spec::error::code::INVALID_CONFIG);
    });
}

#[test]
fn root_vxlan_fdb_and_neighbours() {
    in_fresh_netns(|| {
        let mut nl = Netlink::new().unwrap();
        nl.create_veth(&VethSpec {
            name: "under0".into(),
            peer_name: "under0p".into(),
            ..VethSpec::default()
        })
        .unwrap();
        let under = nl.link_by_name("under0").unwrap();
        nl.add_address(under.index, net("192.0.2.10/24"), false)
            .unwrap();
        nl.create_vxlan(&VxlanSpec {
            name: "vx42".into(),
            vni: 42,
            port: Some(4789),
            local: Some(addr("192.0.2.10")),
            underlay: Some(under.index),
            learning: false,
            ttl: Some(64),
            mtu: Some(1450),
            ..VxlanSpec::default()
        })
        .unwrap();
        let vx = nl.link_by_name("vx42").unwrap();
        assert_eq!(vx.kind.as_deref(), Some("vxlan"));
        assert_eq!(vx.vxlan_id, Some(42));
        assert_eq!(vx.mtu, 1450);
        let d = ip(&["-d", "link", "show", "vx42"]);
        assert!(d.contains("vxlan id 42"), "{d}");
        assert!(d.contains("dstport 4789"), "{d}");
        assert!(d.contains("nolearning"), "{d}");
        assert!(d.contains("ttl 64"), "{d}");
        assert!(nl
            .create_vxlan(&VxlanSpec {
                name: "vxbad".into(),
                vni: 1 << 24,
                ..VxlanSpec::default()
            })
            .is_err());

        // Head-end replication: all-zero MAC to two remotes.
        let zero = [0u8; 6];
        for remote in ["192.0.2.1", "192.0.2.2"] {
            nl.add_neigh(
                &Neighbour::vxlan_fdb(vx.index, zero, addr(remote)),
                NeighMode::Append,
            )
            .unwrap();
        }
        let peer_mac = parse_mac("02:00:00:00:01:01").unwrap();
        let unicast = Neighbour::vxlan_fdb(vx.index, peer_mac, addr("192.0.2.1"));
        nl.add_neigh(&unicast, NeighMode::Replace).unwrap();
        let fdb = nl.neighbours(NeighFamily::Bridge, Some(vx.index)).unwrap();
        let floods: Vec<_> = fdb.iter().filter(|n| n.mac == Some(zero)).collect();
        assert_eq!(floods.len(), 2, "{fdb:?}");
        assert!(floods.iter().all(|n| n.permanent && n.on_self));
        assert!(fdb
            .iter()
            .any(|n| n.mac == Some(peer_mac) && n.ip == Some(addr("192.0.2.1"))));
        let shown = Command::new("bridge")
            .args(["fdb", "show", "dev", "vx42"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !shown.is_empty() {
            assert!(
                shown.contains("00:00:00:00:00:00 dst 192.0.2.2 self permanent"),
                "{shown}"
            );
        }
        nl.del_neigh(&Neighbour::vxlan_fdb(vx.index, zero, addr("192.0.2.2")))
            .unwrap();
        let fdb = nl.neighbours(NeighFamily::Bridge, Some(vx.index)).unwrap();
        assert_eq!(
            fdb.iter().filter(|n| n.mac == Some(zero)).count(),
            1,
            "{fdb:?}"
        );
        // The kernel accepts deleting an absent remote of a present MAC;
        // only a MAC with no entry left is "not found".
        let last = Neighbour::vxlan_fdb(vx.index, zero, addr("192.0.2.1"));
        nl.del_neigh(&last).unwrap();
        let e = nl.del_neigh(&last).unwrap_err();
        assert!(is_not_found(&e), "{e:?}");

        // A static ARP entry for a peer, as the overlay programs them.
        nl.set_link_up(vx.index).unwrap();
        let arp = Neighbour::static_entry(vx.index, addr("10.50.0.7"), peer_mac);
        nl.add_neigh(&arp, NeighMode::Replace).unwrap();
        nl.add_neigh(&arp, NeighMode::Replace).unwrap();
        assert!(is_exists(
            &nl.add_neigh(&arp, NeighMode::Create).unwrap_err()
        ));
        let arps = nl.neighbours(NeighFamily::Inet, Some(vx.index)).unwrap();
        assert!(
            arps.iter()
                .any(|n| n.ip == arp.ip && n.mac == arp.mac && n.permanent),
            "{arps:?}"
        );
        nl.del_neigh(&arp).unwrap();
        assert!(is_not_found(&nl.del_neigh(&arp).unwrap_err()));
    });
}

#[test]
fn root_big_dumps_span_many_datagrams() {
    in_fresh_netns(|| {
        let mut nl = Netlink::new().unwrap();
        for i in 0..40 {
            nl.create_veth(&VethSpec {
                name: format!("dmp{i}a"),
                peer_name: format!("dmp{i}b"),
                ..VethSpec::default()
            })
            .unwrap();
        }
        let links = nl.links().unwrap();
        assert_eq!(links.len(), 81, "lo + 80 veth ends");
        let lo = nl.link_by_name("lo").unwrap();
        for i in 0..40u8 {
            nl.add_address(lo.index, net(&format!("10.99.{i}.1/32")), false)
                .unwrap();
        }
        assert!(nl.addresses(Some(lo.index)).unwrap().len() >= 40);
        assert!(nl.addresses(None).unwrap().len() >= 40);
    });
}

/// The kernel-filtered port list and the early-stop question, on two
/// bridges with enough ports that the dump spans several datagrams.
#[test]
fn root_links_with_master_are_filtered_and_searched() {
    in_fresh_netns(|| {
        let mut nl = Netlink::new().unwrap();
        for br in ["fbr0", "fbr1"] {
            nl.create_bridge(&BridgeSpec {
                name: br.into(),
                ..BridgeSpec::default()
            })
            .unwrap();
        }
        let br0 = nl.link_by_name("fbr0").unwrap().index;
        let br1 = nl.link_by_name("fbr1").unwrap().index;
        for i in 0..60 {
            nl.create_veth(&VethSpec {
                name: format!("fp{i}a"),
                peer_name: format!("fp{i}b"),
                ..VethSpec::default()
            })
            .unwrap();
            let a = nl.link_by_name(&format!("fp{i}a")).unwrap().index;
            nl.set_master(a, Some(br0)).unwrap();
        }
        let ports = nl.links_with_master(br0).unwrap();
        let mut names: Vec<String> = ports.iter().map(|l| l.name.clone()).collect();
        names.sort();
        let mut want: Vec<String> = (0..60).map(|i| format!("fp{i}a")).collect();
        want.sort();
        assert_eq!(names, want, "exactly the ports of fbr0");
        assert!(nl.links_with_master(br1).unwrap().is_empty());

        // Found wherever it is in the dump; absent after the whole dump.
        let last = Netlink::new().unwrap();
        assert!(last
            .any_link_with_master(br0, |l| l.name == "fp59a")
            .unwrap());
        let none = Netlink::new().unwrap();
        assert!(!none
            .any_link_with_master(br0, |l| l.name == "fp59b")
            .unwrap());
        let other = Netlink::new().unwrap();
        assert!(!other.any_link_with_master(br1, |_| true).unwrap());
        // A socket closed mid-dump leaves nothing behind for the others.
        assert_eq!(nl.links_with_master(br0).unwrap().len(), 60);
    });
}

#[test]
fn root_sysctl_is_per_namespace() {
    let root_before = sysctl::get("net/ipv4/ip_forward").unwrap();
    let inner = in_fresh_netns(|| {
        sysctl::set("net.ipv4.ip_forward", "1").unwrap();
        sysctl::get("net/ipv4/ip_forward").unwrap()
    });
    assert_eq!(inner, "1");
    assert_eq!(sysctl::get("net/ipv4/ip_forward").unwrap(), root_before);
}

#[test]
fn root_socket_opened_in_other_ns_stays_there() {
    in_fresh_netns(|| {
        let other = unshare_again();
        let mut here = Netlink::new().unwrap();
        here.create_bridge(&BridgeSpec {
            name: "onlyhere".into(),
            ..BridgeSpec::default()
        })
        .unwrap();
        let mut there = Netlink::new_in(&other).unwrap();
        assert!(there.link_by_name_opt("onlyhere").unwrap().is_none());
        assert!(here.link_by_name_opt("onlyhere").unwrap().is_some());
        // The thread is back where it was.
        assert!(!other.is_current().unwrap());
    });
}
