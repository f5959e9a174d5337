//! `cnitool service ...`: Docker's service commands, flags and output.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::model::{self, EndpointMode, Service};
use super::ops::{self, CreateSpec};
use super::{cluster, tasks};
use crate::cli::{print_table, Settings};
use cni_spec::error::{Error, ErrorList, Result};

/// `cnitool service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Create a new service
    Create(CreateArgs),
    /// List services
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more services
    Inspect {
        /// Accepted for Docker compatibility: the output is always JSON
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Scale one or multiple replicated services
    Scale {
        /// Exit immediately instead of waiting for the service to converge
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true, value_name = "SERVICE=REPLICAS")]
        specs: Vec<String>,
    },
    /// Remove one or more services
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Service name
    #[arg(long)]
    pub name: Option<String>,
    /// Network to attach the tasks to
    #[arg(long, required = true)]
    pub network: String,
    /// Number of tasks
    #[arg(long, default_value = "1", value_name = "N")]
    pub replicas: String,
    /// Publish a port as a node port: PUBLISHED:TARGET[/tcp|udp]
    #[arg(short, long, value_name = "PORT")]
    pub publish: Vec<String>,
    /// Endpoint mode: vip or dnsrr
    #[arg(long = "endpoint-mode", default_value = "vip")]
    pub endpoint_mode: String,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Placement constraint on a cluster network: node.hostname==H or !=H
    #[arg(long, value_name = "CONSTRAINT")]
    pub constraint: Vec<String>,
    /// Service name (also accepted as --name, Docker's spelling)
    #[arg(value_name = "NAME")]
    pub positional: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: json
    #[arg(long)]
    pub format: Option<String>,
}

pub fn service(cmd: ServiceCmd, s: &Settings) -> Result<()> {
    match cmd {
        ServiceCmd::Create(a) => create(&a, s),
        ServiceCmd::Ls(a) => ls(&a, s),
        ServiceCmd::Inspect { services, .. } => inspect(&services, s),
        ServiceCmd::Scale { detach, specs } => scale(&specs, detach, s),
        ServiceCmd::Rm { services } => rm(&services, s),
    }
}

/// Everything checked before anything is made.
fn spec_of(a: &CreateArgs) -> Result<CreateSpec> {
    let name = a
        .name
        .clone()
        .or_else(|| a.positional.clone())
        .unwrap_or_default();
    model::validate_name(&name)?;
    Ok(CreateSpec {
        name,
        network: a.network.clone(),
        replicas: model::parse_replicas(&a.replicas, "--replicas")?,
        mode: EndpointMode::parse(&a.endpoint_mode)?,
        ports: a
            .publish
            .iter()
            .map(|p| model::parse_publish(p))
            .collect::<Result<_>>()?,
    })
}

fn progress(svc: &Service) {
    let n = svc.tasks.len();
    println!("overall progress: {n} out of {} tasks", svc.replicas);
    for i in 1..=n {
        println!("{i}/{n}: running   [{}>]", "=".repeat(49));
    }
    println!("verify: Service converged");
}

fn create(a: &CreateArgs, s: &Settings) -> Result<()> {
    let spec = spec_of(a)?;
    let net = s.registry().find(&spec.network).ok();
    let svc = match net.filter(cluster::is_cluster) {
        Some(net) => cluster::create(&spec, &net, &a.constraint, a.detach, s)?,
        None if !a.constraint.is_empty() => {
            return Err(Error::invalid_config(
                "placement constraints need a cluster network (network create -d overlay on a clustered host)",
            ))
        }
        None => ops::create(&spec, s)?,
    };
    println!("{}", svc.id);
    if !a.detach {
        progress(&svc);
    }
    Ok(())
}

fn ports_column(svc: &Service) -> String {
    svc.ports
        .iter()
        .map(|p| format!("*:{}->{}/{}", p.published, p.target, p.proto()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn replicas_column(svc: &Service) -> String {
    // A cluster service's tasks run on many hosts: the store lists the
    // running ones (those whose host wrote their address back).
    let running = match svc.cluster {
        true => svc.tasks.len(),
        false => svc.tasks.iter().filter(|t| tasks::running(t)).count(),
    };
    format!("{running}/{}", svc.replicas)
}

/// This host's services, then the cluster's (when the host is in one).
fn all_services(s: &Settings) -> Result<Vec<Service>> {
    let mut all = ops::list(s)?;
    if cluster::clustered() {
        all.extend(cluster::list(s)?);
    }
    Ok(all)
}

/// A service by name or ID: this host's first, then the cluster's.
fn find_any(key: &str, s: &Settings) -> Result<Service> {
    match ops::find(key, s) {
        Err(e) if cluster::clustered() => cluster::find(key, s).map_err(|_| e),
        other => other,
    }
}

fn ls(a: &LsArgs, s: &Settings) -> Result<()> {
    let all = all_services(s)?;
    if a.quiet {
        for svc in &all {
            println!("{}", &svc.id[..12.min(svc.id.len())]);
        }
        return Ok(());
    }
    match a.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for svc in &all {
                println!(
                    "{}",
                    json!({
                        "ID": &svc.id[..12.min(svc.id.len())],
                        "Image": "",
                        "Mode": "replicated",
                        "Name": svc.name,
                        "Ports": ports_column(svc),
                        "Replicas": replicas_column(svc),
                    })
                );
            }
            Ok(())
        }
        Some(other) => Err(Error::invalid_config(format!(
            "unsupported --format {other:?}: use json"
        ))),
        None => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|svc| {
                    [
                        svc.id[..12.min(svc.id.len())].to_string(),
                        svc.name.clone(),
                        "replicated".to_string(),
                        replicas_column(svc),
                        "-".to_string(),
                        ports_column(svc),
                    ]
                })
                .collect();
            print_table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows);
            Ok(())
        }
    }
}

/// `docker service inspect`'s shape, with the tasks added under
/// `Tasks` (Docker shows them with `service ps`).
pub fn inspect_json(svc: &Service) -> Value {
    let ports: Vec<Value> = svc
        .ports
        .iter()
        .map(|p| {
            json!({"Protocol": p.proto(), "TargetPort": p.target,
                   "PublishedPort": p.published, "PublishMode": "ingress"})
        })
        .collect();
    let spec_ports = json!({"Mode": svc.endpoint_mode.as_str(), "Ports": ports});
    let mut endpoint = json!({"Spec": spec_ports, "Ports": ports});
    if let Some(v) = &svc.vip {
        endpoint["VirtualIPs"] = json!([{"NetworkID": svc.network_id, "Addr": v}]);
    }
    json!({
        "ID": svc.id,
        "Version": {"Index": svc.version},
        "CreatedAt": svc.created,
        "UpdatedAt": svc.updated,
        "Spec": {
            "Name": svc.name,
            "Labels": {},
            "TaskTemplate": {"Networks": [{"Target": svc.network_id}]},
            "Mode": {"Replicated": {"Replicas": svc.replicas}},
            "EndpointSpec": spec_ports,
        },
        "Endpoint": endpoint,
        "Tasks": svc.tasks.iter().map(|t| json!({
            "ID": t.id, "Slot": t.slot, "Name": t.name,
            "Addresses": [t.address.to_string()],
            "NodeID": t.host,
            "Status": {"State": if svc.cluster || tasks::running(t) { "running" } else { "shutdown" }},
        })).chain(svc.pending.iter().map(|t| json!({
            // Swarm's pending task: on no node, no address.
            "ID": t.id, "Slot": t.slot, "Name": t.name,
            "Addresses": [],
            "NodeID": null,
            "Status": {"State": "pending", "Err": t.reason},
        }))).collect::<Vec<_>>(),
    })
}

fn inspect(keys: &[String], s: &Settings) -> Result<()> {
    let mut out = Vec::new();
    let mut errs = ErrorList::new();
    for k in keys {
        match find_any(k, s) {
            Ok(svc) => out.push(inspect_json(&svc)),
            Err(e) => errs.push(e),
        }
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    errs.into_result()
}

fn scale(specs: &[String], detach: bool, s: &Settings) -> Result<()> {
    // Every specifier is checked before any service changes, as Docker.
    let mut parsed = Vec::new();
    for spec in specs {
        let Some((name, n)) = spec.split_once('=') else {
            return Err(Error::invalid_config(format!(
                "invalid scale specifier '{spec}'.\nSee 'cnitool service scale --help'."
            )));
        };
        // Docker's message for what is no count; a count over the bound
        // says so rather than calling its syntax invalid.
        let n = model::parse_replicas(n, "replicas").map_err(|_| match n.parse::<u64>() {
            Ok(_) => Error::invalid_config(format!(
                "invalid replicas value {n}: at most {} replicas",
                model::MAX_REPLICAS
            )),
            Err(_) => Error::invalid_config(format!(
                "invalid replicas value {n}: strconv.ParseUint: parsing \"{n}\": invalid syntax"
            )),
        })?;
        parsed.push((name.to_string(), n));
    }
    let mut errs = ErrorList::new();
    for (name, n) in parsed {
        let scaled = match find_any(&name, s) {
            Ok(svc) if svc.cluster => cluster::scale(&svc.name, n, detach, s),
            _ => ops::scale(&name, n, s),
        };
        match scaled {
            Ok(svc) => {
                println!("{name} scaled to {n}");
                if !detach {
                    progress(&svc);
                }
            }
            Err(e) => errs.push(e),
        }
    }
    errs.into_result()
}

fn rm(keys: &[String], s: &Settings) -> Result<()> {
    let mut errs = ErrorList::new();
    for k in keys {
        let removed = match find_any(k, s) {
            Ok(svc) if svc.cluster => cluster::remove(&svc.name, s),
            _ => ops::remove(k, s),
        };
        match removed {
            Ok(_) => println!("{k}"),
            Err(e) => errs.push(e),
        }
    }
    errs.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: ServiceCmd,
    }

    fn parse(v: &[&str]) -> std::result::Result<ServiceCmd, clap::Error> {
        Top::try_parse_from(std::iter::once("service").chain(v.iter().copied())).map(|t| t.cmd)
    }

    #[test]
    fn docker_spellings_parse() {
        let ServiceCmd::Create(c) = parse(&[
            "create",
            "web",
            "--network",
            "n",
            "--replicas",
            "3",
            "-p",
            "8080:80",
            "--publish",
            "53:53/udp",
            "--endpoint-mode",
            "dnsrr",
            "-d",
        ])
        .unwrap() else {
            panic!("not create")
        };
        let spec = spec_of(&c).unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.replicas, spec.ports.len()),
            ("web", 3, 2)
        );
        assert_eq!(spec.mode, EndpointMode::Dnsrr);
        let ServiceCmd::Create(c) = parse(&["create", "--name", "api", "--network", "n"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(spec_of(&c).unwrap().name, "api");
        assert!(
            matches!(parse(&["scale", "a=1", "b=2"]).unwrap(), ServiceCmd::Scale { specs, .. } if specs.len() == 2)
        );
        assert!(matches!(
            parse(&["remove", "a"]).unwrap(),
            ServiceCmd::Rm { .. }
        ));
        assert!(matches!(parse(&["list", "-q"]).unwrap(), ServiceCmd::Ls(l) if l.quiet));
        for bad in [&["create", "web"][..], &["rm"], &["scale"], &["inspect"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let ServiceCmd::Create(c) = parse(&["create", "--network", "n"]).unwrap() else {
            panic!()
        };
        assert!(spec_of(&c)
            .unwrap_err()
            .msg
            .contains("name must be provided"));
    }
}
