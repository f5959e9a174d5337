//! Hostile input: every plugin against oversized stdin, deeply nested
//! JSON, invalid UTF-8, NUL bytes in names, IDs and interface names built
//! to escape directories, symlinks planted in the data and cache dirs, a
//! CNI_PATH with relative or world-writable dirs, and a CNI_NETNS that is
//! not a network namespace. Each must end in a spec error JSON with the
//! expected code, and change nothing: no link in the host or container,
//! no rule, no file anywhere in the test's folders (symlink targets
//! included).
//!
//! NUL bytes cannot reach a plugin through its environment (execve takes
//! C strings), so they are tested where they can arrive: inside the JSON.

use integration::reliability as common;

use std::collections::BTreeSet;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::state::{link_names, nft_rules};
use integration::{
    our_binary, paths, require_root, unique_id, FakeHost, Invocation, Netns, TempDir,
};
use serde_json::{json, Value};

/// Everything a bad call could have changed.
#[derive(Debug, PartialEq, Eq)]
struct World {
    host_links: BTreeSet<String>,
    ctr_links: BTreeSet<String>,
    rules: usize,
    files: BTreeSet<String>,
}

fn walk(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(d) = std::fs::read_dir(dir) else {
        return;
    };
    for e in d.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let content = if meta.is_file() {
            format!("{:?}", std::fs::read(&p).unwrap_or_default())
        } else {
            String::new()
        };
        out.insert(format!("{} {content}", p.display()));
        if meta.is_dir() {
            walk(&p, out);
        }
    }
}

struct Env {
    host: FakeHost,
    ctr: Netns,
    tmp: TempDir,
    id: String,
}

impl Env {
    fn world(&self) -> World {
        let mut files = BTreeSet::new();
        walk(self.tmp.path(), &mut files);
        World {
            host_links: link_names(&self.host).into_iter().collect(),
            ctr_links: link_names(&self.ctr).into_iter().collect(),
            rules: nft_rules(&self.host).len(),
            files,
        }
    }

    fn data(&self) -> PathBuf {
        self.tmp.join("data")
    }

    /// A valid config for each plugin type.
    fn conf(&self, plugin: &str) -> Value {
        let ipam = json!({"type": "host-local", "subnet": "10.91.0.0/24", "dataDir": self.data()});
        let mut c = match plugin {
            "loopback" => json!({"type": "loopback"}),
            "bridge" => json!({"type": "bridge", "bridge": "brh", "isGateway": true,
                               "ipMasq": true, "ipam": ipam}),
            "macvlan" => json!({"type": "macvlan", "master": "hostile0", "ipam": ipam}),
            "host-local" => json!({"type": "bridge", "ipam": ipam}),
            "vxlan-overlay" => json!({"type": "vxlan-overlay", "vni": 4242,
                                      "underlayDevice": "hostile0", "ipam": ipam}),
            "dnsname" => json!({"type": "dnsname", "stateDir": self.tmp.join("dns"),
                                "prevResult": {"cniVersion": "1.1.0",
                                    "interfaces": [{"name": "eth0", "sandbox": self.ctr.path_str()}],
                                    "ips": [{"interface": 0, "address": "10.91.0.2/24"}]}}),
            other => panic!("{other}"),
        };
        c["cniVersion"] = json!("1.1.0");
        c["name"] = json!("hostile");
        c
    }

    fn inv(&self, plugin: &str) -> Invocation {
        Invocation::ours(plugin).cni(
            "ADD",
            &self.host,
            &self.id,
            &self.ctr.path_str(),
            "eth0",
            &self.conf(plugin),
        )
    }
}

fn plugins() -> Vec<&'static str> {
    let mut v = vec!["loopback", "bridge", "macvlan", "host-local"];
    for p in ["vxlan-overlay", "dnsname"] {
        if paths::Binary::Ours.path(p).is_file() {
            v.push(p);
        }
    }
    v
}

/// Plugins that open CNI_NETNS (host-local never looks at it) and that
/// delegate to an IPAM plugin found on CNI_PATH.
fn uses_netns(p: &str) -> bool {
    p != "host-local"
}
fn uses_ipam(p: &str) -> bool {
    !matches!(p, "loopback" | "dnsname")
}
fn delegates(p: &str) -> bool {
    matches!(p, "bridge" | "macvlan" | "vxlan-overlay")
}

type Edit = Box<dyn Fn(&Env, &str, Invocation) -> Invocation>;

struct Case {
    name: String,
    code: u64,
    applies: fn(&str) -> bool,
    edit: Edit,
}

fn case(
    name: impl Into<String>,
    code: u64,
    applies: fn(&str) -> bool,
    edit: impl Fn(&Env, &str, Invocation) -> Invocation + 'static,
) -> Case {
    Case {
        name: name.into(),
        code,
        applies,
        edit: Box::new(edit),
    }
}

fn all(_: &str) -> bool {
    true
}

fn with(conf: &Value, key: &str, v: Value) -> Value {
    let mut c = conf.clone();
    c[key] = v;
    c
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case("JSON nested 100000 deep", 6, all, |e, p, i| {
            let conf = e.conf(p).to_string();
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            let s = format!("{},\"args\":{deep}}}", &conf[..conf.len() - 1]);
            i.stdin(s.into_bytes())
        }),
        case("invalid UTF-8 in the config", 6, all, |e, p, i| {
            let conf = e.conf(p).to_string().replace("hostile", "host\u{1}ile");
            let bytes = conf.replace('\u{1}', "\u{fffd}").into_bytes();
            // Turn the replacement character into a lone continuation byte.
            let bad: Vec<u8> = String::from_utf8(bytes)
                .unwrap()
                .replace('\u{fffd}', "\u{7f}")
                .into_bytes()
                .into_iter()
                .map(|b| if b == 0x7f { 0x80 } else { b })
                .collect();
            i.stdin(bad)
        }),
        case("NUL in the network name", 7, all, |e, p, i| {
            i.stdin_json(&with(&e.conf(p), "name", json!("host\u{0}ile")))
        }),
        case("network name ../../escape", 7, all, |e, p, i| {
            i.stdin_json(&with(&e.conf(p), "name", json!("../../escape")))
        }),
        case("network name ..", 7, all, |e, p, i| {
            i.stdin_json(&with(&e.conf(p), "name", json!("..")))
        }),
        // A path the kernel refuses (EINVAL): an I/O error, before any file.
        case("NUL in ipam.dataDir", 5, uses_ipam, |e, p, i| {
            let mut c = e.conf(p);
            c["ipam"]["dataDir"] = json!(format!("{}\u{0}x", e.data().display()));
            i.stdin_json(&c)
        }),
        case(
            "NUL in the bridge name",
            7,
            |p| p == "bridge",
            |e, p, i| i.stdin_json(&with(&e.conf(p), "bridge", json!("br\u{0}x"))),
        ),
        case("CNI_PATH with a relative dir", 4, delegates, |_, _, i| {
            i.cni_path(&format!("bin:{}", paths::default_cni_path()))
        }),
        case(
            "CNI_PATH with a world-writable dir",
            4,
            delegates,
            |e, _, i| {
                let ww = e.tmp.join("world-writable");
                std::fs::create_dir_all(&ww).unwrap();
                std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o777)).unwrap();
                i.cni_path(&format!("{}:{}", ww.display(), paths::default_cni_path()))
            },
        ),
    ];
    for id in [
        "../../escape",
        "..",
        "a/../../b",
        "x/y",
        "-rf",
        "a\u{1}b",
        "a\nb",
    ] {
        v.push(case(
            format!("CNI_CONTAINERID {id:?}"),
            4,
            all,
            move |_, _, i| i.container_id(id),
        ));
    }
    // (Control characters other than whitespace are valid in interface
    // names, for the kernel and for the reference's validation alike.)
    for ifname in [
        "../eth0",
        "..",
        "a/b",
        "eth 0",
        "eth0\n",
        "toolonginterface",
    ] {
        v.push(case(
            format!("CNI_IFNAME {ifname:?}"),
            4,
            all,
            move |_, _, i| i.ifname(ifname),
        ));
    }
    for (what, path) in [
        ("a regular file", "file"),
        ("a directory", "dir"),
        ("/proc/self/ns/uts", "/proc/self/ns/uts"),
        ("/dev/null", "/dev/null"),
        ("relative", "var/run/netns/x"),
    ] {
        v.push(case(
            format!("CNI_NETNS {what}"),
            8,
            uses_netns,
            move |e, _, i| {
                let p = match path {
                    "file" => {
                        let f = e.tmp.join("not-a-netns");
                        std::fs::write(&f, b"").unwrap();
                        f.display().to_string()
                    }
                    "dir" => {
                        let d = e.tmp.join("a-dir");
                        std::fs::create_dir_all(&d).unwrap();
                        d.display().to_string()
                    }
                    p => p.to_string(),
                };
                i.netns(&p)
            },
        ));
    }
    v
}

/// Devices a network shares between its containers (the bridge; the
/// overlay's bridge and VXLAN device). Like the reference's bridge, a
/// plugin makes them while IPAM runs and keeps them when IPAM then fails
/// (they stay after the last DEL too); nothing per container stays.
const SHARED_DEVICES: [&str; 3] = ["brh", "vxbr4242", "vxlan4242"];

fn shared_devices_may_stay(_plugin: &str, case: &str) -> bool {
    // IPAM itself fails at run time (the path is only refused by the
    // kernel). A bad CNI_PATH is refused before anything is built
    // (ipam::add_alongside locates the IPAM plugin first).
    case.contains("dataDir")
}

#[test]
fn root_reliability_hostile_input_table() {
    require_root();
    let mut failures = Vec::new();
    let mut tried = 0;
    for plugin in plugins() {
        for c in cases() {
            if !(c.applies)(plugin) {
                continue;
            }
            let env = Env {
                host: FakeHost::new("hos"),
                ctr: Netns::new("hosc"),
                tmp: TempDir::new("hostile"),
                id: unique_id("hostile"),
            };
            env.host.ip_ok(&[
                "link", "add", "hostile0", "type", "veth", "peer", "name", "hostile1",
            ]);
            env.host
                .ip_ok(&["addr", "add", "192.0.2.1/24", "dev", "hostile0"]);
            env.host.link_up("hostile0");
            // Files a case makes for itself belong to the "before".
            let inv = (c.edit)(&env, plugin, env.inv(plugin));
            let before = env.world();
            let out = inv.run();
            tried += 1;
            if let Err(e) = out.check_error(c.code) {
                failures.push(format!("--- {plugin}: {}: {e}", c.name));
                continue;
            }
            let mut after = env.world();
            if shared_devices_may_stay(plugin, &c.name) {
                after
                    .host_links
                    .retain(|l| !SHARED_DEVICES.contains(&l.as_str()));
            }
            if after != before {
                failures.push(format!(
                    "--- {plugin}: {}: state changed:\nbefore {before:?}\nafter {after:?}",
                    c.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} hostile calls misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("reliability: {tried} hostile calls, each a clean error that changed nothing");
}

/// 64 MiB on stdin: every plugin answers code 6 having read no more than
/// its 8 MiB cap (what it accepted from the pipe is counted), so a
/// hostile caller cannot make it buffer the lot.
#[test]
fn root_reliability_oversized_stdin_is_refused_without_reading_it() {
    use std::io::Write;
    require_root();
    const SIZE: usize = 64 << 20;
    let mut tried = 0;
    for plugin in plugins() {
        let env = Env {
            host: FakeHost::new("big"),
            ctr: Netns::new("bigc"),
            tmp: TempDir::new("big"),
            id: unique_id("big"),
        };
        let before = env.world();
        let (mut cmd, file) = env.inv(plugin).to_command().unwrap();
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(file);
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let mut chunk =
                br#"{"cniVersion":"1.1.0","name":"x","type":"loopback","pad":""#.to_vec();
            chunk.resize(64 << 10, b'a');
            let mut sent = 0;
            while sent < SIZE {
                match stdin.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
                chunk.fill(b'a');
            }
            sent
        });
        let out = child.wait_with_output().unwrap();
        let sent = writer.join().unwrap();
        tried += 1;
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{plugin}: stdout not JSON ({e}): {out:?}"));
        assert_eq!(v["code"], 6, "{plugin}: {v}");
        assert_eq!(out.status.code(), Some(1), "{plugin}");
        assert!(
            sent <= (8 << 20) + (1 << 20),
            "{plugin}: accepted {sent} bytes of stdin"
        );
        assert_eq!(env.world(), before, "{plugin}: state changed");
    }
    eprintln!("reliability: {tried} plugins refused 64 MiB of stdin after reading at most 9 MiB");
}

/// Symlinks planted in host-local's data dir and in the result cache,
/// pointing outside: nothing outside is ever read as ours, written or
/// removed; each call is a clean error or goes ahead without following
/// the link, and DEL and GC still work.
#[test]
fn root_reliability_planted_symlinks_are_never_followed() {
    require_root();
    let plants: &[(&str, &str)] = &[
        // (where, relative to the data dir or cache dir; what it points at)
        ("data:NET", "dir"),
        ("data:NET/lock", "file"),
        ("data:NET/last_reserved_ip.0", "file"),
        ("data:NET/10.93.0.2", "file"),
        ("data:.host-local-index", "dir"),
        ("data:.host-local-index/NET", "dir"),
        ("cache:results", "dir"),
        ("cache:results/KEY", "file"),
    ];
    let mut tried = 0;
    for (place, target) in plants {
        let net = common::Net::new("sym", "10.93.0.0/24");
        let tmp = TempDir::new("sym");
        let outside = tmp.join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("file"), b"precious").unwrap();
        std::fs::write(outside.join("dir/keep"), b"precious").unwrap();
        let mut world_outside = BTreeSet::new();
        walk(&outside, &mut world_outside);

        let cache = tmp.join("cache");
        let ns = Netns::new("sym");
        let id = cnitool_id(&ns.path_str());
        let (root, rel) = place.split_once(':').unwrap();
        let rel = rel
            .replace("NET", &net.name)
            .replace("KEY", &format!("{}-{id}-eth0", net.name));
        let base = if root == "data" {
            net.data.path().to_path_buf()
        } else {
            cache.clone()
        };
        let link = base.join(&rel);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(outside.join(target), &link).unwrap();

        // conflist for cnitool
        let conf_dir = tmp.join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let mut plugin = net.conf.clone();
        plugin.as_object_mut().unwrap().remove("name");
        plugin.as_object_mut().unwrap().remove("cniVersion");
        std::fs::write(
            conf_dir.join("10.conflist"),
            json!({"cniVersion": "1.1.0", "name": net.name, "plugins": [plugin]}).to_string(),
        )
        .unwrap();
        let cnitool = |verb: &str| -> Output {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={}", net.host.path_str()))
                .arg(our_binary("cnitool"))
                .arg(verb)
                .arg(&net.name);
            if verb != "gc" {
                cmd.arg(ns.path_str());
            }
            cmd.env("NETCONFPATH", &conf_dir)
                .env("CNI_CACHE_DIR", &cache)
                .env("CNI_PATH", our_binary("bridge").parent().unwrap())
                .output()
                .expect("spawn cnitool")
        };
        let add = cnitool("add");
        tried += 1;
        if !add.status.success() {
            // A clean refusal, and nothing of it left.
            assert!(!add.stderr.is_empty(), "{place}: silent failure");
        }
        let del = cnitool("del");
        if matches!(*place, "data:NET" | "data:NET/lock") {
            // The store itself (or its lock) is a planted link: no lease can
            // be in it, and DEL says why it will not use it.
            let err = String::from_utf8_lossy(&del.stderr);
            assert!(
                err.contains("symlink") || err.contains("symbolic link"),
                "{place}: DEL: {del:?}"
            );
        } else {
            assert!(del.status.success(), "{place}: DEL: {del:?}");
        }
        let gc = cnitool("gc");
        // GC may report the foreign entry it skipped, but must not follow it.
        let _ = gc;
        let mut after = BTreeSet::new();
        walk(&outside, &mut after);
        assert_eq!(after, world_outside, "{place}: something outside changed");
        assert!(
            net.snapshot().veths.is_empty() && net.snapshot().rules.is_empty(),
            "{place}: {:?}",
            net.snapshot()
        );
        let real_leases: Vec<String> = common::lease_files(&net.net_dir())
            .into_iter()
            .filter(|l| !net.net_dir().join(l).is_symlink())
            .collect();
        assert!(
            real_leases.is_empty(),
            "{place}: leases left {real_leases:?}"
        );
    }
    eprintln!("reliability: {tried} planted symlinks, none followed");
}

/// cnitool's container ID for a namespace path (see cnitool.rs).
fn cnitool_id(netns: &str) -> String {
    let out = Command::new("sha512sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(netns.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout);
    format!("cnitool-{}", &hex[..20])
}
