//! The bridge plugin's nftables rules through the real binary: isolation
//! between networks, masquerade of outside traffic, MAC spoof checks.
//!
//! Each test runs the plugins inside a fake host namespace of its own (never
//! the machine's), with its own IPAM data dir; all tests need root. The
//! shared test host is `integration::bridge_host`.

use integration::bridge_host::*;
use integration::netns::unique_ifname;
use integration::state::{nft_rules, ping};
use integration::Netns;
use serde_json::json;

#[test]
fn root_bridge_isolation_between_networks() {
    let h = Host::new("iso");
    let run = |isolation: bool| {
        let extra = json!({"isDefaultGateway": true, "isolation": isolation});
        let (na, nb) = (h.net_name("a"), h.net_name("b"));
        let ca = h.conf(&na, "bra", "10.21.0.0/24", extra.clone());
        let cb = h.conf(&nb, "brb", "10.22.0.0/24", extra);
        let (x, y) = (h.ctr("x"), h.ctr("y"));
        let rx = h.add(&x, &ca);
        let ry = h.add(&y, &cb);
        assert!(ping(&x.ns, "10.21.0.1") && ping(&y.ns, "10.22.0.1"));
        let crossed = ping(&x.ns, &ip_of(&ry));
        let back = ping(&y.ns, &ip_of(&rx));
        h.del(&x, &ca, &rx);
        h.del(&y, &cb, &ry);
        h.assert_clean(&na);
        h.assert_clean(&nb);
        (crossed, back)
    };
    assert_eq!(
        run(true),
        (false, false),
        "isolated networks reached each other"
    );
    assert_eq!(
        run(false),
        (true, true),
        "with isolation off, routed traffic must pass"
    );
}

#[test]
fn root_bridge_masquerade_applies_to_outside_traffic() {
    let h = Host::new("masq");
    let outside = Netns::new("out");
    let (up, peer) = (unique_ifname("up"), unique_ifname("pe"));
    h.host.ip_ok(&[
        "link",
        "add",
        &up,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "netns",
        outside.name(),
    ]);
    h.host
        .ip_ok(&["addr", "add", "192.168.77.1/24", "dev", &up]);
    h.host.link_up(&up);
    outside.ip_ok(&["addr", "add", "192.168.77.2/24", "dev", &peer]);
    outside.link_up(&peer);
    outside.link_up("lo");

    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brm",
        "10.31.0.0/24",
        json!({"isDefaultGateway": true, "ipMasq": true}),
    );
    let c = h.ctr("m");
    let r = h.add(&c, &conf);
    // The outside has no route back to 10.31.0.0/24: only masquerade makes
    // the reply find its way.
    assert!(
        ping(&c.ns, "192.168.77.2"),
        "masqueraded ping to the outside"
    );
    let masq_hits: u64 = nft_rules(&h.host)
        .iter()
        .filter(|r| r["comment"].as_str().is_some_and(|c| c.contains("masq")))
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum();
    assert!(masq_hits > 0, "masquerade rule did not count the packet");
    h.del(&c, &conf, &r);
    h.assert_clean(&net);
}

#[test]
fn root_bridge_macspoofchk() {
    let h = Host::new("spoof");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brs",
        "10.57.0.0/24",
        json!({"isGateway": true, "macspoofchk": true}),
    );
    let c = h.ctr("s");
    let r = h.add(&c, &conf);
    assert!(ping(&c.ns, "10.57.0.1"), "the container's own MAC passes");
    h.call("CHECK", &c, &with_prev(&conf, &r))
        .expect_ok_silent();
    // A forged source MAC is dropped at the bridge.
    c.ns.ip_ok(&["link", "set", "eth0", "address", "02:de:ad:00:00:01"]);
    c.ns.ip_ok(&["neigh", "flush", "all"]);
    assert!(!ping(&c.ns, "10.57.0.1"), "spoofed MAC got through");
    h.del(&c, &conf, &r);
    h.assert_clean(&net);
}
