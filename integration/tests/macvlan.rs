//! The macvlan plugin through the real binary. Every test builds a small
//! LAN: a fake host whose master link is one end of a veth, the other end
//! in a "peer" namespace standing for another machine on the wire
//! (10.77.0.254). Containers are fresh namespaces; IPAM is host-local with
//! its own data directory. Nothing touches the root namespace.
//!
//! All tests need root (namespaces).

use std::path::PathBuf;
use std::time::Instant;

use integration::netns::unique_ifname;
use integration::paths::{our_bin_dir, ref_bin_dir, Binary};
use integration::state::{addrs, ipv4_cidrs, link, link_is_up, link_names, ping};
use integration::{require_root, unique_id, FakeHost, Invocation, Netns, Outcome, TempDir};
use serde_json::{json, Value};

const PEER_IP: &str = "10.77.0.254";
const NET: &str = "mvnet";

/// Which host-local answers IPAM: the reference, or ours once it is built.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ipam {
    Reference,
    Ours,
}

impl Ipam {
    fn dir(self) -> PathBuf {
        match self {
            Ipam::Reference => ref_bin_dir(),
            Ipam::Ours => our_bin_dir(),
        }
    }

    /// The reference always; ours too when it has been built.
    fn all() -> Vec<Ipam> {
        let mut v = vec![Ipam::Reference];
        if our_bin_dir().join("host-local").is_file() {
            v.push(Ipam::Ours);
        }
        v
    }
}

/// A fake host with a master link on a wire shared with one peer machine.
struct Lan {
    host: FakeHost,
    peer: Netns,
    master: String,
    data: TempDir,
    ipam: Ipam,
}

impl Lan {
    fn new(tag: &str) -> Self {
        Self::with_ipam(tag, Ipam::Reference)
    }

    fn with_ipam(tag: &str, ipam: Ipam) -> Self {
        require_root();
        let host = FakeHost::new(tag);
        let peer = Netns::new(&format!("p{tag}"));
        let master = unique_ifname("mst");
        let peer_if = unique_ifname("per");
        host.ip_ok(&[
            "link",
            "add",
            &master,
            "type",
            "veth",
            "peer",
            "name",
            &peer_if,
            "netns",
            peer.name(),
        ]);
        host.link_up(&master);
        peer.link_up(&peer_if);
        peer.link_up("lo");
        peer.ip_ok(&["addr", "add", &format!("{PEER_IP}/24"), "dev", &peer_if]);
        Lan {
            host,
            peer,
            master,
            data: TempDir::new(&format!("mv-{tag}")),
            ipam,
        }
    }

    fn ipam_block(&self, range: Value) -> Value {
        json!({"type": "host-local", "dataDir": self.data.path().display().to_string(),
               "ranges": [[range]]})
    }

    /// A config on this LAN's master; `extra` keys are merged in.
    fn conf(&self, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": NET, "type": "macvlan", "master": self.master,
            "ipam": self.ipam_block(json!({"subnet": "10.77.0.0/24", "rangeEnd": "10.77.0.200"})),
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            c[k] = v.clone();
        }
        c
    }

    fn invocation(
        &self,
        which: Binary,
        cmd: &str,
        cid: &str,
        netns: &str,
        conf: &Value,
    ) -> Invocation {
        Invocation::of(which, "macvlan")
            .cni(cmd, &self.host, cid, netns, "eth0", conf)
            .cni_path(&self.ipam.dir().display().to_string())
    }

    fn call_with(&self, which: Binary, cmd: &str, cid: &str, ctr: &Netns, conf: &Value) -> Outcome {
        self.invocation(which, cmd, cid, &ctr.path_str(), conf)
            .run()
    }

    fn call(&self, cmd: &str, cid: &str, ctr: &Netns, conf: &Value) -> Outcome {
        self.call_with(Binary::Ours, cmd, cid, ctr, conf)
    }

    /// ADD a new container with `conf`; returns (netns, id, result).
    fn add(&self, conf: &Value) -> (Netns, String, Value) {
        let ctr = Netns::new("c");
        let cid = unique_id("mv");
        let r = self.call("ADD", &cid, &ctr, conf).expect_ok_json();
        (ctr, cid, r)
    }

    fn del(&self, cid: &str, ctr: &Netns, conf: &Value, prev: &Value) {
        let mut c = conf.clone();
        c["prevResult"] = prev.clone();
        self.call("DEL", cid, ctr, &c).expect_ok_silent();
    }

    /// The addresses host-local holds for the network.
    fn reservations(&self) -> Vec<String> {
        let dir = self.data.join(NET);
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn peer_mac(&self) -> String {
        let names = link_names(&self.peer);
        let name = names.iter().find(|n| *n != "lo").expect("peer link");
        link(&self.peer, name).expect("peer link")["address"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn ip_of(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().expect("an address");
    a.split('/').next().unwrap_or_default().to_string()
}

/// `ip -d -j link show eth0` in the container.
fn details(ctr: &Netns, name: &str) -> Value {
    let out = ctr.ip_ok(&["-d", "-j", "link", "show", name]);
    serde_json::from_str::<Value>(&out).expect("ip -j output")[0].clone()
}

fn only_lo(ns: &Netns) -> bool {
    link_names(ns) == ["lo"]
}

#[test]
fn root_bridge_mode_containers_reach_each_other_and_del_releases() {
    for ipam in Ipam::all() {
        let lan = Lan::with_ipam("br", ipam);
        let conf = lan.conf(json!({}));
        let (c1, id1, r1) = lan.add(&conf);
        let (c2, id2, r2) = lan.add(&conf);
        let (ip1, ip2) = (ip_of(&r1), ip_of(&r2));
        assert_ne!(ip1, ip2, "{ipam:?}");
        assert!(
            ping(&c1, &ip2),
            "{ipam:?}: c1 cannot reach c2 in bridge mode"
        );
        assert!(
            ping(&c2, &ip1),
            "{ipam:?}: c2 cannot reach c1 in bridge mode"
        );
        assert!(ping(&c1, PEER_IP), "{ipam:?}: c1 cannot reach the wire");
        assert_eq!(lan.reservations().len(), 2, "{ipam:?}");
        assert_eq!(
            details(&c1, "eth0")["linkinfo"]["info_data"]["mode"],
            "bridge"
        );
        lan.del(&id1, &c1, &conf, &r1);
        lan.del(&id2, &c2, &conf, &r2);
        assert!(
            only_lo(&c1) && only_lo(&c2),
            "{ipam:?}: links left after DEL"
        );
        assert!(
            lan.reservations().is_empty(),
            "{ipam:?}: addresses kept after DEL"
        );
    }
}

#[test]
fn root_private_mode_isolates_containers_but_not_the_wire() {
    let lan = Lan::new("priv");
    let conf = lan.conf(json!({"mode": "private"}));
    let (c1, _, r1) = lan.add(&conf);
    let (c2, _, r2) = lan.add(&conf);
    assert_eq!(
        details(&c1, "eth0")["linkinfo"]["info_data"]["mode"],
        "private"
    );
    assert!(!ping(&c1, &ip_of(&r2)), "private mode let c1 reach c2");
    assert!(!ping(&c2, &ip_of(&r1)), "private mode let c2 reach c1");
    assert!(ping(&c1, PEER_IP), "private mode cut c1 off the wire");
}

#[test]
fn root_passthru_takes_the_master() {
    let lan = Lan::new("pt");
    let conf = lan.conf(json!({"mode": "passthru"}));
    let (c1, _, r1) = lan.add(&conf);
    let master_mac = link(&lan.host, &lan.master).expect("master")["address"].clone();
    assert_eq!(
        r1["interfaces"][0]["mac"], master_mac,
        "passthru takes the master's MAC"
    );
    assert!(ping(&c1, PEER_IP));
    // The master is taken: no second macvlan of any mode, and the failed
    // ADDs leave nothing behind.
    for mode in ["passthru", "bridge"] {
        let c2 = Netns::new("c");
        let out = lan.call(
            "ADD",
            &unique_id("pt2"),
            &c2,
            &lan.conf(json!({"mode": mode})),
        );
        out.expect_any_error();
        assert!(only_lo(&c2), "failed {mode} ADD left a link");
        assert_eq!(
            lan.reservations().len(),
            1,
            "failed {mode} ADD kept its address"
        );
    }
}

#[test]
fn root_mtu_mac_and_bcqueuelen_are_applied() {
    let lan = Lan::new("opts");
    let conf = lan.conf(json!({"mtu": 1400, "mac": "02:11:22:33:44:55", "bcqueuelen": 100}));
    let (c1, _, r1) = lan.add(&conf);
    let d = details(&c1, "eth0");
    assert_eq!(d["mtu"], 1400);
    assert_eq!(d["address"], "02:11:22:33:44:55");
    assert_eq!(r1["interfaces"][0]["mac"], "02:11:22:33:44:55");
    if let Some(q) = d["linkinfo"]["info_data"].get("bcqueuelen") {
        assert_eq!(*q, 100);
    } else {
        println!("note: this iproute2 does not show bcqueuelen; not checked");
    }

    // runtimeConfig.mac wins over CNI_ARGS MAC, which wins over "mac".
    let rc = lan.conf(json!({"mac": "02:00:00:00:00:01",
                             "runtimeConfig": {"mac": "02:00:00:00:00:03"}}));
    let c2 = Netns::new("c");
    let r2 = lan
        .invocation(Binary::Ours, "ADD", &unique_id("m"), &c2.path_str(), &rc)
        .cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .run()
        .expect_ok_json();
    assert_eq!(r2["interfaces"][0]["mac"], "02:00:00:00:00:03");
    let c3 = Netns::new("c");
    let r3 = lan
        .invocation(
            Binary::Ours,
            "ADD",
            &unique_id("m"),
            &c3.path_str(),
            &lan.conf(json!({"mac": "02:00:00:00:00:01"})),
        )
        .cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .run()
        .expect_ok_json();
    assert_eq!(r3["interfaces"][0]["mac"], "02:00:00:00:00:02");
}

#[test]
fn root_link_in_container_uses_a_master_inside_the_container() {
    let lan = Lan::new("lic");
    let ctr = Netns::new("c");
    // The container already has a link to a wire of its own (e.g. a VM's
    // NIC), with another machine on it.
    let far = Netns::new("far");
    let inner = unique_ifname("lic");
    let outer = unique_ifname("lio");
    ctr.ip_ok(&[
        "link",
        "add",
        &inner,
        "type",
        "veth",
        "peer",
        "name",
        &outer,
        "netns",
        far.name(),
    ]);
    ctr.link_up(&inner);
    far.link_up(&outer);
    let conf = lan.conf(json!({"master": inner, "linkInContainer": true}));
    let cid = unique_id("lic");
    let r = lan.call("ADD", &cid, &ctr, &conf).expect_ok_json();
    assert!(link_is_up(&ctr, "eth0"));
    assert_eq!(link(&ctr, "eth0").expect("eth0")["link"], inner.as_str());
    // Nothing was created on the host.
    assert_eq!(
        link_names(&lan.host).len(),
        2,
        "host links: {:?}",
        link_names(&lan.host)
    );
    far.ip_ok(&["addr", "add", "10.77.0.253/24", "dev", &outer]);
    assert!(
        ping(&ctr, "10.77.0.253"),
        "no traffic through the in-container master"
    );
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r.clone();
    lan.call("CHECK", &cid, &ctr, &with_prev).expect_ok_silent();
    lan.del(&cid, &ctr, &conf, &r);
    assert!(link(&ctr, "eth0").is_none());
    assert!(link(&ctr, &inner).is_some(), "DEL removed the master");
}

#[test]
fn root_dad_refuses_an_address_another_host_holds() {
    let lan = Lan::new("dad");
    // IPAM knows nothing of the peer: it hands out the peer's address.
    let taken = lan.conf(json!({"dad": true,
        "ipam": lan.ipam_block(json!({"subnet": "10.77.0.0/24",
                                      "rangeStart": PEER_IP, "rangeEnd": PEER_IP}))}));
    let ctr = Netns::new("c");
    let t = Instant::now();
    let out = lan.call("ADD", &unique_id("dad"), &ctr, &taken);
    let conflict_ms = t.elapsed().as_secs_f64() * 1000.0;
    let e = out.expect_error(100);
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains(PEER_IP) && msg.contains(&lan.peer_mac()),
        "{msg}"
    );
    assert!(only_lo(&ctr), "the refused ADD left a link");
    assert!(
        lan.reservations().is_empty(),
        "the refused address stays reserved"
    );

    // Also when the holder is another container on the same master, given
    // the address by another host's IPAM (its own data directory).
    let (holder, _, hr) = lan.add(&lan.conf(json!({})));
    let other_host = TempDir::new("mv-dad2");
    let mut clash = lan.conf(json!({"dad": {"probes": 2, "intervalMs": 40}}));
    clash["ipam"]["dataDir"] = json!(other_host.path().display().to_string());
    let c2 = Netns::new("c");
    lan.call("ADD", &unique_id("dad"), &c2, &clash)
        .expect_error(100);
    assert!(only_lo(&c2));
    assert!(ping(&holder, PEER_IP), "the holder lost its address: {hr}");

    // A free address passes, is configured and reachable.
    let free = lan.conf(json!({"dad": true}));
    let c3 = Netns::new("c");
    let t = Instant::now();
    let r = lan
        .call("ADD", &unique_id("dad"), &c3, &free)
        .expect_ok_json();
    let pass_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        ipv4_cidrs(&c3, "eth0"),
        [r["ips"][0]["address"].as_str().unwrap_or_default()]
    );
    assert!(ping(&c3, PEER_IP));
    println!("dad: conflict found in {conflict_ms:.1} ms, free address confirmed in {pass_ms:.1} ms (3 probes, 50 ms apart)");
}

#[test]
fn root_bad_configs_name_the_field() {
    let lan = Lan::new("bad");
    let cases = [
        (json!({"master": "nosuch0"}), "master"),
        (json!({"mode": "bogus"}), "mode"),
        (json!({"mtu": 9000}), "mtu"),
        (json!({"mtu": "big"}), "mtu"),
        (json!({"mac": "not-a-mac"}), "mac"),
        (json!({"dad": {"probes": 99}}), "dad"),
    ];
    let mut failures = Vec::new();
    for (extra, field) in cases {
        let ctr = Netns::new("c");
        let out = lan.call("ADD", &unique_id("bad"), &ctr, &lan.conf(extra.clone()));
        match out.check_error(7) {
            Ok(e) if e["msg"].as_str().unwrap_or_default().contains(field) => {}
            Ok(e) => failures.push(format!("{extra}: msg does not name {field}: {e}")),
            Err(e) => failures.push(format!("{extra}: {e}")),
        }
        assert!(only_lo(&ctr), "{extra}: link left behind");
    }
    // No master and no default route to take one from.
    let mut no_master = lan.conf(json!({}));
    no_master.as_object_mut().map(|o| o.remove("master"));
    let ctr = Netns::new("c");
    let out = lan.call("ADD", &unique_id("bad"), &ctr, &no_master);
    match out.check_error(7) {
        Ok(e) if e["msg"].as_str().unwrap_or_default().contains("master") => {}
        other => failures.push(format!("no master: {other:?}")),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(lan.reservations().is_empty());
}

#[test]
fn root_default_master_is_the_default_route_interface() {
    let lan = Lan::new("dflt");
    lan.host
        .ip_ok(&["addr", "add", "10.77.0.250/24", "dev", &lan.master]);
    lan.host.ip_ok(&["route", "add", "default", "via", PEER_IP]);
    let mut conf = lan.conf(json!({}));
    conf.as_object_mut().map(|o| o.remove("master"));
    let (ctr, _, _) = lan.add(&conf);
    // The parent is in another namespace: `ip` shows its index, not its name.
    let parent = link(&ctr, "eth0").expect("eth0")["link_index"].clone();
    let master = link(&lan.host, &lan.master).expect("master")["ifindex"].clone();
    assert_eq!(
        parent, master,
        "the macvlan is not on the default route's link"
    );
    assert!(ping(&ctr, PEER_IP));
}

#[test]
fn root_del_succeeds_without_netns_link_or_state() {
    let lan = Lan::new("del");
    let conf = lan.conf(json!({}));
    let (ctr, cid, r) = lan.add(&conf);
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r;
    // No CNI_NETNS (containerd after the sandbox is gone): IPAM is released.
    lan.invocation(Binary::Ours, "DEL", &cid, "", &with_prev)
        .unset("CNI_NETNS")
        .run()
        .expect_ok_silent();
    assert!(lan.reservations().is_empty());
    // A netns path that no longer exists, twice, and without prevResult.
    lan.invocation(
        Binary::Ours,
        "DEL",
        &cid,
        "/var/run/netns/mv-gone-xyz",
        &with_prev,
    )
    .run()
    .expect_ok_silent();
    lan.call("DEL", &cid, &ctr, &with_prev).expect_ok_silent();
    assert!(only_lo(&ctr));
    lan.call("DEL", &cid, &ctr, &with_prev).expect_ok_silent();
    lan.call("DEL", &cid, &ctr, &conf).expect_ok_silent();
    // And after the namespace itself is gone.
    let path = ctr.path_str();
    drop(ctr);
    lan.invocation(Binary::Ours, "DEL", &cid, &path, &conf)
        .run()
        .expect_ok_silent();
}

#[test]
fn root_l2_only_without_ipam() {
    let lan = Lan::new("l2");
    let mut conf = lan.conf(json!({}));
    conf["ipam"] = json!({});
    let (ctr, cid, r) = lan.add(&conf);
    assert!(r.get("ips").is_none(), "{r}");
    assert!(link_is_up(&ctr, "eth0"));
    assert!(addrs(&ctr, Some("eth0"))
        .iter()
        .all(|a| a.family == "inet6"));
    lan.del(&cid, &ctr, &conf, &r);
    assert!(only_lo(&ctr));
}

#[test]
fn root_add_fails_cleanly_when_the_name_is_taken() {
    let lan = Lan::new("dup");
    let ctr = Netns::new("c");
    ctr.ip_ok(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    let out = lan.call("ADD", &unique_id("dup"), &ctr, &lan.conf(json!({})));
    let e = out.expect_any_error();
    assert!(
        e["msg"].as_str().unwrap_or_default().contains("eth0"),
        "{e}"
    );
    let mut names = link_names(&ctr);
    names.sort();
    assert_eq!(names, ["eth0", "eth0p", "lo"], "temporary link left behind");
    assert!(lan.reservations().is_empty());
}

#[test]
fn root_result_shape_matches_the_reference() {
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let lan = Lan::new("shape");
        let mut conf = lan.conf(json!({}));
        conf["cniVersion"] = json!(version);
        let c1 = Netns::new("c");
        let c2 = Netns::new("c");
        let (id1, id2) = (unique_id("s"), unique_id("s"));
        let ours = lan
            .call_with(Binary::Ours, "ADD", &id1, &c1, &conf)
            .expect_ok_json();
        let theirs = lan
            .call_with(Binary::Reference, "ADD", &id2, &c2, &conf)
            .expect_ok_json();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.retain(|k| k != "dns"); // the reference prints an empty dns block
            k.sort();
            k
        };
        assert_eq!(keys(&ours), keys(&theirs), "{version}: {ours} vs {theirs}");
        assert_eq!(
            keys(&ours["interfaces"][0]),
            keys(&theirs["interfaces"][0]),
            "{version}"
        );
        assert_eq!(keys(&ours["ips"][0]), keys(&theirs["ips"][0]), "{version}");
        assert_eq!(ours["cniVersion"], version);
        assert_eq!(ours["interfaces"][0]["name"], "eth0");
        assert_eq!(ours["interfaces"][0]["sandbox"], c1.path_str().as_str());
        assert_eq!(ours["ips"][0]["interface"], 0);
        assert_eq!(ours["ips"][0]["gateway"], theirs["ips"][0]["gateway"]);
        assert_eq!(ours["interfaces"].as_array().map(Vec::len), Some(1));
        if version != "0.3.1" {
            // The reference's CHECK accepts what our ADD did, and ours its.
            let check = |which, cid: &str, ctr: &Netns, prev: &Value| {
                let mut c = conf.clone();
                c["prevResult"] = prev.clone();
                lan.call_with(which, "CHECK", cid, ctr, &c)
                    .expect_ok_silent();
            };
            check(Binary::Reference, &id1, &c1, &ours);
            check(Binary::Ours, &id2, &c2, &theirs);
        }
    }
}

#[test]
fn root_check_passes_after_add_and_fails_when_things_change() {
    let lan = Lan::new("chk");
    let conf = lan.conf(json!({"ipam": lan.ipam_block(json!({
        "subnet": "10.77.0.0/24", "rangeEnd": "10.77.0.200"}))}));
    let mut conf = conf;
    conf["ipam"]["routes"] = json!([{"dst": "10.99.0.0/16"}]);
    let (ctr, cid, r) = lan.add(&conf);
    assert!(
        integration::state::route_to(&ctr, 4, "10.99.0.0/16").is_some(),
        "IPAM route not installed"
    );
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r.clone();
    lan.call("CHECK", &cid, &ctr, &with_prev).expect_ok_silent();
    // A different mode in the config.
    let mut other_mode = with_prev.clone();
    other_mode["mode"] = json!("private");
    lan.call("CHECK", &cid, &ctr, &other_mode)
        .expect_any_error();
    // The address removed.
    ctr.ip_ok(&[
        "addr",
        "del",
        r["ips"][0]["address"].as_str().unwrap_or_default(),
        "dev",
        "eth0",
    ]);
    lan.call("CHECK", &cid, &ctr, &with_prev).expect_any_error();
    // The link gone.
    ctr.ip_ok(&["link", "del", "eth0"]);
    lan.call("CHECK", &cid, &ctr, &with_prev).expect_any_error();
}

#[test]
fn root_status_reports_a_missing_master_and_gc_forwards_to_ipam() {
    let lan = Lan::with_ipam("st", *Ipam::all().last().unwrap_or(&Ipam::Reference));
    let mut conf = lan.conf(json!({}));
    conf["cniVersion"] = json!("1.1.0");
    let status = |c: &Value| {
        Invocation::ours("macvlan")
            .command("STATUS")
            .cni_path(&lan.ipam.dir().display().to_string())
            .stdin_json(c)
            .in_host(&lan.host)
            .run()
    };
    status(&conf).expect_ok_silent();
    let mut missing = conf.clone();
    missing["master"] = json!("nosuch0");
    let e = status(&missing).expect_error(50);
    assert!(
        e["msg"].as_str().unwrap_or_default().contains("nosuch0"),
        "{e}"
    );

    if lan.ipam != Ipam::Ours {
        println!("skipped GC: the reference host-local has no GC; build ours");
        return;
    }
    let (_c1, id1, _) = lan.add(&conf);
    let (_c2, _id2, _) = lan.add(&conf);
    assert_eq!(lan.reservations().len(), 2);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": id1, "ifname": "eth0"}]);
    Invocation::ours("macvlan")
        .command("GC")
        .cni_path(&lan.ipam.dir().display().to_string())
        .stdin_json(&gc)
        .in_host(&lan.host)
        .run()
        .expect_ok_silent();
    assert_eq!(
        lan.reservations().len(),
        1,
        "GC did not release the stale address"
    );
}

#[test]
fn root_vlan_parent_is_created_on_demand_and_removed_with_its_last_user() {
    let lan = Lan::new("vlan");
    let vlan = format!("{}.20", lan.master);
    if vlan.len() > 15 {
        // unique_ifname leaves room, but be explicit if that ever changes.
        println!("skipped: {vlan} is longer than an interface name may be");
        return;
    }
    let conf = lan.conf(json!({"master": vlan}));
    let c1 = Netns::new("c");
    let id1 = unique_id("vl");
    let out = lan.call("ADD", &id1, &c1, &conf);
    if !out.success() {
        let msg = out.error_msg();
        if msg.contains("802.1Q") {
            println!("SKIPPED: this kernel has no 802.1Q VLAN support; the plugin said: {msg}");
            assert!(only_lo(&c1), "failed VLAN ADD left a link");
            assert!(link(&lan.host, &vlan).is_none());
            assert!(lan.reservations().is_empty());
            return;
        }
        panic!("VLAN ADD failed:\n{}", out.report());
    }
    let r1 = out.json();
    let v = details(&lan.host, &vlan);
    assert_eq!(v["linkinfo"]["info_kind"], "vlan");
    assert_eq!(v["linkinfo"]["info_data"]["id"], 20);
    let (c2, id2, r2) = lan.add(&conf);
    lan.del(&id1, &c1, &conf, &r1);
    assert!(
        link(&lan.host, &vlan).is_some(),
        "VLAN removed while c2 still uses it"
    );
    lan.del(&id2, &c2, &conf, &r2);
    assert!(
        link(&lan.host, &vlan).is_none(),
        "VLAN kept after its last user left"
    );
}
