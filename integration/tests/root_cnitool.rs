//! `cnitool` end to end: the upstream verbs and Docker's network commands,
//! each run inside a fake host with private config, cache and lease dirs.

use std::process::{Command, Output};

use integration::{our_binary, require_root, unique_id, FakeHost, TempDir};
use serde_json::Value;

/// A fake host and the private directories cnitool works in.
struct Cli {
    host: FakeHost,
    dir: TempDir,
    sandboxes: std::cell::RefCell<Vec<String>>,
}

impl Cli {
    fn new(tag: &str) -> Cli {
        require_root();
        Cli {
            host: FakeHost::new(tag),
            dir: TempDir::new(tag),
            sandboxes: Default::default(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let bin_dir = our_binary("cnitool").parent().unwrap().to_path_buf();
        // nsenter joins only the network namespace: `ip netns exec` would
        // also give cnitool a private mount namespace, hiding the sandboxes
        // it mounts under /var/run/netns from everyone else.
        Command::new("nsenter")
            .arg(format!("--net={}", self.host.path_str()))
            .arg(our_binary("cnitool"))
            .args(args)
            .env("NETCONFPATH", self.dir.join("net.d"))
            .env("CNI_CACHE_DIR", self.dir.join("cache"))
            .env("CNI_IPAM_DATA_DIR", self.dir.join("ipam"))
            .env("CNI_PATH", format!("{}:/usr/lib/cni", bin_dir.display()))
            // The resolver dnsname starts keeps its state here (and exits
            // when the folder goes); no upstream: nothing leaves the host.
            .env("CNI_RS_DNS_DIR", self.dir.join("dns"))
            .env("CNI_RS_DNS_RESOLV_CONF", self.dir.join("no-upstream.conf"))
            .output()
            .expect("spawn cnitool")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cnitool {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "cnitool {args:?} should fail but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn sandbox(&self, tag: &str) -> String {
        let name = unique_id(tag);
        self.ok(&["sandbox", "create", &name]);
        self.sandboxes.borrow_mut().push(name.clone());
        name
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        for s in self.sandboxes.borrow().iter() {
            let _ = Command::new("ip").args(["netns", "del", s]).output();
            // `ip netns exec`'s real folder: our names are unique per test.
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{s}"));
        }
    }
}

#[test]
fn root_cnitool_lists_predefined_networks_and_protects_them() {
    let c = Cli::new("ls");
    let out = c.ok(&["network", "ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NETWORK ID"), "{out}");
    for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
        assert!(
            lines.iter().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.get(1) == Some(&name)
                    && cols.get(2) == Some(&driver)
                    && cols.get(3) == Some(&"local")
            }),
            "{name} missing in:\n{out}"
        );
    }
    for n in ["bridge", "host", "none"] {
        let err = c.fails(&["network", "rm", n]);
        assert!(
            err.contains("pre-defined network and cannot be removed"),
            "{err}"
        );
        let err = c.fails(&["network", "create", n]);
        assert!(err.contains("already exists"), "{err}");
    }
    let q = c.ok(&["network", "ls", "-q"]);
    assert_eq!(q.lines().count(), 3);
    assert!(q.lines().all(|l| l.len() == 12));
}

#[test]
fn root_cnitool_create_validates_like_docker() {
    let c = Cli::new("create");
    let id = c.ok(&[
        "network",
        "create",
        "--subnet",
        "10.40.0.0/24",
        "--label",
        "team=a",
        "n1",
    ]);
    assert_eq!(id.trim().len(), 64);
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "n1"],
            "network with name n1 already exists",
        ),
        (
            &["network", "create", "--subnet", "10.40.0.0/16", "n2"],
            "Pool overlaps",
        ),
        (
            &["network", "create", "--subnet", "172.17.5.0/24", "n2"],
            "Pool overlaps",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.41.0.0/24",
                "--gateway",
                "10.42.0.1",
                "n2",
            ],
            "no matching subnet for gateway",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.41.0.0/24",
                "--ip-range",
                "10.43.0.0/25",
                "n2",
            ],
            "no matching subnet for range",
        ),
        (
            &["network", "create", "-d", "weave", "n2"],
            "plugin \"weave\" not found",
        ),
        (
            &["network", "create", "-d", "../../bin/sh", "n2"],
            "not a valid plugin name",
        ),
        (&["network", "create", "-d", "macvlan", "n2"], "parent"),
        (&["network", "create", "-o", "bogus=1", "n2"], "bogus"),
        (&["network", "create", "bad/name"], "invalid"),
        (&["network", "inspect", "nope"], "network nope not found"),
        (&["network", "rm", "nope"], "network nope not found"),
    ];
    for (args, want) in cases {
        let err = c.fails(args);
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err:?}");
    }
    // Without --subnet, Docker's next free default pool (172.17 is the bridge's).
    c.ok(&["network", "create", "auto1"]);
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", "auto1"])).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "172.18.0.1");

    let json_lines = c.ok(&[
        "network",
        "ls",
        "--format",
        "json",
        "--filter",
        "label=team=a",
    ]);
    let rows: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Name"], "n1");
    assert_eq!(rows[0]["Labels"], "team=a");
    let custom = c.ok(&["network", "ls", "-q", "--filter", "type=custom"]);
    assert_eq!(custom.lines().count(), 2);

    let conflist: Value =
        serde_json::from_slice(&std::fs::read(c.dir.join("net.d/n1.conflist")).unwrap()).unwrap();
    assert_eq!(conflist["plugins"][0]["type"], "bridge");
    assert_eq!(
        conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.40.0.0/24"
    );

    let pruned = c.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("auto1") && pruned.contains("n1"),
        "{pruned}"
    );
    assert!(!c.dir.join("net.d/n1.conflist").exists());
}

#[test]
fn root_cnitool_none_gives_loopback_only_and_host_needs_nothing() {
    let c = Cli::new("none");
    let sb = c.sandbox("sbn");
    // A new sandbox has lo up and nothing else.
    let links = c.host.exec_ok(&["ip", "-n", &sb, "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    c.ok(&["network", "connect", "none", &sb]);
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", "none"])).unwrap();
    assert_eq!(v[0]["Containers"][&sb]["IPv4Address"], "127.0.0.1/8");
    let err = c.fails(&["network", "connect", "none", &sb]);
    assert!(err.contains("already exists in network none"), "{err}");
    let host = c.ok(&["network", "connect", "host", &sb]);
    assert!(host.contains("needs no attachment"), "{host}");
    let ls = c.ok(&["sandbox", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&sb) && l.contains("none(lo)")),
        "{ls}"
    );
    c.ok(&["network", "disconnect", "none", &sb]);
    let err = c.fails(&["network", "disconnect", "none", &sb]);
    assert!(err.contains("is not connected"), "{err}");
    c.ok(&["sandbox", "rm", &sb]);
    assert!(!std::path::Path::new("/var/run/netns").join(&sb).exists());
}

#[test]
fn root_cnitool_upstream_verbs_run_a_conflist_and_cache_like_go_libcni() {
    let c = Cli::new("verbs");
    std::fs::create_dir_all(c.dir.join("net.d")).unwrap();
    std::fs::write(
        c.dir.join("net.d/10-lo.conflist"),
        r#"{"cniVersion":"1.1.0","name":"lonet","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let sb = c.sandbox("sbv");
    let path = format!("/var/run/netns/{sb}");
    c.host
        .exec_ok(&["ip", "-n", &sb, "link", "set", "lo", "down"]);
    let res: Value = serde_json::from_str(&c.ok(&["add", "lonet", &path])).unwrap();
    assert_eq!(res["cniVersion"], "1.1.0");
    assert_eq!(res["interfaces"][0]["name"], "lo");
    let lo = c
        .host
        .exec_ok(&["ip", "-n", &sb, "-j", "link", "show", "lo"]);
    assert!(lo.contains("\"UP\""), "{lo}");
    c.ok(&["check", "lonet", &path]);
    c.ok(&["status", "lonet"]);

    // The cache entry is where and what Go's libcni writes.
    let results = c.dir.join("cache/results");
    let files: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].to_string_lossy().into_owned();
    assert!(
        name.starts_with("lonet-cnitool-") && name.ends_with("-eth0"),
        "{name}"
    );
    let entry: Value =
        serde_json::from_slice(&std::fs::read(results.join(&name)).unwrap()).unwrap();
    assert_eq!(entry["kind"], "cniCacheV1");
    assert_eq!(entry["netns"], path);
    assert_eq!(entry["result"], res);

    c.ok(&["del", "lonet", &path]);
    assert!(std::fs::read_dir(&results).unwrap().next().is_none());
    let lo = c
        .host
        .exec_ok(&["ip", "-n", &sb, "-j", "link", "show", "lo"]);
    assert!(!lo.contains("\"UP\""), "{lo}");
    // DEL again, and CHECK without a cached result, behave as libcni's.
    c.ok(&["del", "lonet", &path]);
    c.fails(&["check", "lonet", &path]);
    let err = c.fails(&["add", "nonet", &path]);
    assert!(err.contains("no network named"), "{err}");
}

#[test]
fn root_cnitool_bridge_network_lifecycle_leaves_nothing() {
    let c = Cli::new("brlife");
    c.ok(&[
        "network",
        "create",
        "--subnet",
        "10.61.0.0/24",
        "--ip-range",
        "10.61.0.128/25",
        "front",
    ]);
    c.ok(&["network", "create", "--subnet", "10.62.0.0/24", "back"]);
    let a = c.sandbox("sba");
    let b = c.sandbox("sbb");
    let d = c.sandbox("sbd");
    c.ok(&["network", "connect", "front", &a]);
    c.ok(&[
        "network",
        "connect",
        "--ip",
        "10.61.0.200",
        "--alias",
        "bee",
        "front",
        &b,
    ]);
    c.ok(&["network", "connect", "back", &d]);
    // b joins a second network: its default route stays with the first.
    c.ok(&["network", "connect", "back", &b]);
    let err = c.fails(&["network", "connect", "front", &a]);
    assert!(err.contains("already exists in network front"), "{err}");

    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", "front"])).unwrap();
    let ctrs = &v[0]["Containers"];
    assert_eq!(ctrs[&b]["IPv4Address"], "10.61.0.200/24");
    assert_eq!(ctrs[&b]["Aliases"][0], "bee");
    let a_ip = ctrs[&a]["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let a_last: u8 = a_ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(a_last >= 128, "--ip-range respected: {a_ip}");
    let mac = ctrs[&a]["MacAddress"].as_str().unwrap().to_string();
    let link = c
        .host
        .exec_ok(&["ip", "-n", &a, "-j", "link", "show", "eth0"]);
    assert!(
        link.contains(&mac),
        "inspect's MAC {mac} is the interface's: {link}"
    );
    let routes = c
        .host
        .exec_ok(&["ip", "-n", &b, "route", "show", "default"]);
    assert!(
        routes.contains("10.61.0.1") && !routes.contains("10.62.0.1"),
        "{routes}"
    );

    // Same network: traffic. Different networks: isolation.
    c.host.exec_ok(&[
        "ip",
        "netns",
        "exec",
        &a,
        "ping",
        "-c1",
        "-W2",
        "10.61.0.200",
    ]);
    let d_ip = c
        .host
        .exec_ok(&["ip", "-n", &d, "-4", "-br", "addr", "show", "eth0"]);
    let d_ip = d_ip
        .split_whitespace()
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let cross = c
        .host
        .exec(&["ip", "netns", "exec", &a, "ping", "-c1", "-W1", &d_ip]);
    assert!(
        !cross.status.success(),
        "front reached back across the isolation"
    );

    let err = c.fails(&["network", "rm", "front"]);
    assert!(err.contains("has active endpoints"), "{err}");
    c.ok(&["network", "disconnect", "front", &a]);
    c.ok(&["sandbox", "rm", &b, &d]);
    c.ok(&["network", "rm", "front", "back"]);

    // Nothing of the networks is left in the fake host or the private dirs.
    let links = c.host.exec_ok(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo is left:\n{links}");
    let rules = c.host.exec_ok(&["nft", "list", "ruleset"]);
    assert!(rules.trim().is_empty(), "ruleset left:\n{rules}");
    assert!(std::fs::read_dir(c.dir.join("cache/results"))
        .unwrap()
        .next()
        .is_none());
    let ipam: Vec<_> = std::fs::read_dir(c.dir.join("ipam"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(ipam.is_empty(), "lease dirs left: {ipam:?}");
}

/// Help, version and completion come from the parser; a bad flag is a
/// cnitool error with status 1. Needs no namespace.
#[test]
fn cnitool_answers_help_version_and_completion() {
    let run = |args: &[&str]| {
        Command::new(our_binary("cnitool"))
            .args(args)
            .output()
            .expect("spawn cnitool")
    };
    let help = run(&["network", "create", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "-d, --driver",
        "--subnet",
        "--ip-range",
        "--aux-address",
        "-o, --opt",
    ] {
        assert!(text.contains(flag), "{flag} missing in:\n{text}");
    }
    let v = run(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("cnitool "));
    for shell in ["bash", "zsh", "fish"] {
        let c = run(&["completion", shell]);
        assert!(c.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&c.stdout);
        assert!(script.contains("aux-address"), "{shell}: {script}");
    }
    let bad = run(&["network", "ls", "--bogus"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("cnitool: unexpected argument '--bogus'"),
        "{err}"
    );
}

#[test]
fn root_cnitool_refuses_bad_driver_options_at_create_and_writes_nothing() {
    let c = Cli::new("badopt");
    let cases: &[(&[&str], &str)] = &[
        (
            &["-o", "com.docker.network.driver.mtu=99999999"],
            "invalid MTU number: 99999999",
        ),
        (
            &["-o", "com.docker.network.bridge.name=../../x"],
            "invalid bridge name \"../../x\"",
        ),
        (
            &[
                "-o",
                "com.docker.network.bridge.name=a-twenty-eight-char-long-nam",
            ],
            "invalid bridge name",
        ),
        (
            &["-d", "macvlan", "-o", "parent=a/b"],
            "invalid parent interface",
        ),
        (&["-d", "overlay", "-o", "vni=0"], "invalid VXLAN ID: 0"),
        (
            &["-d", "overlay", "-o", "vni=9", "-o", "port=70000"],
            "invalid VXLAN port: 70000",
        ),
        (&["-d", "ptp", "-o", "mtu=10"], "invalid MTU number: 10"),
        (&["-d", "ptp", "-o", "type=bridge"], "cannot be set"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["network", "create"];
        args.extend_from_slice(flags);
        args.push("refused");
        let err = c.fails(&args);
        assert!(
            err.contains(want),
            "{flags:?}: expected {want:?} in {err:?}"
        );
    }
    let written: Vec<_> = std::fs::read_dir(c.dir.join("net.d"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(written.is_empty(), "refused creates wrote {written:?}");
    let links = c.host.exec_ok(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
}

/// Docker's third-party drivers: any CNI plugin on CNI_PATH, here the
/// reference ptp, with host-local from --subnet.
#[test]
fn root_cnitool_remote_driver_ptp_connects_a_sandbox() {
    let c = Cli::new("ptp");
    c.ok(&[
        "network",
        "create",
        "-d",
        "ptp",
        "--subnet",
        "10.64.0.0/24",
        "-o",
        "ipMasq=false",
        "p2p",
    ]);
    let conflist: Value =
        serde_json::from_slice(&std::fs::read(c.dir.join("net.d/p2p.conflist")).unwrap()).unwrap();
    let plugin = &conflist["plugins"][0];
    assert_eq!(plugin["type"], "ptp");
    assert_eq!(plugin["ipMasq"], false, "-o values parsed as JSON");
    assert_eq!(plugin["ipam"]["ranges"][0][0]["subnet"], "10.64.0.0/24");
    let ls = c.ok(&["network", "ls", "--filter", "name=p2p"]);
    assert!(
        ls.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&"p2p") && cols.get(2) == Some(&"ptp")
        }),
        "{ls}"
    );

    let sb = c.sandbox("sbp");
    c.ok(&["network", "connect", "p2p", &sb]);
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", "p2p"])).unwrap();
    assert_eq!(v[0]["Driver"], "ptp");
    let addr = v[0]["Containers"][&sb]["IPv4Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        addr.starts_with("10.64.0.") && addr.ends_with("/24"),
        "{addr}"
    );
    let inside = c
        .host
        .exec_ok(&["ip", "-n", &sb, "-4", "-br", "addr", "show", "eth0"]);
    assert!(inside.contains(&addr), "{inside}");
    // ptp puts the gateway address on the host end of the veth pair.
    let host_end = c.host.exec_ok(&["ip", "-4", "-br", "addr"]);
    assert!(host_end.contains("10.64.0.1/32"), "{host_end}");
    c.host.exec_ok(&[
        "ip",
        "netns",
        "exec",
        &sb,
        "ping",
        "-c1",
        "-W2",
        "10.64.0.1",
    ]);

    c.ok(&["network", "disconnect", "p2p", &sb]);
    c.ok(&["network", "rm", "p2p"]);
    c.ok(&["sandbox", "rm", &sb]);
    let links = c.host.exec_ok(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo is left:\n{links}");
    assert!(!c.dir.join("net.d/p2p.conflist").exists());
    assert!(std::fs::read_dir(c.dir.join("cache/results"))
        .unwrap()
        .next()
        .is_none());
    assert!(
        !c.dir.join("ipam/p2p").exists(),
        "the network's lease dir is gone"
    );
}

/// `ip netns exec <sandbox> <cmd>`: the sandbox's /etc/netns files mounted
/// over /etc, as a user would run it.
fn in_sandbox(sb: &str, cmd: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", sb])
        .args(cmd)
        .output()
        .expect("spawn ip netns exec")
}

/// The address `ping -c1 NAME` resolved NAME to and whether it answered.
fn ping_name(sb: &str, name: &str) -> (Option<String>, bool) {
    let out = in_sandbox(sb, &["ping", "-c1", "-W2", name]);
    let text = String::from_utf8_lossy(&out.stdout);
    // "PING api (10.61.0.2) 56(84) bytes of data."
    let addr = text
        .lines()
        .next()
        .and_then(|l| l.split_once('(')?.1.split_once(')'))
        .map(|(a, _)| a.to_string());
    (addr, out.status.success())
}

fn conflist_types(c: &Cli, net: &str) -> Value {
    let path = c.dir.join("net.d").join(format!("{net}.conflist"));
    let list: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    list["plugins"].clone()
}

#[test]
fn root_cnitool_networks_chain_dnsname_unless_told_not_and_internal_ones_do_not_forward() {
    let c = Cli::new("dnsconf");
    c.ok(&["network", "create", "--subnet", "10.63.0.0/24", "Web-Net"]);
    let p = conflist_types(&c, "Web-Net");
    assert_eq!(p[1]["type"], "dnsname", "{p}");
    assert_eq!(p[1]["domainName"], "web-net", "the network's name: {p}");
    assert_eq!(p[1]["capabilities"]["aliases"], true, "{p}");
    assert!(p[1].get("forward").is_none(), "{p}");

    c.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.63.1.0/24",
        "sec",
    ]);
    assert_eq!(conflist_types(&c, "sec")[1]["forward"], false);

    for (i, off) in ["dns=false", "com.docker.network.enable_dns=0"]
        .iter()
        .enumerate()
    {
        let name = format!("quiet{i}");
        let subnet = format!("10.63.{}.0/24", 10 + i);
        c.ok(&["network", "create", "--subnet", &subnet, "-o", off, &name]);
        let p = conflist_types(&c, &name);
        assert_eq!(p.as_array().unwrap().len(), 1, "{off}: {p}");
        assert_eq!(p[0]["type"], "bridge");
    }
    let err = c.fails(&["network", "create", "-o", "dns=maybe", "bad"]);
    assert!(err.contains("must be true or false"), "{err}");
    // The pre-created bridge resolves no names, as Docker's default bridge.
    let out = c.ok(&["network", "inspect", "bridge"]);
    assert!(!out.contains("dnsname"), "{out}");
}

#[test]
fn root_cnitool_sandboxes_find_each_other_by_name_and_alias_only_within_their_network() {
    let c = Cli::new("dnsnames");
    c.ok(&["network", "create", "--subnet", "10.61.0.0/24", "front"]);
    c.ok(&["network", "create", "--subnet", "10.62.0.0/24", "back"]);
    let (s1, s2, s3, s4) = (
        c.sandbox("one"),
        c.sandbox("two"),
        c.sandbox("three"),
        c.sandbox("four"),
    );
    c.ok(&["network", "connect", "--alias", "api", "front", &s1]);
    c.ok(&["network", "connect", "front", &s2]);
    c.ok(&["network", "connect", "--alias", "api", "front", &s3]);
    c.ok(&["network", "connect", "--alias", "db", "back", &s4]);

    // Each sandbox's resolv.conf, where `ip netns exec` mounts it from.
    let resolv = std::fs::read_to_string(format!("/etc/netns/{s2}/resolv.conf")).unwrap();
    assert!(resolv.contains("nameserver 127.0.0.11\n"), "{resolv}");
    assert!(resolv.contains("search front"), "{resolv}");

    // inspect shows each endpoint's names: the sandbox name, then aliases.
    let inspect: Value = serde_json::from_str(&c.ok(&["network", "inspect", "front"])).unwrap();
    let names = &inspect[0]["Containers"][&s1]["DNSNames"];
    assert_eq!(names, &serde_json::json!([s1, "api"]), "{inspect}");
    assert_eq!(
        inspect[0]["Containers"][&s2]["DNSNames"],
        serde_json::json!([s2])
    );

    // Two sandboxes ping each other by name.
    let ip_of = |sb: &str| {
        inspect[0]["Containers"][sb]["IPv4Address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(ping_name(&s2, &s1), (Some(ip_of(&s1)), true));
    assert_eq!(ping_name(&s1, &s2), (Some(ip_of(&s2)), true));
    assert_eq!(
        ping_name(&s1, &format!("{s2}.front")),
        (Some(ip_of(&s2)), true)
    );

    // The shared alias answers with both addresses, in a new order per
    // answer (glibc then sorts them for ping, so ask with dig), and each
    // of them answers a ping.
    let want: std::collections::BTreeSet<String> = [ip_of(&s1), ip_of(&s3)].into();
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let out = in_sandbox(&s2, &["dig", "+short", "+time=2", "api"]);
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines
                .iter()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            want
        );
        firsts.insert(lines[0].clone());
        if firsts.len() == 2 {
            break;
        }
    }
    assert_eq!(
        firsts, want,
        "the shared alias api always answers in one order"
    );
    for ip in &want {
        assert!(in_sandbox(&s2, &["ping", "-c1", "-W2", ip])
            .status
            .success());
    }

    // Names of another network do not resolve, either way.
    assert_eq!(ping_name(&s4, &s1), (None, false));
    assert_eq!(ping_name(&s4, "api"), (None, false));
    assert_eq!(ping_name(&s2, "db"), (None, false));
    assert!(ping_name(&s4, "db").1, "db on its own network");

    // sandbox rm takes the resolv.conf and its folder with it.
    c.ok(&["sandbox", "rm", &s1, &s2, &s3, &s4]);
    for sb in [&s1, &s2, &s3, &s4] {
        let dir = format!("/etc/netns/{sb}");
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left");
    }
    let records = c.dir.join("dns/records");
    let left: Vec<_> = walk_files(&records);
    assert!(left.is_empty(), "records left: {left:?}");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_files(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}
