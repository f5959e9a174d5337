//! Name resolution: our resolver (cni-rs-daemon, fed by the dnsname
//! plugin) against aardvark-dns 1.4 (netavark's) and dnsmasq 2.90 (what
//! containers/dnsname runs), each serving the same names, measured with
//! dnsperf from a container namespace of the fake host; plus the dnsname
//! plugin's ADD (what it adds on top of a chain), its resolver's RSS.
//!
//! Each resolver is asked twice: flat out for `SATURATE` (queries per
//! second), then at a fixed rate below everyone's ceiling for `PACED`
//! (per-query latency from dnsperf's verbose output: p50, p99).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::{FakeHost, Invocation, Netns, TempDir};
use serde_json::json;

/// How many names every resolver serves.
const NAMES: usize = 1000;
const SATURATE: Duration = Duration::from_secs(5);
const PACED: Duration = Duration::from_secs(2);
const PACED_QPS: u32 = 5000;
/// dnsname's default domain; aardvark-dns strips it too.
const DOMAIN: &str = "dns.podman";
const GATEWAY: &str = "10.200.0.1";
const CLIENT: &str = "10.200.0.2";
const AARDVARK: &str = "/usr/lib/podman/aardvark-dns";
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// The name of this part, as `--only` matches it.
pub const NAME: &str = "dns resolvers (dnsperf) and dnsname ADD";

fn name(i: usize) -> String {
    format!("svc{i}")
}

fn addr(i: usize) -> String {
    format!("10.200.{}.{}", 1 + i / 250, 1 + i % 250)
}

/// What one resolver did.
struct Measured {
    label: String,
    qps: f64,
    p50: Duration,
    p99: Duration,
    lost: String,
    rss_kib: u64,
}

/// The client's container namespace, joined to the fake host by a veth:
/// the gateway side carries the address aardvark-dns and dnsmasq listen on;
/// our resolver listens at 127.0.0.11 inside the container itself.
fn client_netns(host: &FakeHost) -> Result<Netns> {
    let c = Netns::try_new("bdnsc")?;
    host.ip(&[
        "link",
        "add",
        "bdns0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        c.name(),
    ])?;
    host.ip(&["addr", "add", &format!("{GATEWAY}/16"), "dev", "bdns0"])?;
    host.ip(&["link", "set", "bdns0", "up"])?;
    c.ip(&["addr", "add", &format!("{CLIENT}/16"), "dev", "eth0"])?;
    c.ip(&["link", "set", "eth0", "up"])?;
    c.ip(&["link", "set", "lo", "up"])?;
    Ok(c)
}

fn query_file(dir: &Path) -> Result<PathBuf> {
    let p = dir.join("queries");
    let text: String = (0..NAMES)
        .map(|i| format!("{}.{DOMAIN} A\n", name(i)))
        .collect();
    std::fs::write(&p, text)?;
    Ok(p)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// dnsperf inside the client namespace; its stdout.
fn dnsperf(
    client: &Netns,
    server: &str,
    port: u16,
    queries: &Path,
    extra: &[&str],
) -> Result<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", client.path_str()))
        .args(["dnsperf", "-s", server, "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args(extra)
        .output()
        .context("running dnsperf (Debian package dnsperf; `just deps` installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// `  Queries per second:   12345.6` and `  Queries lost: 0 (0.00%)`.
fn field<'a>(report: &'a str, key: &str) -> Option<&'a str> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(str::trim)
}

/// Per-response latencies of `dnsperf -v`: `> NOERROR svc1.dns.podman A 0.000045`.
fn latencies(report: &str) -> Vec<Duration> {
    let mut v: Vec<Duration> = report
        .lines()
        .filter(|l| l.starts_with("> NOERROR"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    v.sort();
    v
}

/// Saturated and paced runs against one resolver, `pid` sampled for RSS.
fn measure(
    label: &str,
    client: &Netns,
    server: &str,
    port: u16,
    queries: &Path,
    pid: u32,
) -> Result<Measured> {
    // Every name must answer before anything is timed.
    let check = dnsperf(client, server, port, queries, &["-n", "1", "-v"])?;
    let answered = latencies(&check).len();
    if answered != NAMES {
        bail!("{label}: {answered} of {NAMES} names answered NOERROR:\n{check}");
    }
    let secs = SATURATE.as_secs().to_string();
    let flat = dnsperf(client, server, port, queries, &["-l", &secs, "-q", "100"])?;
    let qps: f64 = field(&flat, "Queries per second:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{label}: no rate in dnsperf's report:\n{flat}"))?;
    let lost = field(&flat, "Queries lost:").unwrap_or("?").to_string();
    let rss = rss_kib(pid);
    let secs = PACED.as_secs().to_string();
    let rate = PACED_QPS.to_string();
    let paced = dnsperf(
        client,
        server,
        port,
        queries,
        &["-l", &secs, "-Q", &rate, "-v"],
    )?;
    let lat = latencies(&paced);
    if lat.is_empty() {
        bail!("{label}: no answers in the paced run:\n{paced}");
    }
    Ok(Measured {
        label: label.into(),
        qps,
        p50: super::percentile(&lat, 50.0),
        p99: super::percentile(&lat, 99.0),
        lost,
        rss_kib: rss,
    })
}

/// A resolver process we started; killed and reaped on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_host(host: &FakeHost, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", host.path_str())).arg(program);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Wait until `port` on the gateway answers the first name.
fn wait_answering(client: &Netns, server: &str, port: u16, dir: &Path) -> Result<()> {
    let one = dir.join("one-query");
    std::fs::write(&one, format!("{}.{DOMAIN} A\n", name(0)))?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(r) = dnsperf(client, server, port, &one, &["-n", "1", "-t", "1"]) {
            if field(&r, "Queries completed:").is_some_and(|v| v.starts_with('1')) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no answer from {server}:{port}")
}

/// Ours: NAMES dnsname ADDs (each timed: the plugin's whole cost on top of
/// a chain), all in the client's namespace, as a network of NAMES
/// containers looks from one of them.
fn ours(
    host: &FakeHost,
    client: &Netns,
    dir: &TempDir,
    queries: &Path,
) -> Result<(Measured, Vec<Duration>)> {
    let shm = ShmDir::new()?;
    let state = shm.0.clone();
    let no_upstream = dir.join("no-upstream.conf");
    std::fs::write(&no_upstream, "")?;
    let mut adds = Vec::with_capacity(NAMES);
    for i in 0..NAMES {
        let prev = json!({
            "cniVersion": super::CNI_VERSION,
            "interfaces": [{"name": "bdns0"}, {"name": "eth0", "sandbox": client.path_str()}],
            "ips": [{"address": format!("{}/16", addr(i)), "gateway": GATEWAY, "interface": 1}],
        });
        let conf = json!({
            "cniVersion": super::CNI_VERSION, "name": "bench-dns", "type": "dnsname",
            "domainName": DOMAIN, "prevResult": prev,
        });
        let inv = Invocation::ours("dnsname")
            .cni(
                "ADD",
                host,
                &format!("bench-dns-{i}"),
                &client.path_str(),
                "eth0",
                &conf,
            )
            .cni_args(&format!("K8S_POD_NAME={}", name(i)))
            .env("CNI_RS_DNS_DIR", &state.display().to_string())
            .env("CNI_RS_DNS_RESOLV_CONF", &no_upstream.display().to_string())
            .timeout(None);
        let out = super::run_sample(std::slice::from_ref(&inv))?;
        super::all_succeeded(std::slice::from_ref(&inv), &out)?;
        adds.push(out[0].elapsed);
    }
    let pid = daemon_pid(&state).context("no cni-rs-daemon serves the bench's folder")?;
    let m = measure("ours", client, "127.0.0.11", 53, queries, pid);
    // The daemon exits when its folder goes; do not wait for that.
    // SAFETY: kill(2) of the daemon our plugin started for this folder.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    Ok((m?, adds))
}

/// The daemon's folder on a tmpfs, as its default /run/cni-rs/dns is on a
/// usual host (this machine's /run is on disk, where the fsync of each
/// record would be timed rather than the plugin); removed on drop.
struct ShmDir(PathBuf);

impl ShmDir {
    fn new() -> Result<Self> {
        let p = PathBuf::from(format!("/dev/shm/cni-bench-dns-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(ShmDir(p))
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The cni-rs-daemon started with `state` as its folder.
fn daemon_pid(state: &Path) -> Option<u32> {
    let want = format!("CNI_RS_DNS_DIR={}", state.display());
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

/// aardvark-dns as netavark runs it: a config folder with one file per
/// network (first line: the addresses to listen on; then `id ipv4s ipv6s
/// names`). It answers a client by the network its source address is on,
/// so the client is one of the network's entries.
fn aardvark(host: &FakeHost, client: &Netns, dir: &TempDir, queries: &Path) -> Result<Measured> {
    const PORT: u16 = 5533;
    let conf = dir.join("aardvark");
    std::fs::create_dir_all(&conf)?;
    let mut text = format!("{GATEWAY}\nbenchclient {CLIENT}  benchclient\n");
    for i in 0..NAMES {
        text.push_str(&format!("bench{i} {}  {}\n", addr(i), name(i)));
    }
    std::fs::write(conf.join("bench-dns"), text)?;
    let child = in_host(host, AARDVARK)
        .arg("--config")
        .arg(&conf)
        .args(["-p", &PORT.to_string(), "run"])
        .spawn()
        .context("starting aardvark-dns (Debian package aardvark-dns)")?;
    let run = Running(child);
    wait_answering(client, GATEWAY, PORT, dir.path())?;
    // aardvark-dns 1.4 forks into the background and records its pid.
    let pid = std::fs::read_to_string(conf.join("aardvark.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(run.0.id());
    let m = measure("aardvark-dns", client, GATEWAY, PORT, queries, pid);
    if pid != run.0.id() {
        // SAFETY: kill(2) of the aardvark-dns we started, by its pid file.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    m
}

/// dnsmasq as containers/dnsname configures it: the names in an
/// addn-hosts file, the domain local, nothing forwarded.
fn dnsmasq(host: &FakeHost, client: &Netns, dir: &TempDir, queries: &Path) -> Result<Measured> {
    const PORT: u16 = 5354;
    let hosts = dir.join("addnhosts");
    let text: String = (0..NAMES)
        .map(|i| format!("{}\t{}.{DOMAIN}\t{}\n", addr(i), name(i), name(i)))
        .collect();
    std::fs::write(&hosts, text)?;
    let child = in_host(host, DNSMASQ)
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
        ])
        .arg(format!("--addn-hosts={}", hosts.display()))
        .args([
            &format!("--listen-address={GATEWAY}"),
            "--bind-interfaces",
            &format!("--port={PORT}"),
            &format!("--domain={DOMAIN}"),
            &format!("--local=/{DOMAIN}/"),
            "--user=root",
            "--pid-file=",
        ])
        .spawn()
        .context("starting dnsmasq (Debian package dnsmasq-base)")?;
    let run = Running(child);
    wait_answering(client, GATEWAY, PORT, dir.path())?;
    measure("dnsmasq", client, GATEWAY, PORT, queries, run.0.id())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The whole comparison, printed as a table with the targets.
pub fn run(host: &FakeHost) -> Result<()> {
    println!("\n{NAME}: {NAMES} names each, dnsperf from a container namespace");
    let dir = TempDir::new("bench-dns");
    let client = client_netns(host)?;
    let queries = query_file(dir.path())?;
    let (ours, adds) = ours(host, &client, &dir, &queries)?;
    let mut rows = vec![ours];
    for (label, path, f) in [
        (
            "aardvark-dns",
            AARDVARK,
            aardvark as fn(&FakeHost, &Netns, &TempDir, &Path) -> Result<Measured>,
        ),
        ("dnsmasq", DNSMASQ, dnsmasq),
    ] {
        if !Path::new(path).is_file() {
            println!("  skipping {label}: {path} not found (`just deps` installs it)");
            continue;
        }
        rows.push(f(host, &client, &dir, &queries)?);
    }
    println!(
        "  {:<13} {:>12} {:>10} {:>10} {:>10}  lost (saturated)",
        "resolver", "queries/s", "p50", "p99", "RSS"
    );
    for r in &rows {
        println!(
            "  {:<13} {:>12.0} {:>10} {:>10} {:>6.1} MiB  {}",
            r.label,
            r.qps,
            ms(r.p50),
            ms(r.p99),
            r.rss_kib as f64 / 1024.0,
            r.lost
        );
    }
    println!(
        "  (p50/p99 at {PACED_QPS} queries/s for {} s; queries/s flat out, 100 in flight, {} s)",
        PACED.as_secs(),
        SATURATE.as_secs()
    );
    let sorted = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let all = sorted(&adds);
    println!(
        "  dnsname ADD, the whole plugin process (what it adds on top of a chain; no DNS adds 0): \
         median {}, p95 {}; median of the first 100 names {}, of the last 100 {}",
        ms(super::percentile(&all, 50.0)),
        ms(super::percentile(&all, 95.0)),
        ms(super::percentile(&sorted(&adds[..100]), 50.0)),
        ms(super::percentile(&sorted(&adds[NAMES - 100..]), 50.0)),
    );
    let dnsmasq_qps = rows.iter().find(|r| r.label == "dnsmasq").map(|r| r.qps);
    let o = &rows[0];
    println!(
        "  targets: qps >= dnsmasq's {}; p99 < 1 ms {}; ADD < 2 ms {}; RSS < 20 MiB {}",
        dnsmasq_qps.map_or("(no dnsmasq)".into(), |d| verdict(o.qps >= d)),
        verdict(o.p99 < Duration::from_millis(1)),
        verdict(super::percentile(&all, 50.0) < Duration::from_millis(2)),
        verdict(o.rss_kib < 20 * 1024)
    );
    Ok(())
}

fn verdict(ok: bool) -> String {
    if ok { "met" } else { "MISSED" }.to_string()
}
