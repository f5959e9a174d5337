//! macvlan at scale: 200 containers ADDed on one master, then DELed, ours
//! and the reference alternating, each with its own host-local (ours with
//! ours, the reference with the reference) on its own data directory and
//! subnet. The bench's overall row mixes both verbs, so this also prints
//! the median and p95 of the ADDs and of the DELs of each implementation.

use std::time::Duration;

use anyhow::{bail, Result};
use integration::netns::unique_ifname;
use integration::paths::Binary;
use integration::proc::Finished;
use integration::{Invocation, NetnsPool, TempDir};
use serde_json::{json, Value};

use super::{Contender, Ctx, Scenario, CNI_VERSION};

const CONTAINERS: usize = 200;

#[derive(Default)]
pub struct AddThenDel {
    data: Option<TempDir>,
    pool: Option<NetnsPool>,
    master: String,
    /// The fake host, to remove the master veth from when done.
    host: String,
    /// Samples per contender, warm-up included: the first half ADDs.
    total: usize,
    seen: super::Latencies,
}

impl AddThenDel {
    fn conf(&self, slot: usize) -> Value {
        let dir = self
            .data
            .as_ref()
            .expect("setup ran")
            .join(format!("slot{slot}"));
        json!({
            "cniVersion": CNI_VERSION,
            "name": "bench-mv",
            "type": "macvlan",
            "master": self.master,
            "ipam": {"type": "host-local", "dataDir": dir.display().to_string(),
                     "ranges": [[{"subnet": format!("10.{}.0.0/20", 210 + slot)}]]}
        })
    }

    fn report(&self, label: &str, lat: &[Duration]) {
        let half = self.total / 2;
        let (adds, dels) = lat.split_at(half.min(lat.len()));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for (verb, v) in [("ADD", adds), ("DEL", dels)] {
            let mut v = v.to_vec();
            v.sort();
            if v.is_empty() {
                continue;
            }
            let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
            println!(
                "  macvlan {verb} {label:>9}: n {}, median {:.3} ms, p95 {:.3} ms",
                v.len(),
                ms(at(0.5)),
                ms(at(0.95))
            );
        }
    }
}

impl Scenario for AddThenDel {
    fn name(&self) -> String {
        format!("macvlan {CONTAINERS} ADDs then DELs")
    }
    fn plugin(&self) -> &str {
        "macvlan"
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * CONTAINERS
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.total = ctx.samples;
        self.data = Some(TempDir::new("bench-macvlan"));
        self.pool = Some(NetnsPool::new("bmv", self.total.div_ceil(2) * contenders)?);
        // The master: a veth in the fake host whose peer stays there too.
        self.master = unique_ifname("bmv");
        self.host = ctx.host.name().to_string();
        let peer = format!("{}p", self.master);
        ctx.host.ip(&[
            "link",
            "add",
            &self.master,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ctx.host.ip(&["link", "set", &self.master, "up"])?;
        ctx.host.ip(&["link", "set", &peer, "up"])?;
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
        let per_slot = self.total.div_ceil(2);
        let ns = super::slot_ns(&self.pool, per_slot, slot, n);
        // Each implementation with its own host-local.
        let ipam_dir = match who.which {
            Some(b @ (Binary::Ours | Binary::Reference)) => b.path("host-local"),
            None => bail!("macvlan bench has no baseline contender"),
        };
        let ipam_dir = ipam_dir
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(vec![Invocation::new(&who.path)
            .cni(
                verb,
                &ctx.host,
                &format!("mv-bench-{n}"),
                &ns.path_str(),
                "eth0",
                &self.conf(slot),
            )
            .cni_path(&ipam_dir)
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

impl Drop for AddThenDel {
    fn drop(&mut self) {
        if !self.host.is_empty() {
            let _ = integration::netns::ip(&["-n", &self.host, "link", "del", &self.master]);
        }
    }
}
