//! The routing mesh: new connections per second to a service's task on
//! host h1, from outside the cluster through the published port of h0
//! (no task there: DNAT, the overlay's tunnel, SNAT to h0's mesh
//! address), against a container on h0 calling the task's address
//! directly over the same tunnel (no translation), and against the
//! published port of h1 itself (translation, no tunnel). Medians of
//! rounds taken in alternation, as the services bench does.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use integration::cluster::{Cluster, Overlay, Site};
use integration::cnitool::{delete_named_netns, named_netns_with_prefix};
use integration::services::NameServer;
use integration::underlay::host_ip;
use integration::{unique_id, Netns};
use serde_json::Value;

use super::services::{conn_rate, paired, ratio_line};

pub const NAME: &str =
    "routing mesh: connections/s through a host with no task vs direct to the task";

pub fn run() -> Result<()> {
    println!("\n{NAME}");
    // Hosts 0-2 are the cluster (etcd in host 0), host 3 is outside.
    let c = Cluster::build("bms").hosts(4).start();
    let sites = c.joined(0..3);
    let Overlay { net, .. } = Overlay::create(&sites, "bms", "10.207.0.0/24");
    let svc = unique_id("bmesh");
    let _cleanup = Cleanup {
        site: &sites[0],
        service: svc.clone(),
    };
    sites[0].ok(&[
        "service",
        "create",
        &svc,
        "--network",
        &net,
        "-p",
        "8080:80",
        "--constraint",
        "node.hostname==h1",
    ]);
    let v: Value = serde_json::from_str(&sites[0].ok(&["service", "inspect", &svc]))?;
    let task = &v[0]["Tasks"][0];
    let name = task["Name"].as_str().context("no task")?;
    let addr: Ipv4Addr = task["Addresses"][0].as_str().context("addr")?.parse()?;
    let _server = NameServer::in_task(name)?;
    let client = Netns::try_new("bmsc")?;
    sites[0].add(&net, &client);
    let (cf, of) = (client.open()?, c.u.hosts[3].open()?);
    let direct = SocketAddr::from((addr, 80));
    let via_h0: SocketAddr = format!("{}:8080", host_ip(0)).parse()?;
    let via_h1: SocketAddr = format!("{}:8080", host_ip(1)).parse()?;

    let (d, m) = paired(|| conn_rate(&cf, direct), || conn_rate(&of, via_h0))?;
    ratio_line("mesh (task elsewhere)", "conn/s", d, m, "mesh     ");
    let (d, l) = paired(|| conn_rate(&cf, direct), || conn_rate(&of, via_h1))?;
    ratio_line("mesh (task on the host)", "conn/s", d, l, "published");
    sites[0].del(&net, &client);
    Ok(())
}

/// The service and its task sandboxes go, also when a step fails.
struct Cleanup<'a> {
    site: &'a Site<'a>,
    service: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.site.cnitool(&["service", "rm", &self.service]);
        delete_named_netns(&named_netns_with_prefix(&format!("{}.", self.service)));
    }
}
