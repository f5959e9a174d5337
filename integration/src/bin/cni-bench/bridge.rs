//! bridge with masquerade (ipMasq, isGateway), ours (with our host-local)
//! against the reference (with the reference host-local), each on its own
//! bridge, subnet and data directory in the shared fake host:
//!
//! - `AddThenDel`: 200 containers ADDed one after the other, then DELed;
//!   prints ADD and DEL medians/p95 apart, and the ADD median of the first
//!   and the last 100 containers (growth as the bridge fills up).
//! - `Parallel`: rounds of 8 ADDs started at once, then their 8 DELs at
//!   once; prints the p95 of each verb.

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
    json!({
        "cniVersion": CNI_VERSION,
        "name": format!("bench-br-{tag}{slot}"),
        "type": "bridge",
        "bridge": format!("bb{tag}{slot}"),
        "isGateway": true,
        "ipMasq": true,
        "ipam": {"type": "host-local", "dataDir": dir.display().to_string(),
                 "ranges": [[{"subnet": format!("10.{}.0.0/16", 220 + slot + if tag == "p" { 4 } else { 0 })}]]}
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn at(v: &[Duration], p: f64) -> Duration {
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn line(what: &str, label: &str, v: &[Duration]) {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return;
    }
    println!(
        "  bridge {what} {label:>9}: n {}, median {:.3} ms, p95 {:.3} ms",
        v.len(),
        ms(at(&v, 0.5)),
        ms(at(&v, 0.95))
    );
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
        let ns = self
            .pool
            .as_ref()
            .expect("setup ran")
            .get(slot * self.total.div_ceil(2) + n);
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
