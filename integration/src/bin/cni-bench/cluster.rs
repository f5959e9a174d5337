//! Cluster scope: ADD and DEL of an overlay container with cluster-ipam
//! on a 3-host cluster (etcd on a fourth fake host) against the same
//! overlay with host-local on one host; the time from an ADD on host B
//! until a container on host A reaches the new one (see [`reach`]); etcd
//! round trips per ADD (the daemon's counter).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::cluster::{Cluster, Overlay, Site};
use integration::{Invocation, Netns, TempDir};
use serde_json::json;

use super::{ms, percentile, run_sample, Row, CNI_VERSION};

pub const NAME: &str = "vxlan-overlay cluster-ipam, 3-host cluster";
const CONTAINERS: usize = 60;

/// Ping `ip` from `probe` until it answers: each try waits 20 ms, and a
/// failed one forgets the unanswered ARP request, so the next try asks
/// again rather than waiting for the kernel's ARP retry (1 s). Returns the
/// time taken and whether the first try already answered.
fn reach(probe: &Netns, ip: &str) -> Result<(Duration, bool)> {
    let t = Instant::now();
    let mut first = true;
    loop {
        if probe
            .exec(&["ping", "-c1", "-W0.02", "-q", ip])
            .status
            .success()
        {
            return Ok((t.elapsed(), first));
        }
        first = false;
        if t.elapsed() > Duration::from_secs(5) {
            bail!("{ip} on host B not reachable from host A in 5 s");
        }
        probe.exec(&["ip", "neigh", "flush", "to", ip]);
    }
}

fn row(label: &str, what: &str, mut lat: Vec<Duration>, rss: u64, base: Option<Duration>) -> Row {
    lat.sort();
    let median = percentile(&lat, 50.0);
    Row {
        scenario: format!("{NAME} {what}"),
        label: label.into(),
        n: lat.len(),
        median,
        p95: percentile(&lat, 95.0),
        rss_kib: rss,
        ratio: base.map(|b| median.as_secs_f64() / b.as_secs_f64()),
    }
}

pub fn run() -> Result<Vec<Row>> {
    let c = Cluster::build("bcl").hosts(4).start();
    let sites = c.joined(1..=3);
    let (a, b) = (&sites[0], &sites[1]);
    let Overlay { net, .. } = Overlay::create(&sites, "bcl", "10.205.0.0/16");
    let probe = Netns::try_new("bclp")?;
    a.add(&net, &probe);
    let data = TempDir::new("bench-cl");
    let local = json!({
        "cniVersion": CNI_VERSION, "name": "bench-cl-local", "type": "vxlan-overlay", "vni": 7300,
        "subnet": "10.206.0.0/16",
        "ipam": {"type": "host-local", "dataDir": data.path().display().to_string(),
                 "ranges": [[{"subnet": "10.206.0.0/16"}]]}
    });
    let ctrs: Vec<(Netns, Netns)> = (0..CONTAINERS)
        .map(|_| Ok((Netns::try_new("bclc")?, Netns::try_new("bclh")?)))
        .collect::<Result<_>>()?;
    let calls = |s: &Site| s.stats()["etcdCalls"].as_f64().unwrap_or(0.0);
    let before = calls(b);
    let (mut add_c, mut add_h, mut del_c, mut del_h, mut reach_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut first_ok = 0;
    let (mut rss_c, mut rss_h) = (0, 0);
    for (i, (cc, ch)) in ctrs.iter().enumerate() {
        let id = format!("bcl-{i}");
        let out = run_sample(&[b.invocation("ADD", &net, &id, cc)])?;
        let f = &out[0];
        if !f.status.success() {
            bail!("cluster ADD failed: {}", String::from_utf8_lossy(&f.stdout));
        }
        add_c.push(f.elapsed);
        rss_c = rss_c.max(f.max_rss_kib);
        let r: serde_json::Value = serde_json::from_slice(&f.stdout)?;
        let ip = r["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .context("ADD result without address")?
            .to_string();
        let (took, at_once) = reach(&probe, &ip)?;
        reach_t.push(took);
        first_ok += usize::from(at_once);
        let inv = b.with_env(Invocation::ours("vxlan-overlay").cni(
            "ADD",
            b.host,
            &format!("{id}-hl"),
            &ch.path_str(),
            "eth0",
            &local,
        ));
        let f = &run_sample(&[inv])?[0];
        if !f.status.success() {
            bail!(
                "host-local ADD failed: {}",
                String::from_utf8_lossy(&f.stdout)
            );
        }
        add_h.push(f.elapsed);
        rss_h = rss_h.max(f.max_rss_kib);
    }
    let round_trips = (calls(b) - before) / CONTAINERS as f64;
    for (i, (cc, ch)) in ctrs.iter().enumerate() {
        let id = format!("bcl-{i}");
        del_c.push(run_sample(&[b.invocation("DEL", &net, &id, cc)])?[0].elapsed);
        let inv = b.with_env(Invocation::ours("vxlan-overlay").cni(
            "DEL",
            b.host,
            &format!("{id}-hl"),
            &ch.path_str(),
            "eth0",
            &local,
        ));
        del_h.push(run_sample(&[inv])?[0].elapsed);
    }
    a.del(&net, &probe);
    a.ok(&["network", "rm", &net]);
    for s in &sites {
        s.ok(&["cluster", "leave"]);
    }
    reach_t.sort();
    println!(
        "{NAME}: reachability from host A after ADD on host B: median {:.2} ms, p99 {:.2} ms \
         (n {}, first ping answered {first_ok}; 20 ms tries); etcd round trips per ADD on B: \
         {round_trips:.2}",
        ms(percentile(&reach_t, 50.0)),
        ms(percentile(&reach_t, 99.0)),
        reach_t.len()
    );
    let mut sorted = add_h.clone();
    sorted.sort();
    let base_add = percentile(&sorted, 50.0);
    let mut sorted = del_h.clone();
    sorted.sort();
    let base_del = percentile(&sorted, 50.0);
    Ok(vec![
        row("cluster", "ADD", add_c, rss_c, Some(base_add)),
        row("host-local", "ADD", add_h, rss_h, None),
        row("cluster", "DEL", del_c, 0, Some(base_del)),
        row("host-local", "DEL", del_h, 0, None),
    ])
}
