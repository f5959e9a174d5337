//! Services on one host (`cnitool service ...`): tasks are sandboxes on a
//! bridge network chained with `dnsname`, each running a small server that
//! greets with its task name; a client sandbox on the same network calls
//! the service by name through the resolver. Every test runs inside a fake
//! host with private config, cache, lease and resolver folders.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use integration::cnitool::{delete_named_netns, named_netns_with_prefix, CnitoolEnv};
use integration::netns::unique_ifname;
use integration::outside::{Outside, HOST_ADDR};
use integration::services::{in_netns, spread, tasks_of, Held, NameServer, Task};
use integration::{require_root, unique_id, FakeHost};
use serde_json::{json, Value};

const SUBNET: &str = "10.90.0.0/24";

struct World {
    servers: RefCell<Vec<NameServer>>,
    services: RefCell<Vec<String>>,
    sandboxes: RefCell<Vec<String>>,
    env: CnitoolEnv,
    host: FakeHost,
    net: String,
    bridge: String,
}

impl World {
    fn new(tag: &str) -> World {
        require_root();
        let env = CnitoolEnv::new(tag);
        let net = unique_id(tag);
        let bridge = unique_ifname("sbr");
        let list = json!({"cniVersion": "1.0.0", "name": net, "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": env.ipam_dir()}},
            {"type": "dnsname", "domainName": "dns.podman", "capabilities": {"aliases": true}}]});
        std::fs::create_dir_all(env.conf_dir()).unwrap();
        std::fs::write(
            env.conf_dir().join(format!("{net}.conflist")),
            serde_json::to_vec_pretty(&list).unwrap(),
        )
        .unwrap();
        World {
            servers: Default::default(),
            services: Default::default(),
            sandboxes: Default::default(),
            host: FakeHost::new(tag),
            env,
            net,
            bridge,
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.env.ok(&self.host, args)
    }

    fn fails(&self, args: &[&str]) -> String {
        self.env.fails(&self.host, args)
    }

    /// `service create NAME --network NET EXTRA...`; returns the name.
    fn create(&self, tag: &str, extra: &[&str]) -> String {
        let name = unique_id(tag);
        let mut args = vec!["service", "create", "-d", &name, "--network", &self.net];
        args.extend_from_slice(extra);
        self.services.borrow_mut().push(name.clone());
        let out = self.ok(&args);
        let id = out.lines().next().unwrap_or_default();
        assert_eq!(id.len(), 25, "service ID like Docker's: {out}");
        name
    }

    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["service", "inspect", name])).unwrap();
        v[0].clone()
    }

    fn tasks(&self, name: &str) -> Vec<Task> {
        tasks_of(&self.inspect(name))
    }

    fn vip(&self, name: &str) -> Ipv4Addr {
        let v = self.inspect(name)["Endpoint"]["VirtualIPs"][0]["Addr"]
            .as_str()
            .unwrap()
            .to_string();
        v.split('/').next().unwrap().parse().unwrap()
    }

    /// A greeting server on port 80 in every task.
    fn serve(&self, tasks: &[Task]) {
        for t in tasks {
            self.servers
                .borrow_mut()
                .push(NameServer::in_task(&t.name).unwrap());
        }
    }

    /// A client sandbox attached to the network (with the resolver).
    fn client(&self, tag: &str) -> (String, File) {
        let name = unique_id(tag);
        self.ok(&["sandbox", "create", &name]);
        self.sandboxes.borrow_mut().push(name.clone());
        self.ok(&["network", "connect", &self.net, &name]);
        let f = File::open(format!("/var/run/netns/{name}")).unwrap();
        (name, f)
    }

    /// `dig @127.0.0.11 +short` from a sandbox, in answer order.
    fn dig(&self, sandbox: &str, name: &str) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", sandbox, "dig", "@127.0.0.11", "+short"])
            .args(["+time=2", "+tries=2", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_string)
            .collect()
    }

    fn dig_status(&self, sandbox: &str, name: &str) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", sandbox, "dig", "@127.0.0.11"])
            .args(["+time=2", "+tries=2", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("no answer")
            .to_string()
    }

    /// The ruleset without counter values (stray packets change those).
    fn nat_ruleset(&self) -> String {
        String::from_utf8_lossy(&self.host.exec(&["nft", "-s", "list", "ruleset"]).stdout)
            .into_owned()
    }

    /// After `service rm`: no rule, map, address, lease, record, name,
    /// sandbox or cache entry of the service is left.
    fn assert_nothing_left(&self, name: &str, id: &str, vip: Option<Ipv4Addr>, client: &str) {
        let rules = self.nat_ruleset();
        assert!(
            !rules.contains(&format!("svc_{id}")) && !rules.contains(&format!("[{name}]")),
            "{rules}"
        );
        assert!(!rules.contains("chain services"), "{rules}");
        if let Some(v) = vip {
            let addrs = self
                .host
                .ip_ok(&["-4", "addr", "show", "dev", &self.bridge]);
            assert!(!addrs.contains(&format!("{v}/32")), "{addrs}");
        }
        let leases = self.env.ipam_dir().join(&self.net);
        for e in std::fs::read_dir(&leases).unwrap() {
            let e = e.unwrap();
            let body = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert!(
                !body.contains(id) && !body.contains(&format!("{name}.")),
                "lease {:?} left: {body}",
                e.file_name()
            );
        }
        let records = self.env.dns_dir().join("records").join(&self.net);
        for e in std::fs::read_dir(&records).into_iter().flatten() {
            let f = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !f.contains(id) && !f.starts_with(&format!("{name}.")),
                "record {f}"
            );
        }
        // Bare names we do not know go upstream (none here: SERVFAIL);
        // under our domain they are NXDOMAIN.
        assert!(self.dig(client, name).is_empty());
        for n in [name.to_string(), format!("tasks.{name}")] {
            assert_eq!(
                self.dig_status(client, &format!("{n}.dns.podman")),
                "NXDOMAIN"
            );
        }
        assert!(named_netns_with_prefix(&format!("{name}.")).is_empty());
        let cache = std::fs::read_dir(self.env.cache_dir().join("results"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(&format!("{name}.")))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(cache, 0, "cached results of tasks left");
        assert!(!self.ok(&["service", "ls"]).contains(name));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.servers.borrow_mut().clear();
        for s in self.services.borrow().iter() {
            let _ = self.env.run(&self.host, &["service", "rm", s]);
            delete_named_netns(&named_netns_with_prefix(&format!("{s}.")));
        }
        for s in self.sandboxes.borrow().iter() {
            let _ = self.env.run(&self.host, &["sandbox", "rm", s]);
        }
        delete_named_netns(&self.sandboxes.borrow());
    }
}

fn id_of(w: &World, name: &str) -> String {
    w.inspect(name)["ID"].as_str().unwrap().to_string()
}

#[test]
fn root_vip_spreads_connections_over_tasks_and_names_resolve() {
    let w = World::new("svcvip");
    let name = w.create("web", &["--replicas", "3"]);
    let tasks = w.tasks(&name);
    assert_eq!(tasks.len(), 3);
    for (i, t) in tasks.iter().enumerate() {
        assert!(
            t.name.starts_with(&format!("{name}.{}.", i + 1)),
            "{}",
            t.name
        );
    }
    w.serve(&tasks);
    let vip = w.vip(&name);
    let (client, cns) = w.client("cli");

    // Names: the service is its VIP, tasks.NAME its tasks, a task itself.
    assert_eq!(w.dig(&client, &name), vec![vip.to_string()]);
    let mut want: Vec<String> = tasks.iter().map(|t| t.addr.to_string()).collect();
    want.sort();
    let mut got = w.dig(&client, &format!("tasks.{name}"));
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        w.dig(&client, &tasks[1].name),
        vec![tasks[1].addr.to_string()]
    );

    // 300 connections to the resolved name: every task gets at least 20%.
    let resolved: Ipv4Addr = w.dig(&client, &name)[0].parse().unwrap();
    let counts = spread(&cns, SocketAddr::from((resolved, 80)), 300);
    assert_eq!(counts.len(), 3, "{counts:?}");
    for t in &tasks {
        let c = counts.get(&t.name).copied().unwrap_or(0);
        assert!(c >= 60, "{} got {c} of 300: {counts:?}", t.name);
    }

    // Each connection stays with one task: greeting and echoes agree.
    in_netns(&cns, move || {
        for _ in 0..9 {
            let mut h = Held::open(SocketAddr::from((vip, 80))).unwrap();
            for i in 0..5 {
                assert!(h.echo(&format!("{} {i}", h.name)).unwrap());
            }
        }
    });

    // A task reaches its own VIP (hairpin through the host), itself included,
    // on a network whose bridge plugin does not set hairpin mode.
    let t0 = File::open(format!("/var/run/netns/{}", tasks[0].name)).unwrap();
    let from_task = spread(&t0, SocketAddr::from((vip, 80)), 6);
    assert!(from_task.contains_key(&tasks[0].name), "{from_task:?}");

    let id = id_of(&w, &name);
    assert!(w.nat_ruleset().contains(&format!("map @svc_{id}")));
    assert_eq!(w.ok(&["service", "rm", &name]).trim(), name);
    w.assert_nothing_left(&name, &id, Some(vip), &client);
}

#[test]
fn root_dnsrr_returns_every_task_address_shuffled() {
    let w = World::new("svcrr");
    let name = w.create("rr", &["--replicas", "3", "--endpoint-mode", "dnsrr"]);
    let tasks = w.tasks(&name);
    assert!(w.inspect(&name)["Endpoint"].get("VirtualIPs").is_none());
    let (client, _) = w.client("cli");
    let mut want: Vec<String> = tasks.iter().map(|t| t.addr.to_string()).collect();
    want.sort();
    let mut orders = BTreeSet::new();
    for _ in 0..12 {
        let got = w.dig(&client, &name);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want);
        orders.insert(got);
    }
    assert!(orders.len() > 1, "always the same order: {orders:?}");
    let id = id_of(&w, &name);
    w.ok(&["service", "rm", &name]);
    w.assert_nothing_left(&name, &id, None, &client);
}

#[test]
fn root_scaling_down_spares_the_remaining_task_and_its_connections() {
    let w = World::new("svcscale");
    let name = w.create("sc", &["--replicas", "3"]);
    let tasks = w.tasks(&name);
    w.serve(&tasks);
    let vip = w.vip(&name);
    let (client, cns) = w.client("cli");
    let keep = tasks[0].name.clone();
    let target = SocketAddr::from((vip, 80));
    // An established connection to the task that stays.
    let held = in_netns(&cns, move || {
        (0..30)
            .map(|_| Held::open(target).unwrap())
            .find(|h| h.name == keep)
    });
    let mut held = held.expect("no connection reached slot 1 in 30 tries");
    // UDP "connections" to every task (nothing listens: the entries exist
    // all the same, each answered, in conntrack's view, by its task).
    in_netns(&cns, move || {
        for _ in 0..3 {
            let u = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            u.send_to(b"x", SocketAddr::from((vip, 9999))).unwrap();
        }
    });
    let udp_to = |addr: &Ipv4Addr| {
        let table = w.host.exec_ok(&["cat", "/proc/net/nf_conntrack"]);
        table
            .lines()
            .filter(|l| l.contains(" udp ") && l.contains(&format!("src={addr} dst=10.90.0.1 ")))
            .count()
    };
    assert!(
        tasks.iter().all(|t| udp_to(&t.addr) == 1),
        "a UDP flow per task"
    );

    let out = w.ok(&["service", "scale", &format!("{name}=1")]);
    assert!(out.starts_with(&format!("{name} scaled to 1")), "{out}");
    assert_eq!(w.tasks(&name).len(), 1);
    for t in &tasks[1..] {
        assert!(!PathBuf::from("/var/run/netns").join(&t.name).exists());
    }
    assert!(
        held.echo("still here").unwrap(),
        "the established connection broke"
    );
    // The removed tasks' UDP flows are gone, the remaining task's stays.
    assert_eq!(udp_to(&tasks[0].addr), 1);
    assert_eq!(udp_to(&tasks[1].addr) + udp_to(&tasks[2].addr), 0);
    let counts = spread(&cns, target, 60);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        vec![&tasks[0].name],
        "{counts:?}"
    );
    assert_eq!(
        w.dig(&client, &format!("tasks.{name}")),
        vec![tasks[0].addr.to_string()]
    );
    assert!(w.nat_ruleset().contains("numgen inc mod 1"));
    assert!(held.echo("and still").unwrap());
    assert!(w.ok(&["service", "ls"]).contains("1/1"));
}

#[test]
fn root_published_port_reaches_every_task_from_outside() {
    let w = World::new("svcpub");
    let name = w.create("pub", &["--replicas", "3", "-p", "8080:80"]);
    let tasks = w.tasks(&name);
    w.serve(&tasks);
    // An outside namespace (the load balancer) on a veth into the host.
    let lb = Outside::new(&w.host, "svclb");
    w.host.set_ip_forward(true);
    let lbf = lb.open().unwrap();
    let published = SocketAddr::from((HOST_ADDR.parse::<Ipv4Addr>().unwrap(), 8080));
    let counts = spread(&lbf, published, 60);
    assert_eq!(counts.len(), 3, "{counts:?}");
    // The host's own connections to its address too.
    let hf = w.host.open().unwrap();
    assert_eq!(spread(&hf, published, 3).values().sum::<usize>(), 3);
    // And its 127.0.0.1.
    let local = spread(&hf, "127.0.0.1:8080".parse().unwrap(), 3);
    assert_eq!(local.values().sum::<usize>(), 3, "{local:?}");
    assert!(w.ok(&["service", "ls"]).contains("*:8080->80/tcp"));

    // The port is taken: a second service is refused and nothing is made.
    let other = unique_id("dup");
    let before = w.nat_ruleset();
    let err = w.fails(&[
        "service",
        "create",
        &other,
        "--network",
        &w.net,
        "-p",
        "8080:81",
    ]);
    assert!(err.contains("port '8080' is already in use"), "{err}");
    assert_eq!(before, w.nat_ruleset());
    assert!(named_netns_with_prefix(&format!("{other}.")).is_empty());

    let id = id_of(&w, &name);
    let vip = w.vip(&name);
    let (client, _) = w.client("cli");
    w.ok(&["service", "rm", &name]);
    w.assert_nothing_left(&name, &id, Some(vip), &client);
    let after = w.nat_ruleset();
    assert!(!after.contains("8080"), "{after}");
}

#[test]
fn root_hostile_service_input_is_refused_and_creates_nothing() {
    let w = World::new("svcbad");
    let net = w.net.clone();
    let long = "x".repeat(64);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--name=-web"],
            "name must be valid as a DNS name component",
        ),
        (vec!["a.b"], "name must be valid as a DNS name component"),
        (vec!["../x"], "name must be valid as a DNS name component"),
        (vec![&long], "is too long (max 63 characters)"),
        (
            vec!["ok1", "--replicas=-1"],
            "invalid argument \"-1\" for \"--replicas\" flag",
        ),
        (
            vec!["ok1", "--replicas", "abc"],
            "strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (vec!["ok1", "--replicas", "100000"], "at most 1000 replicas"),
        (vec!["ok1", "-p", "99999:80"], "Invalid hostPort: 99999"),
        (vec!["ok1", "-p", "80:0"], "Invalid containerPort: 0"),
        (vec!["ok1", "-p", "80:80/icmp"], "invalid proto: icmp"),
        (vec!["ok1", "-p", "x"], "Invalid containerPort: x"),
        (
            vec!["ok1", "-p", "8080:80", "-p", "8080:81"],
            "duplicate published ports provided",
        ),
        (
            vec!["ok1", "--endpoint-mode", "ipvs"],
            "must be vip or dnsrr",
        ),
        (
            vec!["ok1", "--endpoint-mode", "dnsrr", "-p", "80:80"],
            "port published with ingress mode can't be used with dnsrr mode",
        ),
    ];
    for (extra, msg) in cases {
        let mut args = vec!["service", "create", "--network", &net];
        args.extend_from_slice(&extra);
        let err = w.fails(&args);
        assert!(err.contains(msg), "{extra:?}: {err}");
    }
    let err = w.fails(&["service", "create", "ok2", "--network", "nosuchnet"]);
    assert!(err.contains("network nosuchnet not found"), "{err}");
    for bad in [
        vec!["scale", "web"],
        vec!["scale", "web=x"],
        vec!["rm", "nosuch"],
        vec!["inspect", "nosuch"],
    ] {
        let mut args = vec!["service"];
        args.extend_from_slice(&bad);
        let err = w.fails(&args);
        assert!(
            err.contains("invalid scale specifier")
                || err.contains("invalid replicas value")
                || err.contains("No such service"),
            "{bad:?}: {err}"
        );
    }
    // Nothing was made: no service, task, rule, lease or bridge.
    assert_eq!(w.ok(&["service", "ls", "-q"]).trim(), "");
    assert!(
        named_netns_with_prefix("ok1.").is_empty() && named_netns_with_prefix("ok2.").is_empty()
    );
    assert!(!w.nat_ruleset().contains("cni_rs_nat"));
    let leases = w.env.ipam_dir().join(&w.net);
    let n = std::fs::read_dir(&leases)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().parse::<Ipv4Addr>().is_ok())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(n, 0, "leases left in {}", leases.display());
}

#[test]
fn root_a_service_of_no_task_scales_up_and_serves() {
    let w = World::new("svczero");
    let name = w.create("zero", &["--replicas", "0", "-p", "8081:80"]);
    // A service with no task has no rule yet, but its port is claimed.
    let err = w.fails(&[
        "service",
        "create",
        "other",
        "--network",
        &w.net,
        "-p",
        "8081:80",
    ]);
    assert!(
        err.contains(&format!(
            "port '8081' is already in use by service '{name}'"
        )),
        "{err}"
    );
    assert!(w.tasks(&name).is_empty());
    assert!(w.ok(&["service", "ls"]).contains("0/0"));
    let vip = w.vip(&name);
    let out = w.ok(&["service", "scale", "-d", &format!("{name}=2")]);
    assert_eq!(out.trim(), format!("{name} scaled to 2"));
    let tasks = w.tasks(&name);
    assert_eq!(tasks.len(), 2);
    assert_eq!(w.vip(&name), vip, "the VIP outlives the task count");
    w.serve(&tasks);
    let (client, cns) = w.client("cli");
    assert_eq!(w.dig(&client, &name), vec![vip.to_string()]);
    let counts = spread(&cns, SocketAddr::from((vip, 80)), 20);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.values().all(|c| *c >= 8), "round robin: {counts:?}");
    let id = id_of(&w, &name);
    w.ok(&["service", "rm", &id[..6]]);
    w.assert_nothing_left(&name, &id, Some(vip), &client);
}
