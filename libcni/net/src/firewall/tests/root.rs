//! Root tests against the kernel, each in a fresh network namespace made by
//! unsharing on a new thread, so the machine's own ruleset is never touched.
//! `nft` (the CLI) is run from that thread, whose children inherit its
//! namespace, to see our rules the way an administrator would.

use std::process::Command;

use serde_json::Value;

use super::super::*;

pub(super) use crate::testing::in_fresh_netns;

/// Run a command in the calling thread's namespace; panics on failure.
pub(super) fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft -j list ruleset` of the current namespace.
pub(super) fn ruleset() -> Vec<Value> {
    let out = run("nft", &["-j", "list", "ruleset"]);
    let v: Value = serde_json::from_str(&out).expect("nft json");
    v["nftables"].as_array().cloned().unwrap_or_default()
}

/// The rules of one chain of one of our tables, as nft JSON objects.
pub(super) fn rules_of(rs: &[Value], family: &str, chain: &str) -> Vec<Value> {
    rs.iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["family"] == family && r["table"] == TABLE && r["chain"] == chain)
        .cloned()
        .collect()
}

pub(super) fn our_tables(rs: &[Value]) -> Vec<String> {
    rs.iter()
        .filter_map(|o| o.get("table"))
        .filter(|t| t["name"] == TABLE)
        .map(|t| t["family"].as_str().unwrap_or("").to_string())
        .collect()
}

pub(super) fn net(name: &str, bridge: &str, subnets: &[&str]) -> NetworkFirewall {
    NetworkFirewall {
        network: name.into(),
        bridge: bridge.into(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        masquerade: true,
        isolate: true,
    }
}

/// One rule as compact JSON text, for "contains" checks.
fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn set_elements(rs: &[Value], set: &str) -> usize {
    rs.iter()
        .filter_map(|o| o.get("set"))
        .filter(|s| s["table"] == TABLE && s["name"] == set)
        .map(|s| s["elem"].as_array().map_or(0, |a| a.len()))
        .sum()
}

#[test]
fn root_ensure_network_is_idempotent_and_docker_like() {
    in_fresh_netns(|| {
        let fw = net("blue", "br-blue", &["10.10.0.0/16", "fd00:10::/64"]);
        assert!(!network_rules_present("blue").unwrap());
        assert!(check_network(&fw).is_err(), "nothing yet");
        ensure_network(&fw).unwrap();
        ensure_network(&fw).unwrap();
        let rs = ruleset();
        assert_eq!(
            our_tables(&rs),
            ["inet"],
            "no bridge table without spoof check"
        );

        let post = rules_of(&rs, "inet", "postrouting");
        assert_eq!(post.len(), 2, "{post:#?}");
        let v4 = post
            .iter()
            .map(text)
            .find(|t| t.contains("10.10.0.0"))
            .unwrap();
        for want in [
            r#""protocol":"ip","field":"saddr""#,
            r#""prefix":{"addr":"10.10.0.0","len":16}"#,
            r#""op":"!=","left":{"meta":{"key":"oifname"}},"right":"br-blue""#,
            r#""masquerade":null"#,
            "cni-rs net=",
        ] {
            assert!(v4.contains(want), "{want} not in {v4}");
        }
        let v6 = post
            .iter()
            .map(text)
            .find(|t| t.contains("fd00:10::"))
            .unwrap();
        assert!(v6.contains(r#""protocol":"ip6","field":"saddr""#), "{v6}");

        let fwd = rules_of(&rs, "inet", "forward");
        assert_eq!(fwd.len(), 1);
        let t = text(&fwd[0]);
        assert!(
            t.contains(r#""left":{"meta":{"key":"iifname"}},"right":"br-blue""#),
            "{t}"
        );
        assert!(t.contains(r#""jump":{"target":"isolation"}"#), "{t}");
        let iso = rules_of(&rs, "inet", "isolation");
        assert_eq!(iso.len(), 1);
        assert!(text(&iso[0]).contains(r#""drop":null"#));

        check_network(&fw).unwrap();
        assert!(network_rules_present("blue").unwrap());
        assert!(!network_rules_present("blu").unwrap());
    });
}

#[test]
fn root_ensure_network_follows_config_changes() {
    in_fresh_netns(|| {
        let old = net("blue", "br-blue", &["10.10.0.0/16"]);
        ensure_network(&old).unwrap();
        let mut new = net("blue", "br-blue", &["10.20.0.0/16"]);
        new.isolate = false;
        ensure_network(&new).unwrap();
        let rs = ruleset();
        let post = rules_of(&rs, "inet", "postrouting");
        assert_eq!(post.len(), 1);
        assert!(text(&post[0]).contains("10.20.0.0"));
        assert!(rules_of(&rs, "inet", "forward").is_empty());
        assert!(rules_of(&rs, "inet", "isolation").is_empty());
        check_network(&new).unwrap();
        let e = check_network(&old).unwrap_err();
        assert!(e.msg.contains("missing rule"), "{}", e.msg);
        // Nothing wanted any more: nothing of ours stays.
        new.masquerade = false;
        ensure_network(&new).unwrap();
        assert!(our_tables(&ruleset()).is_empty());
    });
}

#[test]
fn root_parallel_ensure_network_makes_one_copy() {
    in_fresh_netns(|| {
        let me = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let me = me.clone();
                std::thread::spawn(move || {
                    // Threads start in the namespace of the thread that
                    // spawned them.
                    assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), me);
                    ensure_network(&net("blue", "br-blue", &["10.10.0.0/16", "fd00::/64"]))?;
                    // And other networks coming and going at the same time.
                    let other = format!("n{i}");
                    ensure_network(&net(&other, &format!("br{i}"), &["10.99.0.0/24"]))?;
                    remove_network(&other)
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let rs = ruleset();
        assert_eq!(rules_of(&rs, "inet", "postrouting").len(), 2);
        assert_eq!(rules_of(&rs, "inet", "forward").len(), 1);
        assert_eq!(rules_of(&rs, "inet", "isolation").len(), 1);
        remove_network("blue").unwrap();
        assert!(our_tables(&ruleset()).is_empty());
    });
}

#[test]
fn root_remove_network_leaves_no_table() {
    in_fresh_netns(|| {
        // A foreign table must survive everything we do.
        run("nft", &["add", "table", "inet", "someone_else"]);
        ensure_network(&net("blue", "br-blue", &["10.10.0.0/16"])).unwrap();
        ensure_network(&net("red", "br-red", &["10.11.0.0/16"])).unwrap();
        add_spoofcheck("blue", "c1", "eth0", "veth1", &[2, 0, 0, 0, 0, 1]).unwrap();
        remove_network("blue").unwrap();
        let rs = ruleset();
        assert_eq!(rules_of(&rs, "inet", "postrouting").len(), 1);
        assert!(text(&rules_of(&rs, "inet", "postrouting")[0]).contains("br-red"));
        assert_eq!(our_tables(&rs), ["inet"], "blue's spoof check went with it");
        assert!(!network_rules_present("blue").unwrap());
        remove_network("red").unwrap();
        remove_network("red").unwrap();
        let rs = ruleset();
        assert!(our_tables(&rs).is_empty(), "{rs:#?}");
        assert!(text(&Value::Array(rs)).contains("someone_else"));
    });
}

#[test]
fn root_spoofcheck_add_del_gc() {
    in_fresh_netns(|| {
        let m = |n: u8| [2, 0, 0, 0, 0, n];
        add_spoofcheck("blue", "c1", "eth0", "veth1", &m(1)).unwrap();
        add_spoofcheck("blue", "c1", "eth0", "veth1", &m(1)).unwrap();
        add_spoofcheck("blue", "c2", "eth0", "veth2", &m(2)).unwrap();
        add_spoofcheck("blue", "c3", "eth0", "veth3", &m(3)).unwrap();
        add_spoofcheck("red", "c4", "eth0", "veth4", &m(4)).unwrap();
        let rs = ruleset();
        assert_eq!(rules_of(&rs, "bridge", "prerouting").len(), 1);
        assert_eq!(set_elements(&rs, "spoof_ports"), 4);
        assert_eq!(set_elements(&rs, "spoof_allowed"), 4);
        check_spoofcheck("blue", "c1", "eth0", "veth1", &m(1)).unwrap();
        assert!(check_spoofcheck("blue", "c1", "eth0", "veth1", &m(9)).is_err());
        assert!(check_spoofcheck("blue", "c1", "eth1", "veth1", &m(1)).is_err());

        del_container("blue", "c1", "eth0").unwrap();
        del_container("blue", "c1", "eth0").unwrap();
        del_container("blue", "nobody", "eth0").unwrap();
        assert!(check_spoofcheck("blue", "c1", "eth0", "veth1", &m(1)).is_err());
        assert_eq!(set_elements(&ruleset(), "spoof_ports"), 3);

        gc("blue", &[("c2", "eth0")]).unwrap();
        check_spoofcheck("blue", "c2", "eth0", "veth2", &m(2)).unwrap();
        assert!(check_spoofcheck("blue", "c3", "eth0", "veth3", &m(3)).is_err());
        check_spoofcheck("red", "c4", "eth0", "veth4", &m(4)).unwrap();

        gc("blue", &[]).unwrap();
        assert_eq!(set_elements(&ruleset(), "spoof_ports"), 1, "red's stays");
        del_container("red", "c4", "eth0").unwrap();
        assert!(our_tables(&ruleset()).is_empty());
    });
}

#[test]
fn root_gc_without_valid_attachments_removes_the_network() {
    in_fresh_netns(|| {
        ensure_network(&net("blue", "br-blue", &["10.10.0.0/16"])).unwrap();
        add_spoofcheck("blue", "c1", "eth0", "veth1", &[2, 0, 0, 0, 0, 1]).unwrap();
        gc("blue", &[("c1", "eth0")]).unwrap();
        assert_eq!(
            our_tables(&ruleset()).len(),
            2,
            "still valid: nothing removed"
        );
        gc("blue", &[]).unwrap();
        assert!(our_tables(&ruleset()).is_empty());
    });
}
