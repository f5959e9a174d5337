//! vxlan-overlay through the real binary: three fake hosts joined by an
//! underlay (`integration::underlay`: a bridge in a "switch" namespace with
//! a veth to each host, 192.0.2.<n>/24 on the host ends), containers on each host, our
//! host-local with a private data directory per test. Every namespace and
//! link is created here and removed on drop; the root namespace is never
//! touched. All tests need root.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use integration::state::{addrs, link, ping};
use integration::underlay::{host_ip, Underlay};
use integration::{unique_id, Invocation, Netns, Outcome, TempDir};
use serde_json::{json, Value};

const PLUGIN: &str = "vxlan-overlay";
/// The overlay subnet every test uses; isolation between tests comes from
/// the namespaces, not from the addresses.
const SUBNET: &str = "10.77.0.0/24";

/// One overlay network as configured on every host; host `i` allocates
/// from its own slice of the subnet.
struct Net {
    name: String,
    vni: u32,
    peers: Vec<String>,
    data: TempDir,
    extra: Value,
    /// Added to every host's range start: two networks on the same subnet
    /// then never hand out the same address.
    offset: usize,
}

impl Net {
    fn new(tag: &str, vni: u32, peers: Vec<String>) -> Self {
        Net {
            name: unique_id(tag),
            vni,
            peers,
            data: TempDir::new(tag),
            extra: json!({}),
            offset: 0,
        }
    }

    fn conf(&self, host: usize) -> Value {
        let lo = 10 + host * 20 + self.offset;
        let mut c = json!({
            "cniVersion": "1.1.0",
            "name": self.name,
            "type": PLUGIN,
            "vni": self.vni,
            "peers": self.peers,
            "subnet": SUBNET,
            "ipam": {
                "type": "host-local",
                "dataDir": self.data.join(format!("host{host}")).display().to_string(),
                "ranges": [[{"subnet": SUBNET,
                             "rangeStart": format!("10.77.0.{lo}"),
                             "rangeEnd": format!("10.77.0.{}", lo + 19)}]]
            }
        });
        for (k, v) in self.extra.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        c
    }

    fn bridge(&self) -> String {
        format!("vxbr{}", self.vni)
    }

    fn vxlan(&self) -> String {
        format!("vxlan{}", self.vni)
    }

    /// Leases host-local still holds for this network on host `i`.
    fn leases(&self, host: usize) -> Vec<String> {
        let dir: PathBuf = self.data.join(format!("host{host}")).join(&self.name);
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect()
    }
}

/// A container attached (or to be attached) to a network on a host.
struct Ctr {
    ns: Netns,
    id: String,
    host: usize,
    result: Value,
}

impl Ctr {
    fn ip(&self) -> String {
        let a = self.result["ips"][0]["address"]
            .as_str()
            .unwrap_or_default();
        a.split('/').next().unwrap_or_default().to_string()
    }
}

fn call(u: &Underlay, cmd: &str, host: usize, id: &str, netns: &str, conf: &Value) -> Outcome {
    Invocation::ours(PLUGIN)
        .cni(cmd, &u.hosts[host], id, netns, "eth0", conf)
        .run()
}

fn add(u: &Underlay, net: &Net, host: usize) -> Ctr {
    let ns = Netns::new(&format!("c{host}"));
    let id = unique_id("vx");
    let result = call(u, "ADD", host, &id, &ns.path_str(), &net.conf(host)).expect_ok_json();
    Ctr {
        ns,
        id,
        host,
        result,
    }
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

fn del(u: &Underlay, net: &Net, c: &Ctr) {
    let conf = with_prev(&net.conf(c.host), &c.result);
    call(u, "DEL", c.host, &c.id, &c.ns.path_str(), &conf).expect_ok_silent();
}

fn gc(u: &Underlay, net: &Net, host: usize, valid: &[&Ctr]) -> Outcome {
    let mut conf = net.conf(host);
    let list: Vec<Value> = valid
        .iter()
        .map(|c| json!({"containerID": c.id, "ifname": "eth0"}))
        .collect();
    conf["cni.dev/valid-attachments"] = json!(list);
    Invocation::ours(PLUGIN)
        .command("GC")
        .cni_path(&integration::paths::default_cni_path())
        .stdin_json(&conf)
        .in_host(&u.hosts[host])
        .run()
}

/// The remotes of the VXLAN device's flooding (all-zero MAC) entries.
fn flood_remotes(host: &Netns, dev: &str) -> BTreeSet<String> {
    let out = host.exec_ok(&["bridge", "-j", "fdb", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Array(vec![]));
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["mac"] == "00:00:00:00:00:00")
        .filter_map(|e| e["dst"].as_str().map(String::from))
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `ip -d link` details of the VXLAN device.
fn vxlan_details(host: &Netns, dev: &str) -> Value {
    let out = host.ip_ok(&["-d", "-j", "link", "show", dev]);
    let v: Value = serde_json::from_str(&out).expect("ip -j output");
    v[0].clone()
}

fn mtu(ns: &Netns, dev: &str) -> u64 {
    link(ns, dev)
        .and_then(|l| l["mtu"].as_u64())
        .unwrap_or_else(|| panic!("no link {dev} in {}", ns.name()))
}

fn assert_ping(from: &Ctr, to: &Ctr) {
    // The first packet may wait for ARP across the tunnel: allow a retry.
    let ok = ping(&from.ns, &to.ip()) || ping(&from.ns, &to.ip());
    assert!(
        ok,
        "container on host {} cannot ping {} on host {}",
        from.host,
        to.ip(),
        to.host
    );
}

#[test]
fn root_containers_on_three_hosts_reach_each_other_at_the_overlay_mtu() {
    let u = Underlay::new(3, "mesh");
    let net = Net::new("mesh", 4101, u.all_ips());
    let ctrs: Vec<Ctr> = (0..3).map(|h| add(&u, &net, h)).collect();
    let first_dev = vxlan_details(&u.hosts[0], &net.vxlan())["ifindex"].clone();
    let second = add(&u, &net, 0);
    // A device that matches the config is reused, not rebuilt.
    assert_eq!(
        vxlan_details(&u.hosts[0], &net.vxlan())["ifindex"],
        first_dev
    );

    for (i, h) in u.hosts.iter().enumerate() {
        let others: Vec<String> = (0..3).filter(|j| *j != i).map(host_ip).collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        assert_eq!(flood_remotes(h, &net.vxlan()), set(&others), "host {i}");
        let d = vxlan_details(h, &net.vxlan());
        let info = &d["linkinfo"]["info_data"];
        assert_eq!(info["id"], 4101);
        assert_eq!(info["port"], 4789);
        assert_eq!(info["local"], host_ip(i));
        assert_eq!(info["learning"], true);
        assert_eq!(d["master"], net.bridge());
    }
    // Addresses come from each host's own slice of the one subnet.
    assert!(ctrs[0].ip().starts_with("10.77.0.1") || ctrs[0].ip().starts_with("10.77.0.2"));
    assert_eq!(addrs(&ctrs[1].ns, Some("eth0"))[0].prefixlen, 24);

    for a in ctrs.iter().chain([&second]) {
        for b in &ctrs {
            if a.ns.name() != b.ns.name() {
                assert_ping(a, b);
            }
        }
    }

    // Underlay MTU 1500 minus 50 for VXLAN over IPv4, on every link of the
    // path, and reported in the 1.1.0 result.
    for c in &ctrs {
        assert_eq!(mtu(&c.ns, "eth0"), 1450);
        assert_eq!(c.result["interfaces"][2]["mtu"], 1450);
    }
    assert_eq!(mtu(&u.hosts[0], &net.vxlan()), 1450);
    assert_eq!(mtu(&u.hosts[0], &net.bridge()), 1450);
    // The largest ICMP payload that fits (1450 - 20 IP - 8 ICMP), with DF.
    let target = ctrs[2].ip();
    ctrs[0]
        .ns
        .exec_ok(&["ping", "-c1", "-W2", "-M", "do", "-s", "1422", &target]);
    let too_big = ctrs[0]
        .ns
        .exec(&["ping", "-c1", "-W1", "-M", "do", "-s", "1423", &target]);
    assert!(!too_big.status.success(), "1423 bytes should not fit");

    // CHECK passes on a healthy attachment.
    let c = &ctrs[1];
    let conf = with_prev(&net.conf(c.host), &c.result);
    call(&u, "CHECK", c.host, &c.id, &c.ns.path_str(), &conf).expect_ok_silent();
}

#[test]
fn root_two_vnis_on_the_same_hosts_cannot_reach_each_other() {
    let u = Underlay::new(2, "iso");
    let a = Net::new("isoa", 4201, u.all_ips());
    let b = Net::new("isob", 4202, u.all_ips());
    let a0 = add(&u, &a, 0);
    let a1 = add(&u, &a, 1);
    // Network b uses the same subnet: only the VNI keeps them apart.
    let mut b = b;
    b.offset = 100;
    let b1 = add(&u, &b, 1);
    let b0 = add(&u, &b, 0);
    assert_ping(&a0, &a1);
    assert_ping(&b0, &b1);
    for (from, to) in [(&a0, &b1), (&b0, &a1), (&a1, &b0)] {
        assert!(
            !ping(&from.ns, &to.ip()),
            "{} reached {} across VNIs",
            from.ip(),
            to.ip()
        );
    }
    assert!(link(&u.hosts[0], "vxlan4201").is_some() && link(&u.hosts[0], "vxlan4202").is_some());
}

#[test]
fn root_changing_peers_and_adding_again_heals_the_flooding_entries() {
    let u = Underlay::new(3, "heal");
    let stale = "192.0.2.99".to_string();
    let mut net = Net::new("heal", 4301, vec![host_ip(0), host_ip(1), stale.clone()]);
    let c0 = add(&u, &net, 0);
    let c2 = add(&u, &net, 2);
    assert_eq!(
        flood_remotes(&u.hosts[0], &net.vxlan()),
        set(&[&host_ip(1), &stale])
    );
    // Host 0 floods its ARP requests to host 1 and a gone host only.
    assert!(
        !ping(&c0.ns, &c2.ip()),
        "reached host 2 without a flooding entry"
    );

    // CHECK notices the drift from a corrected config.
    net.peers = u.all_ips();
    let conf = with_prev(&net.conf(0), &c0.result);
    call(&u, "CHECK", 0, &c0.id, &c0.ns.path_str(), &conf).expect_error(5);

    // Any ADD on the host reconciles its tunnel with the new list.
    let _c0b = add(&u, &net, 0);
    let _c2b = add(&u, &net, 2);
    assert_eq!(
        flood_remotes(&u.hosts[0], &net.vxlan()),
        set(&[&host_ip(1), &host_ip(2)])
    );
    assert_ping(&c0, &c2);
    let conf = with_prev(&net.conf(0), &c0.result);
    call(&u, "CHECK", 0, &c0.id, &c0.ns.path_str(), &conf).expect_ok_silent();
}

#[test]
fn root_del_of_every_container_then_gc_leaves_nothing_behind() {
    let u = Underlay::new(3, "gone");
    let net = Net::new("gone", 4401, u.all_ips());
    let ctrs: Vec<Ctr> = (0..3)
        .flat_map(|h| [add(&u, &net, h), add(&u, &net, h)])
        .collect();

    // One container left on host 0: its devices stay.
    del(&u, &net, &ctrs[0]);
    assert!(link(&u.hosts[0], &net.vxlan()).is_some());
    assert!(link(&u.hosts[0], &net.bridge()).is_some());
    assert_ping(&ctrs[1], &ctrs[3]);

    // DEL without a namespace (the runtime lost it) still releases the lease.
    let c = &ctrs[1];
    let conf = with_prev(&net.conf(0), &c.result);
    Invocation::ours(PLUGIN)
        .cni("DEL", &u.hosts[0], &c.id, "", "eth0", &conf)
        .unset("CNI_NETNS")
        .run()
        .expect_ok_silent();
    // Its veth survives (the namespace still holds it) until GC.
    assert!(net.leases(0).is_empty(), "{:?}", net.leases(0));

    for c in &ctrs[2..] {
        del(&u, &net, c);
    }
    // Hosts 1 and 2 lost their last container: their last DEL took the
    // devices with it, before any GC.
    for h in &u.hosts[1..] {
        assert!(link(h, &net.vxlan()).is_none() && link(h, &net.bridge()).is_none());
    }
    for (i, h) in u.hosts.iter().enumerate() {
        gc(&u, &net, i, &[]).expect_ok_silent();
        assert!(link(h, &net.vxlan()).is_none(), "vxlan left on host {i}");
        assert!(link(h, &net.bridge()).is_none(), "bridge left on host {i}");
        let fdb = h.exec_ok(&["bridge", "-j", "fdb", "show"]);
        assert!(
            !fdb.contains("\"dst\""),
            "host {i}: tunnel FDB entries left: {fdb}"
        );
        let veths: Vec<String> = integration::state::link_names(h)
            .into_iter()
            .filter(|n| n.starts_with("veth"))
            .collect();
        assert!(veths.is_empty(), "host {i}: {veths:?}");
        assert!(net.leases(i).is_empty(), "host {i}: {:?}", net.leases(i));
    }
    // DEL again: nothing to do, still success.
    del(&u, &net, &ctrs[4]);
}

#[test]
fn root_gc_removes_the_network_when_no_valid_attachment_is_left() {
    let u = Underlay::new(1, "gc");
    let net = Net::new("gc", 4501, vec![]);
    let keep = add(&u, &net, 0);
    let lost = add(&u, &net, 0);
    // GC keeping one attachment: the other's port and lease go, the
    // network stays.
    gc(&u, &net, 0, &[&keep]).expect_ok_silent();
    assert_eq!(net.leases(0).len(), 1);
    assert!(link(&u.hosts[0], &net.bridge()).is_some());
    let ports = u.hosts[0].ip_ok(&["link", "show", "master", &net.bridge()]);
    assert_eq!(ports.matches("veth").count(), 1, "{ports}");
    drop(lost);
    // Nothing valid: everything goes.
    gc(&u, &net, 0, &[]).expect_ok_silent();
    assert!(link(&u.hosts[0], &net.vxlan()).is_none());
    assert!(link(&u.hosts[0], &net.bridge()).is_none());
    assert!(net.leases(0).is_empty());
}

#[test]
fn root_a_vxlan_device_that_differs_from_the_config_is_replaced() {
    let u = Underlay::new(2, "repl");
    let mut net = Net::new("repl", 4601, u.all_ips());
    let _a = add(&u, &net, 0);
    let before = vxlan_details(&u.hosts[0], &net.vxlan());
    net.extra = json!({"port": 8472});
    let b = add(&u, &net, 0);
    let after = vxlan_details(&u.hosts[0], &net.vxlan());
    assert_eq!(after["linkinfo"]["info_data"]["port"], 8472);
    assert_ne!(before["ifindex"], after["ifindex"], "device was reused");
    assert_eq!(after["master"], net.bridge());
    assert_eq!(
        flood_remotes(&u.hosts[0], &net.vxlan()),
        set(&[&host_ip(1)])
    );
    let c = add(&u, &net, 1);
    assert_ping(&b, &c);
}

#[test]
fn root_concurrent_adds_on_a_fresh_host_converge_on_one_bridge_and_tunnel() {
    let u = Underlay::new(1, "race");
    let net = Net::new("race", 4701, vec![host_ip(0), "192.0.2.50".into()]);
    let ctrs: Vec<(Netns, String)> = (0..8)
        .map(|_| (Netns::new("cr"), unique_id("race")))
        .collect();
    let outs: Vec<Outcome> = std::thread::scope(|s| {
        let hs: Vec<_> = ctrs
            .iter()
            .map(|(ns, id)| {
                let conf = net.conf(0);
                let host = &u.hosts[0];
                s.spawn(move || {
                    Invocation::ours(PLUGIN)
                        .cni("ADD", host, id, &ns.path_str(), "eth0", &conf)
                        .run()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    for o in &outs {
        o.expect_ok();
    }
    let names = integration::state::link_names(&u.hosts[0]);
    assert_eq!(names.iter().filter(|n| n.starts_with("vxbr")).count(), 1);
    assert_eq!(names.iter().filter(|n| n.starts_with("vxlan")).count(), 1);
    let ports = u.hosts[0].ip_ok(&["link", "show", "master", &net.bridge()]);
    assert_eq!(ports.matches("veth").count(), 8, "{ports}");
    assert_eq!(
        flood_remotes(&u.hosts[0], &net.vxlan()),
        set(&["192.0.2.50"])
    );
}

/// ETHTOOL_GTXCSUM, read in the namespace the device lives in.
fn tx_csum_on(host: &Netns, dev: &str) -> bool {
    let dev = dev.to_string();
    host.run(move || {
        #[repr(C)]
        struct EthtoolValue {
            cmd: u32,
            data: u32,
        }
        let mut v = EthtoolValue { cmd: 0x16, data: 0 };
        // SAFETY: zeroed ifreq is valid; the ioctl writes only into `v`.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(dev.as_bytes()) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
        // SAFETY: plain socket + ioctl on an fd we close right after.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            assert!(fd >= 0);
            let rc = libc::ioctl(fd, libc::SIOCETHTOOL as _, &mut ifr);
            libc::close(fd);
            assert_eq!(rc, 0, "ETHTOOL_GTXCSUM on {dev}");
        }
        v.data != 0
    })
}

#[test]
fn root_checksum_offload_switch_turns_tx_checksumming_off() {
    let u = Underlay::new(2, "csum");
    let plain = Net::new("csuma", 4801, u.all_ips());
    let _p = add(&u, &plain, 0);
    assert!(
        tx_csum_on(&u.hosts[0], &plain.vxlan()),
        "kernel default is on"
    );

    let mut off = Net::new("csumb", 4802, u.all_ips());
    off.extra = json!({"disableTxChecksumOffload": true});
    let a = add(&u, &off, 0);
    let b = add(&u, &off, 1);
    assert!(!tx_csum_on(&u.hosts[0], &off.vxlan()));
    assert!(!tx_csum_on(&u.hosts[1], &off.vxlan()));
    if let Ok(out) = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            u.hosts[0].name(),
            "ethtool",
            "-k",
            &off.vxlan(),
        ])
        .output()
    {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("tx-checksumming: off"), "{text}");
        }
    }
    // TCP still works without offload.
    integration::state::tcp_exchange(&b.ns, &a.ns, &b.ip(), 5001).expect("tcp over the overlay");
    let conf = with_prev(&off.conf(0), &a.result);
    call(&u, "CHECK", 0, &a.id, &a.ns.path_str(), &conf).expect_ok_silent();
}

#[test]
fn root_status_is_50_without_the_underlay_and_ranges_outside_the_subnet_are_refused() {
    let u = Underlay::new(1, "stat");
    let mut net = Net::new("stat", 4901, vec![]);
    let status = |conf: &Value| {
        Invocation::ours(PLUGIN)
            .command("STATUS")
            .cni_path(&integration::paths::default_cni_path())
            .stdin_json(conf)
            .in_host(&u.hosts[0])
            .run()
    };
    status(&net.conf(0)).expect_ok_silent();
    net.extra = json!({"underlayDevice": "nosuch0"});
    status(&net.conf(0)).expect_error(50);
    net.extra = json!({"localIP": "192.0.2.77"});
    status(&net.conf(0)).expect_error(50);
    net.extra = json!({"underlayDevice": "eth0", "localIP": "192.0.2.1"});
    status(&net.conf(0)).expect_ok_silent();

    // A host range outside the overlay subnet: code 7, nothing created.
    let mut conf = net.conf(0);
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.78.0.0/24"}]]);
    let ns = Netns::new("cbad");
    call(&u, "ADD", 0, &unique_id("bad"), &ns.path_str(), &conf).expect_error(7);
    conf["ipam"]["ranges"] = json!([[{"subnet": SUBNET, "rangeStart": "10.77.1.1"}]]);
    call(&u, "ADD", 0, &unique_id("bad"), &ns.path_str(), &conf).expect_error(7);
    assert!(link(&u.hosts[0], &net.bridge()).is_none());
    assert!(link(&ns, "eth0").is_none());
    assert!(net.leases(0).is_empty());
}
