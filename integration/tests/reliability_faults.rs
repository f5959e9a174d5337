//! Fault injection: a plugin SIGKILLed at every step of ADD and of DEL (by
//! the test-only `CNI_RS_FAULT_AFTER`, see cni_plugin::fault, and by a timer),
//! then DEL as a runtime would send it. Afterwards nothing of the killed
//! attachment may be left (no veth, no lease, no rule, no cache entry),
//! nothing of a bystander container may be lost, and the same container
//! must ADD again.

use integration::reliability as common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{run_killed_after, stopped, Ctr, Net, Snapshot, Stopped};
use integration::paths::fault_binary;
use integration::{Netns, TempDir};
use serde_json::{json, Value};

const FAULT: &str = "CNI_RS_FAULT_AFTER";

/// Steps of a bridge ADD (and of the host-local it runs) where a kill can
/// land; each is reached on every ADD of the test network.
const ADD_POINTS: &[&str] = &[
    "bridge.add.after-bridge",
    "bridge.add.after-veth",
    "bridge.add.after-attach",
    "ipam.add.returned",
    "bridge.add.after-container",
    "bridge.add.after-gateway",
    "bridge.add.after-spoofcheck",
    "bridge.add.after-firewall",
    "bridge.add.before-commit",
    "bridge.add.after-commit",
    "host-local.add.after-reserve",
    "host-local.index.before-stamp",
    "host-local.add.before-commit",
    "host-local.add.after-commit",
];

/// Steps of a bridge DEL; `last_only` ones are reached only when the
/// container is the network's last.
const DEL_POINTS: &[(&str, bool)] = &[
    ("bridge.del.after-links", false),
    ("bridge.del.after-container-rules", false),
    ("bridge.del.after-network-rules", true),
    ("bridge.del.after-ipam", false),
    ("bridge.del.after-parallel", false),
    ("host-local.del.after-release", false),
    ("host-local.index.before-stamp", false),
    ("host-local.del.before-commit", false),
];

/// After the fault: DEL without a result (the runtime never got one), all
/// back to `baseline`, then the same container ADDs and DELs cleanly.
fn recover_and_readd(net: &Net, c: &Ctr, prev: Option<&Value>, baseline: &Snapshot, what: &str) {
    net.del(c, prev).expect_ok_silent();
    assert_eq!(net.snapshot(), *baseline, "{what}: DEL left state behind");
    let r = net.add(c);
    net.del(c, Some(&r)).expect_ok_silent();
    assert_eq!(
        net.snapshot(),
        *baseline,
        "{what}: the re-ADD/DEL left state behind"
    );
}

/// Every ADD step, with and without a bystander container on the network.
#[test]
fn root_reliability_kill_during_add_at_every_step() {
    let mut faults = 0;
    let mut dirty_after_kill = 0;
    for bystander in [false, true] {
        let net = Net::new("fadd", "10.51.0.0/24");
        let other = Ctr::new("by");
        let other_result = bystander.then(|| net.add(&other));
        let baseline = net.snapshot();
        for point in ADD_POINTS {
            let c = Ctr::new("f");
            let out = net.inv_faulty("ADD", &c, &net.conf).env(FAULT, point).run();
            let how = stopped(&out);
            assert_ne!(
                how,
                Stopped::Completed,
                "{point}: the fault point was not reached:\n{}",
                out.report()
            );
            faults += 1;
            if net.snapshot() != baseline {
                dirty_after_kill += 1;
            }
            recover_and_readd(&net, &c, None, &baseline, point);
        }
        // Numbered points: the N-th step reached, whichever it is (the
        // IPAM thread and the link work race, so these vary run to run).
        for n in 1..=ADD_POINTS.len() {
            let c = Ctr::new("n");
            let out = net
                .inv_faulty("ADD", &c, &net.conf)
                .env(FAULT, &n.to_string())
                .run();
            if stopped(&out) != Stopped::Completed {
                faults += 1;
            }
            recover_and_readd(&net, &c, None, &baseline, &format!("point #{n}"));
        }
        if let Some(r) = other_result {
            net.del(&other, Some(&r)).expect_ok_silent();
        }
        assert!(net.snapshot().is_empty(), "{:?}", net.snapshot());
    }
    eprintln!(
        "reliability: {faults} kills during ADD, {dirty_after_kill} left state that DEL removed"
    );
}

/// Every DEL step: the first DEL is killed, the runtime's retry succeeds.
#[test]
fn root_reliability_kill_during_del_then_del_again() {
    let mut faults = 0;
    for bystander in [false, true] {
        let net = Net::new("fdel", "10.52.0.0/24");
        let other = Ctr::new("by");
        let other_result = bystander.then(|| net.add(&other));
        let baseline = net.snapshot();
        for (point, last_only) in DEL_POINTS {
            if *last_only && bystander {
                continue;
            }
            let c = Ctr::new("d");
            let r = net.add(&c);
            let out = net
                .inv_faulty("DEL", &c, &net.with_prev(&r))
                .env(FAULT, point)
                .run();
            assert_ne!(
                stopped(&out),
                Stopped::Completed,
                "{point}: the fault point was not reached:\n{}",
                out.report()
            );
            faults += 1;
            recover_and_readd(&net, &c, Some(&r), &baseline, point);
        }
        if let Some(r) = other_result {
            net.del(&other, Some(&r)).expect_ok_silent();
        }
        assert!(net.snapshot().is_empty(), "{:?}", net.snapshot());
    }
    eprintln!("reliability: {faults} kills during DEL, each cleaned by the next DEL");
}

/// Kills by a timer, as a runtime's timeout lands: anywhere, including
/// inside a syscall and while the IPAM child runs.
#[test]
fn root_reliability_kill_by_timer_during_add_and_del() {
    let net = Net::new("ftime", "10.53.0.0/24");
    let other = Ctr::new("by");
    let other_result = net.add(&other);
    let baseline = net.snapshot();
    let (mut tried, mut killed) = (0, 0);
    for step in 0..24u64 {
        let after = Duration::from_micros(250 * step);
        let c = Ctr::new("t");
        // ADD killed after `after`.
        let inv = net.inv_faulty("ADD", &c, &net.conf);
        tried += 1;
        if run_killed_after(&inv, after) {
            killed += 1;
        }
        net.del(&c, None).expect_ok_silent();
        assert_eq!(net.snapshot(), baseline, "ADD killed after {after:?}");
        // DEL killed after `after`, then DEL again.
        let r = net.add(&c);
        let inv = net.inv_faulty("DEL", &c, &net.with_prev(&r));
        tried += 1;
        if run_killed_after(&inv, after) {
            killed += 1;
        }
        net.del(&c, Some(&r)).expect_ok_silent();
        assert_eq!(net.snapshot(), baseline, "DEL killed after {after:?}");
    }
    net.del(&other, Some(&other_result)).expect_ok_silent();
    assert!(net.snapshot().is_empty(), "{:?}", net.snapshot());
    eprintln!("reliability: {tried} timed kills tried, {killed} landed before the plugin finished");
}

/// The same through cnitool, where the result cache is part of the state:
/// a kill before the cache is written, after it, and during DEL before
/// the entry is removed.
#[test]
fn root_reliability_kill_cnitool_around_the_cache() {
    let net = Net::new("fcli", "10.54.0.0/24");
    let dir = TempDir::new("fcli");
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let mut plugin = net.conf.clone();
    let plugin_obj = plugin.as_object_mut().unwrap();
    plugin_obj.remove("cniVersion");
    plugin_obj.remove("name");
    let list = json!({"cniVersion": "1.1.0", "name": net.name, "plugins": [plugin]});
    std::fs::write(
        conf_dir.join("10-net.conflist"),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
    let cache = dir.join("cache");
    let cnitool = |verb: &str, ns: &Netns, fault: Option<&str>| -> Output {
        let bin_dir = fault_binary("bridge").parent().unwrap().to_path_buf();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", net.host.path_str()))
            .arg(fault_binary("cnitool"))
            .args([verb, net.name.as_str(), &ns.path_str()])
            .env("NETCONFPATH", &conf_dir)
            .env("CNI_CACHE_DIR", &cache)
            .env("CNI_PATH", bin_dir);
        if let Some(f) = fault {
            cmd.env(FAULT, f);
        }
        cmd.output().expect("spawn cnitool")
    };
    let cached = || common::lease_files(&cache).len() + cache_entries(&cache);
    let mut faults = 0;
    let cases: &[(&str, &str, bool)] = &[
        // (verb killed, point, cache entry expected right after the kill)
        ("add", "cnitool.add.before-cache", false),
        ("add", "cnitool.add.after-cache", true),
        ("add", "bridge.add.after-container", false),
        ("add", "host-local.add.after-reserve", false),
        ("del", "cnitool.del.before-cache-remove", true),
        ("del", "bridge.del.after-links", true),
        ("del", "host-local.del.after-release", true),
    ];
    for (verb, point, cache_after) in cases {
        let ns = Netns::new("cli");
        if *verb == "del" {
            let out = cnitool("add", &ns, None);
            assert!(out.status.success(), "{out:?}");
        }
        let out = cnitool(verb, &ns, Some(point));
        assert!(!out.status.success(), "{point}: not reached: {out:?}");
        faults += 1;
        assert_eq!(
            cache_entries(&cache) == 1,
            *cache_after,
            "{point}: cache entry presence"
        );
        let out = cnitool("del", &ns, None);
        assert!(out.status.success(), "{point}: DEL after the kill: {out:?}");
        assert!(net.snapshot().is_empty(), "{point}: {:?}", net.snapshot());
        assert_eq!(cached(), 0, "{point}: a cache entry is left");
        // The same container again, all the way.
        let out = cnitool("add", &ns, None);
        assert!(out.status.success(), "{point}: re-ADD: {out:?}");
        let out = cnitool("check", &ns, None);
        assert!(out.status.success(), "{point}: CHECK: {out:?}");
        let out = cnitool("del", &ns, None);
        assert!(out.status.success(), "{point}: DEL: {out:?}");
        assert!(net.snapshot().is_empty(), "{point}: {:?}", net.snapshot());
        assert_eq!(cache_entries(&cache), 0);
    }
    eprintln!("reliability: {faults} cnitool kills around the result cache");
}

fn cache_entries(cache: &std::path::Path) -> usize {
    std::fs::read_dir(cache.join("results"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

/// The release build has no fault injection: a plugin started with the
/// variable set, by name or by number, does its work and exits 0.
#[test]
fn root_reliability_release_binaries_ignore_fault_injection() {
    let net = Net::new("frel", "10.54.0.0/24");
    for point in [
        "1",
        "2",
        "bridge.add.after-veth",
        "host-local.add.before-commit",
    ] {
        let c = Ctr::new("r");
        let out = net.inv("ADD", &c, &net.conf).env(FAULT, point).run();
        assert_eq!(
            stopped(&out),
            Stopped::Completed,
            "{point}: a release binary obeyed {FAULT}:\n{}",
            out.report()
        );
        let r = out.expect_ok_json();
        net.del(&c, Some(&r)).expect_ok_silent();
    }
    assert!(net.snapshot().is_empty(), "{:?}", net.snapshot());
}
