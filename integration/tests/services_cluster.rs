//! Services across hosts and the routing mesh, end to end: three fake
//! hosts on one underlay (etcd inside the first), one overlay network
//! created once, services created, scaled and removed from any host, and
//! a fourth namespace on the underlay standing for the outside load
//! balancer. Tasks run a small server that greets with its task name, so
//! every connection says which task (and so which host) answered. All
//! tests need root.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use integration::cluster::{wait_until, Cluster, Overlay, Site};
use integration::cnitool::{delete_named_netns, named_netns_with_prefix};
use integration::services::{in_netns, spread, tasks_of, Held, NameServer, Task};
use integration::underlay::host_ip;
use integration::{unique_id, Netns};
use serde_json::Value;

const SUBNET: &str = "10.77.0.0/24";

/// Three clustered hosts, an outside namespace, one overlay network.
struct Mesh<'a> {
    sites: Vec<Site<'a>>,
    outside: &'a Netns,
    net: String,
    vni: u64,
    services: std::cell::RefCell<Vec<String>>,
    servers: std::cell::RefCell<Vec<NameServer>>,
}

/// Four fake hosts (etcd inside host 0), a grace period of 2 s.
fn cluster(tag: &str) -> integration::cluster::ClusterBuilder {
    Cluster::build(tag).hosts(4).grace_period(2)
}

impl<'a> Mesh<'a> {
    /// Hosts 0-2 of `c` join; host 3 is the outside.
    fn new(c: &'a Cluster) -> Mesh<'a> {
        let sites = c.joined(0..3);
        let Overlay { net, vni } = Overlay::create(&sites, "mesh", SUBNET);
        Mesh {
            sites,
            outside: &c.u.hosts[3],
            net,
            vni,
            services: Default::default(),
            servers: Default::default(),
        }
    }

    /// `service create` on host `on`; returns the name and the ID printed.
    fn create(&self, on: usize, tag: &str, extra: &[&str]) -> (String, String) {
        let name = unique_id(tag);
        self.services.borrow_mut().push(name.clone());
        let mut args = vec!["service", "create", &name, "--network", &self.net];
        args.extend_from_slice(extra);
        let out = self.sites[on].ok(&args);
        let id = out.lines().next().unwrap_or_default().to_string();
        assert_eq!(id.len(), 25, "Docker's service ID: {out}");
        assert!(out.contains("verify: Service converged"), "{out}");
        (name, id)
    }

    fn inspect(&self, on: usize, name: &str) -> Value {
        let v: Value =
            serde_json::from_str(&self.sites[on].ok(&["service", "inspect", name])).unwrap();
        v[0].clone()
    }

    fn tasks(&self, name: &str) -> Vec<Task> {
        tasks_of(&self.inspect(0, name))
    }

    /// A greeting server on port 80 in each task (its name as greeting).
    fn serve(&self, tasks: &[Task]) {
        for t in tasks {
            self.servers
                .borrow_mut()
                .push(NameServer::in_task(&t.name).unwrap());
        }
    }

    fn ruleset(&self, s: &Site) -> String {
        String::from_utf8_lossy(&s.host.exec(&["nft", "-s", "list", "ruleset"]).stdout).into_owned()
    }

    fn bridge(&self) -> String {
        format!("vxbr{}", self.vni)
    }

    /// The IPv4 addresses on this host's overlay bridge (none: no bridge).
    fn bridge_addrs(&self, s: &Site) -> Vec<String> {
        let out = s
            .host
            .exec(&["ip", "-j", "-4", "addr", "show", "dev", &self.bridge()]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| {
                Some(format!(
                    "{}/{}",
                    a["local"].as_str()?,
                    a["prefixlen"].as_u64()?
                ))
            })
            .collect()
    }

    fn has_link(&self, s: &Site, name: &str) -> bool {
        s.host.exec(&["ip", "link", "show", name]).status.success()
    }
}

impl Drop for Mesh<'_> {
    fn drop(&mut self) {
        self.servers.borrow_mut().clear();
        for name in self.services.borrow().iter() {
            let _ = self.sites[0].cnitool(&["service", "rm", name]);
            delete_named_netns(&named_netns_with_prefix(&format!("{name}.")));
        }
    }
}

fn underlay_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from((host_ip(i).parse::<Ipv4Addr>().unwrap(), port))
}

#[test]
fn root_routing_mesh_reaches_tasks_on_other_hosts_and_leaves_nothing() {
    // Hosts 0-2 are the cluster (etcd inside host 0); host 3 is outside.
    let c = cluster("msh").start();
    let (u, etcd) = (&c.u, &c.etcd);
    let m = Mesh::new(&c);
    let outside = m.outside.open().unwrap();

    // One task, never on h0; created from h0.
    let (name, id) = m.create(
        0,
        "web",
        &[
            "--replicas",
            "1",
            "-p",
            "8080:80",
            "--constraint",
            "node.hostname!=h0",
        ],
    );
    let tasks = m.tasks(&name);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].host, "h1", "spread: fewest tasks, ties by name");
    assert!(tasks[0].name.starts_with(&format!("{name}.1.")));
    m.serve(&tasks);

    // Every host carries the network now: bridge with its mesh address,
    // the service's rules with its task.
    for s in &m.sites {
        let addrs = m.bridge_addrs(s);
        assert!(
            addrs
                .iter()
                .any(|a| a.starts_with("10.77.0.") && a.ends_with("/24")),
            "{}: mesh address on the bridge: {addrs:?}",
            s.name
        );
        let rules = m.ruleset(s);
        assert!(rules.contains(&format!("svc_{id}")), "{}: {rules}", s.name);
        assert!(rules.contains(&tasks[0].addr.to_string()), "{rules}");
    }
    assert_eq!(
        u.hosts[0].sysctl("net.ipv4.ip_forward"),
        "1",
        "the mesh host forwards"
    );

    // The published port on a host with no task (h0, and h2) reaches the
    // task on h1, and the reply comes back.
    for i in [0, 2, 1] {
        let who = spread(&outside, underlay_addr(i, 8080), 3);
        assert_eq!(
            who.keys().collect::<Vec<_>>(),
            vec![&tasks[0].name],
            "through host {i}"
        );
    }
    in_netns(&outside, {
        let addr = underlay_addr(0, 8080);
        move || {
            let mut h = Held::open(addr).unwrap();
            for i in 0..5 {
                assert!(h.echo(&format!("over the mesh {i}")).unwrap());
            }
        }
    });

    // Scaled to 2 (from h2): the new task goes to h2; connections through
    // any host reach both tasks.
    let out = m.sites[2].ok(&["service", "scale", &format!("{name}=2")]);
    assert!(out.starts_with(&format!("{name} scaled to 2")), "{out}");
    let tasks = m.tasks(&name);
    assert_eq!(tasks.len(), 2);
    let hosts: Vec<&str> = tasks.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(hosts, ["h1", "h2"]);
    m.serve(&tasks[1..]);
    for s in &m.sites {
        wait_until("rules with both tasks", Duration::from_secs(5), || {
            m.ruleset(s).contains(&tasks[1].addr.to_string())
        });
    }
    for i in 0..3 {
        let counts = spread(&outside, underlay_addr(i, 8080), 60);
        eprintln!("through host {i}: {counts:?}");
        for t in &tasks {
            let c = counts.get(&t.name).copied().unwrap_or(0);
            assert!(
                c >= 12,
                "through host {i}: {} got {c} of 60: {counts:?}",
                t.name
            );
        }
    }

    // A container on h0 (no task there) calls the service by name: its
    // VIP, spread over the tasks on h1 and h2; tasks.NAME is the tasks.
    let client = Netns::new("mcli");
    m.sites[0].add_named(&m.net, &client, "client");
    let dig = |q: &str| -> Vec<String> {
        let out = client.exec(&["dig", "@127.0.0.11", "+short", "+time=2", "+tries=2", q]);
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let vip_cidr = m.inspect(1, &name)["Endpoint"]["VirtualIPs"][0]["Addr"]
        .as_str()
        .unwrap()
        .to_string();
    let vip: Ipv4Addr = vip_cidr.split('/').next().unwrap().parse().unwrap();
    wait_until("the service name on h0", Duration::from_secs(5), || {
        dig(&name) == vec![vip.to_string()]
    });
    let mut want: Vec<String> = tasks.iter().map(|t| t.addr.to_string()).collect();
    want.sort();
    wait_until("tasks.NAME on h0", Duration::from_secs(5), || {
        dig(&format!("tasks.{name}")) == want
    });
    let cfile = client.open().unwrap();
    let counts = spread(&cfile, SocketAddr::from((vip, 80)), 40);
    eprintln!("VIP {vip} from h0: {counts:?}");
    for t in &tasks {
        let c = counts.get(&t.name).copied().unwrap_or(0);
        assert!(c >= 8, "VIP from h0: {} got {c} of 40: {counts:?}", t.name);
    }
    m.sites[0].del(&m.net, &client);
    drop(cfile);
    drop(client);

    // rm from h1: nothing of the service is left anywhere.
    m.servers.borrow_mut().clear();
    assert_eq!(m.sites[1].ok(&["service", "rm", &name]).trim(), name);
    for s in &m.sites {
        wait_until("the mesh gone", Duration::from_secs(10), || {
            !m.has_link(s, &m.bridge()) && !m.has_link(s, &format!("vxlan{}", m.vni))
        });
        let rules = m.ruleset(s);
        assert!(
            !rules.contains(&format!("svc_{id}")) && !rules.contains(&format!("[{name}]")),
            "{}: {rules}",
            s.name
        );
        assert!(!s.ok(&["service", "ls"]).contains(&name));
        let records = s.dir.join("daemon").join("records").join(&m.net);
        for e in std::fs::read_dir(&records).into_iter().flatten() {
            let f = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !f.contains(&id) && !f.starts_with(&format!("{name}.")),
                "record {f}"
            );
        }
        assert_eq!(s.lease_files(&m.net), 0, "{}: leases left", s.name);
    }
    let left: Vec<(String, String)> = etcd
        .get_prefix("/cni-rs/")
        .into_iter()
        .filter(|(k, v)| {
            k.contains(&name)
                || v.contains(&name)
                || v.contains(&id)
                || v.contains("mesh-")
                || k.contains("/ports/")
        })
        .collect();
    assert!(left.is_empty(), "keys of the service left: {left:?}");
    assert!(named_netns_with_prefix(&format!("{name}.")).is_empty());
    assert!(etcd
        .get_prefix(&format!("/cni-rs/endpoints/{}/", m.net))
        .is_empty());
    m.sites[2].ok(&["network", "rm", &m.net]);
    for s in &m.sites {
        wait_until("the network gone", Duration::from_secs(5), || {
            s.conflist(&m.net).is_none()
        });
    }
}

#[test]
fn root_mesh_holds_the_devices_ports_are_claimed_cluster_wide_and_dnsrr_names_tasks() {
    let c = cluster("msk").start();
    let etcd = &c.etcd;
    let m = Mesh::new(&c);
    let outside = m.outside.open().unwrap();

    // One task, on h2 only.
    let (name, _) = m.create(
        0,
        "api",
        &["-p", "9090:80", "--constraint", "node.hostname==h2"],
    );
    let tasks = m.tasks(&name);
    assert_eq!(tasks[0].host, "h2");
    m.serve(&tasks);

    // The port is the cluster's: a second service asking for it, from
    // another host, is refused and leaves nothing behind.
    let taken = unique_id("dup");
    m.services.borrow_mut().push(taken.clone());
    let out = m.sites[1].cnitool(&[
        "service",
        "create",
        &taken,
        "--network",
        &m.net,
        "-p",
        "9090:80",
    ]);
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains(&format!(
            "port '9090' is already in use by service '{name}'"
        )),
        "{err}"
    );
    assert!(!m.sites[0].ok(&["service", "ls"]).contains(&taken));
    assert!(named_netns_with_prefix(&format!("{taken}.")).is_empty());
    // Docker's constraint grammar is checked before anything is made.
    let bad = m.sites[0].cnitool(&[
        "service",
        "create",
        &taken,
        "--network",
        &m.net,
        "--constraint",
        "node.hostname=h1",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("==, !="));

    // A create that cannot place its task undoes itself: no service, no
    // port claim, no virtual IP lease.
    let nowhere = unique_id("nowhere");
    m.services.borrow_mut().push(nowhere.clone());
    let out = m.sites[0].cnitool(&[
        "service",
        "create",
        &nowhere,
        "--network",
        &m.net,
        "-p",
        "9191:80",
        "--constraint",
        "node.hostname==nohost",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no suitable node"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = etcd.get_prefix("/cni-rs/");
    assert!(
        !keys
            .iter()
            .any(|(k, v)| k.contains(&nowhere) || v.contains(&nowhere) || k.ends_with("/9191")),
        "{keys:?}"
    );
    let vip_leases = std::fs::read_dir(m.sites[0].dir.join("daemon/cluster-ipam").join(&m.net))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|b| b.contains("\"service-"))
        .count();
    assert_eq!(
        vip_leases, 1,
        "only the first service's virtual IP is leased"
    );

    // A container comes and goes on h1: its DEL (the network's last port
    // there) leaves the devices to the mesh, and the port still answers
    // through h1.
    let ctr = Netns::new("mctr");
    m.sites[1].add(&m.net, &ctr);
    m.sites[1].del(&m.net, &ctr);
    let addrs = m.bridge_addrs(&m.sites[1]);
    assert!(
        addrs.iter().any(|a| a.ends_with("/24")),
        "the mesh address stays: {addrs:?}"
    );
    assert!(m.has_link(&m.sites[1], &format!("vxlan{}", m.vni)));
    let who = spread(&outside, underlay_addr(1, 9090), 3);
    assert_eq!(who.keys().collect::<Vec<_>>(), vec![&tasks[0].name]);

    // dnsrr: the name is the tasks (on h1 and h2), asked from h0.
    let (rr, _) = m.create(
        1,
        "rr",
        &[
            "--replicas",
            "2",
            "--endpoint-mode",
            "dnsrr",
            "--constraint",
            "node.hostname!=h0",
        ],
    );
    let rr_tasks = m.tasks(&rr);
    assert!(m.inspect(0, &rr)["Endpoint"].get("VirtualIPs").is_none());
    let client = Netns::new("mrr");
    m.sites[0].add_named(&m.net, &client, "rrclient");
    let mut want: Vec<String> = rr_tasks.iter().map(|t| t.addr.to_string()).collect();
    want.sort();
    wait_until("the dnsrr name on h0", Duration::from_secs(5), || {
        let out = client.exec(&["dig", "@127.0.0.11", "+short", "+time=2", "+tries=2", &rr]);
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        got.sort();
        got == want
    });
    m.sites[0].del(&m.net, &client);
    // Docker's -d: placed, not waited for; the third task comes up anyway.
    let out = m.sites[0].ok(&["service", "scale", "-d", &format!("{rr}=3")]);
    assert_eq!(out.trim(), format!("{rr} scaled to 3"));
    wait_until("the third task", Duration::from_secs(10), || {
        m.tasks(&rr).len() == 3
    });

    // h2's daemon killed (-9) and started again by the next command: it
    // rejoins, its agent reads what it made from disk, and the removal
    // below still takes everything off h2.
    m.sites[2].kill_daemon();
    // Gone means its socket is closed: the whole thread group has exited
    // (a thread the kernel still holds, say on the rtnl lock, keeps the
    // process's files open after its main thread is a zombie).
    let sock = m.sites[2].dir.join("daemon").join("daemon.sock");
    wait_until("h2's daemon gone", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&sock).is_err()
    });
    assert!(m.sites[2].ok(&["service", "ls"]).contains(&rr));
    let who = spread(&outside, underlay_addr(2, 9090), 3);
    assert_eq!(who.keys().collect::<Vec<_>>(), vec![&tasks[0].name]);

    // h0 (no task) leaves the cluster: its mesh, rules and VIPs go with
    // it; the port still answers through the others.
    let h0_mesh = m.bridge_addrs(&m.sites[0]);
    m.sites[0].ok(&["cluster", "leave"]);
    assert!(!m.has_link(&m.sites[0], &m.bridge()), "{h0_mesh:?}");
    let rules = m.ruleset(&m.sites[0]);
    assert!(!rules.contains(&format!("[{name}]")), "{rules}");
    let eps = etcd.get_prefix(&format!("/cni-rs/endpoints/{}/", m.net));
    assert!(
        !eps.iter().any(|(_, v)| v.contains("\"host\":\"h0\"")),
        "{eps:?}"
    );
    let who = spread(&outside, underlay_addr(1, 9090), 3);
    assert_eq!(who.keys().collect::<Vec<_>>(), vec![&tasks[0].name]);

    m.servers.borrow_mut().clear();
    for s in [&name, &rr] {
        m.sites[2].ok(&["service", "rm", s]);
    }
    for s in &m.sites {
        wait_until("the mesh gone", Duration::from_secs(10), || {
            !m.has_link(s, &m.bridge())
        });
    }
    m.sites[1].ok(&["network", "rm", &m.net]);
}

#[test]
fn root_tasks_of_a_dead_host_move_and_the_mesh_follows() {
    let c = cluster("mdh").lease_ttl(2).start();
    let m = Mesh::new(&c);
    let outside = m.outside.open().unwrap();
    let (name, _) = m.create(
        0,
        "mv",
        &["-p", "8181:80", "--constraint", "node.hostname!=h0"],
    );
    let before = m.tasks(&name);
    assert_eq!(before[0].host, "h1");

    // h1 dies: its daemon is killed and its underlay link is gone.
    m.sites[1].kill_daemon();
    m.sites[1].host.ip_ok(&["link", "del", "eth0"]);

    // Lease (2 s) + grace (2 s): the task is placed again, on h2 (h0 is
    // excluded), and runs there.
    let mut moved = Vec::new();
    wait_until("the task on h2", Duration::from_secs(20), || {
        moved = m.tasks(&name);
        moved.len() == 1 && moved[0].host == "h2"
    });
    assert_ne!(moved[0].name, before[0].name, "a new task, as swarm's");
    assert!(moved[0].name.starts_with(&format!("{name}.1.")));
    m.serve(&moved);
    // h0's rules follow: the published port reaches the new task.
    wait_until(
        "h0's rules with the new task",
        Duration::from_secs(5),
        || m.ruleset(&m.sites[0]).contains(&moved[0].addr.to_string()),
    );
    let who = spread(&outside, underlay_addr(0, 8181), 3);
    assert_eq!(who.keys().collect::<Vec<_>>(), vec![&moved[0].name]);
    // The old task's sandbox stays with its dead host (its namespace here
    // is the test's to remove).
    delete_named_netns(std::slice::from_ref(&before[0].name));
    m.servers.borrow_mut().clear();
    m.sites[0].ok(&["service", "rm", &name]);
    for i in [0, 2] {
        wait_until("the mesh gone", Duration::from_secs(10), || {
            !m.has_link(&m.sites[i], &m.bridge())
        });
    }
}

#[test]
fn root_a_task_no_alive_host_can_take_is_pending_until_its_host_joins_again() {
    let c = cluster("mpd").start();
    let m = Mesh::new(&c);
    let outside = m.outside.open().unwrap();
    let (name, id) = m.create(
        0,
        "pd",
        &["-p", "8686:80", "--constraint", "node.hostname==h1"],
    );
    let before = m.tasks(&name);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].host, "h1");
    let replicas = |on: usize| -> String {
        let out = m.sites[on].ok(&["service", "ls", "--format", "json"]);
        out.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["Name"] == name.as_str())
            .map(|v| v["Replicas"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(replicas(0), "1/1");

    // h1 leaves: no alive host satisfies the constraint, so the task is
    // pending (no host, no address), not left running on a gone host.
    m.sites[1].ok(&["cluster", "leave", "--force"]);
    let mut pending = Value::Null;
    wait_until("the task pending", Duration::from_secs(20), || {
        pending = m.inspect(0, &name)["Tasks"].clone();
        pending[0]["Status"]["State"] == "pending"
    });
    let ts = pending.as_array().unwrap();
    assert_eq!(ts.len(), 1, "{pending}");
    assert!(ts[0]["NodeID"].is_null(), "{pending}");
    assert_eq!(ts[0]["Addresses"].as_array().map(Vec::len), Some(0));
    assert!(
        ts[0]["Status"]["Err"]
            .as_str()
            .unwrap()
            .starts_with("no suitable node"),
        "{pending}"
    );
    let stored = c.etcd.get_prefix(&format!("/cni-rs/tasks/{name}/"));
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].1.contains("\"address\"") && stored[0].1.contains("\"host\":\"\""),
        "{stored:?}"
    );
    for on in [0, 2] {
        assert_eq!(replicas(on), "0/1", "on h{on}");
    }
    // No backend anywhere, no sandbox.
    let old = before[0].addr.to_string();
    for s in &m.sites {
        wait_until("the old backend gone", Duration::from_secs(10), || {
            !m.ruleset(s).contains(&old)
        });
    }
    assert!(named_netns_with_prefix(&format!("{name}.")).is_empty());

    // h1 joins again: the pending task is placed there and runs; the
    // published port on h0 reaches it.
    c.join(&m.sites[1], false);
    let mut placed = Vec::new();
    wait_until("the task running on h1", Duration::from_secs(30), || {
        let v = m.inspect(0, &name);
        if v["Tasks"][0]["Status"]["State"] != "running" {
            return false;
        }
        placed = tasks_of(&v);
        placed.len() == 1
    });
    assert_eq!(placed[0].host, "h1");
    assert_eq!(replicas(2), "1/1");
    m.serve(&placed);
    wait_until("h0's rules with the task", Duration::from_secs(10), || {
        m.ruleset(&m.sites[0]).contains(&placed[0].addr.to_string())
    });
    let who = spread(&outside, underlay_addr(0, 8686), 3);
    assert_eq!(who.keys().collect::<Vec<_>>(), vec![&placed[0].name]);

    // rm leaves nothing: no key, no rule, no sandbox.
    m.servers.borrow_mut().clear();
    m.sites[0].ok(&["service", "rm", &name]);
    wait_until("the sandbox gone", Duration::from_secs(20), || {
        named_netns_with_prefix(&format!("{name}.")).is_empty()
    });
    let left: Vec<(String, String)> = c
        .etcd
        .get_prefix("/cni-rs/")
        .into_iter()
        .filter(|(k, v)| k.contains(&name) || v.contains(&name) || v.contains(&id))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for s in &m.sites {
        wait_until("the rules gone", Duration::from_secs(10), || {
            !m.ruleset(s).contains(&format!("svc_{id}"))
        });
    }
}
