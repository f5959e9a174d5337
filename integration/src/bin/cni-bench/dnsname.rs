//! dnsname on top of a bridge chain, ours against containers/dnsname (the
//! Go plugin that podman's CNI backend chains, running one dnsmasq per
//! network), chained after our bridge (`chained.rs`: an untimed bridge ADD,
//! then the timed dnsname ADD registers the container; the timed DELs once
//! all are in). A chain without dnsname pays nothing, so the ADD is what
//! name resolution costs on top.
//!
//! The Go plugin is Debian's golang-github-containernetworking-plugin-dnsname,
//! unpacked by `just deps` into target/go-dnsname (never installed: in
//! /usr/lib/cni podman would chain it into every network it creates). It
//! hard-codes /run/containers/cni/dnsname, so it runs in a mount namespace
//! of the bench's own where /run is a fresh tmpfs (named namespaces kept).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use integration::paths::{self, Binary};
use integration::proc::Finished;
use integration::{Invocation, TempDir};
use serde_json::{json, Value};

use super::chained::ChainedAddThenDel;
use super::{Contender, Ctx, Scenario, CNI_VERSION};

/// Where `just deps` unpacks containers/dnsname (or CNI_BENCH_GO_DNSNAME).
fn go_dnsname() -> PathBuf {
    std::env::var_os("CNI_BENCH_GO_DNSNAME")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace_root().join("target/go-dnsname/usr/lib/cni/dnsname"))
}

/// Each contender has a network (and bridge, subnet) of its own.
fn network(slot: usize) -> String {
    format!("bench-dn{slot}")
}

fn bridge_conf(slot: usize, data: &TempDir) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": network(slot),
        "type": "bridge",
        "bridge": format!("bdn{slot}"),
        "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": data.path().display().to_string(),
                 "ranges": [[{"subnet": format!("10.{}.0.0/16", 230 + slot)}]]}
    })
}

fn dnsname_conf(slot: usize, prev: &Value) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": network(slot),
        "type": "dnsname",
        "domainName": "dns.podman",
        "capabilities": {"aliases": true},
        "prevResult": prev,
    })
}

/// A mount namespace where /run is a fresh tmpfs holding the named network
/// namespaces of the machine (bound back in): what the Go plugin writes
/// stays there. Dropping it stops the dnsmasq processes the plugin started
/// (by their pid files) and the namespace's holder.
struct PrivateRun {
    holder: Child,
    mnt: Arc<std::fs::File>,
}

impl PrivateRun {
    fn new(work: &TempDir) -> Result<Self> {
        let keep = work.join("netns-keep");
        std::fs::create_dir_all(&keep)?;
        let script = format!(
            "set -e; mount --rbind /run/netns '{k}'; mount -t tmpfs tmpfs /run; \
             mkdir -p /run/netns; mount --rbind '{k}' /run/netns; echo ready; exec sleep 100000",
            k = keep.display()
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting unshare for the Go plugin's private /run")?;
        let mut line = String::new();
        BufReader::new(holder.stdout.take().context("no stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            bail!("could not set up a private /run for containers/dnsname");
        }
        let mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", holder.id()))?;
        Ok(PrivateRun {
            holder,
            mnt: Arc::new(mnt),
        })
    }
}

impl Drop for PrivateRun {
    fn drop(&mut self) {
        let state = format!("/proc/{}/root/run/containers/cni/dnsname", self.holder.id());
        for net in std::fs::read_dir(&state).into_iter().flatten().flatten() {
            let pid = std::fs::read_to_string(net.path().join("pidfile"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|p| *p > 1) {
                // SAFETY: kill(2) of the dnsmasq the Go plugin started for
                // this bench, named by its pid file in our private /run.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The daemon's folder for our plugin, on a tmpfs (see dns.rs); removed,
/// which also ends the daemon, on drop.
struct Shm(PathBuf);

impl Drop for Shm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
pub struct AddThenDel {
    base: ChainedAddThenDel,
    private_run: Option<PrivateRun>,
    shm: Option<Shm>,
}

impl Scenario for AddThenDel {
    fn name(&self) -> String {
        ChainedAddThenDel::name("dnsname")
    }
    fn plugin(&self) -> &str {
        "dnsname"
    }
    fn contenders(&self) -> Vec<Contender> {
        vec![
            Contender::plugin(Binary::Ours, "dnsname"),
            Contender {
                label: "reference".into(),
                which: Some(Binary::Reference),
                path: go_dnsname(),
            },
        ]
    }
    fn samples(&self, _requested: usize) -> usize {
        ChainedAddThenDel::samples()
    }
    fn setup(&mut self, ctx: &Ctx, contenders: usize) -> Result<()> {
        // The containers first: the private /run binds the namespaces
        // that exist when it is made.
        self.base.setup(ctx, contenders, "bench-dnsname", "bdn")?;
        self.private_run = Some(PrivateRun::new(self.base.data())?);
        let shm = PathBuf::from(format!("/dev/shm/cni-bench-dnsname-{}", std::process::id()));
        std::fs::create_dir_all(&shm)?;
        std::fs::write(shm.join("no-upstream.conf"), "")?;
        self.shm = Some(Shm(shm));
        Ok(())
    }
    fn prepare(
        &mut self,
        ctx: &Ctx,
        who: &Contender,
        slot: usize,
        sample: usize,
    ) -> Result<Vec<Invocation>> {
        let st = self.base.step(ctx, slot, sample, "dn-bench", |data| {
            bridge_conf(slot, data)
        })?;
        let mut inv = Invocation::new(&who.path)
            .cni(
                st.verb,
                &ctx.host,
                &st.cid,
                &st.ns.path_str(),
                "eth0",
                &dnsname_conf(slot, &st.prev),
            )
            .cni_args(&format!("IgnoreUnknown=1;K8S_POD_NAME=c{}", st.n))
            .timeout(None);
        if who.which == Some(Binary::Ours) {
            let shm = &self.shm.as_ref().expect("setup ran").0;
            inv = inv
                .env("CNI_RS_DNS_DIR", &shm.join("dns").display().to_string())
                .env(
                    "CNI_RS_DNS_RESOLV_CONF",
                    &shm.join("no-upstream.conf").display().to_string(),
                );
        } else {
            let run = self.private_run.as_ref().expect("setup ran");
            inv = inv.in_mount_ns(run.mnt.clone());
        }
        Ok(vec![inv])
    }
    fn verify(&mut self, who: &Contender, invs: &[Invocation], outs: &[Finished]) -> Result<()> {
        self.base.verify("dnsname", who, invs, outs)
    }
}
