//! portmap, ours against the reference (iptables), chained after our bridge
//! (`chained.rs`: an untimed bridge ADD, then the timed portmap ADD; the
//! timed DELs once all are in): each container publishes one TCP port of
//! its own (ports never collide: ours refuses a taken one).

use anyhow::Result;
use integration::proc::Finished;
use integration::{Invocation, TempDir};
use serde_json::{json, Value};

use super::chained::ChainedAddThenDel;
use super::{Contender, Ctx, Scenario, CNI_VERSION};

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

#[derive(Default)]
pub struct AddThenDel {
    base: ChainedAddThenDel,
}

impl Scenario for AddThenDel {
    fn name(&self) -> String {
        ChainedAddThenDel::name("portmap")
    }
    fn plugin(&self) -> &str {
        "portmap"
    }
    fn samples(&self, _requested: usize) -> usize {
        ChainedAddThenDel::samples()
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        self.base.setup(ctx, contenders, "bench-portmap", "bpm")
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        let half = self.base.per_slot();
        let st = self.base.step(ctx, slot, sample, "pm-bench", bridge_conf)?;
        let port = u16::try_from(20000 + slot * half + st.n).unwrap_or(u16::MAX);
        Ok(vec![Invocation::new(&who.path)
            .cni(
                st.verb,
                &ctx.host,
                &st.cid,
                &st.ns.path_str(),
                "eth0",
                &portmap_conf(port, &st.prev),
            )
            .timeout(None)])
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        self.base.verify("portmap", who, invs, outs)
    }
}
