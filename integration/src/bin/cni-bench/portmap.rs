//! portmap, ours against the reference (iptables), on the same bridge
//! containers: each container is first attached by our bridge (untimed, the
//! same for both), then the timed portmap ADD publishes one TCP port of its
//! own (ports never collide: ours refuses a taken one); once all are in,
//! the timed DELs remove them. Prints ADD and DEL medians/p95 apart.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Result};
use integration::proc::Finished;
use integration::{Invocation, NetnsPool, TempDir};
use serde_json::{json, Value};

use super::{Contender, Ctx, Scenario, CNI_VERSION};

const CONTAINERS: usize = 100;

fn bridge_conf(data: &TempDir) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": "bench-pm",
        "type": "bridge",
        "bridge": "bpm0",
        "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": data.path().display().to_string(),
                 "ranges": [[{"subnet": "10.240.0.0/16"}]]}
    })
}

fn portmap_conf(host_port: u16, prev: &Value) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": "bench-pm",
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": prev,
    })
}

fn line(what: &str, label: &str, v: &[Duration]) {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return;
    }
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "  portmap {what} {label:>9}: n {}, median {:.3} ms, p95 {:.3} ms",
        v.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.95).as_secs_f64() * 1000.0
    );
}

#[derive(Default)]
pub struct AddThenDel {
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    total: usize,
    /// The bridge result of each (contender, container), for its portmap calls.
    results: HashMap<(usize, usize), Value>,
    seen: super::Latencies,
}

impl Scenario for AddThenDel {
    fn name(&self) -> String {
        format!("portmap {CONTAINERS} ADDs then DELs (after an untimed bridge ADD)")
    }
    fn plugin(&self) -> &str {
        "portmap"
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * CONTAINERS
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.total = ctx.samples;
        self.data = Some(TempDir::new("bench-portmap"));
        self.pool = Some(NetnsPool::new("bpm", self.total.div_ceil(2) * contenders)?);
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
        let half = self.total.div_ceil(2);
        let ns = super::slot_ns(&self.pool, half, slot, n);
        let cid = format!("pm-bench-{slot}-{n}");
        if verb == "ADD" {
            let add = Invocation::ours("bridge").cni(
                "ADD",
                &ctx.host,
                &cid,
                &ns.path_str(),
                "eth0",
                &bridge_conf(self.data.as_ref().expect("setup ran")),
            );
            let out = add.run();
            if !out.success() {
                bail!("untimed bridge ADD failed:\n{}", out.report());
            }
            self.results.insert((slot, n), out.json());
        }
        let prev = self.results.get(&(slot, n)).cloned().unwrap_or(Value::Null);
        let port = u16::try_from(20000 + slot * half + n).unwrap_or(u16::MAX);
        Ok(vec![Invocation::new(&who.path)
            .cni(
                verb,
                &ctx.host,
                &cid,
                &ns.path_str(),
                "eth0",
                &portmap_conf(port, &prev),
            )
            .timeout(None)])
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        super::all_succeeded(invs, outs)?;
        if let Some(lat) = self.seen.record(&who.label, outs, self.total) {
            let (adds, dels) = lat.split_at(self.total / 2);
            line("ADD", &who.label, adds);
            line("DEL", &who.label, dels);
        }
        Ok(())
    }
}
