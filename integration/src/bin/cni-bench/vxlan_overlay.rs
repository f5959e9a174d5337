//! vxlan-overlay: what the overlay costs.
//!
//! - `AddDel`: 100 sequential ADDs into fresh container namespaces on one
//!   host, then their DELs (the last one removes the bridge and the VXLAN
//!   device). No reference Go vxlan plugin exists, so our bridge plugin
//!   doing the same work (minus the tunnel) is the yardstick.
//! - `Tunnel`: two fake hosts on an underlay switch, one container each;
//!   ping latency and TCP throughput container to container (through veth,
//!   bridge, VXLAN, underlay) against the same between the two host
//!   namespaces directly: the tunnel's overhead as a ratio. The timed
//!   samples of this scenario are CHECKs of one overlay attachment.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::netns::{enter, unique_ifname};
use integration::paths::Binary;
use integration::proc::Finished;
use integration::{FakeHost, Invocation, Netns, NetnsPool, TempDir};
use serde_json::{json, Value};

use super::{Contender, Ctx, Scenario, CNI_VERSION};

/// Containers per phase (ADD, then DEL).
const CONTAINERS: usize = 100;
/// Underlay address of the bench host, and a peer that need not exist.
const BENCH_LOCAL: &str = "192.0.2.1";
const BENCH_PEER: &str = "192.0.2.2";
/// Pings per latency measurement, and their interval.
const PINGS: &str = "200";
const PING_INTERVAL: &str = "0.01";
/// Bytes sent per throughput measurement.
const TCP_BYTES: usize = 512 << 20;

fn overlay_conf(name: &str, data: &TempDir, slot: usize, underlay: &str) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": name,
        "type": "vxlan-overlay",
        "vni": 7000 + slot,
        "underlayDevice": underlay,
        "peers": [BENCH_PEER],
        "subnet": "10.201.0.0/24",
        "ipam": {"type": "host-local", "dataDir": data.join(format!("slot{slot}")).display().to_string(),
                 "ranges": [[{"subnet": "10.201.0.0/24"}]]}
    })
}

fn bridge_conf(name: &str, data: &TempDir, slot: usize) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": name,
        "type": "bridge",
        "bridge": format!("brvx{slot}"),
        "ipam": {"type": "host-local", "dataDir": data.join(format!("slot{slot}")).display().to_string(),
                 "ranges": [[{"subnet": "10.202.0.0/24"}]]}
    })
}

/// ADD of 100 containers, then DEL of them all: vxlan-overlay against our
/// bridge plugin.
#[derive(Default)]
pub struct AddDel {
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    underlay: String,
    total: usize,
    seen: super::Latencies,
}

impl AddDel {
    fn report(&self, label: &str, lat: &[Duration]) {
        let half = self.total / 2;
        let (adds, dels) = lat.split_at(half.min(lat.len()));
        for (verb, v) in [("ADD", adds), ("DEL", dels)] {
            let mut v = v.to_vec();
            v.sort();
            let Some(median) = v.get(v.len().saturating_sub(1) / 2) else {
                continue;
            };
            let sum: Duration = v.iter().sum();
            println!(
                "  {verb} x{} {label:>13}: median {:.3} ms, total {:.1} ms",
                v.len(),
                median.as_secs_f64() * 1000.0,
                sum.as_secs_f64() * 1000.0
            );
        }
    }
}

impl Scenario for AddDel {
    fn name(&self) -> String {
        format!("vxlan-overlay {CONTAINERS} ADDs then DELs")
    }
    fn plugin(&self) -> &str {
        "vxlan-overlay"
    }
    fn contenders(&self) -> Vec<Contender> {
        vec![
            Contender::plugin(Binary::Ours, "vxlan-overlay"),
            Contender {
                label: "bridge(ours)".into(),
                which: None,
                path: Binary::Ours.path("bridge"),
            },
        ]
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * CONTAINERS
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.data = Some(TempDir::new("bench-vxlan"));
        self.total = ctx.samples;
        self.pool = Some(NetnsPool::new("bvx", ctx.samples / 2 * contenders + 1)?);
        // An underlay inside the bench host: a veth pair, one end with the
        // tunnel's local address.
        let ul = unique_ifname("ul");
        let peer = unique_ifname("ulp");
        ctx.host
            .ip(&["link", "add", &ul, "type", "veth", "peer", "name", &peer])?;
        ctx.host
            .ip(&["addr", "add", &format!("{BENCH_LOCAL}/24"), "dev", &ul])?;
        ctx.host.ip(&["link", "set", &ul, "up"])?;
        ctx.host.ip(&["link", "set", &peer, "up"])?;
        self.underlay = ul;
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        let (verb, n) = super::add_then_del(sample, self.total);
        let data = self.data.as_ref().context("setup ran")?;
        let name = format!("benchvx{slot}");
        let conf = if who.which.is_some() {
            overlay_conf(&name, data, slot, &self.underlay)
        } else {
            bridge_conf(&name, data, slot)
        };
        let ns = super::slot_ns(&self.pool, self.total / 2, slot, n);
        Ok(vec![Invocation::new(&who.path)
            .cni(
                verb,
                &ctx.host,
                &format!("vx-bench-{slot}-{n}"),
                &ns.path_str(),
                "eth0",
                &conf,
            )
            .timeout(None)])
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        super::all_succeeded(invs, outs)?;
        if let Some(lat) = self.seen.record(&who.label, outs, self.total) {
            self.report(&who.label, &lat);
        }
        Ok(())
    }
}

/// Two hosts on a switch, a container on each, attached by our plugin.
struct Topology {
    hosts: [FakeHost; 2],
    ctrs: [Netns; 2],
    /// The overlay addresses of the containers.
    ctr_ips: [String; 2],
    /// Host 0's container's config with its ADD result (for CHECK).
    conf: Value,
    _data: TempDir,
    _switch: Netns,
}

impl Topology {
    fn new(plugin: &std::path::Path) -> Result<Self> {
        let switch = Netns::try_new("bvxsw")?;
        switch.ip(&["link", "add", "sw0", "type", "bridge"])?;
        switch.ip(&["link", "set", "sw0", "up"])?;
        let hosts = [FakeHost::new("bvx0"), FakeHost::new("bvx1")];
        for (i, h) in hosts.iter().enumerate() {
            let port = unique_ifname("sw");
            switch.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                h.name(),
            ])?;
            switch.ip(&["link", "set", &port, "master", "sw0", "up"])?;
            h.ip(&[
                "addr",
                "add",
                &format!("192.0.2.{}/24", i + 1),
                "dev",
                "eth0",
            ])?;
            h.ip(&["link", "set", "eth0", "up"])?;
            h.ip(&["route", "add", "default", "dev", "eth0"])?;
        }
        let data = TempDir::new("bench-vxtun");
        let ctrs = [Netns::try_new("bvxc0")?, Netns::try_new("bvxc1")?];
        let mut ctr_ips = [String::new(), String::new()];
        let mut conf = Value::Null;
        for i in 0..2 {
            let mut c = json!({
                "cniVersion": CNI_VERSION, "name": "benchtun", "type": "vxlan-overlay",
                "vni": 7100, "peers": ["192.0.2.1", "192.0.2.2"], "subnet": "10.203.0.0/24",
                "ipam": {"type": "host-local", "dataDir": data.join(format!("h{i}")).display().to_string(),
                         "ranges": [[{"subnet": "10.203.0.0/24",
                                      "rangeStart": format!("10.203.0.{}", 10 + 100 * i),
                                      "rangeEnd": format!("10.203.0.{}", 99 + 100 * i)}]]}
            });
            let out = Invocation::new(plugin)
                .cni(
                    "ADD",
                    &hosts[i],
                    "tun-bench-ctr",
                    &ctrs[i].path_str(),
                    "eth0",
                    &c,
                )
                .run();
            if !out.success() {
                bail!("overlay ADD failed:\n{}", out.report());
            }
            let r = out.json();
            ctr_ips[i] = r["ips"][0]["address"]
                .as_str()
                .and_then(|a| a.split('/').next())
                .context("ADD result without address")?
                .to_string();
            if i == 0 {
                c["prevResult"] = r;
                conf = c;
            }
        }
        Ok(Topology {
            hosts,
            ctrs,
            ctr_ips,
            conf,
            _data: data,
            _switch: switch,
        })
    }
}

/// Average round trip in ms from `ping -q` output.
fn ping_avg(from: &Netns, to: &str) -> Result<f64> {
    let out = from.exec(&["ping", "-q", "-c", PINGS, "-i", PING_INTERVAL, to]);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("ping {to} from {} failed: {text}", from.name());
    }
    // "rtt min/avg/max/mdev = 0.030/0.045/0.090/0.010 ms"
    text.lines()
        .find_map(|l| l.split_once(" = ").filter(|_| l.starts_with("rtt")))
        .and_then(|(_, v)| v.split('/').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no rtt line in ping output: {text}"))
}

/// Send `TCP_BYTES` from `client` to a receiver in `server` at `ip`;
/// returns Gbit/s as the receiver saw it.
fn tcp_gbps(server: &Netns, client: &Netns, ip: &str) -> Result<f64> {
    let sa = SocketAddr::new(ip.parse()?, 5201);
    let sfile = server.open()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || -> Result<f64> {
        enter(&sfile)?;
        let l = TcpListener::bind(sa)?;
        let _ = tx.send(());
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0usize;
        let start = Instant::now();
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(got as f64 * 8.0 / secs / 1e9)
    });
    rx.recv_timeout(Duration::from_secs(5))
        .context("receiver never listened")?;
    let cfile = client.open()?;
    let sender = std::thread::spawn(move || -> Result<()> {
        enter(&cfile)?;
        let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(5))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let chunk = vec![0x5au8; 256 << 10];
        let mut left = TCP_BYTES;
        while left > 0 {
            let n = left.min(chunk.len());
            s.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    });
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?
}

/// Cross-host latency and throughput, overlay against underlay; CHECK
/// latency as the timed samples.
#[derive(Default)]
pub struct Tunnel {
    topo: Option<Topology>,
}

impl Tunnel {
    fn measure(t: &Topology) -> Result<()> {
        let (h, c) = (&t.hosts, &t.ctrs);
        let under_rtt = ping_avg(&h[0], "192.0.2.2")?;
        let over_rtt = ping_avg(&c[0], &t.ctr_ips[1])?;
        let under_bw = tcp_gbps(&h[1], &h[0], "192.0.2.2")?;
        let over_bw = tcp_gbps(&c[1], &c[0], &t.ctr_ips[1])?;
        println!(
            "  ping x{PINGS} -i {PING_INTERVAL} avg rtt: hosts {under_rtt:.3} ms, containers over \
             VXLAN {over_rtt:.3} ms ({:.2}x)",
            over_rtt / under_rtt
        );
        println!(
            "  TCP {} MiB one stream: hosts {under_bw:.2} Gbit/s, containers over VXLAN \
             {over_bw:.2} Gbit/s ({:.2}x)",
            TCP_BYTES >> 20,
            over_bw / under_bw
        );
        Ok(())
    }
}

impl Scenario for Tunnel {
    fn name(&self) -> String {
        "vxlan-overlay CHECK + tunnel overhead".into()
    }
    fn plugin(&self) -> &str {
        "vxlan-overlay"
    }
    fn contenders(&self) -> Vec<Contender> {
        vec![Contender::plugin(Binary::Ours, "vxlan-overlay")]
    }
    fn samples(&self, requested: usize) -> usize {
        requested.min(100)
    }
    fn setup(&mut self, _ctx: &Ctx, _contenders: usize) -> Result<()> {
        let topo = Topology::new(&Binary::Ours.path("vxlan-overlay"))?;
        Self::measure(&topo)?;
        self.topo = Some(topo);
        Ok(())
    }
    fn prepare(
        &mut self,
        _ctx: &Ctx,
        who: &Contender,
        _slot: usize,
        _sample: usize,
    ) -> Result<Vec<Invocation>> {
        let t = self.topo.as_ref().context("setup ran")?;
        Ok(vec![Invocation::new(&who.path)
            .cni(
                "CHECK",
                &t.hosts[0],
                "tun-bench-ctr",
                &t.ctrs[0].path_str(),
                "eth0",
                &t.conf,
            )
            .timeout(None)])
    }
}
