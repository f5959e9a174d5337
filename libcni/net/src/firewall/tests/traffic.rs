//! Traffic through the rules, as root: a fake host (a fresh namespace) with
//! two bridge networks, a container namespace on each, and an "outside"
//! namespace that has no route back to the container subnets, so a ping
//! to it only comes back when masqueraded.

use std::process::Command;

use super::super::*;
use super::root::{in_fresh_netns, net, rules_of, ruleset, run};

/// Named namespaces for the containers; deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("fwt-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn sh(script: &str) {
    run("sh", &["-ec", script]);
}

fn ping(ns: &Netns, addr: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &ns.0, "ping", "-c1", "-W1", "-q", addr])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A ping expected to work gets a few tries (first-packet ARP races).
fn ping_ok(ns: &Netns, addr: &str) -> bool {
    (0..3).any(|_| ping(ns, addr))
}

/// Container `ns` on a new bridge `br` (gateway .1, container .2 of a /24).
fn container(ns: &Netns, br: &str, veth: &str, prefix: &str) {
    sh(&format!(
        "ip link add {br} type bridge
         ip link set {br} up
         ip addr add {prefix}.1/24 dev {br}
         ip link add {veth} type veth peer name eth0 netns {ns}
         ip link set {veth} master {br} up
         ip -n {ns} link set lo up
         ip -n {ns} addr add {prefix}.2/24 dev eth0
         ip -n {ns} link set eth0 address 02:00:00:00:00:02
         ip -n {ns} link set eth0 up
         ip -n {ns} route add default via {prefix}.1",
        ns = ns.0
    ));
}

#[test]
fn root_traffic_isolation_masquerade_and_spoofcheck() {
    in_fresh_netns(|| {
        let (a, b, out) = (Netns::new("a"), Netns::new("b"), Netns::new("out"));
        container(&a, "br-a", "veth-a", "10.1.0");
        container(&b, "br-b", "veth-b", "10.2.0");
        // The outside knows only the host's address on its link.
        sh(&format!(
            "ip link add vout type veth peer name eth0 netns {o}
             ip addr add 192.168.100.1/24 dev vout
             ip link set vout up
             ip -n {o} addr add 192.168.100.2/24 dev eth0
             ip -n {o} link set eth0 up
             sysctl -qw net.ipv4.ip_forward=1",
            o = out.0
        ));
        let mut fa = net("a", "br-a", &["10.1.0.0/24"]);
        let mut fb = net("b", "br-b", &["10.2.0.0/24"]);

        // No rules: forwarding works, but the outside cannot answer.
        assert!(ping_ok(&a, "10.1.0.1"));
        assert!(ping_ok(&a, "10.2.0.2"));
        assert!(
            !ping(&a, "192.168.100.2"),
            "reached outside without masquerade?"
        );

        ensure_network(&fa).unwrap();
        ensure_network(&fb).unwrap();
        assert!(ping_ok(&a, "192.168.100.2"), "masquerade");
        assert!(ping_ok(&b, "192.168.100.2"), "masquerade");
        assert!(ping_ok(&a, "10.1.0.1"), "own gateway");
        assert!(!ping(&a, "10.2.0.2"), "isolation a -> b");
        assert!(!ping(&b, "10.1.0.2"), "isolation b -> a");
        let masq_hits = rules_of(&ruleset(), "inet", "postrouting")
            .iter()
            .map(|r| r.to_string())
            .filter(|t| !t.contains(r#""packets":0,"#))
            .count();
        assert!(masq_hits >= 1, "masquerade counters stayed at zero");

        // Isolation off on both networks: they reach each other.
        fa.isolate = false;
        fb.isolate = false;
        ensure_network(&fa).unwrap();
        ensure_network(&fb).unwrap();
        assert!(ping_ok(&a, "10.2.0.2"), "no isolation a -> b");
        assert!(ping_ok(&b, "10.1.0.2"), "no isolation b -> a");

        // Spoof check: only the registered MAC gets through the port.
        add_spoofcheck("a", "ctr-a", "eth0", "veth-a", &[2, 0, 0, 0, 0, 2]).unwrap();
        assert!(ping_ok(&a, "10.1.0.1"));
        sh(&format!(
            "ip -n {} link set eth0 address 02:00:00:00:00:99",
            a.0
        ));
        assert!(!ping(&a, "10.1.0.1"), "spoofed MAC got through");
        del_container("a", "ctr-a", "eth0").unwrap();
        assert!(ping_ok(&a, "10.1.0.1"), "check removed");

        remove_network("a").unwrap();
        remove_network("b").unwrap();
        assert!(!ping(&a, "192.168.100.2"), "masquerade still there");
    });
}
