//! podman 4 (Debian's `podman`, with `runc`) with its CNI network backend
//! drives our bridge and host-local, chained with the reference `portmap`,
//! `firewall` and `tuning` exactly as podman generates the conflist. podman
//! runs in a sandbox inside a fake host, with a private containers.conf,
//! storage.conf, CNI config folder and state; the machine's own
//! /etc/cni/net.d (podman's 87-podman-bridge.conflist) is never read.

use integration::clients as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_success, leftovers, need, ok, spy_calls, spy_plugin_dir, Machine, Sandbox};
use integration::paths::{ref_bin_dir, Binary};
use integration::{require_root, unique_id, FakeHost, TempDir};
use serde_json::Value;

const IMAGE: &str = "localhost/cni-busybox:test";

/// The cgroup the test's containers (and their conmon) go under, instead
/// of the machine-wide /libpod_parent; removed with the sandbox.
fn cgroup_parent() -> String {
    format!("cni-it-podman-{}", std::process::id())
}

struct Podman {
    sandbox: Sandbox,
    containers_conf: PathBuf,
    storage_conf: PathBuf,
}

impl Podman {
    fn new(host: &FakeHost, dir: &TempDir, conf_dir: &Path, bin_dir: &Path) -> Podman {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let w = work.display();
        let containers_conf = work.join("containers.conf");
        std::fs::write(
            &containers_conf,
            format!(
                r#"[containers]
# podman's defaults raise nofile and nproc beyond this machine's hard limits.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
# Ours first: bridge and host-local; then the reference portmap, firewall, tuning.
cni_plugin_dirs = ["{bin}", "{reference}"]
network_config_dir = "{conf}"

[engine]
# No systemd here: cgroupfs and a file for events. crun fails on this
# machine's cgroup layout; runc works.
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{w}/events.log"
runtime = "runc"
static_dir = "{w}/libpod"
volume_path = "{w}/volumes"
tmp_dir = "/run/libpod"
num_locks = 64
"#,
                bin = bin_dir.display(),
                reference = ref_bin_dir().display(),
                conf = conf_dir.display(),
            ),
        )
        .unwrap();
        let storage_conf = work.join("storage.conf");
        std::fs::write(
            &storage_conf,
            format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{w}/graph\"\nrunroot = \"/run/containers/storage\"\n"),
        )
        .unwrap();
        let mut sandbox = Sandbox::new(host, &work, conf_dir, bin_dir);
        sandbox.cgroups.push(cgroup_parent());
        Podman {
            sandbox,
            containers_conf,
            storage_conf,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.sandbox
            .command("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .expect("spawning podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&format!("podman {args:?}"), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn root_podman_cni_backend_runs_two_containers_on_our_bridge_and_network_rm_leaves_nothing() {
    require_root();
    let machine = Machine::snapshot();
    need("/usr/bin/podman", "podman");
    need("/usr/sbin/runc", "runc");
    need("/usr/bin/conmon", "conmon");
    for p in ["portmap", "firewall", "tuning"] {
        integration::reference_binary(p);
    }

    let host = FakeHost::new("podman");
    let dir = TempDir::new("podman");
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let spy_log = dir.join("calls.log");
    let bin_dir = spy_plugin_dir(
        &dir.join("bin"),
        &[("bridge", Binary::Ours), ("host-local", Binary::Ours)],
        &spy_log,
    );
    let rootfs = common::busybox_rootfs(dir.path());
    let tar = dir.join("rootfs.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));

    let p = Podman::new(&host, &dir, &conf_dir, &bin_dir);
    let version = p.ok(&["--version"]);
    let backend = p.ok(&["info", "--format", "{{.Host.NetworkBackend}}"]);
    assert_eq!(backend, "cni", "podman must use its CNI backend");
    p.ok(&["import", tar.to_str().unwrap(), IMAGE]);

    // The network: podman writes the conflist, chaining its plugins.
    let net = unique_id("pnet").replace('-', "");
    p.ok(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        "10.90.0.0/24",
        "--gateway",
        "10.90.0.1",
        &net,
    ]);
    let conflist_path = conf_dir.join(format!("{net}.conflist"));
    let conflist: Value = serde_json::from_slice(
        &std::fs::read(&conflist_path)
            .unwrap_or_else(|e| panic!("podman did not write {}: {e}", conflist_path.display())),
    )
    .unwrap();
    let types: Vec<&str> = conflist["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["bridge", "portmap", "firewall", "tuning"],
        "{conflist}"
    );
    assert_eq!(
        conflist["plugins"][0]["ipam"]["type"], "host-local",
        "{conflist}"
    );
    let bridge = conflist["plugins"][0]["bridge"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!bridge.is_empty(), "{conflist}");

    // Two containers on it reach each other.
    let (c1, c2) = (unique_id("pc1"), unique_id("pc2"));
    for c in [&c1, &c2] {
        let parent = format!("/{}", cgroup_parent());
        p.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--cgroup-parent",
            &parent,
            "--network",
            &net,
            IMAGE,
            "sleep",
            "600",
        ]);
    }
    let ip_of = |c: &str| {
        p.ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            c,
        ])
    };
    let (ip1, ip2) = (ip_of(&c1), ip_of(&c2));
    let ctx = format!("{version}, network {conflist}");
    assert!(
        ip1.starts_with("10.90.0.") && ip2.starts_with("10.90.0.") && ip1 != ip2,
        "{ip1} {ip2}: {ctx}"
    );
    let eth0 = p.ok(&["exec", &c1, "ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains(&format!("inet {ip1}/24")), "{eth0}");
    p.ok(&["exec", &c1, "ping", "-c1", "-W5", &ip2]);
    p.ok(&["exec", &c2, "ping", "-c1", "-W5", &ip1]);
    p.ok(&["exec", &c2, "ping", "-c1", "-W5", "10.90.0.1"]);

    // Remove the containers (CNI DEL), then the network.
    p.ok(&["rm", "-f", "-t", "0", &c1, &c2]);
    p.ok(&["network", "rm", &net]);
    assert!(
        !conflist_path.exists(),
        "podman network rm left {}",
        conflist_path.display()
    );

    // podman called our plugins as a runtime must, and they answered 0.
    let calls = spy_calls(&spy_log);
    let of = |plugin: &str, cmd: &str| {
        calls
            .iter()
            .filter(|x| x.plugin == plugin && x.command == cmd)
            .count()
    };
    assert_eq!(
        (of("bridge", "ADD"), of("bridge", "DEL")),
        (2, 2),
        "{calls:#?}"
    );
    assert_eq!(
        (of("host-local", "ADD"), of("host-local", "DEL")),
        (2, 2),
        "{calls:#?}"
    );
    assert!(
        calls.iter().all(|c| c.status == 0),
        "a plugin failed: {calls:#?}"
    );

    // Nothing left: no veth and no bridge (podman removes it with the
    // network), no lease, no cache entry, no rule of ours.
    let varlib_cni = p.sandbox.work.join("varlib/cni");
    let left = leftovers(
        &host,
        &[],
        &varlib_cni.join("networks").join(&net),
        &varlib_cni,
    );
    assert!(left.is_empty(), "left behind ({ctx}): {left:#?}");
    assert_eq!(p.ok(&["ps", "-aq"]), "");
    drop(p);
    machine.assert_unchanged();
}

/// The conflist podman wrote for `net`, and its plugin types in order.
fn podman_conflist(conf_dir: &Path, net: &str) -> (Value, Vec<String>) {
    let path = conf_dir.join(format!("{net}.conflist"));
    let list: Value = serde_json::from_slice(
        &std::fs::read(&path)
            .unwrap_or_else(|e| panic!("podman did not write {}: {e}", path.display())),
    )
    .unwrap();
    let types = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["type"].as_str().map(str::to_string))
        .collect();
    (list, types)
}

#[test]
fn root_podman_chains_our_dnsname_by_itself_and_a_network_alias_resolves_and_answers() {
    require_root();
    let machine = Machine::snapshot();
    need("/usr/bin/podman", "podman");
    need("/usr/sbin/runc", "runc");
    need("/usr/bin/conmon", "conmon");
    for p in ["portmap", "firewall", "tuning"] {
        integration::reference_binary(p);
    }

    let host = FakeHost::new("podmandns");
    let dir = TempDir::new("podmandns");
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let spy_log = dir.join("calls.log");
    // dnsname on podman's plugin path is what makes podman chain it; the
    // daemon it starts is found beside the real binary. The sandbox's /run
    // is a private tmpfs, so the daemon's default /run/cni-rs/dns is the
    // test's own (podman hands plugins no environment of ours).
    let bin_dir = spy_plugin_dir(
        &dir.join("bin"),
        &[
            ("bridge", Binary::Ours),
            ("host-local", Binary::Ours),
            ("dnsname", Binary::Ours),
        ],
        &spy_log,
    );
    let rootfs = common::busybox_rootfs(dir.path());
    let tar = dir.join("rootfs.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));

    let p = Podman::new(&host, &dir, &conf_dir, &bin_dir);
    assert_eq!(
        p.ok(&["info", "--format", "{{.Host.NetworkBackend}}"]),
        "cni"
    );
    p.ok(&["import", tar.to_str().unwrap(), IMAGE]);

    let net = unique_id("pdns").replace('-', "");
    p.ok(&["network", "create", "--subnet", "10.91.0.0/24", &net]);
    let (conflist, types) = podman_conflist(&conf_dir, &net);
    assert_eq!(
        types,
        ["bridge", "portmap", "firewall", "tuning", "dnsname"],
        "podman did not chain dnsname: {conflist}"
    );
    let dns = conflist["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "dnsname")
        .unwrap();
    assert_eq!(dns["domainName"], "dns.podman", "{conflist}");
    assert_eq!(dns["capabilities"]["aliases"], true, "{conflist}");

    let (server, client) = (unique_id("pweb"), unique_id("pcli"));
    let parent = format!("/{}", cgroup_parent());
    for (c, alias) in [(&server, Some("web")), (&client, None)] {
        let mut args = vec!["run", "-d", "--name", c, "--cgroup-parent", &parent];
        args.extend(["--network", &net]);
        if let Some(a) = alias {
            args.extend(["--network-alias", a]);
        }
        args.extend([IMAGE, "sleep", "600"]);
        p.ok(&args);
    }
    let server_ip = p.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &server,
    ]);
    assert!(server_ip.starts_with("10.91.0."), "{server_ip}");

    // podman writes the container's resolv.conf from the result's dns.
    let resolv = p.ok(&["exec", &client, "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    assert!(resolv.contains("dns.podman"), "{resolv}");
    // The alias and the container name resolve to the server's address,
    // bare and with the domain, and the alias answers a ping.
    for name in ["web", "web.dns.podman", server.as_str()] {
        let out = p.ok(&["exec", &client, "nslookup", name]);
        assert!(
            out.contains(&format!("Address: {server_ip}")),
            "nslookup {name}:\n{out}"
        );
    }
    let ping = p.ok(&["exec", &client, "ping", "-c1", "-W5", "web"]);
    assert!(ping.contains(&format!("bytes from {server_ip}")), "{ping}");
    // A name nobody has is unknown, not somebody else's.
    let out = p.run(&["exec", &client, "nslookup", "nobody.dns.podman"]);
    assert!(!out.status.success(), "nobody.dns.podman resolved");

    p.ok(&["rm", "-f", "-t", "0", &server, &client]);
    p.ok(&["network", "rm", &net]);
    let calls = spy_calls(&spy_log);
    let of = |cmd: &str| {
        calls
            .iter()
            .filter(|x| x.plugin == "dnsname" && x.command == cmd)
            .count()
    };
    assert_eq!((of("ADD"), of("DEL")), (2, 2), "{calls:#?}");
    assert!(calls.iter().all(|c| c.status == 0), "{calls:#?}");
    // DEL took every record away: nothing for the daemon to serve.
    let records =
        ok(p.sandbox
            .command("find")
            .args(["/run/cni-rs/dns/records", "-name", "*.json"]));
    assert_eq!(records.trim(), "", "records left behind");
    drop(p);
    machine.assert_unchanged();
}
