//! cnitool: run a network's plugin chain against a namespace, compatible
//! with upstream cnitool (`add|check|del|status|gc NETWORK [NETNS]`, the
//! same environment variables and container ID derivation), plus Docker's
//! `network` and `sandbox` verbs over CNI.

use std::path::PathBuf;
use std::process::ExitCode;

use cni_cnm::cli as cnm_cli;
use cni_runtime::cache::DEFAULT_CACHE_DIR;
use cni_runtime::{conf, CniConfig, RuntimeConf};
use cni_spec::Attachment;
use cni_spec::{Error, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

const USAGE: &str = "\
usage: cnitool add|check|del NETWORK NETNS
       cnitool status|gc NETWORK
       cnitool network create|ls|inspect|rm|prune|connect|disconnect ...
       cnitool sandbox create|ls|rm NAME

environment:
  NETCONFPATH   config directory (default /etc/cni/net.d)
  CNI_PATH      plugin directories, ':'-separated
  CNI_ARGS      K=V;K2=V2 passed to plugins
  CAP_ARGS      capability arguments as a JSON object
  CNI_IFNAME    interface name in the namespace (default eth0)
  CNI_CACHE_DIR result cache directory (default /var/lib/cni)";

fn main() -> ExitCode {
    cni_plugin::log::init("cnitool");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cnitool: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some(verb) = args.first() else {
        return Err(usage_error());
    };
    match verb.as_str() {
        "network" => cnm_cli::network(&args[1..], &env_settings()),
        "sandbox" => cnm_cli::sandbox(&args[1..], &env_settings()),
        "add" | "check" | "del" => {
            let [_, net, netns] = args else {
                return Err(usage_error());
            };
            attachment_verb(verb, net, netns)
        }
        "status" | "gc" => {
            let [_, net, ..] = args else {
                return Err(usage_error());
            };
            network_verb(verb, net)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Error::invalid_config(format!(
            "unknown command {other:?}\n{USAGE}"
        ))),
    }
}

fn usage_error() -> Error {
    Error::invalid_config(USAGE)
}

/// Directories and cache taken from the environment, as cnitool does.
fn env_settings() -> cnm_cli::Settings {
    let conf_dir = std::env::var_os("NETCONFPATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/cni/net.d"));
    let path = std::env::var("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    let cache_dir = std::env::var_os("CNI_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));
    cnm_cli::Settings {
        conf_dir,
        cni: CniConfig::new(path, cache_dir),
    }
}

/// `cnitool-` + the first 10 bytes of sha512(netns path) in hex: the
/// container ID upstream cnitool derives, so both address the same cache.
pub fn container_id_for(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

fn cni_args() -> Result<Vec<(String, String)>> {
    let raw = std::env::var("CNI_ARGS").unwrap_or_default();
    Ok(cni_spec::CniArgs::parse(&raw)?.pairs().to_vec())
}

fn cap_args() -> Result<Map<String, Value>> {
    match std::env::var("CAP_ARGS") {
        Ok(s) if !s.is_empty() => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(Error::decode("CAP_ARGS is not a JSON object")),
        },
        _ => Ok(Map::new()),
    }
}

fn absolute(p: &str) -> Result<PathBuf> {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        return Ok(p);
    }
    let cwd = std::env::current_dir().map_err(|e| Error::from_io("current dir", e))?;
    Ok(cwd.join(p))
}

fn attachment_verb(verb: &str, net: &str, netns: &str) -> Result<()> {
    let s = env_settings();
    let list = conf::load_network(&s.conf_dir, net)?;
    let netns = absolute(netns)?;
    let rt = RuntimeConf {
        container_id: container_id_for(&netns.display().to_string()),
        netns: Some(netns),
        ifname: std::env::var("CNI_IFNAME")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "eth0".into()),
        args: cni_args()?,
        capability_args: cap_args()?,
    };
    match verb {
        "add" => {
            let result = s.cni.add(&list, &rt)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            );
            Ok(())
        }
        "check" => s.cni.check(&list, &rt),
        _ => s.cni.del(&list, &rt),
    }
}

fn network_verb(verb: &str, net: &str) -> Result<()> {
    let s = env_settings();
    let list = conf::load_network(&s.conf_dir, net)?;
    if verb == "status" {
        return s.cni.status(&list);
    }
    // Upstream cnitool's gc keeps nothing: every cached attachment of the
    // network is torn down. CNI_VALID_ATTACHMENTS (JSON list) narrows it.
    let valid: Vec<Attachment> = match std::env::var("CNI_VALID_ATTACHMENTS") {
        Ok(s) if !s.is_empty() => serde_json::from_str(&s)
            .map_err(|e| Error::decode(format!("CNI_VALID_ATTACHMENTS: {e}")))?,
        _ => Vec::new(),
    };
    s.cni.gc(&list, &valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_upstream_derivation() {
        // sha512("/var/run/netns/test")[:10], as upstream cnitool computes it.
        assert_eq!(
            container_id_for("/var/run/netns/test"),
            "cnitool-7b8a61d5d8e94d07cbe4"
        );
    }
}
