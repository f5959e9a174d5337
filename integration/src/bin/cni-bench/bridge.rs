//! bridge with masquerade (ipMasq, isGateway), ours (with our host-local)
//! against the reference (with the reference host-local), each on its own
//! bridge, subnet and data directory in the shared fake host:
//!
//! - `AddThenDel`: 200 containers ADDed one after the other, then DELed;
//!   prints ADD and DEL medians/p95 apart, and the ADD median of the first
//!   and the last 100 containers (growth as the bridge fills up).
//! - `Parallel`: rounds of 8 ADDs started at once, then their 8 DELs at
//!   once; prints the p95 of each verb.
//! - `Scale`: 1,000 (configurable) containers on one bridge (no ipMasq),
//!   ADDed then DELed once; prints how ADD and DEL cost grow with the bridge.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Result};
use integration::paths::Binary;
use integration::proc::Finished;
use integration::{Invocation, NetnsPool, TempDir};
use serde_json::{json, Value};

use super::{Contender, Ctx, Scenario, CNI_VERSION};

const CONTAINERS: usize = 200;
const PARALLEL: usize = 8;
const ROUNDS: usize = 25;

fn conf(data: &TempDir, tag: &str, slot: usize) -> Value {
    let dir = data.join(format!("slot{slot}"));
    // Each scenario its own subnets: their bridges share the fake host.
    let subnet_base = match tag {
        "p" => 224,
        "k" => 228,
        _ => 220,
    };
    json!({
        "cniVersion": CNI_VERSION,
        "name": format!("bench-br-{tag}{slot}"),
        "type": "bridge",
        "bridge": format!("bb{tag}{slot}"),
        "isGateway": true,
        "ipMasq": true,
        "ipam": {"type": "host-local", "dataDir": dir.display().to_string(),
                 "ranges": [[{"subnet": format!("10.{}.0.0/16", subnet_base + slot)}]]}
    })
}

/// CNI_PATH with only the contender's own host-local.
fn ipam_path(who: &Contender) -> Result<String> {
    let p = match who.which {
        Some(b @ (Binary::Ours | Binary::Reference)) => b.path("host-local"),
        None => bail!("the bridge bench has no baseline contender"),
    };
    Ok(p.parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default())
}

fn line(what: &str, label: &str, v: &[Duration]) {
    super::latency_line("bridge", what, label, v);
}

#[derive(Default)]
pub struct AddThenDel {
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    total: usize,
    seen: super::Latencies,
}

impl Scenario for AddThenDel {
    fn name(&self) -> String {
        format!("bridge+ipMasq {CONTAINERS} ADDs then DELs")
    }
    fn plugin(&self) -> &str {
        "bridge"
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * CONTAINERS
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.total = ctx.samples;
        self.data = Some(TempDir::new("bench-bridge"));
        self.pool = Some(NetnsPool::new("bbr", self.total.div_ceil(2) * contenders)?);
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
        let ns = super::slot_ns(&self.pool, self.total.div_ceil(2), slot, n);
        let conf = conf(self.data.as_ref().expect("setup ran"), "s", slot);
        Ok(vec![Invocation::new(&who.path)
            .cni(
                verb,
                &ctx.host,
                &format!("br-bench-{n}"),
                &ns.path_str(),
                "eth0",
                &conf,
            )
            .cni_path(&ipam_path(who)?)
            .timeout(None)])
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        super::all_succeeded(invs, outs)?;
        if let Some(lat) = self.seen.record(&who.label, outs, self.total) {
            let half = self.total / 2;
            let (adds, dels) = lat.split_at(half);
            line("ADD", &who.label, adds);
            line("DEL", &who.label, dels);
            let k = 100.min(adds.len());
            line("ADD first 100", &who.label, &adds[..k]);
            line("ADD last 100", &who.label, &adds[adds.len() - k..]);
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Parallel {
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    seen: HashMap<String, (Vec<Duration>, Vec<Duration>)>,
    total: usize,
}

impl Scenario for Parallel {
    fn name(&self) -> String {
        format!("bridge+ipMasq {PARALLEL} parallel ADDs, then DELs")
    }
    fn plugin(&self) -> &str {
        "bridge"
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * ROUNDS
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.total = ctx.samples;
        self.data = Some(TempDir::new("bench-bridge-par"));
        let rounds = self.total.div_ceil(2);
        self.pool = Some(NetnsPool::new("bbp", rounds * PARALLEL * contenders)?);
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        // Even samples ADD a round of containers, odd ones DEL it.
        let (verb, round) = if sample.is_multiple_of(2) {
            ("ADD", sample / 2)
        } else {
            ("DEL", sample / 2)
        };
        let rounds = self.total.div_ceil(2);
        let conf = conf(self.data.as_ref().expect("setup ran"), "p", slot);
        let path = ipam_path(who)?;
        let pool = self.pool.as_ref().expect("setup ran");
        (0..PARALLEL)
            .map(|i| {
                let n = round * PARALLEL + i;
                let ns = pool.get((slot * rounds) * PARALLEL + n);
                Ok(Invocation::new(&who.path)
                    .cni(
                        verb,
                        &ctx.host,
                        &format!("brp-bench-{n}"),
                        &ns.path_str(),
                        "eth0",
                        &conf,
                    )
                    .cni_path(&path)
                    .timeout(None))
            })
            .collect()
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        super::all_succeeded(invs, outs)?;
        let is_add = invs
            .first()
            .is_some_and(|i| i.describe().contains("CNI_COMMAND=\"ADD\""));
        let e = self.seen.entry(who.label.clone()).or_default();
        let v = if is_add { &mut e.0 } else { &mut e.1 };
        v.extend(outs.iter().map(|o| o.elapsed));
        if e.0.len() + e.1.len() == self.total * PARALLEL {
            let (adds, dels) = std::mem::take(e);
            line("parallel ADD", &who.label, &adds);
            line("parallel DEL", &who.label, &dels);
        }
        Ok(())
    }
}

/// Cost that grows with the containers on a host: `count` containers ADDed
/// one after the other to one bridge (isGateway; no ipMasq, whose iptables
/// rules make the reference's ADD grow to ~300 ms at 1,000 containers and
/// the run 15 minutes long), then DELed, ours
/// and the reference alternating, one pass (no warm-up: every sample is a
/// different bridge size). Prints the ADD median of the first and the last
/// 100 containers, the DEL median of the first 100 (nearly all ports still
/// there) and the last 100, and the ratios, which should stay near 1.
pub struct Scale {
    count: usize,
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    seen: super::Latencies,
}

impl Scale {
    pub fn new(count: usize) -> Self {
        Scale {
            count: count.max(1),
            data: None,
            pool: None,
            seen: super::Latencies::default(),
        }
    }

    fn report(&self, label: &str, lat: &[Duration]) {
        let (adds, dels) = lat.split_at(self.count.min(lat.len()));
        // Windows that never overlap, even for a small --scale.
        let k = 100.min(self.count / 2).max(1);
        let median = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            super::ms(super::percentile(&v, 50.0))
        };
        for (verb, v) in [("ADD", adds), ("DEL", dels)] {
            if v.len() < k {
                continue;
            }
            let first = median(&v[..k]);
            let last = median(&v[v.len() - k..]);
            let (grown, small) = if verb == "ADD" {
                (last, first)
            } else {
                (first, last)
            };
            println!(
                "  bridge {} containers {verb} {label:>9}: first {k} median {first:.3} ms, last {k} median {last:.3} ms, \
                 with {} ports / with few: {:.2}x",
                self.count,
                self.count,
                grown / small
            );
        }
    }
}

impl Scenario for Scale {
    fn name(&self) -> String {
        format!("bridge {} containers on one bridge", self.count)
    }
    fn plugin(&self) -> &str {
        "bridge"
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * self.count
    }
    fn warmup(&self, _requested: usize) -> usize {
        0
    }
    fn setup(&mut self, _ctx: &Ctx, contenders: usize) -> Result<()> {
        self.data = Some(TempDir::new("bench-bridge-scale"));
        self.pool = Some(NetnsPool::new("bbs", self.count * contenders)?);
        self.seen = super::Latencies::default();
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        let (verb, n) = super::add_then_del(sample, 2 * self.count);
        let ns = super::slot_ns(&self.pool, self.count, slot, n);
        let mut conf = conf(self.data.as_ref().expect("setup ran"), "k", slot);
        conf["ipMasq"] = json!(false);
        Ok(vec![Invocation::new(&who.path)
            .cni(
                verb,
                &ctx.host,
                &format!("brk-bench-{n}"),
                &ns.path_str(),
                "eth0",
                &conf,
            )
            .cni_path(&ipam_path(who)?)
            .timeout(None)])
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        super::all_succeeded(invs, outs)?;
        if let Some(lat) = self.seen.record(&who.label, outs, 2 * self.count) {
            self.report(&who.label, &lat);
        }
        Ok(())
    }
}
