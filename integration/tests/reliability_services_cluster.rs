//! Services across hosts under hostile input and crashes: bad names,
//! replica counts, constraints and ports through cnitool; malformed and
//! oversized requests on the daemon's control socket; a `service create`
//! whose cnitool is killed midway; a daemon killed with -9 while its agent
//! places tasks. Each time the daemon must answer an error (or close) and
//! keep serving, and what was refused or removed must leave nothing: no
//! sandbox, rule, mesh address, lease or etcd key. Two fake hosts on one
//! underlay, etcd inside the first. All tests need root.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration::cluster::{wait_until, Cluster, Overlay, Site};
use integration::cnitool::{delete_named_netns, named_netns_with_prefix};
use integration::etcd::EtcdCluster;
use integration::{our_binary, unique_id};
use serde_json::{json, Value};

const SUBNET: &str = "10.78.0.0/24";

/// Two clustered hosts and one overlay; every service named through
/// [`Pair::name`] is removed (and its sandboxes) on drop.
struct Pair<'a> {
    etcd: &'a EtcdCluster,
    sites: Vec<Site<'a>>,
    net: String,
    vni: u64,
    names: std::cell::RefCell<Vec<String>>,
}

impl<'a> Pair<'a> {
    /// Two hosts of a fresh cluster (names after `tag`), both joined.
    fn start(tag: &str) -> Cluster {
        Cluster::build(tag).hosts(2).start()
    }

    fn new(c: &'a Cluster) -> Pair<'a> {
        let sites = c.joined(0..2);
        let Overlay { net, vni } = Overlay::create(&sites, "rsc", SUBNET);
        Pair {
            etcd: &c.etcd,
            sites,
            net,
            vni,
            names: Default::default(),
        }
    }

    fn name(&self, tag: &str) -> String {
        let n = unique_id(tag);
        self.names.borrow_mut().push(n.clone());
        n
    }

    /// `service create NAME --network <the overlay> ARGS...`, as cnitool's
    /// arguments.
    fn create_args<'s>(&'s self, name: &'s str, args: &[&'s str]) -> Vec<&'s str> {
        let mut all = vec!["service", "create", name, "--network", &self.net];
        all.extend_from_slice(args);
        all
    }

    fn socket(&self, i: usize) -> PathBuf {
        self.sites[i].dir.join("daemon").join("daemon.sock")
    }

    fn ruleset(&self, i: usize) -> String {
        let out = self.sites[i].host.exec(&["nft", "-s", "list", "ruleset"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn bridge_has_address(&self, i: usize) -> bool {
        let dev = format!("vxbr{}", self.vni);
        let out = self.sites[i]
            .host
            .exec(&["ip", "-4", "-o", "addr", "show", "dev", &dev]);
        out.status.success() && !out.stdout.is_empty()
    }

    /// The service's tasks as `inspect` shows them (running and pending ones).
    fn tasks(&self, name: &str) -> Vec<Value> {
        let out = self.sites[0].ok(&["service", "inspect", name]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["Tasks"].as_array().cloned().unwrap_or_default()
    }

    /// Nothing of `name` (service ID `id`, if known) anywhere: no store
    /// key, no sandbox, no rule, no VIP or task lease.
    fn assert_nothing_of(&self, name: &str, id: Option<&str>) {
        let left: Vec<(String, String)> = self
            .etcd
            .get_prefix("/cni-rs/")
            .into_iter()
            .filter(|(k, v)| {
                k.contains(name) || v.contains(name) || id.is_some_and(|id| v.contains(id))
            })
            .collect();
        assert!(left.is_empty(), "keys of {name} left: {left:?}");
        assert!(
            named_netns_with_prefix(&format!("{name}.")).is_empty(),
            "sandboxes of {name} left"
        );
        for (i, s) in self.sites.iter().enumerate() {
            let rules = self.ruleset(i);
            assert!(!rules.contains(&format!("[{name}]")), "{}: {rules}", s.name);
            if let Some(id) = id {
                assert!(!rules.contains(&format!("svc_{id}")), "{}: {rules}", s.name);
            }
            let dir = s.dir.join("daemon").join("cluster-ipam").join(&self.net);
            for e in std::fs::read_dir(&dir).into_iter().flatten() {
                let body = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
                assert!(
                    !body.contains(name) && !id.is_some_and(|id| body.contains(id)),
                    "{}: lease of {name} left: {body}",
                    s.name
                );
            }
        }
    }
}

impl Drop for Pair<'_> {
    fn drop(&mut self) {
        for name in self.names.borrow().iter() {
            let _ = self.sites[0].cnitool(&["service", "rm", name]);
            delete_named_netns(&named_netns_with_prefix(&format!("{name}.")));
        }
    }
}

/// One raw request line (or any bytes) on a control socket: the reply
/// line, or None when the daemon closed the connection without one.
fn raw(sock: &PathBuf, bytes: &[u8]) -> Option<Value> {
    let mut s = UnixStream::connect(sock).expect("the daemon's socket");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // A daemon that closes early may refuse the rest of a long write.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut line = String::new();
    match BufReader::new(&s).read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(serde_json::from_str(&line).expect("a JSON reply line")),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("no answer from the daemon: {e}"),
    }
}

fn cluster_req(req: Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(&json!({"op": "cluster", "req": req})).unwrap();
    b.push(b'\n');
    b
}

/// A refused cnitool call: exit 1 (not a panic), the message on stderr.
fn refused(out: &std::process::Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "wanted {want:?} in: {err}");
}

#[test]
fn root_hostile_cluster_service_requests_are_refused_and_leave_nothing() {
    let c = Pair::start("rsh");
    let p = Pair::new(&c);
    let net = p.net.clone();
    let create = |name: &str, extra: &[&str]| p.sites[0].cnitool(&p.create_args(name, extra));

    // Names: a path, 300 characters, unicode, a dot.
    let long = "x".repeat(300);
    for bad in ["../x", long.as_str(), "wéb", "a.b", "x-"] {
        refused(&create(bad, &[]), "InvalidArgument");
    }
    // Replica counts: bounded, never placed.
    let ok_name = p.name("ok");
    refused(
        &create(&ok_name, &["--replicas", "100000"]),
        "at most 1000 replicas",
    );
    refused(&create(&ok_name, &["--replicas=-1"]), "invalid argument");
    // Constraints: Docker's grammar, one key.
    for c in [
        "node.hostname=h1",
        "node.role==manager",
        "node.hostname==",
        "==h1",
        "",
    ] {
        refused(&create(&ok_name, &["--constraint", c]), "constraint");
    }
    // Ports: duplicates, out of range, zero, a bad protocol; -p on dnsrr.
    refused(
        &create(&ok_name, &["-p", "8080:80", "-p", "8080:81"]),
        "duplicate published ports",
    );
    for bad in ["70000:80", "0:80", "8080:0", "8080:80/sctp", "x:80"] {
        refused(&create(&ok_name, &["-p", bad]), "--publish");
    }
    refused(
        &create(&ok_name, &["--endpoint-mode", "dnsrr", "-p", "8080:80"]),
        "dnsrr",
    );
    // Scale: unknown service, a huge count.
    refused(
        &p.sites[1].cnitool(&["service", "scale", &format!("{ok_name}=100000")]),
        "at most 1000 replicas",
    );
    refused(
        &p.sites[1].cnitool(&["service", "scale", "nosuch=2"]),
        "No such service",
    );

    // Raw requests on the control socket: each answered with an error
    // (or the connection closed), and the daemon keeps serving.
    let sock = p.socket(0);
    for junk in [
        &b"not json\n"[..],
        b"{\"op\":\"cluster\"}\n",
        b"{\"op\":\"cluster\",\"req\":{\"verb\":\"serviceCreate\",\"spec\":42}}\n",
        b"{\"op\":\"cluster\",\"req\":{\"verb\":\"serviceScale\",\"name\":\"x\",\"replicas\":-1}}\n",
        b"[]\n",
    ] {
        let r = raw(&sock, junk).expect("an answer to a malformed line");
        assert_eq!(r["ok"], false, "{r}");
    }
    // Oversized: 1 MiB on one line, and 8 MiB without a newline.
    let mut big = vec![b'{'; 1 << 20];
    big.push(b'\n');
    if let Some(r) = raw(&sock, &big) {
        assert_eq!(r["ok"], false, "{r}");
    }
    let _ = raw(&sock, &vec![b'a'; 8 << 20]);
    // Not UTF-8.
    let _ = raw(&sock, b"\xff\xfe\xfd\n");
    // Well-formed JSON the CLI never sends: the daemon checks it itself.
    let spec = |name: &str, replicas: u64, ports: Value, constraints: Value, mode: &str| {
        cluster_req(json!({"verb": "serviceCreate", "spec": {
            "name": name, "network": net, "networkId": "x", "replicas": replicas,
            "endpointMode": mode, "ports": ports, "constraints": constraints}}))
    };
    let raw_name = p.name("raw");
    for (req, want) in [
        (
            spec("../x", 1, json!([]), json!([]), "vip"),
            "InvalidArgument",
        ),
        (
            spec(&raw_name, 100_000, json!([]), json!([]), "vip"),
            "at most",
        ),
        (
            spec(&raw_name, u64::MAX, json!([]), json!([]), "vip"),
            "at most",
        ),
        (
            spec(&raw_name, 1, json!([[0, 80, "tcp"]]), json!([]), "vip"),
            "port",
        ),
        (
            spec(&raw_name, 1, json!([[8080, 0, "tcp"]]), json!([]), "vip"),
            "port",
        ),
        (
            spec(&raw_name, 1, json!([[8080, 80, "tcp"]]), json!([]), "dnsrr"),
            "dnsrr",
        ),
        (
            spec(&raw_name, 1, json!([]), json!(["node.hostname~h1"]), "vip"),
            "constraint",
        ),
        (
            cluster_req(json!({"verb": "serviceScale", "name": raw_name, "replicas": u64::MAX})),
            "at most",
        ),
    ] {
        let r = raw(&sock, &req).expect("an answer");
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["code"], 7, "{r}");
        assert!(r["error"].as_str().unwrap_or("").contains(want), "{r}");
    }

    // Still serving: a ping, and a real service comes and goes.
    let r = raw(&sock, b"{\"op\":\"ping\"}\n").expect("a pong");
    assert_eq!(r["ok"], true, "{r}");
    p.sites[0].ok(&p.create_args(&ok_name, &["--replicas", "0"]));
    assert!(p.sites[1].ok(&["service", "ls"]).contains(&ok_name));
    p.sites[1].ok(&["service", "rm", &ok_name]);

    for n in ["../x", "wéb", "a.b", &raw_name, &ok_name] {
        p.assert_nothing_of(n, None);
    }
    assert!(c.etcd.get_prefix("/cni-rs/ports/").is_empty());
    assert!(c.etcd.get_prefix("/cni-rs/services/").is_empty());
    assert!(c.etcd.get_prefix("/cni-rs/tasks/").is_empty());
}

#[test]
fn root_a_create_whose_cnitool_is_killed_is_removed_by_rm_and_the_name_is_free_again() {
    let c = Pair::start("rsk");
    let p = Pair::new(&c);
    let name = p.name("cut");

    // cnitool killed once the service is in the store, its tasks starting.
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", p.sites[0].host.path_str()))
        .arg(our_binary("cnitool"))
        .args(p.create_args(&name, &["--replicas", "4", "-p", "8383:80"]))
        .envs(p.sites[0].envs())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the service in the store", Duration::from_secs(20), || {
        !c.etcd
            .get_prefix(&format!("/cni-rs/tasks/{name}/"))
            .is_empty()
    });
    child.kill().unwrap();
    let _ = child.wait();

    // rm from the other host takes everything away.
    let out = p.sites[1].ok(&["service", "rm", &name]);
    assert_eq!(out.trim(), name);
    wait_until("the sandboxes gone", Duration::from_secs(20), || {
        named_netns_with_prefix(&format!("{name}.")).is_empty()
    });
    for i in 0..2 {
        wait_until("the mesh gone", Duration::from_secs(20), || {
            !p.bridge_has_address(i)
        });
    }
    p.assert_nothing_of(&name, None);
    assert!(c.etcd.get_prefix("/cni-rs/ports/").is_empty());

    // The name is free again, and the new service stays: the first
    // create's daemon side, still waiting for its tasks, must not undo it.
    let out = p.sites[0].ok(&p.create_args(&name, &["--replicas", "1", "-p", "8383:80"]));
    let id = out.lines().next().unwrap_or_default().to_string();
    // Longer than the daemon waits for a create's tasks (60 s).
    std::thread::sleep(Duration::from_secs(65));
    assert_eq!(p.tasks(&name).len(), 1, "{}", p.sites[0].daemon_log());
    assert!(!c.etcd.get_prefix("/cni-rs/ports/").is_empty());
    p.sites[0].ok(&["service", "rm", &name]);
    p.assert_nothing_of(&name, Some(&id));
}

#[test]
fn root_a_daemon_killed_while_placing_tasks_converges_without_duplicates() {
    let c = Pair::start("rs9");
    let p = Pair::new(&c);
    let name = p.name("k9");
    let out = p.sites[0].ok(&p.create_args(
        &name,
        &["-p", "8484:80", "--constraint", "node.hostname==h1"],
    ));
    let id = out.lines().next().unwrap().to_string();

    // Scale to 8 from h0; h1's agent starts the new tasks one by one, and
    // its daemon is killed once some but not all run.
    let mut scale = Command::new("nsenter")
        .arg(format!("--net={}", p.sites[0].host.path_str()))
        .arg(our_binary("cnitool"))
        .args(["service", "scale", &format!("{name}=8")])
        .envs(p.sites[0].envs())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = p.sites[1].daemon_pid().expect("h1's daemon");
    wait_until("tasks starting on h1", Duration::from_secs(30), || {
        named_netns_with_prefix(&format!("{name}.")).len() >= 3
    });
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    // Gone (a zombie has no exe); a plugin the agent had started may
    // already have started the next daemon on demand.
    wait_until("h1's daemon gone", Duration::from_secs(30), || {
        p.sites[1].daemon_pid() != Some(pid)
    });

    // The next call starts it again; the tasks converge to 8, one sandbox
    // and one address each, none failed.
    p.sites[1].ok(&["service", "ls"]);
    wait_until("8 tasks running", Duration::from_secs(60), || {
        p.tasks(&name).len() == 8
    });
    // The scale's own wait (on h0's daemon) ends with it.
    let _ = scale.wait();
    let tasks = p.tasks(&name);
    let mut addrs: Vec<String> = tasks
        .iter()
        .map(|t| t["Addresses"][0].as_str().unwrap().to_string())
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 8, "one address per task: {tasks:?}");
    let failed: Vec<(String, String)> = c
        .etcd
        .get_prefix(&format!("/cni-rs/tasks/{name}/"))
        .into_iter()
        .filter(|(_, v)| v.contains("\"error\""))
        .collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", p.sites[1].daemon_log());
    let mut sandboxes = named_netns_with_prefix(&format!("{name}."));
    sandboxes.sort();
    let mut want: Vec<String> = tasks
        .iter()
        .map(|t| t["Name"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(sandboxes, want, "one sandbox per task, no other");
    let leases = std::fs::read_dir(p.sites[1].dir.join("daemon/cluster-ipam").join(&p.net))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|b| b.contains(&format!("{name}.")))
        .count();
    assert_eq!(leases, 8, "one lease per task on h1");

    // rm leaves nothing on either host.
    p.sites[0].ok(&["service", "rm", &name]);
    wait_until("the sandboxes gone", Duration::from_secs(20), || {
        named_netns_with_prefix(&format!("{name}.")).is_empty()
    });
    for i in 0..2 {
        wait_until("the mesh gone", Duration::from_secs(20), || {
            !p.bridge_has_address(i)
        });
    }
    p.assert_nothing_of(&name, Some(&id));
    assert!(c
        .etcd
        .get_prefix(&format!("/cni-rs/endpoints/{}/", p.net))
        .is_empty());
    p.sites[1].ok(&["network", "rm", &p.net]);
}

#[test]
fn root_tasks_of_a_host_that_leaves_are_placed_on_the_others() {
    let c = Pair::start("rsl");
    let p = Pair::new(&c);
    let name = p.name("lv");
    let out = p.sites[0].ok(&p.create_args(&name, &["--replicas", "2", "-p", "8585:80"]));
    let id = out.lines().next().unwrap().to_string();
    let hosts = |ts: &[Value]| -> Vec<String> {
        let mut h: Vec<String> = ts
            .iter()
            .map(|t| t["NodeID"].as_str().unwrap().to_string())
            .collect();
        h.sort();
        h
    };
    assert_eq!(hosts(&p.tasks(&name)), ["h0", "h1"]);

    // h1 leaves with its task: the task is placed again on h0 (swarm's
    // node leave), not left in the store on a host that is no member.
    p.sites[1].ok(&["cluster", "leave", "--force"]);
    assert!(!p.bridge_has_address(1), "h1's mesh goes with it");
    assert!(!p.ruleset(1).contains(&format!("svc_{id}")));
    wait_until("both tasks on h0", Duration::from_secs(20), || {
        hosts(&p.tasks(&name)) == ["h0", "h0"]
    });
    let tasks = p.tasks(&name);
    let mut sandboxes = named_netns_with_prefix(&format!("{name}."));
    sandboxes.sort();
    let mut want: Vec<String> = tasks
        .iter()
        .map(|t| t["Name"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(sandboxes, want, "one sandbox per task, none of h1's left");
    let stale: Vec<(String, String)> = c
        .etcd
        .get_prefix(&format!("/cni-rs/tasks/{name}/"))
        .into_iter()
        .filter(|(_, v)| v.contains("\"host\":\"h1\""))
        .collect();
    assert!(stale.is_empty(), "{stale:?}");

    p.sites[0].ok(&["service", "rm", &name]);
    wait_until("the mesh gone", Duration::from_secs(20), || {
        !p.bridge_has_address(0)
    });
    p.assert_nothing_of(&name, Some(&id));
}

#[test]
fn root_more_replicas_than_the_subnet_holds_fail_and_leave_nothing() {
    let c = Pair::start("rsx");
    let p = Pair::new(&c);
    let name = p.name("big");
    // 300 tasks on a /24: the cluster IPAM runs out; the create fails,
    // takes back what it made, and the daemons kept answering meanwhile.
    let out = p.sites[0].cnitool(&p.create_args(&name, &["--replicas", "300"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed"), "{err}");
    for i in 0..2 {
        let r = raw(&p.socket(i), b"{\"op\":\"ping\"}\n").expect("a pong");
        assert_eq!(r["ok"], true, "{r}");
    }
    wait_until("the sandboxes gone", Duration::from_secs(120), || {
        named_netns_with_prefix(&format!("{name}.")).is_empty()
    });
    for i in 0..2 {
        wait_until("the mesh gone", Duration::from_secs(30), || {
            !p.bridge_has_address(i)
        });
    }
    p.assert_nothing_of(&name, None);
    assert!(c.etcd.get_prefix("/cni-rs/services/").is_empty());
    assert!(c.etcd.get_prefix("/cni-rs/tasks/").is_empty());
}
