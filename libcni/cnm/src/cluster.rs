//! `cnitool cluster ...`: joining this host to a cluster kept in etcd
//! (Docker's `--cluster-store`, swarm's `node ls`), and the cluster-scope
//! side of `network create|rm`. cnitool writes the cluster file and asks
//! the per-host daemon, which alone talks to etcd.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Subcommand};
use cni_dns::cluster::{self as conf_file, AskError, ClusterConf};
use cni_dns::control::ClusterRequest;
use cni_spec::error::{Error, Result};
use serde_json::Value;

use super::cli::Settings;
use super::model::Network;
use super::registry::Entry;

/// Joining can wait on several unreachable endpoints in turn.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Create a cluster in an etcd store and join this host to it
    Init(JoinArgs),
    /// Join this host to an existing cluster
    Join(JoinArgs),
    /// Take this host out of the cluster (its endpoints, blocks, networks)
    Leave(LeaveArgs),
    /// Release a gone host's endpoints and address blocks now, without
    /// waiting for the grace period
    Rm(RmArgs),
    /// List the cluster's hosts
    #[command(visible_alias = "list")]
    Ls,
    /// This host's daemon counters as JSON (etcd round trips, watch
    /// events, resident memory)
    Stats,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// etcd://HOST:PORT[,HOST:PORT...]
    #[arg(long)]
    pub store: String,
    /// This host's underlay address, or the interface that has it
    #[arg(long)]
    pub advertise: String,
    /// This host's name in the cluster (default: the hostname)
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds the host's lease lives without a keepalive
    #[arg(long, default_value_t = conf_file::DEFAULT_LEASE_TTL)]
    pub lease_ttl: u64,
    /// TLS: the CA of etcd's certificate (https:// or etcds:// stores)
    #[arg(long)]
    pub cacert: Option<std::path::PathBuf>,
    /// TLS: this host's client certificate (etcd --client-cert-auth)
    #[arg(long)]
    pub cert: Option<std::path::PathBuf>,
    /// TLS: the client certificate's key
    #[arg(long)]
    pub key: Option<std::path::PathBuf>,
    /// init: seconds a host's lease may stay expired before the cluster
    /// releases its endpoints and blocks (default 30)
    #[arg(long)]
    pub grace_period: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    pub host: String,
    /// Remove it even though its lease is alive
    #[arg(long, short)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Leave even with endpoints on cluster networks
    #[arg(long, short)]
    pub force: bool,
}

fn err(e: AskError) -> Error {
    Error::new(e.code.unwrap_or(999), e.msg)
}

fn ask(req: ClusterRequest, s: &Settings) -> Result<Option<Value>> {
    conf_file::ask(req, &s.cni.path, ASK_TIMEOUT).map_err(err)
}

/// Whether this host is a member of a cluster.
pub fn joined() -> bool {
    matches!(conf_file::load(), Ok(Some(_)))
}

pub fn cluster(cmd: ClusterCmd, s: &Settings) -> Result<()> {
    match cmd {
        ClusterCmd::Init(a) => join(&a, s, true),
        ClusterCmd::Join(a) => join(&a, s, false),
        ClusterCmd::Leave(a) => {
            if !joined() {
                return Err(Error::invalid_config("this host is not in a cluster"));
            }
            ask(ClusterRequest::Leave { force: a.force }, s)?;
            println!("left the cluster");
            Ok(())
        }
        ClusterCmd::Rm(a) => {
            ask(
                ClusterRequest::Remove {
                    host: a.host.clone(),
                    force: a.force,
                },
                s,
            )?;
            println!("{}", a.host);
            Ok(())
        }
        ClusterCmd::Ls => ls(s),
        ClusterCmd::Stats => {
            let v = ask(ClusterRequest::Stats, s)?.unwrap_or_default();
            println!("{v}");
            Ok(())
        }
    }
}

/// An address as given, or the first IPv4 (else any) address of the
/// interface so named.
fn advertise_address(spec: &str) -> Result<IpAddr> {
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut nl = cni_net::netlink::Netlink::new()?;
    let link = nl.link_by_name_opt(spec)?.ok_or_else(|| {
        Error::invalid_config(format!(
            "--advertise {spec:?}: no such address or interface"
        ))
    })?;
    let addrs = nl.addresses(Some(link.index))?;
    addrs
        .iter()
        .map(|a| a.addr.ip())
        .filter(|ip| !ip.is_loopback())
        .min_by_key(|ip| ip.is_ipv6())
        .ok_or_else(|| {
            Error::invalid_config(format!("--advertise {spec}: interface has no address"))
        })
}

/// The TLS files as given, checked to exist (absolute, since the daemon
/// reads them from another working directory).
fn tls_files(a: &JoinArgs, secure: bool) -> Result<Option<conf_file::TlsFiles>> {
    let Some(ca) = &a.cacert else {
        if secure || a.cert.is_some() || a.key.is_some() {
            return Err(Error::invalid_config(
                "TLS to etcd needs --cacert (and --cert/--key for client certificates)",
            ));
        }
        return Ok(None);
    };
    if a.cert.is_some() != a.key.is_some() {
        return Err(Error::invalid_config("--cert and --key go together"));
    }
    let abs = |p: &std::path::PathBuf| -> Result<std::path::PathBuf> {
        std::fs::canonicalize(p).map_err(|e| Error::from_io(format!("{}", p.display()), e))
    };
    Ok(Some(conf_file::TlsFiles {
        ca: abs(ca)?,
        cert: a.cert.as_ref().map(abs).transpose()?,
        key: a.key.as_ref().map(abs).transpose()?,
    }))
}

fn join(a: &JoinArgs, s: &Settings, init: bool) -> Result<()> {
    if let Ok(Some(c)) = conf_file::load() {
        return Err(Error::invalid_config(format!(
            "this host is already in a cluster (as {}, store {}): leave it first",
            c.host,
            c.store.join(",")
        )));
    }
    let (store, secure) = conf_file::parse_store(&a.store).map_err(Error::invalid_config)?;
    let tls = tls_files(a, secure)?;
    let host = match &a.name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_err(|e| Error::from_io("reading the hostname", e))?
            .trim()
            .to_string(),
    };
    if host.is_empty() || host.contains('/') || host.len() > 253 {
        return Err(Error::invalid_config(format!("bad host name {host:?}")));
    }
    let conf = ClusterConf {
        store,
        advertise: advertise_address(&a.advertise)?,
        host,
        conf_dir: s.conf_dir.clone(),
        lease_ttl: a.lease_ttl.max(2),
        tls,
    };
    conf_file::save(&conf).map_err(|e| Error::from_io("writing the cluster file", e))?;
    if a.grace_period.is_some() && !init {
        return Err(Error::invalid_config(
            "--grace-period is the cluster's: give it at `cluster init`",
        ));
    }
    let req = ClusterRequest::Join {
        init,
        grace_period: a.grace_period,
    };
    if let Err(e) = ask(req, s) {
        let _ = conf_file::remove();
        return Err(e);
    }
    println!(
        "{} {} the cluster as {} ({})",
        conf.host,
        if init { "created and joined" } else { "joined" },
        conf.host,
        conf.advertise
    );
    Ok(())
}

fn ls(s: &Settings) -> Result<()> {
    if !joined() {
        return Err(Error::invalid_config("this host is not in a cluster"));
    }
    let rows = ask(ClusterRequest::Hosts, s)?.unwrap_or_default();
    let rows: Vec<[String; 4]> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let me = if r["self"].as_bool() == Some(true) {
                " *"
            } else {
                ""
            };
            [
                format!("{}{me}", r["host"].as_str().unwrap_or_default()),
                r["address"].as_str().unwrap_or_default().to_string(),
                r["state"].as_str().unwrap_or_default().to_string(),
                r["endpoints"].to_string(),
            ]
        })
        .collect();
    super::cli::print_table(["HOST", "ADDRESS", "STATE", "ENDPOINTS"], &rows);
    Ok(())
}

/// `network create -d overlay` on a clustered host: a VXLAN ID from the
/// cluster unless `-o vni` gave one, the conflist written here and stored
/// in etcd, whence every host's daemon writes it too.
pub fn create_overlay(mut net: Network, s: &Settings) -> Result<Entry> {
    net.cluster = true;
    let reg = s.registry();
    if reg.find(&net.name).is_ok() {
        return Err(Error::invalid_config(format!(
            "network with name {} already exists",
            net.name
        )));
    }
    let mut reserved = None;
    if !super::drivers::has_vni(&net) {
        let vni = ask(
            ClusterRequest::Vni {
                network: net.name.clone(),
            },
            s,
        )?
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| Error::io("the daemon assigned no VXLAN ID"))?;
        net.options.insert("vni".into(), vni.to_string());
        reserved = Some(vni);
    }
    let name = net.name.clone();
    let created = reg.create(net).and_then(|e| {
        let stored = e
            .list
            .as_ref()
            .and_then(|l| std::fs::read(&l.source).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(|| Error::io("the new conflist cannot be read back"))?;
        let put = ask(
            ClusterRequest::NetworkPut {
                network: e.name.clone(),
                conflist: stored,
            },
            s,
        );
        match put {
            Ok(_) => Ok(e),
            Err(err) => {
                let _ = reg.remove_file(&e);
                Err(err)
            }
        }
    });
    if let (Err(_), Some(vni)) = (&created, reserved) {
        let _ = ask(ClusterRequest::VniRelease { network: name, vni }, s);
    }
    created
}

/// `network rm` of a cluster network: gone cluster-wide, refused while
/// any host has endpoints on it.
pub fn remove_network(e: &Entry, s: &Settings) -> Result<()> {
    ask(
        ClusterRequest::NetworkRm {
            network: e.name.clone(),
        },
        s,
    )
    .map(|_| ())
}
