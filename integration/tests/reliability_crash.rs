//! Crash consistency of the files: what a power loss or a killed writer
//! leaves in host-local's store (empty or torn lease files, torn or lying
//! index buckets and stamp, a torn `last_reserved_ip`, a writer's temp
//! file) and in the result cache (empty, torn, foreign entries) never
//! blocks DEL or GC and never lets an address be handed out twice.
//!
//! host-local is called directly (it needs no namespace), so the store
//! tests run without root; the cache tests drive cnitool in a fake host.

use integration::reliability as common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{lease_files, Net};
use integration::{our_binary, unique_id, Invocation, Netns, Outcome, TempDir};
use serde_json::{json, Value};

const SUBNET: &str = "10.71.0.0/29"; // 10.71.0.1 .. .6 usable, .1 the gateway

struct Store {
    data: TempDir,
    net: String,
}

impl Store {
    fn new(tag: &str) -> Store {
        Store {
            data: TempDir::new(tag),
            net: format!("n{}", unique_id(tag)),
        }
    }

    fn conf(&self) -> Value {
        json!({"cniVersion": "1.1.0", "name": self.net, "type": "bridge",
               "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": self.data.path()}})
    }

    fn call(&self, cmd: &str, id: &str, conf: &Value) -> Outcome {
        Invocation::ours("host-local")
            .command(cmd)
            .container_id(id)
            .netns("/var/run/netns/reliability-no-such-namespace")
            .ifname("eth0")
            .cni_path("/nonexistent")
            .stdin_json(conf)
            .run()
    }

    fn add(&self, id: &str) -> Outcome {
        self.call("ADD", id, &self.conf())
    }

    fn add_ip(&self, id: &str) -> String {
        let r = self.add(id).expect_ok_json();
        let a = r["ips"][0]["address"]
            .as_str()
            .expect("address")
            .to_string();
        a.split('/').next().unwrap().to_string()
    }

    fn del(&self, id: &str) {
        self.call("DEL", id, &self.conf()).expect_ok_silent();
    }

    fn gc(&self, valid: &[&str]) {
        let mut c = self.conf();
        c["cni.dev/valid-attachments"] = valid
            .iter()
            .map(|id| json!({"containerID": id, "ifname": "eth0"}))
            .collect();
        Invocation::ours("host-local")
            .command("GC")
            .cni_path("/nonexistent")
            .stdin_json(&c)
            .run()
            .expect_ok_silent();
    }

    fn dir(&self) -> PathBuf {
        self.data.join(&self.net)
    }

    fn index_dir(&self) -> PathBuf {
        self.data.join(".host-local-index").join(&self.net)
    }

    fn leases(&self) -> BTreeSet<String> {
        lease_files(&self.dir())
    }

    fn lease_owner(&self, ip: &str) -> String {
        std::fs::read_to_string(self.dir().join(ip)).unwrap_or_default()
    }

    /// Every index file (buckets and stamp), to tear them.
    fn index_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.index_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Keep the first half of a file, as a write cut short leaves it.
fn tear(p: &Path) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..b.len() / 2]).unwrap();
}

/// Damage done to the store between operations, as a crash leaves it.
type Damage = fn(&Store, &[String]);

fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("empty lease file of a free address", |s, _| {
            std::fs::write(s.dir().join("10.71.0.6"), b"").unwrap();
        }),
        ("torn lease file (id cut short)", |s, _| {
            std::fs::write(s.dir().join("10.71.0.6"), b"it1-").unwrap();
        }),
        ("torn lease file (cut inside CRLF)", |s, ids| {
            std::fs::write(s.dir().join("10.71.0.6"), format!("{}\r", ids[0])).unwrap();
        }),
        ("every index bucket and the stamp torn", |s, _| {
            s.index_files().iter().for_each(|p| tear(p));
        }),
        ("every index bucket emptied, stamp kept", |s, _| {
            for p in s.index_files() {
                if p.file_name().unwrap().to_string_lossy().starts_with("b-") {
                    std::fs::write(&p, b"").unwrap();
                }
            }
        }),
        ("index buckets that lie, stamp kept", |s, ids| {
            for p in s.index_files() {
                if p.file_name().unwrap().to_string_lossy().starts_with("b-") {
                    let lie = json!([{"ip": "10.71.0.6", "id": ids[0], "ifname": "eth0"}]);
                    std::fs::write(&p, lie.to_string()).unwrap();
                }
            }
        }),
        ("stamp empty", |s, _| {
            std::fs::write(s.index_dir().join("stamp"), b"").unwrap();
        }),
        ("index directory gone", |s, _| {
            std::fs::remove_dir_all(s.index_dir()).unwrap();
        }),
        ("last_reserved_ip torn", |s, _| {
            std::fs::write(s.dir().join("last_reserved_ip.0"), b"10.71.").unwrap();
        }),
        ("last_reserved_ip empty", |s, _| {
            std::fs::write(s.dir().join("last_reserved_ip.0"), b"").unwrap();
        }),
        ("last_reserved_ip a directory", |s, _| {
            let p = s.dir().join("last_reserved_ip.0");
            let _ = std::fs::remove_file(&p);
            std::fs::create_dir(&p).unwrap();
        }),
        ("a dead writer's temp file", |s, ids| {
            std::fs::write(
                s.dir().join(".tmp-10.71.0.6-1"),
                format!("{}\r\neth0", ids[0]),
            )
            .unwrap();
        }),
    ]
}

/// For each kind of damage: two containers hold addresses, the damage is
/// done, then more ADDs never get a held address (and never fail while one
/// is free), DEL releases exactly what each container holds, and GC clears
/// whatever names nobody valid.
#[test]
fn reliability_damaged_store_never_blocks_del_or_gc_nor_doubles_an_address() {
    let mut inputs = 0;
    for (what, damage) in damages() {
        let s = Store::new("crash");
        let ids: Vec<String> = (0..4).map(|i| unique_id(&format!("k{i}"))).collect();
        let a = s.add_ip(&ids[0]);
        let b = s.add_ip(&ids[1]);
        damage(&s, &ids);
        inputs += 1;

        // More ADDs: never an address somebody holds.
        let mut held: BTreeSet<String> = [a.clone(), b.clone()].into();
        for id in &ids[2..] {
            let ip = s.add_ip(id);
            assert!(held.insert(ip.clone()), "{what}: {ip} handed out twice");
        }
        // A repeated ADD of a holder returns its own address (or fails),
        // never another's.
        let again = s.add(&ids[0]);
        if again.success() {
            let r = again.json();
            let ip = r["ips"][0]["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string();
            assert_eq!(ip, a, "{what}: a repeated ADD moved the container");
        }
        // DEL releases exactly the container's own address.
        s.del(&ids[0]);
        assert!(!s.leases().contains(&a), "{what}: DEL left {a}");
        assert!(
            s.lease_owner(&b).starts_with(&ids[1]),
            "{what}: DEL of another container touched {b}"
        );
        s.del(&ids[0]);
        // GC: only ids[1] is valid; everything else goes, damage included.
        s.gc(&[&ids[1]]);
        assert_eq!(s.leases(), [b.clone()].into(), "{what}: after GC");
        s.del(&ids[1]);
        assert!(s.leases().is_empty(), "{what}: {:?}", s.leases());
        // And the store works as new.
        let ip = s.add_ip(&ids[3]);
        s.del(&ids[3]);
        assert!(!ip.is_empty() && s.leases().is_empty());
    }
    eprintln!("reliability: {inputs} kinds of damaged store files, none blocked DEL or GC");
}

/// An exhausted range with a damaged store still refuses cleanly, and a
/// torn lease counts as taken until GC clears it: no double allocation.
#[test]
fn reliability_torn_lease_stays_taken_until_gc() {
    let s = Store::new("torn");
    let ids: Vec<String> = (0..6).map(|i| unique_id(&format!("t{i}"))).collect();
    // .2 .. .6 are the five addresses; fill four, tear the fifth's file.
    let held: Vec<String> = ids[..4].iter().map(|id| s.add_ip(id)).collect();
    let free = [
        "10.71.0.2",
        "10.71.0.3",
        "10.71.0.4",
        "10.71.0.5",
        "10.71.0.6",
    ]
    .into_iter()
    .find(|ip| !held.iter().any(|h| h == ip))
    .unwrap();
    std::fs::write(s.dir().join(free), b"").unwrap();
    let out = s.add(&ids[4]);
    assert!(
        !out.success(),
        "an address was handed out over a torn lease"
    );
    s.gc(&ids[..4].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(s.add_ip(&ids[4]), free);
    for id in &ids[..5] {
        s.del(id);
    }
    assert!(s.leases().is_empty());
}

/// The result cache: an empty, torn, or foreign entry never blocks DEL
/// (it goes with it) nor GC (the other entries are still torn down).
#[test]
fn root_reliability_damaged_cache_never_blocks_del_or_gc() {
    let net = Net::new("cache", "10.72.0.0/24");
    let dir = TempDir::new("cache");
    net.write_conflist(dir.path());
    let cnitool = |args: &[&str], valid: Option<&str>| -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", net.host.path_str()))
            .arg(our_binary("cnitool"))
            .args(args)
            .env("NETCONFPATH", dir.join("net.d"))
            .env("CNI_CACHE_DIR", dir.join("cache"))
            .env("CNI_PATH", our_binary("bridge").parent().unwrap());
        if let Some(v) = valid {
            cmd.env("CNI_VALID_ATTACHMENTS", v);
        }
        cmd.output().expect("spawn cnitool")
    };
    let ok = |out: Output| {
        assert!(out.status.success(), "{out:?}");
        out
    };
    let results = dir.join("cache/results");
    let entry_of = |ns: &Netns| -> PathBuf {
        let mut found = None;
        for e in std::fs::read_dir(&results).unwrap().flatten() {
            let v: Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap_or_default();
            if v["netns"] == ns.path_str() {
                found = Some(e.path());
            }
        }
        found.expect("a cache entry")
    };
    type CacheDamage = (&'static str, fn(&Path));
    let damages: &[CacheDamage] = &[
        ("empty", |p| std::fs::write(p, b"").unwrap()),
        ("torn", |p| tear(p)),
        ("not JSON", |p| {
            std::fs::write(p, b"\xff\xfe garbage").unwrap()
        }),
        ("foreign JSON", |p| {
            std::fs::write(p, b"{\"kind\":\"other\"}").unwrap()
        }),
        ("result in a version nobody converts", |p| {
            std::fs::write(p, br#"{"cniVersion":"0.2.0","ip4":{"ip":"bad"}}"#).unwrap()
        }),
    ];
    let mut inputs = 0;
    // DEL with a damaged entry.
    for (what, damage) in damages {
        let ns = Netns::new("cd");
        ok(cnitool(&["add", &net.name, &ns.path_str()], None));
        damage(&entry_of(&ns));
        inputs += 1;
        ok(cnitool(&["del", &net.name, &ns.path_str()], None));
        assert!(net.snapshot().is_empty(), "{what}: {:?}", net.snapshot());
        assert_eq!(
            std::fs::read_dir(&results).unwrap().count(),
            0,
            "{what}: entry left"
        );
    }
    // GC with damaged entries beside good ones, after a "reboot": the
    // namespaces are gone. cnitool gc with no valid list releases all.
    let nss: Vec<Netns> = (0..damages.len() + 2).map(|_| Netns::new("cg")).collect();
    for ns in &nss {
        ok(cnitool(&["add", &net.name, &ns.path_str()], None));
    }
    for ((_, damage), ns) in damages.iter().zip(&nss) {
        damage(&entry_of(ns));
        inputs += 1;
    }
    drop(nss);
    ok(cnitool(&["gc", &net.name], None));
    let left = net.snapshot();
    assert!(left.leases.is_empty() && left.rules.is_empty(), "{left:?}");
    // The good entries are torn down and removed; damaged ones name no
    // attachment GC could trust, so they stay (their leases and rules went
    // by the plugins' GC), and they block nothing.
    let remaining = std::fs::read_dir(&results).unwrap().count();
    assert_eq!(remaining, damages.len(), "only the damaged entries remain");
    ok(cnitool(&["gc", &net.name], None));
    eprintln!("reliability: {inputs} damaged cache entries, none blocked DEL or GC");
}
