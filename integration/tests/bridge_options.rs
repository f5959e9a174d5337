//! The bridge plugin's options through the real binary: L2-only networks,
//! port and link settings, MAC sources, default gateway and forceAddress,
//! a disabled container interface, VLANs.
//!
//! Each test runs the plugins inside a fake host namespace of its own (never
//! the machine's), with its own IPAM data dir; all tests need root. The
//! shared test host is `integration::bridge_host`.

use integration::bridge_host::*;
use integration::state::{self, addr_cidrs, link, link_flags, link_is_up, ping, route_to};
use serde_json::json;

#[test]
fn root_bridge_l2_only_and_no_gateway() {
    let h = Host::new("l2");
    let net = h.net_name("");
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "brl2",
                      "ipam": {}, "isolation": false});
    let (a, b) = (h.ctr("a"), h.ctr("b"));
    let ra = h.add(&a, &conf);
    let rb = h.add(&b, &conf);
    assert!(ra.get("ips").is_none(), "{ra:#}");
    assert_eq!(ra["interfaces"].as_array().map(Vec::len), Some(3));
    assert!(link_is_up(&a.ns, "eth0"));
    assert!(addr_cidrs(&h.host, "brl2")
        .iter()
        .all(|c| c.starts_with("fe80")));
    assert!(!h.host.ip_forward(), "no gateway: ip_forward must stay off");
    assert!(
        h.our_tables().is_empty(),
        "no masquerade, no isolation: no rules"
    );
    // L2 works once the containers address themselves.
    a.ns.ip_ok(&["addr", "add", "10.40.0.2/24", "dev", "eth0"]);
    b.ns.ip_ok(&["addr", "add", "10.40.0.3/24", "dev", "eth0"]);
    assert!(ping(&a.ns, "10.40.0.3"));
    h.del(&a, &conf, &ra);
    h.del(&b, &conf, &rb);
    assert!(h.our_veths().is_empty());

    // With IPAM but without isGateway: addresses, no gateway on the bridge.
    let conf = h.conf(&h.net_name("g"), "brng", "10.41.0.0/24", json!({}));
    let c = h.ctr("c");
    let r = h.add(&c, &conf);
    assert!(r["ips"][0].get("gateway").is_none() || r["ips"][0]["gateway"] == "10.41.0.1");
    assert!(addr_cidrs(&h.host, "brng")
        .iter()
        .all(|c| c.starts_with("fe80")));
    assert!(!h.host.ip_forward());
    h.del(&c, &conf, &r);
}

#[test]
fn root_bridge_port_and_link_options() {
    let h = Host::new("opts");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "bro",
        "10.51.0.0/24",
        json!({"isGateway": true, "mtu": 1400, "hairpinMode": true, "portIsolation": true}),
    );
    let c = h.ctr("o");
    let r = h.add(&c, &conf);
    let hv = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    assert_eq!(link(&c.ns, "eth0").unwrap()["mtu"], 1400);
    assert_eq!(link(&h.host, &hv).unwrap()["mtu"], 1400);
    assert_eq!(link(&h.host, "bro").unwrap()["mtu"], 1400);
    let pd = port_data(&h.host, &hv);
    assert_eq!(pd["hairpin"], true, "{pd:#}");
    assert_eq!(pd["isolated"], true, "{pd:#}");
    assert!(!link_flags(&h.host, "bro").iter().any(|f| f == "PROMISC"));
    h.del(&c, &conf, &r);

    // promiscMode on the bridge; mutually exclusive with hairpinMode.
    let conf = h.conf(&net, "bro", "10.51.0.0/24", json!({"promiscMode": true}));
    let r = h.add(&c, &conf);
    assert!(link_flags(&h.host, "bro").iter().any(|f| f == "PROMISC"));
    h.del(&c, &conf, &r);
    let bad = h.conf(
        &net,
        "bro",
        "10.51.0.0/24",
        json!({"promiscMode": true, "hairpinMode": true}),
    );
    h.call("ADD", &c, &bad).expect_error(7);
    h.assert_clean(&net);
}

#[test]
fn root_bridge_mac_sources_in_precedence_order() {
    let h = Host::new("mac");
    let net = h.net_name("");
    let base = h.conf(&net, "brmac", "10.52.0.0/24", json!({}));
    let c = h.ctr("m");
    let cases = [
        (
            json!({"runtimeConfig": {"mac": "02:aa:00:00:00:01"}, "args": {"cni": {"mac": "02:aa:00:00:00:02"}}}),
            "02:aa:00:00:00:01",
        ),
        (
            json!({"args": {"cni": {"mac": "02:aa:00:00:00:02"}}}),
            "02:aa:00:00:00:02",
        ),
        (json!({}), "02:aa:00:00:00:03"),
    ];
    for (extra, want) in cases {
        let mut conf = base.clone();
        merge(&mut conf, extra);
        let out = h
            .inv("ADD", &c, &conf)
            .cni_args("MAC=02:aa:00:00:00:03")
            .run();
        let r = out.expect_ok_json();
        assert_eq!(r["interfaces"][2]["mac"], want);
        assert_eq!(link(&c.ns, "eth0").unwrap()["address"], want);
        h.del(&c, &conf, &r);
    }
    h.assert_clean(&net);
}

#[test]
fn root_bridge_default_gateway_and_force_address() {
    let h = Host::new("gw");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brgw",
        "10.53.0.0/24",
        json!({"isDefaultGateway": true}),
    );
    let c = h.ctr("g");
    let r = h.add(&c, &conf);
    let def = route_to(&c.ns, 4, "default").expect("default route");
    assert_eq!(def["gateway"], "10.53.0.1");
    assert!(
        r["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["dst"] == "0.0.0.0/0" && x["gw"] == "10.53.0.1"),
        "{r:#}"
    );
    h.del(&c, &conf, &r);

    // Another IPv4 address on the bridge: an error, unless forceAddress.
    h.host.ip_ok(&["addr", "flush", "dev", "brgw"]);
    h.host
        .ip_ok(&["addr", "add", "10.99.9.1/24", "dev", "brgw"]);
    let out = h.call("ADD", &c, &conf);
    assert!(
        out.expect_any_error()["msg"]
            .as_str()
            .unwrap()
            .contains("already has an IP address"),
        "{}",
        out.report()
    );
    h.assert_clean(&net);
    let forced = h.conf(
        &net,
        "brgw",
        "10.53.0.0/24",
        json!({"isDefaultGateway": true, "forceAddress": true}),
    );
    let r = h.add(&c, &forced);
    assert_eq!(
        state::ipv4_cidrs(&h.host, "brgw"),
        vec!["10.53.0.1/24".to_string()]
    );
    assert!(ping(&c.ns, "10.53.0.1"));
    h.del(&c, &forced, &r);
}

#[test]
fn root_bridge_disable_container_interface() {
    let h = Host::new("dci");
    let net = h.net_name("");
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "brd",
                      "ipam": {}, "disableContainerInterface": true});
    let c = h.ctr("d");
    let r = h.add(&c, &conf);
    assert!(
        !link_is_up(&c.ns, "eth0"),
        "container interface must stay down"
    );
    h.del(&c, &conf, &r);
    let bad = h.conf(
        &net,
        "brd",
        "10.55.0.0/24",
        json!({"disableContainerInterface": true}),
    );
    h.call("ADD", &c, &bad).expect_error(7);
    h.assert_clean(&net);
}

#[test]
fn root_bridge_vlan_options() {
    let h = Host::new("vlan");
    let net = h.net_name("");
    let c = h.ctr("v");
    for extra in [
        json!({"vlan": 100}),
        json!({"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 202}]}),
        json!({"vlan": 100, "preserveDefaultVlan": false, "isGateway": true}),
    ] {
        let conf = h.conf(&net, "brv", "10.56.0.0/24", extra.clone());
        let out = h.call("ADD", &c, &conf);
        if !out.success() {
            let msg = out.error_msg();
            assert!(
                msg.contains("VLAN filtering is not supported by this kernel"),
                "unexpected failure: {}",
                out.report()
            );
            println!("SKIPPED vlan {extra}: the kernel refuses bridge VLAN filtering ({msg})");
            // The refused ADD left nothing behind.
            h.assert_clean(&net);
            continue;
        }
        let r = out.json();
        let hv = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        let vlans = h
            .host
            .exec_ok(&["bridge", "-j", "vlan", "show", "dev", &hv]);
        assert!(vlans.contains("100") || vlans.contains("101"), "{vlans}");
        h.del(&c, &conf, &r);
    }
    // Out-of-range VLAN ids are config errors on any kernel.
    let bad = h.conf(&net, "brv", "10.56.0.0/24", json!({"vlan": 5000}));
    h.call("ADD", &c, &bad).expect_error(7);
}
