//! cluster-ipam: addresses of one subnet handed out across every host of
//! a cluster, never twice. The plugin asks the per-host daemon over its
//! local socket (a one-shot process pays no etcd connection); the daemon
//! allocates inside the blocks this host holds and claims a new block with
//! one etcd transaction when they are full (see the daemon's
//! `cluster::ipam`). Out of blocks with the store out of reach: code 11.
//!
//! Config: `"ipam": {"type": "cluster-ipam", "subnet": "10.0.0.0/16"}`, or
//! for a dual-stack network `"subnets": ["10.0.0.0/16", "fd00:1::/64"]`:
//! one address of each subnet, all or nothing.

use std::time::Duration;

use cni_dns::cluster::{self, AskError};
use cni_dns::control::ClusterRequest;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::{CniResult, Error, IpConfig, Result};
use ipnetwork::IpNetwork;
use serde_json::Value;

const ABOUT: About = About {
    name: "cluster-ipam",
    description: "IPAM plugin that allocates one subnet across a cluster's hosts (etcd blocks)",
};

/// A block claim is one etcd transaction per endpoint tried.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

struct ClusterIpam;

fn subnets(req: &Request) -> Result<Vec<IpNetwork>> {
    let ipam = req.config.ipam();
    let one = ipam.and_then(|i| i.get("subnet")).and_then(Value::as_str);
    let many: Vec<&str> = match ipam.and_then(|i| i.get("subnets")) {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| Error::invalid_config("ipam.subnets must be a list of CIDRs"))?,
    };
    let all: Vec<&str> = one.into_iter().chain(many).collect();
    if all.is_empty() {
        return Err(Error::invalid_config(
            "cluster-ipam needs ipam.subnet (or ipam.subnets)",
        ));
    }
    all.iter()
        .map(|s| {
            s.parse()
                .map_err(|e| Error::invalid_config(format!("ipam subnet {s:?}: {e}")))
        })
        .collect()
}

/// One address of `subnet` from the daemon.
fn allocate(req: &Request, subnet: IpNetwork) -> Result<IpNetwork> {
    let data = ask(
        req,
        ClusterRequest::IpamAdd {
            network: req.config.name.clone(),
            subnet: subnet.to_string(),
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
        },
    )?;
    data.as_ref()
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::io(format!("the daemon answered no address: {data:?}")))
}

fn ask(req: &Request, r: ClusterRequest) -> Result<Option<Value>> {
    cluster::ask(r, &req.path, ASK_TIMEOUT)
        .map_err(|AskError { code, msg }| Error::new(code.unwrap_or(999), msg))
}

impl Plugin for ClusterIpam {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let mut ips = Vec::new();
        for subnet in subnets(req)? {
            match allocate(req, subnet) {
                Ok(address) => ips.push(IpConfig {
                    interface: None,
                    address,
                    gateway: None,
                }),
                Err(e) => {
                    // All or nothing: an address of an earlier subnet goes.
                    if !ips.is_empty() {
                        let _ = self.del(req);
                    }
                    return Err(e);
                }
            }
        }
        Ok(CniResult {
            ips,
            ..Default::default()
        })
    }

    /// A host that is not clustered holds nothing to release.
    fn del(&self, req: &Request) -> Result<()> {
        if !matches!(cluster::load(), Ok(Some(_))) {
            return Ok(());
        }
        ask(
            req,
            ClusterRequest::IpamDel {
                network: req.config.name.clone(),
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
            },
        )
        .map(|_| ())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let prev = req
            .config
            .prev_result()?
            .ok_or_else(|| Error::invalid_config("CHECK needs a prevResult"))?;
        for ip in &prev.ips {
            ask(
                req,
                ClusterRequest::IpamCheck {
                    network: req.config.name.clone(),
                    container_id: req.container_id.clone(),
                    ifname: req.ifname.clone(),
                    ip: ip.address.ip(),
                },
            )?;
        }
        Ok(())
    }

    /// Leases of attachments the runtime no longer knows are released (and
    /// their endpoints unpublished).
    fn gc(&self, req: &Request) -> Result<()> {
        let Some(valid) = req.config.valid_attachments()? else {
            return Err(Error::invalid_config(
                "GC needs cni.dev/valid-attachments (an empty list releases everything)",
            ));
        };
        if !matches!(cluster::load(), Ok(Some(_))) {
            return Ok(());
        }
        ask(
            req,
            ClusterRequest::IpamGc {
                network: req.config.name.clone(),
                valid: valid
                    .into_iter()
                    .map(|a| (a.container_id, a.ifname))
                    .collect(),
            },
        )
        .map(|_| ())
    }

    /// Ready unless the host is cut off from the store, and never silent
    /// about addresses the cluster reclaimed while it was.
    fn status(&self, req: &Request) -> Result<()> {
        subnets(req)?;
        if !matches!(cluster::load(), Ok(Some(_))) {
            return Err(Error::not_available("this host is not in a cluster"));
        }
        ask(req, ClusterRequest::Status)
            .map(|_| ())
            .map_err(|e| Error::not_available(e.msg))
    }
}

fn main() {
    skel::run(&ABOUT, &ClusterIpam)
}
