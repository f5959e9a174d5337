//! host-local through the real binary (`target/release/host-local`), and
//! beside the reference (`/usr/lib/cni/host-local`) on one store. No
//! namespaces needed: an IPAM plugin only touches its data directory, a
//! fresh temp folder per test.

use std::collections::HashSet;
use std::path::Path;

use integration::{Binary, Invocation, Outcome, TempDir};
use serde_json::{json, Value};

const NET: &str = "hlnet";

/// A network config as a parent plugin passes it on to its IPAM plugin.
fn conf(version: &str, data: &Path, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data.display().to_string());
    json!({"cniVersion": version, "name": NET, "type": "bridge", "ipam": ipam})
}

fn simple(data: &Path, subnet: &str) -> Value {
    conf("1.0.0", data, json!({"ranges": [[{"subnet": subnet}]]}))
}

fn call(which: Binary, cmd: &str, id: &str, ifname: &str, conf: &Value) -> Outcome {
    Invocation::of(which, "host-local")
        .command(cmd)
        .container_id(id)
        .netns("/var/run/netns/host-local-test-does-not-exist")
        .ifname(ifname)
        .cni_path("/nonexistent")
        .stdin_json(conf)
        .run()
}

fn ours(cmd: &str, id: &str, conf: &Value) -> Outcome {
    call(Binary::Ours, cmd, id, "eth0", conf)
}

fn reference(cmd: &str, id: &str, conf: &Value) -> Outcome {
    call(Binary::Reference, cmd, id, "eth0", conf)
}

fn add_ip(out: &Outcome) -> String {
    let v = out.expect_ok_json();
    v["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address:\n{}", out.report()))
        .to_string()
}

fn error_code(out: &Outcome) -> u64 {
    let e = out.check_any_error().unwrap_or_else(|e| panic!("{e}"));
    e["code"].as_u64().expect("code")
}

fn error_msg(out: &Outcome) -> String {
    out.json()["msg"].as_str().unwrap_or_default().to_string()
}

/// Lease files (names that are addresses) of the test network.
fn leases(data: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data.join(NET))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn status(conf: &Value) -> Outcome {
    let mut c = conf.clone();
    c["cniVersion"] = json!("1.1.0");
    Invocation::ours("host-local")
        .command("STATUS")
        .cni_path("/nonexistent")
        .stdin_json(&c)
        .run()
}

fn gc(conf: &Value, valid: Value) -> Outcome {
    let mut c = conf.clone();
    c["cniVersion"] = json!("1.1.0");
    c["cni.dev/valid-attachments"] = valid;
    Invocation::ours("host-local")
        .command("GC")
        .cni_path("/nonexistent")
        .stdin_json(&c)
        .run()
}

#[test]
fn add_reads_every_option() {
    let t = TempDir::new("hl-opts");
    std::fs::write(
        t.join("resolv.conf"),
        "nameserver 10.9.0.53\nsearch a.example b.example\ndomain example\noptions ndots:2\n",
    )
    .unwrap();
    let mut c = conf(
        "0.4.0",
        t.path(),
        json!({
            "subnet": "10.50.0.0/24", "gateway": "10.50.0.254",
            "ranges": [
                [{"subnet": "10.60.0.0/24", "rangeStart": "10.60.0.100", "rangeEnd": "10.60.0.110"},
                 {"subnet": "10.61.0.0/24"}],
                [{"subnet": "fd00:60::/64", "gateway": "fd00:60::fffe"}]
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.60.0.1"}],
            "resolvConf": t.join("resolv.conf").display().to_string()
        }),
    );
    c["runtimeConfig"] =
        json!({"ipRanges": [[{"subnet": "10.70.0.0/24"}]], "ips": ["fd00:60::77/64"]});
    c["args"] = json!({"cni": {"ips": ["10.70.0.9"]}});
    let out = Invocation::ours("host-local")
        .command("ADD")
        .container_id("opts1")
        .netns("/var/run/netns/none")
        .ifname("eth0")
        .cni_path("/nonexistent")
        .cni_args("IgnoreUnknown=1;IP=10.50.0.33")
        .stdin_json(&c)
        .run();
    let v = out.expect_ok_json();
    assert_eq!(v["cniVersion"], "0.4.0");
    let ips: Vec<(String, String, String)> = v["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert!(
                i.get("interface").is_none(),
                "IPAM results carry no interface"
            );
            (
                i["version"].as_str().unwrap().to_string(),
                i["address"].as_str().unwrap().to_string(),
                i["gateway"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("4", "10.70.0.9/24", "10.70.0.1"), // runtimeConfig.ipRanges, args.cni.ips
        ("4", "10.50.0.33/24", "10.50.0.254"), // legacy subnet, CNI_ARGS IP
        ("4", "10.60.0.100/24", "10.60.0.1"), // ranges[0], rangeStart
        ("6", "fd00:60::77/64", "fd00:60::fffe"), // ranges[1], runtimeConfig.ips
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(ips, want);
    assert_eq!(
        v["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.60.0.1"}])
    );
    assert_eq!(
        v["dns"],
        json!({"nameservers": ["10.9.0.53"], "domain": "example",
               "search": ["a.example", "b.example"], "options": ["ndots:2"]})
    );
    assert_eq!(
        std::fs::read_to_string(t.join(NET).join("fd00:60::77")).unwrap(),
        "opts1\r\neth0"
    );
    assert_eq!(leases(t.path()).len(), 4);
    ours("DEL", "opts1", &c).expect_ok_silent();
    assert!(leases(t.path()).is_empty());
}

#[test]
fn bad_configs_are_code_7_naming_the_field() {
    let t = TempDir::new("hl-bad");
    let cases = [
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.1.0.5"}]]}),
            "rangeStart",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.5"}]]}),
            "rangeEnd",
        ),
        (json!({"ranges": [[{"subnet": "10.0.0.0/33"}]]}), "subnet"),
        (
            json!({"ranges": [[{"subnet": "10.0.0.9/24"}]]}),
            "host bits",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]]}),
            "gateway",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]}),
            "overlap",
        ),
        (json!({}), "no IP ranges"),
    ];
    for (ipam, word) in cases {
        let out = ours("ADD", "bad1", &conf("1.0.0", t.path(), ipam.clone()));
        assert_eq!(error_code(&out), 7, "{ipam}");
        assert!(error_msg(&out).contains(word), "{ipam}: {}", out.report());
    }
    assert!(leases(t.path()).is_empty());
}

#[test]
fn repeated_add_returns_the_same_address_and_del_is_idempotent() {
    let t = TempDir::new("hl-idem");
    let c = simple(t.path(), "10.1.0.0/24");
    let a = add_ip(&ours("ADD", "idem1", &c));
    let b = add_ip(&ours("ADD", "idem1", &c));
    assert_eq!(a, b);
    assert_eq!(leases(t.path()), ["10.1.0.2"]);
    // Another interface of the same container gets its own address.
    let e1 = add_ip(&call(Binary::Ours, "ADD", "idem1", "eth1", &c));
    assert_eq!(e1, "10.1.0.3/24");
    ours("DEL", "idem1", &c).expect_ok_silent();
    ours("DEL", "idem1", &c).expect_ok_silent();
    assert_eq!(leases(t.path()), ["10.1.0.3"]);
    // DEL without CNI_NETNS, as containerd sends it once the sandbox is gone.
    Invocation::ours("host-local")
        .command("DEL")
        .container_id("idem1")
        .ifname("eth1")
        .cni_path("/nonexistent")
        .stdin_json(&c)
        .run()
        .expect_ok_silent();
    assert!(leases(t.path()).is_empty());
    // DEL of something never added, and on a network never used.
    ours("DEL", "never", &simple(&t.join("fresh"), "10.1.0.0/24")).expect_ok_silent();
}

#[test]
fn thirty_two_parallel_adds_get_distinct_addresses() {
    let t = TempDir::new("hl-par");
    let c = simple(t.path(), "10.2.0.0/24");
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || ours("ADD", &format!("par{i}"), &c))
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            seen.insert(add_ip(&out)),
            "duplicate address:\n{}",
            out.report()
        );
    }
    assert_eq!(seen.len(), 32);
    assert_eq!(leases(t.path()).len(), 32);
    // And 32 parallel DELs release them all.
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || ours("DEL", &format!("par{i}"), &c))
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect_ok_silent();
    }
    assert!(leases(t.path()).is_empty());
}

#[test]
fn small_pool_exhausts_cleanly_and_status_reports_it() {
    let t = TempDir::new("hl-exh");
    // A /29: .1 gateway, .2-.6 allocatable, .7 broadcast.
    let dual = conf(
        "1.1.0",
        t.path(),
        json!({"ranges": [[{"subnet": "fd00:9::/64"}], [{"subnet": "10.3.0.0/29"}]]}),
    );
    status(&dual).expect_ok_silent();
    for i in 0..5 {
        ours("ADD", &format!("exh{i}"), &dual).expect_ok_json();
    }
    let out = ours("ADD", "exh5", &dual);
    assert_eq!(error_code(&out), 100);
    assert!(error_msg(&out).contains("exhausted"), "{}", out.report());
    // The IPv6 address taken before the IPv4 set failed was given back.
    assert_eq!(leases(t.path()).len(), 10);
    let out = status(&dual);
    assert_eq!(error_code(&out), 50);
    assert!(error_msg(&out).contains("exhausted"), "{}", out.report());
    ours("DEL", "exh2", &dual).expect_ok_silent();
    status(&dual).expect_ok_silent();
    // Round robin moved past the address the failed ADD held briefly
    // (the reference does the same).
    assert_eq!(add_ip(&ours("ADD", "exh5", &dual)), "fd00:9::8/64");
}

#[test]
fn status_reports_an_unusable_store() {
    let t = TempDir::new("hl-stat");
    std::fs::write(t.join("not-a-dir"), "x").unwrap();
    let c = conf(
        "1.1.0",
        &t.join("not-a-dir"),
        json!({"ranges": [[{"subnet": "10.4.0.0/24"}]]}),
    );
    let out = status(&c);
    assert_eq!(error_code(&out), 50, "{}", out.report());
    // STATUS needs 1.1.0.
    let old = Invocation::ours("host-local")
        .command("STATUS")
        .cni_path("/x")
        .stdin_json(&simple(t.path(), "10.4.0.0/24"))
        .run();
    assert_eq!(error_code(&old), 1);
}

#[test]
fn check_compares_reservation_and_prev_result() {
    let t = TempDir::new("hl-check");
    let c = simple(t.path(), "10.5.0.0/24");
    let out = ours("ADD", "chk1", &c);
    let result = out.expect_ok_json();
    let mut with_prev = c.clone();
    with_prev["prevResult"] = result.clone();
    ours("CHECK", "chk1", &with_prev).expect_ok_silent();
    let mut wrong = with_prev.clone();
    wrong["prevResult"]["ips"][0]["address"] = json!("10.5.0.99/24");
    let out = ours("CHECK", "chk1", &wrong);
    assert!(error_msg(&out).contains("10.5.0.99"), "{}", out.report());
    // The reference's CHECK accepts our store.
    reference("CHECK", "chk1", &with_prev).expect_ok_silent();
    ours("DEL", "chk1", &c).expect_ok_silent();
    assert!(!ours("CHECK", "chk1", &with_prev).success());
}

#[test]
fn gc_releases_everything_not_valid_and_only_in_this_network() {
    let t = TempDir::new("hl-gc");
    let c = simple(t.path(), "10.6.0.0/24");
    for id in ["gc1", "gc2", "gc3"] {
        ours("ADD", id, &c).expect_ok_json();
    }
    // Another network in the same dataDir must stay untouched.
    let mut other = simple(t.path(), "10.7.0.0/24");
    other["name"] = json!("othernet");
    ours("ADD", "gc2", &other).expect_ok_json();
    // A legacy (ID-only) record of a valid container stays; one of a
    // stale container goes; an empty file (crash leftover) goes.
    std::fs::write(t.join(NET).join("10.6.0.50"), "gc1").unwrap();
    std::fs::write(t.join(NET).join("10.6.0.51"), "gc9").unwrap();
    std::fs::write(t.join(NET).join("10.6.0.52"), "").unwrap();
    // A bad entry (a directory named like a lease) is reported, not fatal.
    std::fs::create_dir(t.join(NET).join("10.6.0.53")).unwrap();

    let out = gc(&c, json!([{"containerID": "gc1", "ifname": "eth0"}]));
    assert!(!out.success(), "the bad entry must be reported");
    assert!(error_msg(&out).contains("10.6.0.53"), "{}", out.report());
    let left: Vec<String> = leases(t.path());
    assert_eq!(left, ["10.6.0.2", "10.6.0.50", "10.6.0.53"]);
    assert_eq!(
        std::fs::read_dir(t.join("othernet")).unwrap().count(),
        3,
        "lease, last_reserved_ip.0, lock"
    );
    std::fs::remove_dir(t.join(NET).join("10.6.0.53")).unwrap();
    // Both attachment keys are read; an empty list releases everything.
    let mut legacy_key = c.clone();
    legacy_key["cniVersion"] = json!("1.1.0");
    legacy_key["cni.dev/attachments"] = json!([{"containerID": "gc1", "ifname": "eth0"}]);
    Invocation::ours("host-local")
        .command("GC")
        .cni_path("/x")
        .stdin_json(&legacy_key)
        .run()
        .expect_ok_silent();
    assert_eq!(leases(t.path()), ["10.6.0.2", "10.6.0.50"]);
    gc(&c, json!([])).expect_ok_silent();
    assert!(leases(t.path()).is_empty());
    // Our index follows: gc1 is gone for DEL and for a new ADD.
    assert_eq!(add_ip(&ours("ADD", "gc1", &c)), "10.6.0.5/24");
}

#[test]
fn legacy_id_only_files_are_released_by_del() {
    let t = TempDir::new("hl-legacy");
    let c = simple(t.path(), "10.8.0.0/24");
    std::fs::create_dir_all(t.join(NET)).unwrap();
    std::fs::write(t.join(NET).join("10.8.0.7"), "leg1\n").unwrap();
    std::fs::write(t.join(NET).join("10.8.0.8"), "leg2").unwrap();
    let out = ours("ADD", "leg1", &c);
    assert!(error_msg(&out).contains("duplicate"), "{}", out.report());
    ours("DEL", "leg1", &c).expect_ok_silent();
    assert_eq!(leases(t.path()), ["10.8.0.8"]);
}

#[test]
fn reference_store_is_read_and_released_by_ours() {
    let t = TempDir::new("hl-ref2ours");
    let c = simple(t.path(), "10.9.0.0/24");
    let r1 = add_ip(&reference("ADD", "ref1", &c));
    let r2 = add_ip(&reference("ADD", "ref2", &c));
    assert_eq!((r1.as_str(), r2.as_str()), ("10.9.0.2/24", "10.9.0.3/24"));
    // Ours continues the reference's round robin and sees its leases.
    assert_eq!(add_ip(&ours("ADD", "our1", &c)), "10.9.0.4/24");
    assert_eq!(
        add_ip(&ours("ADD", "ref1", &c)),
        r1,
        "same attachment, same address"
    );
    ours("DEL", "ref1", &c).expect_ok_silent();
    assert_eq!(leases(t.path()), ["10.9.0.3", "10.9.0.4"]);
    // The reference adds behind our back; our index notices.
    let r3 = add_ip(&reference("ADD", "ref3", &c));
    assert_eq!(r3, "10.9.0.5/24");
    ours("DEL", "ref3", &c).expect_ok_silent();
    ours("DEL", "ref2", &c).expect_ok_silent();
    assert_eq!(leases(t.path()), ["10.9.0.4"]);
}

#[test]
fn our_store_is_read_and_released_by_the_reference() {
    let t = TempDir::new("hl-ours2ref");
    let c = simple(t.path(), "fd00:10::/120");
    let o1 = add_ip(&ours("ADD", "o1", &c));
    let o2 = add_ip(&ours("ADD", "o2", &c));
    assert_eq!(
        (o1.as_str(), o2.as_str()),
        ("fd00:10::2/120", "fd00:10::3/120")
    );
    // The reference refuses a duplicate for o1 (it found our lease) and
    // allocates after ours.
    assert!(!reference("ADD", "o1", &c).success());
    assert_eq!(add_ip(&reference("ADD", "r1", &c)), "fd00:10::4/120");
    reference("DEL", "o1", &c).expect_ok_silent();
    assert_eq!(leases(t.path()), ["fd00:10::3", "fd00:10::4"]);
    // Ours after the reference's changes: index rebuilt, nothing lost.
    assert_eq!(add_ip(&ours("ADD", "o3", &c)), "fd00:10::5/120");
    ours("DEL", "r1", &c).expect_ok_silent();
    ours("DEL", "o2", &c).expect_ok_silent();
    reference("DEL", "o3", &c).expect_ok_silent();
    assert!(leases(t.path()).is_empty());
}

#[test]
fn ours_and_the_reference_in_parallel_exclude_each_other() {
    let t = TempDir::new("hl-mixed");
    let c = simple(t.path(), "10.11.0.0/24");
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let c = c.clone();
            let which = if i % 2 == 0 {
                Binary::Ours
            } else {
                Binary::Reference
            };
            std::thread::spawn(move || call(which, "ADD", &format!("mix{i}"), "eth0", &c))
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        let out = h.join().unwrap();
        assert!(seen.insert(add_ip(&out)), "duplicate:\n{}", out.report());
    }
    assert_eq!(leases(t.path()).len(), 16);
    for i in 0..16 {
        ours("DEL", &format!("mix{i}"), &c).expect_ok_silent();
    }
    assert!(leases(t.path()).is_empty());
}

#[test]
fn planted_symlinks_are_not_followed() {
    let t = TempDir::new("hl-sym");
    let victim = TempDir::new("hl-sym-victim");
    std::fs::write(victim.join("target"), "precious").unwrap();
    let c = simple(t.path(), "10.12.0.0/29");
    std::fs::create_dir_all(t.join(NET)).unwrap();
    // A lease name pointing elsewhere: skipped, never written through.
    std::os::unix::fs::symlink(victim.join("target"), t.join(NET).join("10.12.0.2")).unwrap();
    assert_eq!(add_ip(&ours("ADD", "sym1", &c)), "10.12.0.3/29");
    // The round-robin hint as a symlink: replaced, not followed.
    std::fs::remove_file(t.join(NET).join("last_reserved_ip.0")).unwrap();
    std::os::unix::fs::symlink(
        victim.join("target"),
        t.join(NET).join("last_reserved_ip.0"),
    )
    .unwrap();
    ours("ADD", "sym2", &c).expect_ok_json();
    ours("DEL", "sym1", &c).expect_ok_silent();
    assert_eq!(
        std::fs::read_to_string(victim.join("target")).unwrap(),
        "precious"
    );
    assert!(std::fs::symlink_metadata(t.join(NET).join("10.12.0.2"))
        .unwrap()
        .file_type()
        .is_symlink());
    // The network directory itself as a symlink: refused.
    let mut evil = c.clone();
    evil["name"] = json!("evilnet");
    std::os::unix::fs::symlink(victim.path(), t.join("evilnet")).unwrap();
    let out = ours("ADD", "sym3", &evil);
    assert_eq!(error_code(&out), 5, "{}", out.report());
    assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 1);
    // A name that would escape is refused before any file is touched.
    let mut escape = c.clone();
    escape["name"] = json!("../escape");
    assert_eq!(error_code(&ours("ADD", "sym4", &escape)), 7);
    assert!(!t.path().parent().unwrap().join("escape").exists());
}

#[test]
fn requested_ip_that_is_taken_keeps_nothing() {
    let t = TempDir::new("hl-req");
    let c = conf(
        "1.0.0",
        t.path(),
        json!({"ranges": [[{"subnet": "10.13.0.0/24"}], [{"subnet": "10.14.0.0/24"}]]}),
    );
    ours("ADD", "req1", &c).expect_ok_json();
    let out = Invocation::ours("host-local")
        .command("ADD")
        .container_id("req2")
        .netns("/x")
        .ifname("eth0")
        .cni_path("/x")
        .cni_args("IP=10.14.0.2")
        .stdin_json(&c)
        .run();
    assert_eq!(error_code(&out), 100);
    assert!(error_msg(&out).contains("10.14.0.2"), "{}", out.report());
    assert_eq!(leases(t.path()), ["10.13.0.2", "10.14.0.2"]);
}
