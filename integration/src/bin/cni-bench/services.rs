//! Services: what the load balancing costs. Not a plugin-process scenario
//! (no reference to run against): it prints its own lines.
//!
//! - New connections per second and echo throughput (medians of rounds
//!   taken in alternation) through a service's
//!   VIP (from a client sandbox) and through its published port (from an
//!   outside namespace on a veth into the host), each against the same
//!   client talking to one task directly: ratios, target >= 0.9x.
//! - Rule update time when a task joins or leaves a service of 100 tasks:
//!   `firewall::services::apply` on fake task addresses (no sandboxes: a
//!   hundred real tasks would measure sandbox creation, not the rules).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cni_net::firewall::services::{self as rules, ServiceRules};
use integration::cnitool::{delete_named_netns, named_netns_with_prefix, CnitoolEnv};
use integration::netns::{unique_ifname, Netns};
use integration::services::{ask_name, in_netns, NameServer};
use integration::FakeHost;
use serde_json::{json, Value};

const SUBNET: &str = "10.91.0.0/24";
const HOST_OUT: &str = "192.168.91.1";
const LB: &str = "192.168.91.2";
const CONNECT_WINDOW: Duration = Duration::from_millis(1000);
const BULK_BYTES: usize = 64 << 20;
const ROUNDS: usize = 5;
const RULE_TASKS: u8 = 100;
const RULE_SAMPLES: usize = 20;

pub const NAME: &str =
    "services: connections/s and throughput via VIP and published port, rule updates";

/// Connections per second to `addr` from `ns` during the window.
pub(super) fn conn_rate(ns: &File, addr: SocketAddr) -> Result<f64> {
    in_netns(ns, move || {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < CONNECT_WINDOW {
            ask_name(addr).with_context(|| format!("connect {addr}"))?;
            n += 1;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    })
}

/// MB/s of an echo: `BULK_BYTES` written and read back on one connection.
fn throughput(ns: &File, addr: SocketAddr) -> Result<f64> {
    in_netns(ns, move || {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_nodelay(true)?;
        let mut reader = BufReader::new(s.try_clone()?);
        let mut greeting = String::new();
        reader.read_line(&mut greeting)?;
        let start = Instant::now();
        let back = std::thread::spawn(move || -> std::io::Result<usize> {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0;
            while total < BULK_BYTES {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n;
            }
            Ok(total)
        });
        let chunk = vec![7u8; 64 * 1024];
        let mut w = s;
        for _ in 0..BULK_BYTES / chunk.len() {
            w.write_all(&chunk)?;
        }
        let got = back
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        anyhow::ensure!(got >= BULK_BYTES, "echo returned {got} bytes");
        Ok(BULK_BYTES as f64 / 1e6 / start.elapsed().as_secs_f64())
    })
}

/// Medians of `direct` and `via`, measured in alternation round by round,
/// so drift on a shared machine hits both alike.
pub(super) fn paired(
    direct: impl Fn() -> Result<f64>,
    via: impl Fn() -> Result<f64>,
) -> Result<(f64, f64)> {
    let (mut d, mut v) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        d.push(direct()?);
        v.push(via()?);
    }
    let median = |mut x: Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    Ok((median(d), median(v)))
}

struct Bed {
    servers: Vec<NameServer>,
    service: String,
    client: String,
    env: CnitoolEnv,
    lb: Netns,
    host: FakeHost,
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = self.env.run(&self.host, &["service", "rm", &self.service]);
        let _ = self.env.run(&self.host, &["sandbox", "rm", &self.client]);
        delete_named_netns(&named_netns_with_prefix(&format!("{}.", self.service)));
        delete_named_netns(std::slice::from_ref(&self.client));
    }
}

fn bed() -> Result<(Bed, Ipv4Addr, Vec<Ipv4Addr>)> {
    let host = FakeHost::new("bsvc");
    let env = CnitoolEnv::new("bench-svc");
    let net = integration::unique_id("bsvc");
    let list = json!({"cniVersion": "1.0.0", "name": net, "plugins": [
        {"type": "bridge", "bridge": unique_ifname("bsv"), "isGateway": true, "hairpinMode": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": env.ipam_dir()}}]});
    std::fs::create_dir_all(env.conf_dir())?;
    std::fs::write(
        env.conf_dir().join(format!("{net}.conflist")),
        serde_json::to_vec(&list)?,
    )?;
    let service = integration::unique_id("bweb");
    let client = integration::unique_id("bcli");
    let lb = Netns::new("blb");
    let mut b = Bed {
        servers: Vec::new(),
        service: service.clone(),
        client: client.clone(),
        env,
        lb,
        host,
    };
    b.env.ok(
        &b.host,
        &[
            "service",
            "create",
            "-d",
            &service,
            "--network",
            &net,
            "--replicas",
            "3",
            "-p",
            "8080:80",
        ],
    );
    let v: Value = serde_json::from_str(&b.env.ok(&b.host, &["service", "inspect", &service]))?;
    let vip: Ipv4Addr = v[0]["Endpoint"]["VirtualIPs"][0]["Addr"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .context("no VIP")?
        .parse()?;
    let mut tasks = Vec::new();
    for t in v[0]["Tasks"].as_array().context("no tasks")? {
        let name = t["Name"].as_str().context("task name")?;
        tasks.push(t["Addresses"][0].as_str().context("addr")?.parse()?);
        b.servers.push(NameServer::in_task(name)?);
    }
    b.env.ok(&b.host, &["sandbox", "create", &client]);
    b.env.ok(&b.host, &["network", "connect", &net, &client]);
    let (h_if, l_if) = (unique_ifname("blh"), unique_ifname("blo"));
    b.host
        .ip_ok(&["link", "add", &h_if, "type", "veth", "peer", "name", &l_if]);
    b.host.ip_ok(&["link", "set", &l_if, "netns", b.lb.name()]);
    b.host
        .ip_ok(&["addr", "add", &format!("{HOST_OUT}/24"), "dev", &h_if]);
    b.host.link_up(&h_if);
    b.lb.ip_ok(&["addr", "add", &format!("{LB}/24"), "dev", &l_if]);
    b.lb.link_up(&l_if);
    b.lb.link_up("lo");
    b.lb.ip_ok(&["route", "add", SUBNET, "via", HOST_OUT]);
    b.host.set_ip_forward(true);
    Ok((b, vip, tasks))
}

pub(super) fn ratio_line(what: &str, unit: &str, direct: f64, via: f64, label: &str) {
    println!(
        "  services {what:<24} direct {direct:>9.1} {unit}   {label} {via:>9.1} {unit}   ratio {:.2}x",
        via / direct
    );
}

/// Median time of `apply` when the task set goes from `from` to `to`
/// (fake addresses), each sample starting again from `from`.
fn rule_update(from: u8, to: u8) -> Result<Duration> {
    let addrs =
        |n: u8| -> Vec<Ipv4Addr> { (0..n).map(|i| Ipv4Addr::new(10, 92, 1, i + 1)).collect() };
    let (a, b) = (addrs(from), addrs(to));
    let mut times = Vec::new();
    for _ in 0..RULE_SAMPLES {
        let svc = |backends| ServiceRules {
            id: "benchsvc",
            name: "bench",
            vip: Some(Ipv4Addr::new(10, 92, 0, 2)),
            backends,
            ports: &[],
            mesh: None,
        };
        rules::apply(&svc(&a)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        rules::apply(&svc(&b)).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

pub fn run() -> Result<()> {
    println!("\n{NAME}");
    let (b, vip, tasks) = bed()?;
    let cns = File::open(format!("/var/run/netns/{}", b.client))?;
    let lbf = b.lb.open()?;
    let direct = SocketAddr::from((tasks[0], 80));
    let via_vip = SocketAddr::from((vip, 80));
    let published: SocketAddr = format!("{HOST_OUT}:8080").parse()?;

    let (d, v) = paired(|| conn_rate(&cns, direct), || conn_rate(&cns, via_vip))?;
    ratio_line("new connections", "conn/s", d, v, "VIP      ");
    let (d, p) = paired(|| conn_rate(&lbf, direct), || conn_rate(&lbf, published))?;
    ratio_line("new connections (outside)", "conn/s", d, p, "published");
    let (d, v) = paired(|| throughput(&cns, direct), || throughput(&cns, via_vip))?;
    ratio_line("echo throughput", "MB/s", d, v, "VIP      ");
    let (d, p) = paired(|| throughput(&lbf, direct), || throughput(&lbf, published))?;
    ratio_line("echo throughput (outside)", "MB/s", d, p, "published");
    drop(b);

    let ns = Netns::new("brules");
    let f = ns.open()?;
    let r = in_netns(&f, move || -> Result<(Duration, Duration)> {
        let join = rule_update(RULE_TASKS, RULE_TASKS + 1)?;
        let leave = rule_update(RULE_TASKS, RULE_TASKS - 1)?;
        rules::remove("benchsvc").map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((join, leave))
    })?;
    println!(
        "  services rule update, {RULE_TASKS} tasks (fake addresses, one transaction): join median {:.3} ms, leave median {:.3} ms",
        r.0.as_secs_f64() * 1000.0,
        r.1.as_secs_f64() * 1000.0
    );
    Ok(())
}
