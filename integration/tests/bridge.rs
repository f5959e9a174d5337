//! The bridge plugin through the real binary: every option, every DEL case,
//! failures, concurrency, traffic, firewall rules, and interop with the
//! reference plugins. Each test runs the plugins inside a fake host
//! namespace of its own (never the machine's), with its own IPAM data dir;
//! all tests need root.

use std::path::Path;

use integration::conflist::{Attachment, ConfList};
use integration::netns::unique_ifname;
use integration::state::{
    self, addr_cidrs, link, link_flags, link_is_up, link_names, nft_rules, nft_tables, ping,
    route_to,
};
use integration::{paths, require_root, unique_id, FakeHost, Invocation, Netns, Outcome, TempDir};
use serde_json::{json, Value};

/// The nftables table our firewall owns (in the inet and bridge families).
const OUR_TABLE: &str = "cni_rs";

/// A fake host with its own IPAM data dir and a network name unique to the
/// test (the plugin's lock files are keyed by it).
struct Host {
    host: FakeHost,
    data: TempDir,
    tag: String,
}

/// A container: its namespace and id.
struct Ctr {
    ns: Netns,
    id: String,
}

impl Host {
    fn new(tag: &str) -> Self {
        require_root();
        Host {
            host: FakeHost::new(tag),
            data: TempDir::new(tag),
            tag: tag.to_string(),
        }
    }

    /// A unique, valid network name for this test.
    fn net_name(&self, suffix: &str) -> String {
        format!("n{}{suffix}", unique_id(&self.tag))
    }

    /// A bridge config on `subnet` with host-local IPAM, plus `extra` keys.
    fn conf(&self, name: &str, bridge: &str, subnet: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": name,
            "type": "bridge",
            "bridge": bridge,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": self.data.path()},
        });
        merge(&mut c, extra);
        c
    }

    fn ctr(&self, tag: &str) -> Ctr {
        Ctr {
            ns: Netns::new(&format!("c{tag}")),
            id: unique_id(tag),
        }
    }

    fn inv(&self, cmd: &str, c: &Ctr, conf: &Value) -> Invocation {
        Invocation::ours("bridge").cni(cmd, &self.host, &c.id, &c.ns.path_str(), "eth0", conf)
    }

    fn call(&self, cmd: &str, c: &Ctr, conf: &Value) -> Outcome {
        self.inv(cmd, c, conf).run()
    }

    fn add(&self, c: &Ctr, conf: &Value) -> Value {
        self.call("ADD", c, conf).expect_ok_json()
    }

    /// DEL with the ADD result as prevResult, as a runtime sends it.
    fn del(&self, c: &Ctr, conf: &Value, result: &Value) {
        self.call("DEL", c, &with_prev(conf, result))
            .expect_ok_silent();
    }

    /// The lease files host-local keeps for `network`.
    fn leases(&self, network: &str) -> Vec<String> {
        leases_in(&self.data.join(network))
    }

    /// Host veths of ours (derived names).
    fn our_veths(&self) -> Vec<String> {
        link_names(&self.host)
            .into_iter()
            .filter(|n| is_our_veth(n))
            .collect()
    }

    /// Our nftables tables in the host.
    fn our_tables(&self) -> Vec<(String, String)> {
        nft_tables(&self.host)
            .into_iter()
            .filter(|(_, n)| n == OUR_TABLE)
            .collect()
    }

    /// Comments of our rules in the host.
    fn our_rule_comments(&self) -> Vec<String> {
        nft_rules(&self.host)
            .iter()
            .filter(|r| r["table"] == OUR_TABLE)
            .filter_map(|r| r["comment"].as_str().map(String::from))
            .collect()
    }

    fn has_masquerade(&self, subnet: &str) -> bool {
        self.our_rule_comments()
            .iter()
            .any(|c| c.contains("masq") && c.contains(subnet))
    }

    /// Nothing of ours on the host: no veth, no rules, no leases.
    fn assert_clean(&self, network: &str) {
        assert!(
            self.our_veths().is_empty(),
            "veths left: {:?}",
            self.our_veths()
        );
        assert!(
            self.our_tables().is_empty(),
            "nft tables left: {:?}",
            self.our_tables()
        );
        assert!(
            self.leases(network).is_empty(),
            "leases left: {:?}",
            self.leases(network)
        );
    }
}

fn merge(c: &mut Value, extra: Value) {
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        for (k, v) in e {
            o.insert(k, v);
        }
    }
}

fn with_prev(conf: &Value, result: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = result.clone();
    c
}

fn is_our_veth(n: &str) -> bool {
    n.strip_prefix("veth")
        .is_some_and(|r| r.len() == 8 && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn leases_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                .collect()
        })
        .unwrap_or_default()
}

/// The container's first address without prefix ("10.1.0.2").
fn ip_of(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().expect("an address");
    a.split('/').next().unwrap_or_default().to_string()
}

/// `ip -d -j link show` of one link: its bridge-port data.
fn port_data(ns: &Netns, name: &str) -> Value {
    let out = ns.ip_ok(&["-d", "-j", "link", "show", "dev", name]);
    let v: Value = serde_json::from_str(&out).expect("ip -j output");
    v[0]["linkinfo"]["info_slave_data"].clone()
}

/// Ping, retrying for up to `secs` seconds.
fn ping_within(ns: &Netns, ip: &str, secs: u64) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if ping(ns, ip) {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
    }
}

fn root_ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap_or_default()
        .trim()
        .to_string()
}

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
fn root_bridge_dual_stack_and_dad() {
    let h = Host::new("v6");
    let net = h.net_name("");
    let ipam = |_: ()| {
        json!({"type": "host-local", "dataDir": h.data.path(),
        "ranges": [[{"subnet": "10.54.0.0/24"}], [{"subnet": "fd00:54::/64"}]]})
    };
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "br6",
                      "isGateway": true, "ipam": ipam(())});
    let c = h.ctr("six");
    let r = h.add(&c, &conf);
    assert_eq!(r["ips"].as_array().map(Vec::len), Some(2), "{r:#}");
    assert_eq!(
        c.ns.sysctl("net.ipv6.conf.eth0.accept_dad"),
        "0",
        "DAD off by default"
    );
    assert!(addr_cidrs(&h.host, "br6").contains(&"fd00:54::1/64".to_string()));
    assert_eq!(h.host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    // The bridge's own gateway address goes through DAD first (~1-2 s).
    assert!(ping_within(&c.ns, "fd00:54::1", 5), "ping6 gateway");
    assert!(ping(&c.ns, "10.54.0.1"));
    h.del(&c, &conf, &r);

    let mut dad = conf.clone();
    dad["enabledad"] = json!(true);
    let r = h.add(&c, &dad);
    assert_ne!(
        c.ns.sysctl("net.ipv6.conf.eth0.accept_dad"),
        "0",
        "enabledad keeps DAD on"
    );
    let tentative =
        c.ns.ip_ok(&["-6", "addr", "show", "dev", "eth0", "tentative"]);
    assert!(
        tentative.trim().is_empty(),
        "ADD returned before DAD finished: {tentative}"
    );
    h.del(&c, &dad, &r);
    h.assert_clean(&net);
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

#[test]
fn root_bridge_concurrent_adds_on_fresh_host() {
    let h = Host::new("par");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brp",
        "10.65.0.0/24",
        json!({"isGateway": true, "ipMasq": true}),
    );
    let ctrs: Vec<Ctr> = (0..8).map(|i| h.ctr(&format!("p{i}"))).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = ctrs
            .iter()
            .map(|c| s.spawn(|| h.call("ADD", c, &conf)))
            .collect();
        hs.into_iter()
            .map(|j| j.join().unwrap().expect_ok_json())
            .collect()
    });
    let mut ips: Vec<String> = results.iter().map(ip_of).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8, "addresses must be unique");
    assert_eq!(h.our_veths().len(), 8);
    assert_eq!(
        addr_cidrs(&h.host, "brp")
            .iter()
            .filter(|a| a.as_str() == "10.65.0.1/24")
            .count(),
        1
    );
    assert_eq!(
        h.our_rule_comments().len(),
        3,
        "shared rules made once: {:?}",
        h.our_rule_comments()
    );
    for c in &ctrs {
        assert!(ping(&c.ns, "10.65.0.1"));
    }
    std::thread::scope(|s| {
        for (c, r) in ctrs.iter().zip(&results) {
            let conf = &conf;
            let h = &h;
            s.spawn(move || h.del(c, conf, r));
        }
    });
    h.assert_clean(&net);
}

#[test]
fn root_bridge_with_reference_host_local() {
    let h = Host::new("refipam");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brr",
        "10.66.0.0/24",
        json!({"isGateway": true, "ipMasq": true}),
    );
    let c = h.ctr("r");
    let ref_path = paths::ref_bin_dir().display().to_string();
    let r = h
        .inv("ADD", &c, &conf)
        .cni_path(&ref_path)
        .run()
        .expect_ok_json();
    assert_eq!(h.leases(&net).len(), 1, "the reference host-local's lease");
    assert!(ping(&c.ns, "10.66.0.1"));
    h.inv("CHECK", &c, &with_prev(&conf, &r))
        .cni_path(&ref_path)
        .run()
        .expect_ok_silent();
    h.inv("DEL", &c, &with_prev(&conf, &r))
        .cni_path(&ref_path)
        .run()
        .expect_ok_silent();
    h.assert_clean(&net);
}

#[test]
fn root_bridge_result_feeds_reference_meta_plugins() {
    let h = Host::new("chain");
    let net = h.net_name("");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [
            {"type": "bridge", "bridge": "brch", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "subnet": "10.67.0.0/24", "dataDir": h.data.path()}},
            {"type": "portmap", "capabilities": {"portMappings": true},
             "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}},
            {"type": "bandwidth", "ingressRate": 100000000, "ingressBurst": 1000000,
             "egressRate": 100000000, "egressBurst": 1000000},
            {"type": "firewall"}
        ]
    });
    let list = ConfList::from_value(Path::new("chain.conflist"), list).expect("conflist");
    let c = h.ctr("ch");
    let att = Attachment::new(&h.host, &c.ns, &c.id, "eth0");
    assert!(att
        .resolve("bridge")
        .unwrap()
        .starts_with(paths::our_bin_dir()));
    assert!(att
        .resolve("portmap")
        .unwrap()
        .starts_with(paths::ref_bin_dir()));
    let r = att.add(&list).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r["interfaces"][0]["name"], "brch", "{r:#}");
    assert_eq!(
        c.ns.sysctl("net.ipv4.conf.eth0.arp_filter"),
        "1",
        "tuning applied"
    );
    assert!(ping(&c.ns, "10.67.0.1"));
    // Our CHECK accepts the final result of the chain (with bandwidth's
    // ifb device appended). The chain-wide CHECK is not run: Debian's
    // portmap 1.1.1 fails its own CHECK without IPv6 ("could not check
    // ipv6 dnat: chain CNI-DN-... not found"), whoever made the result.
    let bridge_conf = list.plugin_conf(0, Some(&r));
    h.call("CHECK", &c, &bridge_conf).expect_ok_silent();
    att.del(&list, Some(&r)).unwrap_or_else(|e| panic!("{e:#}"));
    h.assert_clean(&net);
}
