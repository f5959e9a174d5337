//! The cluster scale run (not part of `just test`: `just cluster-scale`):
//! many fake hosts join one cluster (etcd on one more fake host), one
//! overlay network, many endpoints added in parallel across the hosts.
//! Reports what the README's scaling section projects from: time to add
//! and to converge (every host holding a static entry for every remote
//! endpoint), forwarding entries per host, etcd keys, etcd round trips and
//! watch events per ADD, and each host daemon's resident memory. It
//! asserts correctness only (unique addresses, full convergence, nothing
//! left in etcd); the numbers are printed. Needs root.
//!
//! CLUSTER_SCALE_HOSTS (default 20) and CLUSTER_SCALE_ENDPOINTS (1000).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use integration::cluster::{wait_until, Cluster, Overlay, Site};
use integration::Netns;

fn env_num(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    f.get(11)
        .zip(f.get(12))
        .map(|(u, s)| (u + s) / tick)
        .unwrap_or(0.0)
}

fn num(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

#[test]
#[ignore = "scale run: just cluster-scale"]
fn cluster_scale_run() {
    let hosts = env_num("CLUSTER_SCALE_HOSTS", 20).max(2);
    let endpoints = env_num("CLUSTER_SCALE_ENDPOINTS", 1000).max(hosts);
    let per_host = endpoints / hosts;
    let endpoints = per_host * hosts;
    let c = Cluster::build("cs").hosts(hosts + 1).start();
    let etcd = &c.etcd;
    let sites = c.joined(1..=hosts);
    let Overlay { net, vni } = Overlay::create(&sites, "csnet", "10.64.0.0/16");
    let before: Vec<serde_json::Value> = sites.iter().map(Site::stats).collect();
    let cpu_before: Vec<f64> = sites
        .iter()
        .map(|s| s.daemon_pid().map(cpu_seconds).unwrap_or(0.0))
        .collect();

    let ctrs: Vec<Vec<Netns>> = (0..hosts)
        .map(|h| {
            (0..per_host)
                .map(|i| Netns::new(&format!("s{h}x{i}")))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let ips: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = sites
            .iter()
            .zip(&ctrs)
            .map(|(s, cs)| sc.spawn(|| cs.iter().map(|c| s.add(&net, c)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let added = started.elapsed();
    let unique: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(unique.len(), endpoints, "duplicate addresses");

    let want_static = endpoints - per_host;
    let static_entries = |s: &Site| {
        s.fdb(vni)
            .iter()
            .filter(|(m, dst)| m != "00:00:00:00:00:00" && *dst != s.ip)
            .count()
    };
    wait_until("every host converged", Duration::from_secs(120), || {
        sites
            .iter()
            .all(|s| static_entries(s) >= want_static && s.neighbours(vni).len() >= want_static)
    });
    let converged = started.elapsed();
    let after: Vec<serde_json::Value> = sites.iter().map(Site::stats).collect();
    let cpu: Vec<f64> = sites
        .iter()
        .zip(&cpu_before)
        .map(|(s, b)| s.daemon_pid().map(cpu_seconds).unwrap_or(0.0) - b)
        .collect();
    let keys = etcd.get_prefix("/cni-rs/").len();
    let calls: f64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| num(a, "etcdCalls") - num(b, "etcdCalls"))
        .sum();
    let events: f64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| num(a, "watchEvents") - num(b, "watchEvents"))
        .sum();
    let rss: Vec<f64> = after.iter().map(|a| num(a, "rssKb") / 1024.0).collect();
    let fdb: Vec<usize> = sites.iter().map(|s| s.fdb(vni).len()).collect();
    let neigh: Vec<usize> = sites.iter().map(|s| s.neighbours(vni).len()).collect();
    println!("cluster scale: {hosts} hosts, {endpoints} endpoints ({per_host} per host)");
    println!(
        "  all ADDs done in {:.1} s; every host converged {:.1} s after the first ADD, {:.2} s after the last",
        added.as_secs_f64(),
        converged.as_secs_f64(),
        (converged - added).as_secs_f64()
    );
    println!(
        "  forwarding entries per host: min {} max {} (static + flooding); neighbour entries: min {} max {}",
        fdb.iter().min().unwrap(),
        fdb.iter().max().unwrap(),
        neigh.iter().min().unwrap(),
        neigh.iter().max().unwrap()
    );
    println!("  etcd keys under /cni-rs/: {keys}");
    println!(
        "  etcd round trips per ADD (all hosts): {:.2}; watch events per ADD (summed over hosts): {:.1}",
        calls / endpoints as f64,
        events / endpoints as f64
    );
    println!(
        "  daemon CPU during the ADDs: min {:.2} s, max {:.2} s, total {:.1} s",
        cpu.iter().cloned().fold(f64::MAX, f64::min),
        cpu.iter().cloned().fold(0.0, f64::max),
        cpu.iter().sum::<f64>()
    );
    println!(
        "  daemon resident memory: min {:.1} MiB, max {:.1} MiB",
        rss.iter().cloned().fold(f64::MAX, f64::min),
        rss.iter().cloned().fold(0.0, f64::max)
    );

    let net_ref = net.as_str();
    std::thread::scope(|sc| {
        for (s, cs) in sites.iter().zip(&ctrs) {
            sc.spawn(move || cs.iter().for_each(|c| s.del(net_ref, c)));
        }
    });
    sites[0].ok(&["network", "rm", &net]);
    for s in &sites {
        s.ok(&["cluster", "leave"]);
    }
    assert_eq!(c.store_left(), vec![]);
}
