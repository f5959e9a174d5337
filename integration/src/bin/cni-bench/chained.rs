//! What the scenarios of a plugin chained after our bridge share (portmap,
//! dnsname): each container is first attached by our bridge (untimed, the
//! same for every contender), then the timed plugin ADD takes the bridge's
//! result as its prevResult; once all are in, the timed DELs remove them.
//! ADD and DEL are printed apart. The scenario keeps what is its own: the
//! configs, the contenders, any resources of theirs.

use std::collections::HashMap;

use anyhow::{bail, Result};
use integration::proc::Finished;
use integration::{Invocation, Netns, NetnsPool, TempDir};
use serde_json::Value;

use super::{Contender, Ctx, Latencies};

/// Containers per contender: ADDs, then as many DELs.
pub const CONTAINERS: usize = 100;

/// The state of one chained scenario's run.
#[derive(Default)]
pub struct ChainedAddThenDel {
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    total: usize,
    /// The bridge result of each (contender, container), for its calls.
    results: HashMap<(usize, usize), Value>,
    seen: Latencies,
}

/// One sample's container, ready for the timed call.
pub struct Step<'a> {
    pub verb: &'static str,
    pub n: usize,
    pub ns: &'a Netns,
    pub cid: String,
    /// The bridge's result for the container (null if its ADD never ran).
    pub prev: Value,
}

impl ChainedAddThenDel {
    /// The scenario's name, from the chained plugin's.
    pub fn name(plugin: &str) -> String {
        format!("{plugin} {CONTAINERS} ADDs then DELs (after an untimed bridge ADD)")
    }

    pub fn samples() -> usize {
        2 * CONTAINERS
    }

    /// Untimed: the IPAM data folder (`tag`) and a container namespace for
    /// each ADD of each contender (named after `pool_tag`).
    pub fn setup(&mut self, ctx: &Ctx, contenders: usize, tag: &str, pool_tag: &str) -> Result<()> {
        self.total = ctx.samples;
        self.data = Some(TempDir::new(tag));
        self.pool = Some(NetnsPool::new(
            pool_tag,
            self.total.div_ceil(2) * contenders,
        )?);
        Ok(())
    }

    /// The IPAM data folder (`setup` ran).
    pub fn data(&self) -> &TempDir {
        self.data.as_ref().expect("setup ran")
    }

    /// How many containers each contender has.
    pub fn per_slot(&self) -> usize {
        self.total.div_ceil(2)
    }

    /// The container of `sample` for contender `slot`: for an ADD, first
    /// attached by our bridge with `bridge_conf` (untimed).
    pub fn step(
        &mut self,
        ctx: &Ctx,
        slot: usize,
        sample: usize,
        cid_prefix: &str,
        bridge_conf: impl FnOnce(&TempDir) -> Value,
    ) -> Result<Step<'_>> {
        let (verb, n) = super::add_then_del(sample, self.total);
        let ns = super::slot_ns(&self.pool, self.per_slot(), slot, n);
        let cid = format!("{cid_prefix}-{slot}-{n}");
        if verb == "ADD" {
            let conf = bridge_conf(self.data.as_ref().expect("setup ran"));
            let out = Invocation::ours("bridge")
                .cni("ADD", &ctx.host, &cid, &ns.path_str(), "eth0", &conf)
                .run();
            if !out.success() {
                bail!("untimed bridge ADD failed:\n{}", out.report());
            }
            self.results.insert((slot, n), out.json());
        }
        let prev = self.results.get(&(slot, n)).cloned().unwrap_or(Value::Null);
        Ok(Step {
            verb,
            n,
            ns,
            cid,
            prev,
        })
    }

    /// Every call succeeded; once a contender's run is complete, its ADD
    /// and DEL medians and p95 are printed apart.
    pub fn verify(
        &mut self,
        plugin: &str,
        who: &Contender,
        invs: &[Invocation],
        outs: &[Finished],
    ) -> Result<()> {
        super::all_succeeded(invs, outs)?;
        if let Some(lat) = self.seen.record(&who.label, outs, self.total) {
            let (adds, dels) = lat.split_at(self.total / 2);
            super::latency_line(plugin, "ADD", &who.label, adds);
            super::latency_line(plugin, "DEL", &who.label, dels);
        }
        Ok(())
    }
}
