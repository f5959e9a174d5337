//! The bridge plugin's life cycle through the real binary: ADD, traffic, CHECK,
//! DEL in all its cases, failed ADDs that leave nothing, drift CHECK finds,
//! STATUS and GC.
//!
//! Each test runs the plugins inside a fake host namespace of its own (never
//! the machine's), with its own IPAM data dir; all tests need root. The
//! shared test host is `integration::bridge_host`.

use integration::bridge_host::*;
use integration::state::{self, addr_cidrs, link, ping};
use integration::{paths, Invocation};
use serde_json::{json, Value};

#[test]
fn root_bridge_add_traffic_check_del() {
    let before = root_ip_forward();
    let h = Host::new("basic");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "br0",
        "10.11.0.0/24",
        json!({"isGateway": true, "ipMasq": true}),
    );
    let (c1, c2) = (h.ctr("a"), h.ctr("b"));
    let r1 = h.add(&c1, &conf);
    let r2 = h.add(&c2, &conf);

    // Result: bridge, host veth, container interface; IPs on index 2.
    let ifs = r1["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "{r1:#}");
    assert_eq!(ifs[0]["name"], "br0");
    assert!(is_our_veth(ifs[1]["name"].as_str().unwrap()), "{r1:#}");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], c1.ns.path_str());
    assert!(ifs[0].get("sandbox").is_none() && ifs[1].get("sandbox").is_none());
    assert_eq!(r1["ips"][0]["interface"], 2);
    assert_eq!(r1["ips"][0]["gateway"], "10.11.0.1");
    assert_eq!(r1["cniVersion"], "1.0.0");
    // The MACs in the result are the kernel's.
    let br = link(&h.host, "br0").expect("bridge");
    assert_eq!(br["address"], ifs[0]["mac"]);
    let eth0 = link(&c1.ns, "eth0").expect("eth0");
    assert_eq!(eth0["address"], ifs[2]["mac"]);
    assert_eq!(
        addr_cidrs(&c1.ns, "eth0").first().map(String::as_str),
        r1["ips"][0]["address"].as_str()
    );

    // Gateway on the bridge, forwarding on in the fake host only.
    assert!(addr_cidrs(&h.host, "br0").contains(&"10.11.0.1/24".to_string()));
    assert!(h.host.ip_forward());
    assert_eq!(
        root_ip_forward(),
        before,
        "the root namespace's ip_forward changed"
    );

    // Traffic: container to gateway, container to container.
    assert!(ping(&c1.ns, "10.11.0.1"), "container -> gateway");
    assert!(ping(&c1.ns, &ip_of(&r2)), "container -> container");
    state::tcp_exchange(&c2.ns, &c1.ns, &ip_of(&r2), 8080).expect("tcp c1 -> c2");

    // Masquerade and isolation rules, made once for the network.
    assert!(
        h.has_masquerade("10.11.0.0/24"),
        "{:?}",
        h.our_rule_comments()
    );
    let n_rules = h.our_rule_comments().len();
    assert_eq!(
        n_rules,
        3,
        "masq + 2 isolation rules: {:?}",
        h.our_rule_comments()
    );

    // CHECK passes right after ADD.
    h.call("CHECK", &c1, &with_prev(&conf, &r1))
        .expect_ok_silent();

    // DEL of one container keeps the network's rules; the last takes them.
    h.del(&c1, &conf, &r1);
    assert!(link(&c1.ns, "eth0").is_none());
    assert!(h.has_masquerade("10.11.0.0/24"));
    assert!(ping(&c2.ns, "10.11.0.1"));
    h.del(&c2, &conf, &r2);
    h.assert_clean(&net);
    assert!(
        link(&h.host, "br0").is_some(),
        "the bridge stays, as the reference's does"
    );
    // Repeated DEL is fine.
    h.del(&c2, &conf, &r2);
}

#[test]
fn root_bridge_del_cases() {
    let h = Host::new("del");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brdel",
        "10.61.0.0/24",
        json!({"isGateway": true, "ipMasq": true, "macspoofchk": true}),
    );

    // Empty CNI_NETNS (containerd sends it so): veth, lease and rules go.
    let c = h.ctr("empty");
    let r = h.add(&c, &conf);
    h.inv("DEL", &c, &with_prev(&conf, &r))
        .netns("")
        .run()
        .expect_ok_silent();
    h.assert_clean(&net);

    // Unset CNI_NETNS and no prevResult at all.
    let r = h.add(&c, &conf);
    h.inv("DEL", &c, &conf)
        .unset("CNI_NETNS")
        .run()
        .expect_ok_silent();
    h.assert_clean(&net);
    drop(r);

    // The namespace was deleted before DEL.
    let gone = h.ctr("gone");
    let r = h.add(&gone, &conf);
    let path = gone.ns.path_str();
    let id = gone.id.clone();
    drop(gone.ns);
    Invocation::ours("bridge")
        .cni("DEL", &h.host, &id, &path, "eth0", &with_prev(&conf, &r))
        .run()
        .expect_ok_silent();
    h.assert_clean(&net);

    // The interface is already gone; then DEL twice; then a DEL for a
    // container that was never added.
    let r = h.add(&c, &conf);
    c.ns.ip_ok(&["link", "del", "eth0"]);
    h.del(&c, &conf, &r);
    h.del(&c, &conf, &r);
    h.assert_clean(&net);
    let never = h.ctr("never");
    h.call("DEL", &never, &conf).expect_ok_silent();
}

#[test]
fn root_bridge_failed_add_leaves_nothing() {
    let h = Host::new("fail");
    let net = h.net_name("");
    let c = h.ctr("f");

    // IPAM plugin missing: it runs while the links are built; they go again.
    let mut conf = h.conf(
        &net,
        "brf",
        "10.62.0.0/24",
        json!({"isGateway": true, "ipMasq": true}),
    );
    conf["ipam"]["type"] = json!("no-such-ipam");
    h.call("ADD", &c, &conf).expect_any_error();
    h.assert_clean(&net);
    assert!(link(&c.ns, "eth0").is_none());

    // An interface of that name already in the container.
    let conf = h.conf(
        &net,
        "brf",
        "10.62.0.0/24",
        json!({"isGateway": true, "ipMasq": true}),
    );
    c.ns.ip_ok(&["link", "add", "eth0", "type", "bridge"]);
    let out = h.call("ADD", &c, &conf);
    assert!(
        out.expect_any_error()["msg"]
            .as_str()
            .unwrap()
            .contains("already has an interface"),
        "{}",
        out.report()
    );
    h.assert_clean(&net);
    assert_eq!(
        link(&c.ns, "eth0").unwrap()["link_type"],
        "ether",
        "the existing interface stays"
    );
    c.ns.ip_ok(&["link", "del", "eth0"]);

    // A failure after IPAM succeeded (IPAM's default route contradicts
    // isDefaultGateway): the address is released, the veth removed.
    let mut conf = h.conf(
        &net,
        "brf",
        "10.62.0.0/24",
        json!({"isDefaultGateway": true}),
    );
    conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0", "gw": "10.62.0.254"}]);
    h.call("ADD", &c, &conf).expect_error(7);
    h.assert_clean(&net);
    assert!(link(&c.ns, "eth0").is_none());
}

#[test]
fn root_bridge_check_detects_drift() {
    let h = Host::new("chk");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brc",
        "10.63.0.0/24",
        json!({"isDefaultGateway": true, "ipMasq": true}),
    );
    let c = h.ctr("c");
    let r = h.add(&c, &conf);
    let prev = with_prev(&conf, &r);
    h.call("CHECK", &c, &prev).expect_ok_silent();
    h.call("CHECK", &c, &conf).expect_any_error();

    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    c.ns.ip_ok(&["addr", "del", &addr, "dev", "eth0"]);
    h.call("CHECK", &c, &prev).expect_any_error();
    c.ns.ip_ok(&["addr", "add", &addr, "dev", "eth0"]);
    c.ns.ip_ok(&["route", "replace", "default", "via", "10.63.0.1"]);
    h.call("CHECK", &c, &prev).expect_ok_silent();

    h.host
        .exec_ok(&["nft", "flush", "chain", "inet", OUR_TABLE, "postrouting"]);
    let out = h.call("CHECK", &c, &prev);
    assert!(
        out.expect_any_error()["msg"]
            .as_str()
            .unwrap()
            .contains("missing rule"),
        "{}",
        out.report()
    );

    // CHECK needs a version that has it.
    let mut old = prev.clone();
    old["cniVersion"] = json!("0.3.1");
    h.call("CHECK", &c, &old).expect_error(1);
    h.del(&c, &conf, &r);
    h.assert_clean(&net);
}

#[test]
fn root_bridge_status_and_gc() {
    let h = Host::new("gc");
    let net = h.net_name("");
    let mut conf = h.conf(
        &net,
        "brgc",
        "10.64.0.0/24",
        json!({"isGateway": true, "ipMasq": true, "macspoofchk": true}),
    );
    conf["cniVersion"] = json!("1.1.0");
    let status = Invocation::ours("bridge")
        .command("STATUS")
        .cni_path(&paths::default_cni_path())
        .stdin_json(&conf)
        .in_host(&h.host)
        .run();
    status.expect_ok_silent();

    let (a, b) = (h.ctr("a"), h.ctr("b"));
    let _ra = h.add(&a, &conf);
    let _rb = h.add(&b, &conf);
    assert_eq!(h.leases(&net).len(), 2);
    let gc = |valid: Value| {
        let mut c = conf.clone();
        c["cni.dev/valid-attachments"] = valid;
        Invocation::ours("bridge")
            .command("GC")
            .cni_path(&paths::default_cni_path())
            .stdin_json(&c)
            .in_host(&h.host)
            .run()
            .expect_ok_silent();
    };
    gc(json!([{"containerID": a.id, "ifname": "eth0"}]));
    assert_eq!(h.leases(&net).len(), 1, "b's lease must go");
    let elems = h
        .host
        .exec_ok(&["nft", "list", "table", "bridge", OUR_TABLE]);
    assert!(
        elems.contains(&format!("{} eth0", a.id)) && !elems.contains(&format!("{} eth0", b.id)),
        "{elems}"
    );
    assert!(
        h.has_masquerade("10.64.0.0/24"),
        "a is still valid: network rules stay"
    );
    gc(json!([]));
    assert!(h.leases(&net).is_empty());
    assert!(h.our_tables().is_empty(), "{:?}", h.our_tables());
}
