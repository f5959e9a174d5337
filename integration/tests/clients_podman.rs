//! podman 4 (Debian's `podman`, with `runc`) with its CNI network backend
//! drives our bridge and host-local, chained with the reference `portmap`,
//! `firewall` and `tuning` exactly as podman generates the conflist, or with
//! our `portmap` (and our `dnsname`, which podman chains by itself). podman
//! runs in a sandbox inside a fake host, with a private containers.conf,
//! storage.conf, CNI config folder and state; the machine's own
//! /etc/cni/net.d (podman's 87-podman-bridge.conflist) is never read.

use integration::clients as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_success, leftovers, need, ok, spy_calls, spy_plugin_dir, Machine, Sandbox};
use integration::outside::{self, Outside, HOST_ADDR};
use integration::paths::{ref_bin_dir, Binary};
use integration::state::{link_names, nft_rules, nft_tables};
use integration::{require_root, unique_id, FakeHost, Netns, TempDir};
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
# The test's plugins (ours) first; then the reference's for the rest of the chain.
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

/// What every test here starts from: a fake host, podman over `plugins`
/// (each spied: one line per call in `spy_log`, the rest from the reference
/// folder) with a private CNI config folder, and the busybox image imported.
/// `podman` comes first so it is dropped (its sandbox killed) before the
/// folders its mounts use and the host it runs in.
struct Setup {
    podman: Podman,
    conf_dir: PathBuf,
    spy_log: PathBuf,
    _dir: TempDir,
    host: FakeHost,
}

impl Setup {
    fn new(tag: &str, plugins: &[(&str, Binary)]) -> Setup {
        need("/usr/bin/podman", "podman");
        need("/usr/sbin/runc", "runc");
        need("/usr/bin/conmon", "conmon");
        for p in ["portmap", "firewall", "tuning"] {
            integration::reference_binary(p);
        }
        let host = FakeHost::new(tag);
        let dir = TempDir::new(tag);
        let conf_dir = dir.join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let spy_log = dir.join("calls.log");
        let bin_dir = spy_plugin_dir(&dir.join("bin"), plugins, &spy_log);
        let rootfs = common::busybox_rootfs(dir.path());
        let tar = dir.join("rootfs.tar");
        ok(Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        let podman = Podman::new(&host, &dir, &conf_dir, &bin_dir);
        let backend = podman.ok(&["info", "--format", "{{.Host.NetworkBackend}}"]);
        assert_eq!(backend, "cni", "podman must use its CNI backend");
        podman.ok(&["import", tar.to_str().unwrap(), IMAGE]);
        Setup {
            podman,
            conf_dir,
            spy_log,
            _dir: dir,
            host,
        }
    }

    /// The leases host-local holds for `net`, by address.
    fn leases(&self, net: &str) -> Vec<String> {
        let dir = self
            .podman
            .sandbox
            .work
            .join("varlib/cni/networks")
            .join(net);
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        out.sort();
        out
    }
}

#[test]
fn root_podman_cni_backend_runs_two_containers_on_our_bridge_and_network_rm_leaves_nothing() {
    require_root();
    let machine = Machine::snapshot();
    let s = Setup::new(
        "podman",
        &[("bridge", Binary::Ours), ("host-local", Binary::Ours)],
    );
    let (p, conf_dir, spy_log, host) = (&s.podman, &s.conf_dir, &s.spy_log, &s.host);
    let version = p.ok(&["--version"]);

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
    let calls = spy_calls(spy_log);
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
        host,
        &[],
        &varlib_cni.join("networks").join(&net),
        &varlib_cni,
    );
    assert!(left.is_empty(), "left behind ({ctx}): {left:#?}");
    assert_eq!(p.ok(&["ps", "-aq"]), "");
    drop(s);
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
    // dnsname on podman's plugin path is what makes podman chain it; the
    // daemon it starts is found beside the real binary. The sandbox's /run
    // is a private tmpfs, so the daemon's default /run/cni-rs/dns is the
    // test's own (podman hands plugins no environment of ours).
    let s = Setup::new(
        "podmandns",
        &[
            ("bridge", Binary::Ours),
            ("host-local", Binary::Ours),
            ("dnsname", Binary::Ours),
        ],
    );
    let (p, conf_dir, spy_log) = (&s.podman, &s.conf_dir, &s.spy_log);

    let net = unique_id("pdns").replace('-', "");
    p.ok(&["network", "create", "--subnet", "10.91.0.0/24", &net]);
    let (conflist, types) = podman_conflist(conf_dir, &net);
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
    let calls = spy_calls(spy_log);
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
    drop(s);
    machine.assert_unchanged();
}

// ------------------------------------------------- published ports (issue 15)

const NAT_TABLE: &str = "cni_rs_nat";

/// podman 4.3's CNI backend publishes `-p 8080:80` through OUR portmap,
/// first on a network podman created (its conflist: bridge, portmap,
/// firewall, tuning; our bridge, host-local and portmap found first on its
/// plugin path), then on one of our own conflist (bridge and portmap only).
///
/// What podman 4.3 really does with a port, as this test shows it: it runs
/// the CNI ADD first, then hands conmon a listening socket on each
/// published host port (`0.0.0.0:8080`, held while the container lives),
/// and when any plugin's ADD fails it sends DEL for the whole chain with the
/// same container ID. So a second `-p 8080:80` meets the first container's
/// conmon socket on the port and our rule claiming it; our portmap looks at
/// the rules first, so the refusal names the owning container rather than
/// "a socket of the host", and the DEL podman sends after it removes
/// nothing of the owner's: rules are found by the attachment's own tag.
#[test]
fn root_podman_publishes_through_our_portmap_refuses_a_taken_port_and_rm_leaves_nothing() {
    require_root();
    let machine = Machine::snapshot();
    let s = Setup::new(
        "podpm",
        &[
            ("bridge", Binary::Ours),
            ("host-local", Binary::Ours),
            ("portmap", Binary::Ours),
        ],
    );
    let outside = Outside::new(&s.host, "opodpm");

    // podman's own conflist.
    let net = unique_id("ppm").replace('-', "");
    s.podman
        .ok(&["network", "create", "--subnet", "10.93.0.0/24", &net]);
    let (conflist, types) = podman_conflist(&s.conf_dir, &net);
    assert_eq!(
        types,
        ["bridge", "portmap", "firewall", "tuning"],
        "{conflist}"
    );
    publish_twice_then_rm(&s, &outside, &net, "10.93.0.");
    s.podman.ok(&["network", "rm", &net]);

    // Ours: nothing of the reference in the chain.
    let ours = unique_id("ppo").replace('-', "");
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": ours,
        "plugins": [
            {"type": "bridge", "bridge": "cni-pmours", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "10.94.0.0/24", "gateway": "10.94.0.1"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        ],
    });
    std::fs::write(
        s.conf_dir.join(format!("{ours}.conflist")),
        serde_json::to_vec_pretty(&list).unwrap(),
    )
    .unwrap();
    publish_twice_then_rm(&s, &outside, &ours, "10.94.0.");
    s.podman.ok(&["network", "rm", &ours]);

    let varlib_cni = s.podman.sandbox.work.join("varlib/cni");
    for n in [&net, &ours] {
        let left = leftovers(
            &s.host,
            &[outside::HOST_IF],
            &varlib_cni.join("networks").join(n),
            &varlib_cni,
        );
        assert!(left.is_empty(), "left behind on {n}: {left:#?}");
    }
    drop(outside);
    drop(s);
    machine.assert_unchanged();
}

/// On network `net` (addresses starting with `prefix`): a container
/// publishing 8080 serves from the host's address and its 127.0.0.1; a
/// second one asking for 8080 fails with our message and leaves nothing;
/// after `podman rm -f` no rule and no conntrack entry names the port.
fn publish_twice_then_rm(s: &Setup, outside: &Netns, net: &str, prefix: &str) {
    let p = &s.podman;
    let parent = format!("/{}", cgroup_parent());
    let run = |name: &str| {
        p.run(&[
            "run",
            "-d",
            "--name",
            name,
            "--cgroup-parent",
            &parent,
            "--network",
            net,
            "-p",
            "8080:80",
            IMAGE,
            "sh",
            "-c",
            &format!("echo served-by-{name} > /tmp/index.html; exec httpd -f -p 80 -h /tmp"),
        ])
    };
    let (web, late) = (unique_id("pweb"), unique_id("plate"));
    let out = run(&web);
    assert_success(&format!("podman run {web}"), &out);
    let web_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ip = p.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &web,
    ]);
    assert!(ip.starts_with(prefix), "{ip}");

    let marker = format!("served-by-{web}");
    let outside_8080 = SocketAddr::new(HOST_ADDR.parse().unwrap(), 8080);
    let local_8080 = SocketAddr::new("127.0.0.1".parse().unwrap(), 8080);
    let body = http_get_once_up(outside, outside_8080);
    assert!(
        body.contains(&marker),
        "from outside via {outside_8080}: {body}"
    );
    let body = http_get_once_up(&s.host, local_8080);
    assert!(
        body.contains(&marker),
        "from the host via {local_8080}: {body}"
    );
    let rules = nat_rules(&s.host);
    assert!(
        rules.iter().any(|r| r.contains("pm ip tcp/8080@*")),
        "{rules:#?}"
    );
    // podman's own reservation of the port, held by conmon (see the test).
    let listening = s.host.exec_ok(&["cat", "/proc/net/tcp"]);
    assert!(
        listening
            .lines()
            .any(|l| l.contains(":1F90 ") && l.contains(" 0A ")),
        "nobody listens on 8080 in the host: {listening}"
    );
    let links = link_names(&s.host);
    let leases = s.leases(net);
    assert_eq!(leases, std::slice::from_ref(&ip));

    // The second claim of 8080 fails with our message and leaves nothing.
    let out = run(&late);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second -p 8080:80 was accepted");
    assert!(
        stderr.contains("portmap")
            && stderr.contains("8080/tcp is already published by")
            && stderr.contains(&web_id[..12]),
        "podman's output lacks our message: {stderr}"
    );
    assert_eq!(nat_rules(&s.host), rules, "the refused ADD changed rules");
    assert_eq!(link_names(&s.host), links, "the refused ADD left a link");
    assert_eq!(s.leases(net), leases, "the refused ADD left an address");
    // podman sent DEL for the refused attachment; the owner keeps its port.
    let late_id = p.ok(&["inspect", "-f", "{{.Id}}", &late]);
    let calls = spy_calls(&s.spy_log);
    let status = |cmd: &str| -> Vec<i32> {
        calls
            .iter()
            .filter(|c| c.plugin == "portmap" && c.command == cmd && c.container_id == late_id)
            .map(|c| c.status)
            .collect()
    };
    assert!(
        matches!(status("ADD").as_slice(), [s] if *s != 0),
        "{calls:#?}"
    );
    assert_eq!(status("DEL"), [0], "{calls:#?}");
    let body = http_get_once_up(outside, outside_8080);
    assert!(body.contains(&marker), "after the refused ADD: {body}");

    // Removal: no rule, no conntrack entry for the port.
    assert!(
        !conntrack_to(&s.host, 8080).is_empty(),
        "the connections above left no conntrack entry to look for"
    );
    p.ok(&["rm", "-f", "-t", "0", &web, &late]);
    let rules = nat_rules(&s.host);
    assert!(rules.is_empty(), "rules left: {rules:#?}");
    assert!(
        !nft_tables(&s.host).iter().any(|(_, n)| n == NAT_TABLE),
        "our NAT table outlived its last rule"
    );
    let entries = conntrack_to(&s.host, 8080);
    assert!(entries.is_empty(), "conntrack entries left: {entries:#?}");
    assert!(s.leases(net).is_empty(), "{:?}", s.leases(net));
}

/// The rules of our NAT table in `host`, as "chain comment".
fn nat_rules(host: &Netns) -> Vec<String> {
    nft_rules(host)
        .iter()
        .filter(|r| r["table"] == NAT_TABLE)
        .map(|r| format!("{} {}", r["chain"], r["comment"]))
        .collect()
}

/// The host's conntrack entries (any protocol) whose original direction
/// goes to `port`.
fn conntrack_to(host: &Netns, port: u16) -> Vec<String> {
    let needle = format!(" dport={port} ");
    host.exec_ok(&["cat", "/proc/net/nf_conntrack"])
        .lines()
        .filter(|l| l.contains(&needle))
        .map(String::from)
        .collect()
}

/// `GET /index.html` from busybox httpd at `dst`, from inside `from`: the
/// whole answer. Retried for up to 5 s while the server starts (a refused
/// connection), so a container that never serves fails the test.
fn http_get_once_up(from: &Netns, dst: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = from.run(move || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        });
        match res {
            Ok(body) => return body,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("GET http://{dst}/ from {}: {e}", from.name()),
        }
    }
}
