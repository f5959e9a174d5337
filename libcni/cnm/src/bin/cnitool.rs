//! cnitool: run a network's plugin chain against a namespace, compatible
//! with upstream cnitool (`add|check|del|status|gc NETWORK [NETNS]`, the
//! same environment variables and container ID derivation), plus Docker's
//! `network` and `sandbox` verbs over CNI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use cni_cnm::cli as cnm_cli;
use cni_runtime::cache::DEFAULT_CACHE_DIR;
use cni_runtime::{conf, CniConfig, RuntimeConf};
use cni_spec::{Error, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

const ENVIRONMENT: &str = "\
Environment:
  NETCONFPATH   config directory (default /etc/cni/net.d)
  CNI_PATH      plugin directories, ':'-separated
  CNI_ARGS      K=V;K2=V2 passed to plugins
  CAP_ARGS      capability arguments as a JSON object
  CNI_IFNAME    interface name in the namespace (default eth0)
  CNI_CACHE_DIR result cache directory (default /var/lib/cni)";

/// The whole command line; `--help` on every level comes from here.
#[derive(Debug, Parser)]
#[command(
    name = "cnitool",
    version,
    about = "Run CNI network configurations, and Docker's network commands over CNI",
    after_help = ENVIRONMENT
)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Run the network's ADD against a network namespace and print the result
    Add(Attachment),
    /// Run the network's CHECK against a namespace
    Check(Attachment),
    /// Run the network's DEL against a namespace
    Del(Attachment),
    /// Ask the network's plugins whether they are ready (STATUS)
    Status(NetworkArg),
    /// Tear down the network's cached attachments not listed in
    /// CNI_VALID_ATTACHMENTS (GC)
    Gc(NetworkArg),
    /// Docker's network commands over CNI
    #[command(subcommand)]
    Network(cnm_cli::NetworkCmd),
    /// Sandboxes: named network namespaces standing for containers
    #[command(subcommand)]
    Sandbox(cnm_cli::SandboxCmd),
    /// Docker's service commands: load balancing over tasks on one host
    #[command(subcommand)]
    Service(cni_cnm::services::cli::ServiceCmd),
    /// Cluster scope: join hosts through an etcd store (CNI_CLUSTER_CONF,
    /// default /etc/cni/cluster.json)
    #[command(subcommand)]
    Cluster(cni_cnm::cluster::ClusterCmd),
    /// Print a shell completion script
    Completion { shell: Shell },
}

#[derive(Debug, Args)]
struct Attachment {
    network: String,
    netns: String,
}

#[derive(Debug, Args)]
struct NetworkArg {
    network: String,
}

fn main() -> ExitCode {
    // A command-line tool whose reader goes away (`cnitool network ls | head`)
    // should end quietly, as `ls` does, not panic in println!: restore the
    // default SIGPIPE action that the Rust runtime sets to "ignore".
    // SAFETY: no other thread exists yet, and SIG_DFL installs no handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    cni_plugin::log::init("cnitool");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version are answers, not errors.
        Err(e) if e.exit_code() == 0 => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&parse_error_message(&e)),
    };
    match run(cli.verb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("cnitool: {msg}");
    ExitCode::FAILURE
}

/// clap's message without its own `error: ` prefix: ours is `cnitool: `.
fn parse_error_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.trim_end();
    text.strip_prefix("error: ").unwrap_or(text).to_string()
}

fn run(verb: Verb) -> Result<()> {
    match verb {
        Verb::Network(cmd) => cnm_cli::network(cmd, &env_settings()),
        Verb::Sandbox(cmd) => cnm_cli::sandbox(cmd, &env_settings()),
        Verb::Service(cmd) => cni_cnm::services::cli::service(cmd, &env_settings()),
        Verb::Cluster(cmd) => cni_cnm::cluster::cluster(cmd, &env_settings()),
        Verb::Add(a) => attachment_verb("add", &a.network, &a.netns),
        Verb::Check(a) => attachment_verb("check", &a.network, &a.netns),
        Verb::Del(a) => attachment_verb("del", &a.network, &a.netns),
        Verb::Status(n) => network_verb("status", &n.network),
        Verb::Gc(n) => network_verb("gc", &n.network),
        Verb::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cnitool",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
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
    let valid: Vec<cni_spec::Attachment> = match std::env::var("CNI_VALID_ATTACHMENTS") {
        Ok(s) if !s.is_empty() => serde_json::from_str(&s)
            .map_err(|e| Error::decode(format!("CNI_VALID_ATTACHMENTS: {e}")))?,
        _ => Vec::new(),
    };
    s.cni.gc(&list, &valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cnitool").chain(v.iter().copied()))
    }

    #[test]
    fn the_parser_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn upstream_verbs_keep_their_arity() {
        assert!(
            matches!(parse(&["add", "n", "/run/netns/x"]).unwrap().verb, Verb::Add(a) if a.netns == "/run/netns/x")
        );
        assert!(matches!(parse(&["gc", "n"]).unwrap().verb, Verb::Gc(_)));
        assert!(parse(&["add", "n"]).is_err());
        assert!(parse(&["status"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn help_and_version_exist_on_every_level() {
        for argv in [
            &["--help"][..],
            &["--version"],
            &["network", "create", "--help"],
            &["network", "ls", "-h"],
            &["sandbox", "rm", "--help"],
            &["add", "--help"],
        ] {
            let e = parse(argv).unwrap_err();
            assert_eq!(e.exit_code(), 0, "{argv:?}: {e}");
        }
        let help = parse(&["network", "create", "--help"])
            .unwrap_err()
            .to_string();
        for flag in [
            "--driver",
            "--subnet",
            "--ip-range",
            "--aux-address",
            "--opt",
        ] {
            assert!(help.contains(flag), "{flag} missing in\n{help}");
        }
    }

    #[test]
    fn parse_errors_read_as_cnitool_errors() {
        let e = parse(&["network", "create", "--bogus", "n"]).unwrap_err();
        let msg = parse_error_message(&e);
        assert!(msg.starts_with("unexpected argument '--bogus'"), "{msg}");
    }

    #[test]
    fn completion_scripts_come_from_the_parser() {
        let mut out = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), "cnitool", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("--aux-address") && script.contains("sandbox"));
    }

    #[test]
    fn container_id_matches_upstream_derivation() {
        // sha512("/var/run/netns/test")[:10], as upstream cnitool computes it.
        assert_eq!(
            container_id_for("/var/run/netns/test"),
            "cnitool-7b8a61d5d8e94d07cbe4"
        );
    }
}
