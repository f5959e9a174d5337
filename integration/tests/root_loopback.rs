//! The loopback plugin through the real binary, in a fake host and a
//! container namespace. All tests need root (namespaces).

use integration::state::{addrs, link_is_up};
use integration::{loopback_conf, require_root, unique_id, FakeHost, Invocation, Netns, Outcome};
use serde_json::{json, Value};

struct Fixture {
    host: FakeHost,
    ctr: Netns,
    cid: String,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        require_root();
        Fixture {
            host: FakeHost::new(tag),
            ctr: Netns::new(&format!("c{tag}")),
            cid: unique_id(tag),
        }
    }

    fn call(&self, command: &str, conf: &Value) -> Outcome {
        Invocation::ours("loopback")
            .cni(
                command,
                &self.host,
                &self.cid,
                &self.ctr.path_str(),
                "lo",
                conf,
            )
            .run()
    }

    fn call_netns(&self, command: &str, netns: Option<&str>, conf: &Value) -> Outcome {
        let inv = Invocation::ours("loopback").cni(command, &self.host, &self.cid, "", "lo", conf);
        match netns {
            Some(p) => inv.netns(p).run(),
            None => inv.unset("CNI_NETNS").run(),
        }
    }

    fn add(&self, version: &str) -> Value {
        let out = self.call("ADD", &loopback_conf(version));
        let v = out.expect_ok_json();
        assert!(
            out.stderr_str().trim().is_empty(),
            "ADD logged on stderr by default:\n{}",
            out.report()
        );
        v
    }

    fn with_prev(version: &str, prev: &Value) -> Value {
        let mut c = loopback_conf(version);
        c["prevResult"] = prev.clone();
        c
    }

    fn lo_up(&self) -> bool {
        link_is_up(&self.ctr, "lo")
    }

    fn has_ipv6_loopback(&self) -> bool {
        addrs(&self.ctr, Some("lo"))
            .iter()
            .any(|a| a.local == "::1")
    }
}

fn assert_loopback_result(f: &Fixture, version: &str, r: &Value) {
    let ctx = format!("version {version}, result {r:#}");
    assert_eq!(r["cniVersion"], version, "{ctx}");
    assert_eq!(
        r["interfaces"],
        json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": f.ctr.path_str()}]),
        "{ctx}"
    );
    let ips = r["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("no ips: {ctx}"));
    let legacy = matches!(version, "0.3.0" | "0.3.1" | "0.4.0");
    let mut want = vec![("127.0.0.1/8", "4")];
    if f.has_ipv6_loopback() {
        want.push(("::1/128", "6"));
    }
    assert_eq!(ips.len(), want.len(), "{ctx}");
    for (addr, fam) in want {
        let ip = ips
            .iter()
            .find(|i| i["address"] == addr)
            .unwrap_or_else(|| panic!("no {addr} in ips: {ctx}"));
        assert_eq!(ip["interface"], 0, "{ctx}");
        if legacy {
            assert_eq!(
                ip["version"], fam,
                "ips[].version is required before 1.0.0: {ctx}"
            );
        } else {
            assert!(
                ip.get("version").is_none(),
                "ips[].version is gone in 1.x: {ctx}"
            );
        }
    }
}

#[test]
fn root_add_brings_lo_up_and_reports_it_in_every_version() {
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let f = Fixture::new("add");
        assert!(!f.lo_up(), "a fresh namespace has lo down");
        let r = f.add(version);
        assert!(f.lo_up(), "lo not UP after ADD ({version})");
        assert_loopback_result(&f, version, &r);
    }
}

#[test]
fn root_del_brings_lo_down_and_prints_nothing() {
    let f = Fixture::new("del");
    let r = f.add("1.0.0");
    assert!(f.lo_up());
    f.call("DEL", &Fixture::with_prev("1.0.0", &r))
        .expect_ok_silent();
    assert!(!f.lo_up(), "lo still UP after DEL");
}

#[test]
fn root_del_is_idempotent() {
    let f = Fixture::new("del2");
    let r = f.add("1.0.0");
    let conf = Fixture::with_prev("1.0.0", &r);
    f.call("DEL", &conf).expect_ok_silent();
    f.call("DEL", &conf).expect_ok_silent();
    // And without prevResult, as after a failed ADD.
    f.call("DEL", &loopback_conf("1.0.0")).expect_ok_silent();
}

#[test]
fn root_del_succeeds_without_a_netns() {
    let f = Fixture::new("delnons");
    let conf = loopback_conf("1.0.0");
    f.call_netns("DEL", Some(""), &conf).expect_ok_silent();
    f.call_netns("DEL", None, &conf).expect_ok_silent();
}

#[test]
fn root_del_succeeds_when_the_netns_is_gone() {
    let f = Fixture::new("delgone");
    let gone = Netns::new("gone");
    let path = gone.path_str();
    drop(gone);
    assert!(!std::path::Path::new(&path).exists());
    f.call_netns("DEL", Some(&path), &loopback_conf("1.0.0"))
        .expect_ok_silent();
}

#[test]
fn root_add_with_prev_result_returns_it() {
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/var/run/netns/x"}],
        "ips": [{"interface": 0, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {"nameservers": ["10.1.0.1"]}
    });
    let f = Fixture::new("prev");
    let out = f.call("ADD", &Fixture::with_prev("1.0.0", &prev));
    let r = out.expect_ok_json();
    assert_eq!(
        r,
        prev,
        "ADD with prevResult must output it unchanged:\n{}",
        out.report()
    );
    assert!(f.lo_up(), "lo not UP after ADD with prevResult");

    // A 0.4.0 chain: prevResult arrives in 0.4.0 shape and comes back so.
    let prev040 = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/var/run/netns/x"}],
        "ips": [{"version": "4", "interface": 0, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {"nameservers": ["10.1.0.1"]}
    });
    let f = Fixture::new("prev040");
    let out = f.call("ADD", &Fixture::with_prev("0.4.0", &prev040));
    assert_eq!(out.expect_ok_json(), prev040, "{}", out.report());
}

#[test]
fn root_add_then_check_succeeds() {
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let f = Fixture::new("check");
        let r = f.add(version);
        f.call("CHECK", &Fixture::with_prev(version, &r))
            .expect_ok_silent();
    }
}

#[test]
fn root_check_before_0_4_0_is_error_1() {
    let f = Fixture::new("chk031");
    let r = f.add("0.3.1");
    f.call("CHECK", &Fixture::with_prev("0.3.1", &r))
        .expect_error(1);
}

#[test]
fn root_status_and_gc_need_1_1_0() {
    let f = Fixture::new("stgc");
    for verb in ["STATUS", "GC"] {
        for version in ["0.4.0", "1.0.0"] {
            let out = Invocation::ours("loopback")
                .command(verb)
                .cni_path(&integration::paths::default_cni_path())
                .stdin_json(&loopback_conf(version))
                .in_host(&f.host)
                .run();
            out.expect_error(1);
        }
    }
    // With 1.1.0 both succeed silently: loopback has nothing to report or collect.
    Invocation::ours("loopback")
        .command("STATUS")
        .cni_path(&integration::paths::default_cni_path())
        .stdin_json(&loopback_conf("1.1.0"))
        .in_host(&f.host)
        .run()
        .expect_ok_silent();
    let mut gc = loopback_conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "x", "ifname": "lo"}]);
    Invocation::ours("loopback")
        .command("GC")
        .cni_path(&integration::paths::default_cni_path())
        .stdin_json(&gc)
        .in_host(&f.host)
        .run()
        .expect_ok_silent();
}

#[test]
fn root_add_stdout_is_exactly_one_json_document() {
    let f = Fixture::new("onedoc");
    let out = f.call("ADD", &loopback_conf("1.0.0"));
    out.expect_ok();
    let mut docs = serde_json::Deserializer::from_slice(out.stdout()).into_iter::<Value>();
    assert!(docs.next().is_some_and(|d| d.is_ok()), "{}", out.report());
    assert!(
        docs.next().is_none(),
        "more than one JSON document:\n{}",
        out.report()
    );
}

#[test]
fn root_unknown_config_keys_pass_through() {
    // The spec: plugins must accept keys they do not know (capabilities,
    // runtimeConfig, args, plugin-specific ones).
    let f = Fixture::new("unk");
    let mut conf = loopback_conf("1.0.0");
    conf["capabilities"] = json!({"portMappings": true});
    conf["runtimeConfig"] = json!({"portMappings": []});
    conf["args"] = json!({"cni": {"labels": []}});
    conf["someVendorKey"] = json!({"x": 1});
    f.call("ADD", &conf).expect_ok_json();
}
