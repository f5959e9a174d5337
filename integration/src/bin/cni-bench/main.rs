//! cni-bench: our plugins against the reference Go plugins, on the same work.
//!
//! Every plugin process runs inside a private fake host namespace (joined
//! with setns between fork and exec, so the timing holds only the plugin
//! process: fork, exec, its work, exit). Implementations alternate iteration
//! by iteration, so drift on the machine hits both alike. Untimed per-sample
//! preparation (fresh container namespaces, an ADD before a DEL) happens
//! outside the timed window.
//!
//! Usage: cni-bench [--iters N] [--warmup N] [--only SUBSTR]... [--scale N]
//!                  [--json FILE] [--svg FILE] [--list]
//! Env:   CNI_BENCH_ITERS, CNI_BENCH_WARMUP, CNI_BENCH_ONLY (comma-separated),
//!        CNI_BENCH_SCALE (containers of the scale scenario, default 1000),
//!        CNI_BIN_DIR (ours, default target/release), CNI_REF_DIR (default /usr/lib/cni)
//!
//! Besides the table, the medians and p95 of every scenario and verb are
//! drawn into an SVG chart (`bench.svg` unless `--svg FILE`).
//!
//! Adding a scenario: implement `Scenario` (prepare one sample's invocations,
//! optionally verify them) and add it to `scenarios()`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use integration::paths::{self, Binary};
use integration::proc::{self, Finished};
use integration::{FakeHost, Invocation, NetnsPool};
use serde_json::{json, Value};

/// The cniVersion every scenario speaks: the newest both Debian's reference
/// plugins (v1.1.1: up to 1.0.0) and ours support.
const CNI_VERSION: &str = "1.0.0";

/// One implementation under test.
#[derive(Debug, Clone)]
struct Contender {
    label: String,
    /// Ours or the reference (None: a baseline such as /bin/true).
    which: Option<Binary>,
    path: PathBuf,
}

impl Contender {
    fn plugin(which: Binary, name: &str) -> Self {
        Contender {
            label: which.label().to_string(),
            which: Some(which),
            path: which.path(name),
        }
    }

    fn baseline(path: &str) -> Self {
        Contender {
            label: path.to_string(),
            which: None,
            path: PathBuf::from(path),
        }
    }
}

/// What every scenario gets: the fake host, and how many samples will be
/// taken per contender (warm-up included).
struct Ctx {
    host: FakeHost,
    samples: usize,
}

/// Container namespace `n` of contender `slot`, from a pool that `setup`
/// made untimed with `per_slot` namespaces for each contender.
fn slot_ns(
    pool: &Option<NetnsPool>,
    per_slot: usize,
    slot: usize,
    n: usize,
) -> &integration::Netns {
    pool.as_ref().expect("setup ran").get(slot * per_slot + n)
}

/// One benchmark. `prepare` runs untimed and returns the invocations of one
/// sample; more than one means "start them all at once" (each is timed on
/// its own). `slot` numbers the contender (0, 1, …) so scenarios can keep
/// per-contender resources apart.
trait Scenario {
    fn name(&self) -> String;
    /// The plugin type compared (its binaries are looked up as ours/reference).
    fn plugin(&self) -> &str;
    fn contenders(&self) -> Vec<Contender> {
        vec![
            Contender::plugin(Binary::Ours, self.plugin()),
            Contender::plugin(Binary::Reference, self.plugin()),
        ]
    }
    /// How many samples to take when `requested` were asked for: slow
    /// scenarios (a bridge DEL waits ~20 ms in the kernel) may take fewer.
    fn samples(&self, requested: usize) -> usize {
        requested
    }
    /// How many warm-up samples to take when `requested` were asked for:
    /// a scenario whose samples are all different (the scale run) takes none.
    fn warmup(&self, requested: usize) -> usize {
        requested
    }
    /// Untimed, once, before the first sample.
    fn setup(&mut self, _ctx: &Ctx, _contenders: usize) -> Result<()> {
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>>;
    /// Untimed check of a sample's outcome; by default every process must exit 0.
    fn verify(&mut self, _who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        all_succeeded(invs, outs)
    }
}

/// Every process of a sample exited 0 (otherwise the call and its output).
fn all_succeeded(invs: &[Invocation], outs: &[Finished]) -> Result<()> {
    for (inv, out) in invs.iter().zip(outs) {
        if !out.status.success() {
            bail!(
                "{} failed ({}):\nstdout: {}\nstderr: {}",
                inv.describe(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// For scenarios that ADD a batch of containers, then DEL them: the verb
/// of `sample` among `total` and the container it concerns.
fn add_then_del(sample: usize, total: usize) -> (&'static str, usize) {
    let half = total / 2;
    if sample < half {
        ("ADD", sample)
    } else {
        ("DEL", sample - half)
    }
}

/// Latencies collected per contender until a scenario's run is complete,
/// for scenarios that report more than the overall median (per verb, first
/// and last hundred).
#[derive(Default)]
struct Latencies {
    seen: std::collections::HashMap<String, Vec<Duration>>,
}

impl Latencies {
    /// Add a sample's latencies; once `total` are in for `label`, hand
    /// them all over.
    fn record(&mut self, label: &str, outs: &[Finished], total: usize) -> Option<Vec<Duration>> {
        let lat = self.seen.entry(label.to_string()).or_default();
        lat.extend(outs.iter().map(|o| o.elapsed));
        (lat.len() == total).then(|| std::mem::take(lat))
    }
}

fn loopback_conf() -> Value {
    json!({"cniVersion": CNI_VERSION, "name": "bench-lo", "type": "loopback"})
}

/// VERSION: pure start-up cost; /bin/true shows the floor of fork+exec.
struct VersionScenario {
    plugin: &'static str,
}

impl Scenario for VersionScenario {
    fn name(&self) -> String {
        format!("{} VERSION", self.plugin)
    }
    fn plugin(&self) -> &str {
        self.plugin
    }
    fn contenders(&self) -> Vec<Contender> {
        vec![
            Contender::plugin(Binary::Ours, self.plugin),
            Contender::plugin(Binary::Reference, self.plugin),
            Contender::baseline("/bin/true"),
        ]
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        _slot: usize,
        _sample: usize,
    ) -> Result<Vec<Invocation>> {
        Ok(vec![Invocation::new(&who.path)
            .command("VERSION")
            .stdin_json(&json!({"cniVersion": CNI_VERSION}))
            .in_host(&ctx.host)
            .timeout(None)])
    }
}

/// loopback ADD into a fresh container namespace per sample.
#[derive(Default)]
struct LoopbackAdd {
    pool: Option<NetnsPool>,
    samples: usize,
}

impl Scenario for LoopbackAdd {
    fn name(&self) -> String {
        "loopback ADD".into()
    }
    fn plugin(&self) -> &str {
        "loopback"
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.samples = ctx.samples;
        self.pool = Some(NetnsPool::new("blo", ctx.samples * contenders)?);
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        let ns = slot_ns(&self.pool, self.samples, slot, sample);
        Ok(vec![Invocation::new(&who.path)
            .cni(
                "ADD",
                &ctx.host,
                &format!("bench{sample}"),
                &ns.path_str(),
                "lo",
                &loopback_conf(),
            )
            .timeout(None)])
    }
}

/// loopback DEL of a namespace the same implementation just ADDed (untimed).
#[derive(Default)]
struct LoopbackDel {
    pool: Option<NetnsPool>,
    samples: usize,
}

impl Scenario for LoopbackDel {
    fn name(&self) -> String {
        "loopback DEL".into()
    }
    fn plugin(&self) -> &str {
        "loopback"
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.samples = ctx.samples;
        self.pool = Some(NetnsPool::new("bld", ctx.samples * contenders)?);
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        let ns = slot_ns(&self.pool, self.samples, slot, sample);
        let cid = format!("bench{sample}");
        let add = Invocation::new(&who.path).cni(
            "ADD",
            &ctx.host,
            &cid,
            &ns.path_str(),
            "lo",
            &loopback_conf(),
        );
        let out = add.run();
        if !out.success() {
            bail!("untimed ADD before DEL failed:\n{}", out.report());
        }
        let mut conf = loopback_conf();
        conf["prevResult"] = out.json();
        Ok(vec![Invocation::new(&who.path)
            .cni("DEL", &ctx.host, &cid, &ns.path_str(), "lo", &conf)
            .timeout(None)])
    }
}

mod bridge;
mod chained;
mod cluster;
mod dns;
mod dnsname;
mod host_local;
mod macvlan;
mod mesh;
mod portmap;
mod services;
mod vxlan_overlay;

mod chart;

fn scenarios(o: &Opts) -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(bridge::AddThenDel::default()),
        Box::new(bridge::Parallel::default()),
        Box::new(bridge::Scale::new(o.scale)),
        Box::new(host_local::SequentialAddDel::default()),
        Box::new(macvlan::AddThenDel::default()),
        Box::new(portmap::AddThenDel::default()),
        Box::new(dnsname::AddThenDel::default()),
        Box::new(vxlan_overlay::AddDel::default()),
        Box::new(vxlan_overlay::Tunnel::default()),
        Box::new(VersionScenario { plugin: "loopback" }),
        Box::new(LoopbackAdd::default()),
        Box::new(LoopbackDel::default()),
    ]
}

struct Opts {
    iters: usize,
    warmup: usize,
    only: Vec<String>,
    json: Option<PathBuf>,
    svg: PathBuf,
    /// Containers of the scale scenario.
    scale: usize,
    list: bool,
}

fn env_usize(key: &str, default: usize) -> Result<usize> {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{key}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        iters: env_usize("CNI_BENCH_ITERS", 500)?,
        warmup: env_usize("CNI_BENCH_WARMUP", 10)?,
        only: std::env::var("CNI_BENCH_ONLY")
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        json: None,
        svg: PathBuf::from("bench.svg"),
        scale: env_usize("CNI_BENCH_SCALE", 1000)?,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--iters" | "-n" => o.iters = val("--iters")?.parse()?,
            "--warmup" => o.warmup = val("--warmup")?.parse()?,
            "--only" => o.only.push(val("--only")?),
            "--json" => o.json = Some(PathBuf::from(val("--json")?)),
            "--svg" => o.svg = PathBuf::from(val("--svg")?),
            "--scale" => o.scale = val("--scale")?.parse()?,
            "--list" => o.list = true,
            "-h" | "--help" => {
                println!(
                    "usage: cni-bench [--iters N] [--warmup N] [--only SUBSTR]... [--scale N] [--json FILE] [--svg FILE] [--list]\n\
                     env: CNI_BENCH_ITERS CNI_BENCH_WARMUP CNI_BENCH_ONLY CNI_BENCH_SCALE CNI_BIN_DIR CNI_REF_DIR"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    if o.iters == 0 {
        bail!("--iters must be at least 1");
    }
    if o.scale == 0 {
        bail!("--scale must be at least 1");
    }
    Ok(o)
}

/// Run one sample's invocations (one: spawn and reap; several: all at once).
fn run_sample(invs: &[Invocation]) -> Result<Vec<Finished>> {
    if let [inv] = invs {
        let (mut cmd, file) = inv.to_command()?;
        let running = proc::spawn(&mut cmd, inv.stdin_bytes(), None)?;
        drop(file);
        return Ok(vec![running.wait()?]);
    }
    let mut files = Vec::new();
    let mut cmds = Vec::new();
    for inv in invs {
        let (cmd, file) = inv.to_command()?;
        files.push(file);
        cmds.push((cmd, inv.stdin_bytes().to_vec()));
    }
    let outs = proc::run_concurrently(cmds)?;
    drop(files);
    Ok(outs)
}

#[derive(Default, Clone)]
struct Samples {
    lat: Vec<Duration>,
    rss_kib: Vec<u64>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One line of a scenario's latencies for one verb (or window): count,
/// median and 95th percentile.
fn latency_line(plugin: &str, what: &str, label: &str, v: &[Duration]) {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return;
    }
    println!(
        "  {plugin} {what} {label:>9}: n {}, median {:.3} ms, p95 {:.3} ms",
        v.len(),
        ms(percentile(&v, 50.0)),
        ms(percentile(&v, 95.0))
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    scenario: String,
    label: String,
    n: usize,
    median: Duration,
    p95: Duration,
    rss_kib: u64,
    ratio: Option<f64>,
}

/// What one scenario measured: the table's rows, and per verb the bars
/// of the chart.
struct Measured {
    rows: Vec<Row>,
    bars: Vec<chart::Bar>,
}

fn bench_one(s: &mut dyn Scenario, host: FakeHost, o: &Opts) -> Result<(Measured, FakeHost)> {
    let mut contenders = s.contenders();
    contenders.retain(|c| {
        let ok = c.path.is_file();
        if !ok {
            println!(
                "  skipping {} for {}: {} not found",
                c.label,
                s.name(),
                c.path.display()
            );
        }
        ok
    });
    if contenders.is_empty() {
        let none = Measured {
            rows: Vec::new(),
            bars: Vec::new(),
        };
        return Ok((none, host));
    }
    let iters = s.samples(o.iters).max(1);
    let warmup = s.warmup(o.warmup);
    let total = warmup + iters;
    let ctx = Ctx {
        host,
        samples: total,
    };
    s.setup(&ctx, contenders.len())?;
    let mut samples = vec![Samples::default(); contenders.len()];
    // Per contender: latencies by verb (CNI_COMMAND), in order of appearance.
    let mut by_verb: Vec<Vec<(String, Vec<Duration>)>> = vec![Vec::new(); contenders.len()];
    for it in 0..total {
        // Alternate who goes first.
        for k in 0..contenders.len() {
            let slot = (it + k) % contenders.len();
            let who = &contenders[slot];
            let invs = s.prepare(&ctx, who, slot, it)?;
            let outs = run_sample(&invs)?;
            s.verify(who, &invs, &outs)
                .with_context(|| format!("{} ({}) sample {it}", s.name(), who.label))?;
            if it >= warmup {
                for (inv, f) in invs.iter().zip(&outs) {
                    samples[slot].lat.push(f.elapsed);
                    samples[slot].rss_kib.push(f.max_rss_kib);
                    let verb = inv.cni_command().unwrap_or("run");
                    let verbs = &mut by_verb[slot];
                    match verbs.iter_mut().find(|(v, _)| v == verb) {
                        Some((_, lat)) => lat.push(f.elapsed),
                        None => verbs.push((verb.to_string(), vec![f.elapsed])),
                    }
                }
            }
        }
    }
    let ref_median = contenders
        .iter()
        .position(|c| c.which == Some(Binary::Reference))
        .map(|i| {
            let mut v = samples[i].lat.clone();
            v.sort();
            percentile(&v, 50.0)
        });
    let mut bars = Vec::new();
    for (c, verbs) in contenders.iter().zip(by_verb) {
        for (verb, mut lat) in verbs {
            lat.sort();
            bars.push(chart::Bar {
                scenario: s.name(),
                verb,
                label: c.label.clone(),
                median_ms: ms(percentile(&lat, 50.0)),
                p95_ms: ms(percentile(&lat, 95.0)),
            });
        }
    }
    let mut rows = Vec::new();
    for (c, smp) in contenders.iter().zip(samples) {
        let mut lat = smp.lat;
        lat.sort();
        let mut rss = smp.rss_kib;
        rss.sort();
        let median = percentile(&lat, 50.0);
        rows.push(Row {
            scenario: s.name(),
            label: c.label.clone(),
            n: lat.len(),
            median,
            p95: percentile(&lat, 95.0),
            rss_kib: rss.last().copied().unwrap_or(0),
            ratio: ref_median.map(|r| median.as_secs_f64() / r.as_secs_f64()),
        });
    }
    Ok((Measured { rows, bars }, ctx.host))
}

fn size_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("cni-bench: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let o = parse_opts()?;
    let mut all = scenarios(&o);
    if o.list {
        for s in &all {
            println!("{}", s.name());
        }
        println!("{}", dns::NAME);
        println!("{}", services::NAME);
        println!("{}", cluster::NAME);
        println!("{}", mesh::NAME);
        return Ok(());
    }
    if !integration::is_root() {
        bail!("cni-bench creates network namespaces: run it as root");
    }
    let selected =
        |name: &str| o.only.is_empty() || o.only.iter().any(|f| name.contains(f.as_str()));
    all.retain(|s| selected(&s.name()));
    let with_cluster = selected(cluster::NAME);

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "cni-bench: {} samples per implementation (+{} warm-up), cniVersion {CNI_VERSION}, kernel {}, {cpus} CPUs",
        o.iters,
        o.warmup,
        kernel.trim()
    );
    println!(
        "ours: {}   reference: {}",
        paths::our_bin_dir().display(),
        paths::ref_bin_dir().display()
    );
    println!(
        "latency = fork+exec+run+exit of the plugin process alone, inside a fake host netns\n"
    );

    let mut host = FakeHost::new("bench");
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    let mut failures = Vec::new();
    let mut plugins: Vec<String> = Vec::new();
    for s in all.iter_mut() {
        eprintln!("running {} ...", s.name());
        if !plugins.iter().any(|p| p == s.plugin()) {
            plugins.push(s.plugin().to_string());
        }
        let (m, h) = match bench_one(s.as_mut(), host, &o) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{}: {e:#}", s.name()));
                // The host may hold leftovers of the failed scenario: start clean.
                let none = Measured {
                    rows: Vec::new(),
                    bars: Vec::new(),
                };
                (none, FakeHost::new("bench"))
            }
        };
        host = h;
        rows.extend(m.rows);
        bars.extend(m.bars);
    }
    if with_cluster {
        eprintln!("running {} ...", cluster::NAME);
        match cluster::run() {
            Ok(r) => rows.extend(r),
            Err(e) => failures.push(format!("{}: {e:#}", cluster::NAME)),
        }
    }
    // Resolvers are long-running servers, not plugin processes: their own
    // report (rates and per-query latencies) follows the table.
    let dns_selected = selected(dns::NAME);

    let w = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<w$} {:<10} {:>5} {:>10} {:>10} {:>10} {:>12}",
        "scenario", "impl", "n", "median", "p95", "peak RSS", "median/ref"
    );
    println!("{}", "-".repeat(w + 63));
    let mut last = String::new();
    for r in &rows {
        let name = if r.scenario == last {
            ""
        } else {
            r.scenario.as_str()
        };
        println!(
            "{:<w$} {:<10} {:>5} {:>8.3}ms {:>8.3}ms {:>6.1} MiB {:>12}",
            name,
            r.label,
            r.n,
            ms(r.median),
            ms(r.p95),
            r.rss_kib as f64 / 1024.0,
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default()
        );
        last = r.scenario.clone();
    }

    println!(
        "\n{:<16} {:>12} {:>12} {:>8}",
        "binary", "ours", "reference", "ratio"
    );
    println!("{}", "-".repeat(51));
    for p in &plugins {
        let a = size_of(&Binary::Ours.path(p));
        let b = size_of(&Binary::Reference.path(p));
        let fmt = |s: Option<u64>| {
            s.map(|s| format!("{:.2} MiB", s as f64 / 1048576.0))
                .unwrap_or("-".into())
        };
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}x", a as f64 / b as f64),
            _ => String::new(),
        };
        println!("{:<16} {:>12} {:>12} {:>8}", p, fmt(a), fmt(b), ratio);
    }

    if dns_selected {
        eprintln!("running {} ...", dns::NAME);
        if let Err(e) = dns::run(&host) {
            failures.push(format!("{}: {e:#}", dns::NAME));
        }
    }

    if let Some(path) = &o.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"scenario": r.scenario, "impl": r.label, "n": r.n,
                       "median_ms": ms(r.median), "p95_ms": ms(r.p95),
                       "peak_rss_kib": r.rss_kib, "median_vs_ref": r.ratio})
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)?;
        println!("\nwrote {}", path.display());
    }
    if !bars.is_empty() {
        chart::write_svg(&o.svg, &bars).with_context(|| format!("draw {}", o.svg.display()))?;
        println!("\nwrote {}", o.svg.display());
    }
    if selected(services::NAME) {
        eprintln!("running {} ...", services::NAME);
        if let Err(e) = services::run() {
            failures.push(format!("{}: {e:#}", services::NAME));
        }
    }
    if selected(mesh::NAME) {
        eprintln!("running {} ...", mesh::NAME);
        if let Err(e) = mesh::run() {
            failures.push(format!("{}: {e:#}", mesh::NAME));
        }
    }
    if !failures.is_empty() {
        eprintln!("\nscenarios that failed:");
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    Ok(())
}
