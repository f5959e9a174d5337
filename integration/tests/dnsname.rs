//! Service discovery end to end: a main plugin (bridge, macvlan or
//! vxlan-overlay) + host-local + loopback + dnsname as one chain, the way a
//! runtime runs it, inside a fake host; names are then asked with `dig`
//! from inside the container namespaces, at 127.0.0.11 as Docker's
//! containers do. Every test has its own daemon state folder (config key
//! `stateDir` and CNI_RS_DNS_DIR), so tests run in parallel and never
//! touch this machine's /run/cni-rs/dns; upstream resolvers are dnsmasq
//! processes inside the fake host, never the machine's own.
//!
//! All tests need root (namespaces).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration::conflist::{Attachment, ConfList};
use integration::netns::unique_ifname;
use integration::{require_root, unique_id, FakeHost, Invocation, Netns, TempDir};
use serde_json::{json, Value};

const DOMAIN: &str = "dns.podman";

/// One fake host with its own daemon state folder, IPAM store and
/// resolv.conf.
struct Site {
    host: FakeHost,
    state: TempDir,
    ipam: TempDir,
    resolv: PathBuf,
    idle_ms: u64,
}

impl Site {
    fn new(tag: &str) -> Self {
        require_root();
        let state = TempDir::new(&format!("dns-{tag}"));
        let resolv = state.join("resolv.conf");
        // No upstream unless a test starts one.
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        Site {
            host: FakeHost::new(tag),
            state,
            ipam: TempDir::new(&format!("ipam-{tag}")),
            resolv,
            idle_ms: 300,
        }
    }

    /// The daemon's folder (inside the test's temporary folder).
    fn dir(&self) -> PathBuf {
        self.state.join("d")
    }

    fn dnsname(&self, extra: Value) -> Value {
        let mut p = json!({"type": "dnsname", "domainName": DOMAIN,
                           "stateDir": self.dir().display().to_string(),
                           "capabilities": {"aliases": true}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            p[k] = v.clone();
        }
        p
    }

    /// `main` (with its ipam), loopback, dnsname (+ `dns` keys).
    fn chain(&self, name: &str, main: Value, dns: Value) -> ConfList {
        let raw = json!({"cniVersion": "1.1.0", "name": name,
                         "plugins": [main, {"type": "loopback"}, self.dnsname(dns)]});
        let mut l = ConfList::from_value(Path::new("test.conflist"), raw).unwrap();
        l.set_ipam_data_dir(self.ipam.path());
        l
    }

    fn attachment<'a>(&'a self, ctr: &'a Netns, id: &str, name: &str) -> Attachment<'a> {
        Attachment::new(&self.host, ctr, id, "eth0")
            .with_env("CNI_ARGS", &format!("IgnoreUnknown=1;K8S_POD_NAME={name}"))
            .with_env("CNI_RS_DNS_IDLE_MS", &self.idle_ms.to_string())
            .with_env("CNI_RS_DNS_RESOLV_CONF", &self.resolv.display().to_string())
    }

    fn records(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for net in std::fs::read_dir(self.dir().join("records"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                v.push(f.path());
            }
        }
        v
    }

    /// The pid of the daemon serving this site's folder, if one runs.
    fn daemon_pid(&self) -> Option<u32> {
        let want = format!("CNI_RS_DNS_DIR={}", self.dir().display());
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            if !exe.to_string_lossy().contains("cni-rs-daemon") {
                return None;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|kv| kv == want.as_bytes())
                .then_some(pid)
        })
    }

    /// Wait until no daemon serves this folder.
    fn wait_daemon_gone(&self, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if self.daemon_pid().is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// One container of a test: its namespace, id, name, result.
struct Ctr {
    ns: Netns,
    id: String,
    name: String,
    list: ConfList,
    result: Value,
}

impl Ctr {
    fn ip(&self) -> String {
        let a = self.result["ips"][0]["address"].as_str().unwrap();
        a.split('/').next().unwrap().to_string()
    }
}

fn add(site: &Site, list: ConfList, name: &str) -> Ctr {
    let ns = Netns::new(name);
    let id = unique_id(name);
    let result = site
        .attachment(&ns, &id, name)
        .add(&list)
        .unwrap_or_else(|e| panic!("{e:#}"));
    Ctr {
        ns,
        id,
        name: name.to_string(),
        list,
        result,
    }
}

fn del(site: &Site, c: &Ctr) {
    site.attachment(&c.ns, &c.id, &c.name)
        .del(&c.list, Some(&c.result))
        .unwrap_or_else(|e| panic!("{e:#}"));
}

fn check(site: &Site, c: &Ctr) -> anyhow::Result<()> {
    site.attachment(&c.ns, &c.id, &c.name)
        .check(&c.list, &c.result)
}

/// `dig @127.0.0.11 +short` from inside `from`: the answer lines, sorted.
fn dig(from: &Netns, args: &[&str]) -> Vec<String> {
    let mut full = vec!["dig", "@127.0.0.11", "+short", "+time=2", "+tries=2"];
    full.extend_from_slice(args);
    let out = from.exec(&full);
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect();
    v.sort();
    v
}

/// The status dig reports (NOERROR, NXDOMAIN, REFUSED...).
fn dig_status(from: &Netns, args: &[&str]) -> String {
    let mut full = vec!["dig", "@127.0.0.11", "+time=2", "+tries=2"];
    full.extend_from_slice(args);
    let out = from.exec(&full);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string()
}

fn bridge(subnet: &str) -> Value {
    json!({"type": "bridge", "bridge": unique_ifname("dbr"), "isGateway": true,
           "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]}})
}

fn aliases(net: &str, a: &[&str]) -> Value {
    json!({"runtimeConfig": {"aliases": {net: a}}})
}

/// Whether a UDP or TCP socket listens at 127.0.0.11:53 in `ns`.
fn resolver_listens(ns: &Netns) -> bool {
    let out = ns.exec_ok(&["ss", "-H", "-lnut"]);
    out.contains("127.0.0.11:53")
}

#[test]
fn root_names_aliases_and_ptr_resolve_on_a_bridge_only_within_the_network() {
    let site = Site::new("br");
    let (n1, n2) = (unique_id("n1"), unique_id("n2"));
    let b1 = bridge("10.91.0.0/24");
    let web = add(
        &site,
        site.chain(&n1, b1.clone(), aliases(&n1, &["www", "svc"])),
        "web",
    );
    let api = add(&site, site.chain(&n1, b1, aliases(&n1, &["svc"])), "api");
    let db = add(
        &site,
        site.chain(&n2, bridge("10.92.0.0/24"), json!({})),
        "db",
    );

    // The result points the container at the resolver, with the search domain.
    assert_eq!(web.result["dns"]["nameservers"], json!(["127.0.0.11"]));
    assert_eq!(web.result["dns"]["search"], json!([DOMAIN]));

    for name in ["web", "web.dns.podman", "www", "WWW.dns.podman."] {
        assert_eq!(dig(&api.ns, &[name]), vec![web.ip()], "{name} from api");
    }
    assert_eq!(dig(&web.ns, &["api.dns.podman"]), vec![api.ip()]);
    // A shared alias answers with both containers.
    let mut both = vec![web.ip(), api.ip()];
    both.sort();
    assert_eq!(dig(&web.ns, &["svc"]), both);
    // PTR for a container address.
    assert_eq!(
        dig(&api.ns, &["-x", &web.ip()]),
        vec!["web.dns.podman.".to_string()]
    );
    // Unknown names of our domain: NXDOMAIN.
    assert_eq!(dig_status(&web.ns, &["nobody.dns.podman"]), "NXDOMAIN");
    // Another network's names are not visible, in either direction.
    assert_eq!(dig_status(&web.ns, &["db.dns.podman"]), "NXDOMAIN");
    assert_eq!(dig_status(&db.ns, &["web.dns.podman"]), "NXDOMAIN");
    assert_eq!(dig(&db.ns, &["db"]), vec![db.ip()]);

    for c in [&web, &api, &db] {
        check(&site, c).unwrap_or_else(|e| panic!("CHECK {}: {e:#}", c.name));
    }
    for c in [&db, &api, &web] {
        del(&site, c);
    }
}

#[test]
fn root_del_removes_names_and_after_the_last_del_nothing_is_left() {
    let mut site = Site::new("del");
    site.idle_ms = 1500;
    let n1 = unique_id("n1");
    let b1 = bridge("10.93.0.0/24");
    let web = add(&site, site.chain(&n1, b1.clone(), json!({})), "web");
    let api = add(&site, site.chain(&n1, b1, json!({})), "api");
    assert_eq!(dig(&web.ns, &["api"]), vec![api.ip()]);
    assert!(resolver_listens(&api.ns));
    let pid = site.daemon_pid().expect("a daemon runs");

    del(&site, &api);
    assert_eq!(dig_status(&web.ns, &["api.dns.podman"]), "NXDOMAIN");
    // The daemon, still running, holds nothing in api's namespace any more.
    assert!(
        !resolver_listens(&api.ns),
        "the resolver still listens in a deleted container"
    );
    assert_eq!(site.daemon_pid(), Some(pid));
    assert!(check(&site, &api).is_err(), "CHECK passed without a record");

    del(&site, &web);
    assert!(!resolver_listens(&web.ns));
    assert!(
        site.wait_daemon_gone(Duration::from_secs(10)),
        "the daemon did not exit"
    );
    assert!(
        !site.dir().join("daemon.sock").exists(),
        "the socket file is left"
    );
    assert!(
        site.records().is_empty(),
        "records left: {:?}",
        site.records()
    );
    // A second DEL (runtimes retry) succeeds without a daemon.
    del(&site, &web);
    assert!(site.daemon_pid().is_none(), "DEL started a daemon");
}

#[test]
fn root_kill_9_of_the_daemon_is_healed_by_the_next_add_with_every_name() {
    let site = Site::new("k9");
    let n1 = unique_id("n1");
    let b1 = bridge("10.94.0.0/24");
    let web = add(
        &site,
        site.chain(&n1, b1.clone(), aliases(&n1, &["www"])),
        "web",
    );
    let api = add(&site, site.chain(&n1, b1.clone(), json!({})), "api");
    let pid = site.daemon_pid().expect("a daemon runs");
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(site.wait_daemon_gone(Duration::from_secs(5)));
    assert!(
        dig(&web.ns, &["api"]).is_empty(),
        "answers without a daemon"
    );

    let db = add(&site, site.chain(&n1, b1, json!({})), "db");
    assert_ne!(site.daemon_pid(), Some(pid));
    for (from, name, ip) in [
        (&db, "web", web.ip()),
        (&db, "www", web.ip()),
        (&web, "api", api.ip()),
        (&api, "db", db.ip()),
    ] {
        assert_eq!(
            dig(&from.ns, &[name]),
            vec![ip],
            "{name} from {}",
            from.name
        );
    }

    // CHECK heals too: kill again, then CHECK starts it and passes.
    let pid = site.daemon_pid().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(site.wait_daemon_gone(Duration::from_secs(5)));
    check(&site, &web).unwrap();
    assert_eq!(dig(&api.ns, &["web"]), vec![web.ip()]);
    for c in [&db, &api, &web] {
        del(&site, c);
    }
    assert!(site.wait_daemon_gone(Duration::from_secs(10)));
}

#[test]
fn root_status_is_50_when_the_state_folder_is_unusable_and_prev_result_is_required() {
    let site = Site::new("st");
    let conf =
        |dir: &str| json!({"cniVersion": "1.1.0", "name": "n", "type": "dnsname", "stateDir": dir});
    let dnsname = integration::our_binary("dnsname");
    let out = Invocation::new(&dnsname)
        .command("STATUS")
        .stdin_json(&conf("/proc/1/no-such-folder"))
        .in_host(&site.host)
        .run();
    out.expect_error(50);
    // A working folder: STATUS starts the daemon and succeeds.
    let dir = site.dir().display().to_string();
    Invocation::new(&dnsname)
        .command("STATUS")
        .env("CNI_RS_DNS_IDLE_MS", "200")
        .stdin_json(&conf(&dir))
        .in_host(&site.host)
        .run()
        .expect_ok_silent();
    let ctr = Netns::new("c");
    Invocation::new(&dnsname)
        .cni(
            "ADD",
            &site.host,
            "c1",
            &ctr.path_str(),
            "eth0",
            &conf(&dir),
        )
        .run()
        .expect_error(7);
    // No daemon binary beside the plugin nor on CNI_PATH: 50.
    let alone = TempDir::new("dnsname-alone");
    std::fs::copy(&dnsname, alone.join("dnsname")).unwrap();
    let other = site.state.join("other");
    let out = Invocation::new(alone.join("dnsname"))
        .command("STATUS")
        .cni_path(&alone.path().display().to_string())
        .stdin_json(&conf(&other.display().to_string()))
        .in_host(&site.host)
        .run();
    out.expect_error(50);
    assert!(site.wait_daemon_gone(Duration::from_secs(10)));
}

/// Two containers on one network, made by `main`: each resolves the other.
fn assert_pair_resolves(site: &Site, net: &str, main: Value) {
    let a = add(
        site,
        site.chain(net, main.clone(), aliases(net, &["alpha"])),
        "ca",
    );
    let b = add(site, site.chain(net, main, json!({})), "cb");
    assert_eq!(dig(&a.ns, &["cb.dns.podman"]), vec![b.ip()]);
    assert_eq!(dig(&b.ns, &["ca"]), vec![a.ip()]);
    assert_eq!(dig(&b.ns, &["alpha"]), vec![a.ip()]);
    assert_eq!(
        dig(&b.ns, &["-x", &a.ip()]),
        vec!["ca.dns.podman.".to_string()]
    );
    check(site, &a).unwrap();
    del(site, &b);
    del(site, &a);
    assert!(site.wait_daemon_gone(Duration::from_secs(10)));
}

#[test]
fn root_names_resolve_on_a_macvlan_network() {
    // The host cannot reach its own macvlan children through the parent:
    // the resolver must answer inside each container.
    let site = Site::new("mv");
    let master = unique_ifname("mst");
    let other = unique_ifname("mso");
    site.host.ip_ok(&[
        "link", "add", &master, "type", "veth", "peer", "name", &other,
    ]);
    site.host.link_up(&master);
    site.host.link_up(&other);
    let main = json!({"type": "macvlan", "master": master, "mode": "bridge",
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.95.0.0/24"}]]}});
    assert_pair_resolves(&site, &unique_id("mv"), main);
}

#[test]
fn root_names_resolve_on_a_vxlan_overlay_network() {
    // L2 only: no gateway, no host address on the overlay.
    let site = Site::new("ov");
    // The underlay: a veth pair inside the fake host (no dummy driver here).
    site.host.ip_ok(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    site.host
        .ip_ok(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    site.host.link_up("eth0");
    site.host.link_up("eth1");
    let main = json!({"type": "vxlan-overlay", "vni": 4242, "underlayDevice": "eth0",
                      "peers": ["192.0.2.1", "192.0.2.2"], "subnet": "10.96.0.0/24",
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.96.0.0/24",
                               "rangeStart": "10.96.0.10", "rangeEnd": "10.96.0.29"}]]}});
    assert_pair_resolves(&site, &unique_id("ov"), main);
}

/// dnsmasq as the fake host's upstream resolver, on its loopback (like
/// systemd-resolved's 127.0.0.53), killed on drop.
struct Upstream {
    child: Child,
}

/// The TXT records of `big.example.test`: about 2.5 KB, more than a UDP
/// answer may carry.
const BIG_TXT: usize = 10;

impl Upstream {
    fn start(site: &Site) -> Self {
        let mut args: Vec<String> = [
            "netns",
            "exec",
            site.host.name(),
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--port=53",
            "--user=root",
            "--group=root",
            "--address=/example.test/192.0.2.7",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!(
            "--pid-file={}",
            site.state.join("dnsmasq.pid").display()
        ));
        for i in 0..BIG_TXT {
            args.push(format!(
                "--txt-record=big.example.test,{i:02}{}",
                "x".repeat(240)
            ));
        }
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian dnsmasq-base) must be installed: just deps-clients");
        // Killed on drop from here on, also when it never comes up.
        let up = Upstream { child };
        // Ready when it answers.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            let out = site.host.exec(&[
                "dig",
                "@127.0.0.1",
                "+short",
                "+time=1",
                "+tries=1",
                "a.example.test",
            ]);
            if String::from_utf8_lossy(&out.stdout).contains("192.0.2.7") {
                return up;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dnsmasq did not come up in the fake host");
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn root_other_names_are_forwarded_to_a_loopback_upstream_with_tcp_fallback() {
    let site = Site::new("fw");
    let _up = Upstream::start(&site);
    let n1 = unique_id("n1");
    let n2 = unique_id("n2");
    let web = add(
        &site,
        site.chain(&n1, bridge("10.97.0.0/24"), json!({})),
        "web",
    );
    // An internal network: no forwarding.
    let sec = add(
        &site,
        site.chain(&n2, bridge("10.98.0.0/24"), json!({"forward": false})),
        "sec",
    );

    assert_eq!(dig(&web.ns, &["a.example.test"]), vec!["192.0.2.7"]);
    assert_eq!(dig(&web.ns, &["+tcp", "b.example.test"]), vec!["192.0.2.7"]);
    // Too big for UDP: the UDP answer is truncated (TC) ...
    let udp = web.ns.exec(&[
        "dig",
        "@127.0.0.11",
        "+ignore",
        "+notcp",
        "+bufsize=1232",
        "+time=2",
        "big.example.test",
        "TXT",
    ]);
    let udp = String::from_utf8_lossy(&udp.stdout);
    assert!(udp.contains(" tc"), "no truncation flag over UDP:\n{udp}");
    // ... and dig's retry over TCP gets every record.
    assert_eq!(dig(&web.ns, &["big.example.test", "TXT"]).len(), BIG_TXT);
    // Names of our domain are never forwarded.
    assert_eq!(dig_status(&web.ns, &["nobody.dns.podman"]), "NXDOMAIN");
    // The internal network gets nothing from upstream, its own names still.
    assert_eq!(dig_status(&sec.ns, &["a.example.test"]), "REFUSED");
    assert_eq!(dig(&sec.ns, &["sec"]), vec![sec.ip()]);

    // resolv.conf is re-read when it changes: no upstream now.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&site.resolv, "# none\n").unwrap();
    assert_eq!(dig_status(&web.ns, &["c.example.test"]), "SERVFAIL");
    del(&site, &sec);
    del(&site, &web);
}

#[test]
fn root_32_parallel_adds_on_one_network_all_resolve() {
    let site = Site::new("par");
    let n1 = unique_id("n1");
    let main = bridge("10.99.0.0/24");
    let ctrs: Vec<Ctr> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..32)
            .map(|i| {
                let list = site.chain(&n1, main.clone(), json!({}));
                let site = &site;
                s.spawn(move || add(site, list, &format!("p{i}")))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(site.records().len(), 32);
    for c in &ctrs {
        assert_eq!(dig(&ctrs[0].ns, &[&c.name]), vec![c.ip()], "{}", c.name);
    }
    assert_eq!(dig(&ctrs[31].ns, &["p0"]), vec![ctrs[0].ip()]);
    for c in &ctrs {
        del(&site, c);
    }
    assert!(site.wait_daemon_gone(Duration::from_secs(10)));
    assert!(site.records().is_empty());
}

/// The inodes of the sockets listening at 127.0.0.11:53 in `ns`.
fn resolver_socket_inodes(ns: &Netns) -> Vec<String> {
    ns.exec_ok(&["ss", "-H", "-lnute"])
        .lines()
        .filter(|l| l.contains("127.0.0.11:53"))
        .filter_map(|l| l.split("ino:").nth(1))
        .filter_map(|s| s.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Whether process `pid` holds a descriptor of one of these sockets.
fn holds_socket(pid: u32, inodes: &[String]) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|l| {
            inodes
                .iter()
                .any(|i| l.to_string_lossy() == format!("socket:[{i}]"))
        })
}

#[test]
fn root_a_container_gone_without_del_is_not_kept_alive_and_gc_drops_its_record() {
    let mut site = Site::new("gone");
    site.idle_ms = 5000;
    let n1 = unique_id("n1");
    let b1 = bridge("10.90.0.0/24");
    let web = add(&site, site.chain(&n1, b1.clone(), json!({})), "web");
    let api = add(&site, site.chain(&n1, b1, json!({})), "api");
    let pid = site.daemon_pid().expect("a daemon runs");
    let inodes = resolver_socket_inodes(&api.ns);
    assert_eq!(
        inodes.len(),
        2,
        "one UDP and one TCP socket in the container"
    );
    assert!(holds_socket(pid, &inodes));

    // The runtime loses the container: its namespace goes, no DEL comes.
    integration::netns::ip(&["netns", "del", api.ns.name()]).unwrap();
    let t = Instant::now();
    while holds_socket(pid, &inodes) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !holds_socket(pid, &inodes),
        "the daemon still pins the vanished namespace"
    );
    assert_eq!(site.daemon_pid(), Some(pid));
    // Its record stays until GC, which keeps only valid attachments.
    assert_eq!(site.records().len(), 2);
    let mut gc = site.dnsname(json!({}));
    gc["cniVersion"] = json!("1.1.0");
    gc["name"] = json!(n1);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": web.id, "ifname": "eth0"}]);
    Invocation::ours("dnsname")
        .command("GC")
        .cni_path(&integration::paths::default_cni_path())
        .stdin_json(&gc)
        .in_host(&site.host)
        .run()
        .expect_ok_silent();
    assert_eq!(site.records().len(), 1);
    assert_eq!(dig_status(&web.ns, &["api.dns.podman"]), "NXDOMAIN");
    assert_eq!(dig(&web.ns, &["web"]), vec![web.ip()]);

    // A record written without telling the daemon (a plugin killed in
    // between) is picked up by its sweep, and dropped when its file goes.
    let mut ghost: Value =
        serde_json::from_slice(&std::fs::read(&site.records()[0]).unwrap()).unwrap();
    ghost["containerID"] = json!("ghost");
    ghost["names"] = json!(["ghost"]);
    ghost["addresses"] = json!(["10.90.0.99"]);
    let file = site.records()[0].with_file_name("ghost-eth0.json");
    std::fs::write(&file, serde_json::to_vec(&ghost).unwrap()).unwrap();
    let wait_for = |status: &str| {
        let t = Instant::now();
        while dig_status(&web.ns, &["ghost.dns.podman"]) != status {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "ghost never became {status}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("NOERROR");
    assert_eq!(dig(&web.ns, &["ghost"]), vec!["10.90.0.99"]);
    std::fs::remove_file(&file).unwrap();
    wait_for("NXDOMAIN");
    del(&site, &web);
    assert!(site.records().is_empty());
}

/// Sends hostile packets to 127.0.0.11 from inside a container: prints, per
/// packet, the reply's rcode (or "none").
const HOSTILE_CLIENT: &str = r#"
import socket, struct
def q(name, qtype=1, id=0x4242):
    h = struct.pack(">HHHHHH", id, 0x0100, 1, 0, 0, 0)
    b = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return h + b + struct.pack(">HH", qtype, 1)
good = q("web.dns.podman")
cases = [b"", b"\x12\x34\x01", good[:-3], good + b"\xff" * 60000,
         bytes([good[0], good[1], good[2] | 0x80]) + good[3:],
         struct.pack(">HHHHHH", 7, 0x0100, 40, 0, 0, 0) + b"\x00" * 40,
         good[:2] + b"\x28\x00" + good[4:]]
for c in cases:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
    s.sendto(c, ("127.0.0.11", 53))
    try:
        r = s.recv(65535); print("rcode", r[3] & 15)
    except socket.timeout:
        print("none")
t = socket.create_connection(("127.0.0.11", 53)); t.sendall(b"\xff\xff" + b"\x00" * 100); t.close()
t = socket.create_connection(("127.0.0.11", 53)); t.sendall(b"\x00"); t.close()
"#;

#[test]
fn root_malformed_truncated_and_oversized_queries_get_an_error_or_nothing() {
    let site = Site::new("bad");
    let n1 = unique_id("n1");
    let web = add(
        &site,
        site.chain(&n1, bridge("10.88.0.0/24"), json!({})),
        "web",
    );
    let pid = site.daemon_pid().unwrap();
    let out = web.ns.exec_ok(&["python3", "-c", HOSTILE_CLIENT]);
    let lines: Vec<&str> = out.lines().collect();
    // FORMERR (1) or NOTIMP (4) or silence; never an answer to a response.
    assert_eq!(lines.len(), 7, "{out}");
    for (i, l) in lines.iter().enumerate() {
        assert!(
            ["none", "rcode 1", "rcode 4"].contains(l),
            "case {i}: {l}\n{out}"
        );
    }
    assert_eq!(lines[0], "none", "an empty datagram is not answered");
    assert_eq!(lines[4], "none", "a response is never answered");
    assert_eq!(lines[2], "rcode 1", "a truncated query gets FORMERR");
    assert_eq!(lines[3], "rcode 1", "an oversized query gets FORMERR");
    // Still alive and answering.
    assert_eq!(site.daemon_pid(), Some(pid));
    assert_eq!(dig(&web.ns, &["web"]), vec![web.ip()]);
    del(&site, &web);
}

#[test]
fn root_dual_stack_containers_answer_a_aaaa_and_both_ptrs() {
    let site = Site::new("ds");
    let n1 = unique_id("n1");
    let main = json!({"type": "bridge", "bridge": unique_ifname("dbr"), "isGateway": true,
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.87.0.0/24"}],
                                                                [{"subnet": "fd00:87::/64"}]]}});
    let web = add(&site, site.chain(&n1, main.clone(), json!({})), "web");
    let api = add(&site, site.chain(&n1, main, json!({})), "api");
    let v6 = |c: &Ctr| -> String {
        c.result["ips"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["address"].as_str())
            .find(|a| a.contains(':'))
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(dig(&api.ns, &["web", "A"]), vec![web.ip()]);
    assert_eq!(dig(&api.ns, &["web.dns.podman", "AAAA"]), vec![v6(&web)]);
    assert_eq!(
        dig(&web.ns, &["-x", &v6(&api)]),
        vec!["api.dns.podman.".to_string()]
    );
    check(&site, &web).unwrap();
    del(&site, &api);
    del(&site, &web);
}

#[test]
fn root_a_container_on_two_networks_resolves_the_names_of_both() {
    let site = Site::new("two");
    let (n1, n2) = (unique_id("n1"), unique_id("n2"));
    let (b1, b2) = (bridge("10.86.0.0/24"), bridge("10.85.0.0/24"));
    let front = add(&site, site.chain(&n1, b1.clone(), json!({})), "front");
    let back = add(&site, site.chain(&n2, b2.clone(), json!({})), "back");
    // "both" joins n1 on eth0, then n2 on eth1, in one namespace.
    let both = add(&site, site.chain(&n1, b1, json!({})), "both");
    // No loopback in this chain: its DEL would take `lo` (and with it
    // 127.0.0.11) down while the container still has eth0.
    let mut l2 = site.chain(&n2, b2, json!({}));
    l2.plugins.remove(1);
    let r2 = Attachment::new(&site.host, &both.ns, &both.id, "eth1")
        .with_env("CNI_ARGS", "K8S_POD_NAME=both")
        .with_env("CNI_RS_DNS_RESOLV_CONF", &site.resolv.display().to_string())
        .add(&l2)
        .unwrap();
    assert_eq!(dig(&both.ns, &["front"]), vec![front.ip()]);
    assert_eq!(dig(&both.ns, &["back"]), vec![back.ip()]);
    // The others see only their own network's address of "both".
    assert_eq!(dig(&front.ns, &["both"]), vec![both.ip()]);
    let both_on_n2 = r2["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(dig(&back.ns, &["both"]), vec![both_on_n2.to_string()]);
    assert_eq!(dig_status(&front.ns, &["back.dns.podman"]), "NXDOMAIN");
    Attachment::new(&site.host, &both.ns, &both.id, "eth1")
        .del(&l2, Some(&r2))
        .unwrap();
    assert_eq!(dig_status(&both.ns, &["back.dns.podman"]), "NXDOMAIN");
    assert_eq!(dig(&both.ns, &["front"]), vec![front.ip()]);
    for c in [&both, &back, &front] {
        del(&site, c);
    }
}
