//! host-local at scale: about 1000 sequential ADDs into one pool, then the
//! DELs of them all, ours and the reference alternating (each on its own
//! data directory). What matters is whether the cost grows with the number
//! of leases, so besides the bench's overall row this prints the median of
//! the first 100 and the last 100 ADDs and DELs of each implementation.

use std::time::Duration;

use anyhow::Result;
use integration::proc::Finished;
use integration::{Invocation, TempDir};
use serde_json::{json, Value};

use super::{Contender, Ctx, Scenario, CNI_VERSION};

/// Operations per phase (ADD, then DEL) and the window compared.
const LEASES: usize = 1000;
const WINDOW: usize = 100;

#[derive(Default)]
pub struct SequentialAddDel {
    data: Option<TempDir>,
    /// Samples per contender, warm-up included: the first half ADDs.
    total: usize,
    /// Latencies per contender label, in sample order.
    seen: super::Latencies,
}

impl SequentialAddDel {
    fn conf(&self, slot: usize) -> Value {
        let dir = self
            .data
            .as_ref()
            .expect("setup ran")
            .join(format!("slot{slot}"));
        json!({
            "cniVersion": CNI_VERSION,
            "name": "benchnet",
            "type": "bridge",
            // A /20 holds the thousand leases with room to spare.
            "ipam": {"type": "host-local", "dataDir": dir.display().to_string(),
                     "ranges": [[{"subnet": "10.200.0.0/20"}]]}
        })
    }

    fn report(&self, label: &str, lat: &[Duration]) {
        let half = self.total / 2;
        let (adds, dels) = lat.split_at(half.min(lat.len()));
        let median = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            v.get(v.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or_default()
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for (verb, v) in [("ADD", adds), ("DEL", dels)] {
            if v.len() < 2 * WINDOW {
                continue;
            }
            let first = median(&v[..WINDOW]);
            let last = median(&v[v.len() - WINDOW..]);
            println!(
                "  host-local {verb} {label:>9}: first {WINDOW} median {:.3} ms, last {WINDOW} median {:.3} ms, last/first {:.2}x",
                ms(first),
                ms(last),
                last.as_secs_f64() / first.as_secs_f64().max(f64::MIN_POSITIVE)
            );
        }
    }
}

impl Scenario for SequentialAddDel {
    fn name(&self) -> String {
        format!("host-local {LEASES} ADDs then DELs")
    }
    fn plugin(&self) -> &str {
        "host-local"
    }
    fn samples(&self, _requested: usize) -> usize {
        2 * LEASES
    }
    fn setup(&mut self, ctx: &Ctx, _contenders: usize) -> Result<()> {
        self.data = Some(TempDir::new("bench-host-local"));
        self.total = ctx.samples;
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
        Ok(vec![Invocation::new(&who.path)
            .cni(
                verb,
                &ctx.host,
                &format!("hl-bench-{n}"),
                "/var/run/netns/hl-bench-none",
                "eth0",
                &self.conf(slot),
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
