//! Load: 16 workers doing ADD / CHECK / DEL loops on one bridge network of
//! one fake host (each worker a container namespace of its own; four of
//! them go through cnitool, so the result cache is under load too), at
//! least 2000 operations in all. Invariants: no address is ever held by
//! two containers at once, no error but code 11 (and only if the retry
//! succeeds), and nothing is left after the last DEL.

use integration::reliability as common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{ip_of, Net};
use integration::{our_binary, unique_id, Invocation, Netns, Outcome, TempDir};
use serde_json::{json, Value};

const WORKERS: usize = 16;
const CNITOOL_WORKERS: usize = 4;
const CYCLES: usize = 42; // x 3 operations x 16 workers = 2016
const MAX_RETRIES: usize = 20;

/// Addresses currently held, and by whom. A container's hold is recorded
/// after its ADD returned and dropped after its DEL returned, so it lies
/// inside the true reservation: any overlap seen here is a real one.
type Held = Arc<Mutex<HashMap<String, String>>>;

#[derive(Default)]
struct Counts {
    ops: AtomicUsize,
    retries: AtomicUsize,
    max_held: AtomicUsize,
}

fn hold(held: &Held, counts: &Counts, ip: &str, who: &str) {
    let mut h = held.lock().unwrap();
    if let Some(other) = h.insert(ip.to_string(), who.to_string()) {
        panic!("address {ip} handed to {who} while {other} holds it");
    }
    counts.max_held.fetch_max(h.len(), Ordering::Relaxed);
}

fn release(held: &Held, ip: &str, who: &str) {
    let mut h = held.lock().unwrap();
    assert_eq!(
        h.remove(ip).as_deref(),
        Some(who),
        "{ip} was not held by {who}"
    );
}

/// Run a plugin call, retrying while it answers code 11 (try again).
fn with_retry(counts: &Counts, call: impl Fn() -> Outcome) -> Outcome {
    for _ in 0..MAX_RETRIES {
        let out = call();
        counts.ops.fetch_add(1, Ordering::Relaxed);
        if !out.success() && out.check_error(11).is_ok() {
            counts.retries.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        return out;
    }
    panic!("still code 11 after {MAX_RETRIES} tries");
}

/// A worker calling the bridge plugin directly, as containerd's Go libcni
/// would: a new container ID every cycle, in the worker's namespace.
fn plugin_worker(net: &Net, w: usize, held: &Held, counts: &Counts) {
    let ns = Netns::new(&format!("l{w}"));
    for _ in 0..CYCLES {
        let id = unique_id(&format!("w{w}"));
        let inv = |cmd: &str, conf: &Value| {
            Invocation::ours("bridge").cni(cmd, &net.host, &id, &ns.path_str(), "eth0", conf)
        };
        let r = with_retry(counts, || inv("ADD", &net.conf).run()).expect_ok_json();
        let ip = ip_of(&r);
        hold(held, counts, &ip, &id);
        with_retry(counts, || inv("CHECK", &net.with_prev(&r)).run()).expect_ok_silent();
        with_retry(counts, || inv("DEL", &net.with_prev(&r)).run()).expect_ok_silent();
        release(held, &ip, &id);
    }
}

/// A worker going through cnitool (which keeps the result cache); a new
/// namespace path, and so a new container ID, every cycle.
fn cnitool_worker(net: &Net, dir: &Path, w: usize, held: &Held, counts: &Counts) {
    let run = |verb: &str, ns: &Netns| -> Output {
        counts.ops.fetch_add(1, Ordering::Relaxed);
        Command::new("nsenter")
            .arg(format!("--net={}", net.host.path_str()))
            .arg(our_binary("cnitool"))
            .args([verb, net.name.as_str(), &ns.path_str()])
            .env("NETCONFPATH", dir.join("net.d"))
            .env("CNI_CACHE_DIR", dir.join("cache"))
            .env("CNI_PATH", our_binary("bridge").parent().unwrap())
            .output()
            .expect("spawn cnitool")
    };
    let ok = |verb: &str, out: &Output| {
        assert!(
            out.status.success(),
            "worker {w}: cnitool {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for _ in 0..CYCLES {
        let ns = Netns::new(&format!("t{w}"));
        let out = run("add", &ns);
        ok("add", &out);
        let r: Value = serde_json::from_slice(&out.stdout).expect("cnitool prints the result");
        let ip = ip_of(&r);
        let who = ns.path_str();
        hold(held, counts, &ip, &who);
        ok("check", &run("check", &ns));
        ok("del", &run("del", &ns));
        release(held, &ip, &who);
    }
}

#[test]
fn root_reliability_load_16_workers_add_check_del() {
    // A /24: 16 workers never hold more than 16 addresses, but round robin
    // walks the whole range many times over, wrapping around.
    let net = Net::new("load", "10.61.0.0/24");
    let dir = TempDir::new("load");
    let mut plugin = net.conf.clone();
    let obj = plugin.as_object_mut().unwrap();
    obj.remove("cniVersion");
    obj.remove("name");
    std::fs::create_dir_all(dir.join("net.d")).unwrap();
    std::fs::write(
        dir.join("net.d/10-load.conflist"),
        serde_json::to_vec(&json!({"cniVersion": "1.1.0", "name": net.name, "plugins": [plugin]}))
            .unwrap(),
    )
    .unwrap();

    let held: Held = Arc::default();
    let counts = Counts::default();
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (net, dir, held, counts) = (&net, dir.path(), &held, &counts);
            s.spawn(move || {
                if w < CNITOOL_WORKERS {
                    cnitool_worker(net, dir, w, held, counts)
                } else {
                    plugin_worker(net, w, held, counts)
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let ops = counts.ops.load(Ordering::Relaxed);
    let retries = counts.retries.load(Ordering::Relaxed);

    assert!(ops >= 2000, "only {ops} operations");
    assert!(held.lock().unwrap().is_empty());
    let left = net.snapshot();
    assert!(left.is_empty(), "left after the last DEL: {left:?}");
    let cache = std::fs::read_dir(dir.join("cache/results"))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    assert_eq!(cache, 0, "result cache entries left");
    eprintln!(
        "reliability: load: {ops} operations by {WORKERS} workers in {:.1} s, {retries} code-11 \
         retries, at most {} addresses held at once, none twice, nothing left",
        elapsed.as_secs_f64(),
        counts.max_held.load(Ordering::Relaxed)
    );
}
