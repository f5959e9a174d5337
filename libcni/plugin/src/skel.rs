//! The plugin entry point: environment + stdin -> verb -> the plugin's
//! handler -> stdout + exit status. Everything the spec says about how a
//! plugin is called (required variables, version rules, error JSON on
//! stdout, exit 1) lives here, so each plugin only writes its handlers.

use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use serde_json::json;

use crate::log;
use cni_spec::error::{Error, Result};
use cni_spec::version::{self, Version, SUPPORTED};
use cni_spec::{validate, CniArgs, CniResult, NetConf};

/// Largest config we read from stdin. Real configs with a prevResult are a
/// few KiB; the cap keeps a hostile caller from making us buffer gigabytes.
pub const MAX_STDIN: u64 = 8 << 20;

pub use cni_spec::Command;

/// One invocation, validated.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    /// Empty for STATUS and GC.
    pub container_id: String,
    /// `None` when CNI_NETNS is unset or empty (allowed for DEL).
    pub netns: Option<PathBuf>,
    /// Empty for STATUS and GC.
    pub ifname: String,
    pub args: CniArgs,
    /// CNI_PATH split into directories.
    pub path: Vec<PathBuf>,
    pub config: NetConf,
    /// The config's `cniVersion`; results are printed in it.
    pub version: Version,
}

impl Request {
    /// CNI_NETNS, for work that cannot do without it (skel already requires
    /// it for ADD and CHECK; DEL may come without one).
    pub fn netns_path(&self) -> Result<&std::path::Path> {
        self.netns
            .as_deref()
            .ok_or_else(|| Error::invalid_env("CNI_NETNS is required"))
    }
}

/// What a plugin implements. STATUS and GC default to success, which is
/// what the reference plugins do for verbs they have nothing to do for.
pub trait Plugin {
    fn add(&self, req: &Request) -> Result<CniResult>;
    fn del(&self, req: &Request) -> Result<()>;
    fn check(&self, req: &Request) -> Result<()>;
    fn status(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
    fn gc(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
}

/// Names the plugin in messages (stderr only).
#[derive(Debug, Clone, Copy)]
pub struct About {
    pub name: &'static str,
    pub description: &'static str,
}

/// What a run produced: the text for stdout and the exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub stdout: Option<String>,
    pub exit_code: i32,
}

/// Run the plugin as a process: read the real environment and stdin, print,
/// and exit. Never returns.
pub fn run<P: Plugin>(about: &About, plugin: &P) -> ! {
    log::init(about.name);
    // A panic must not print a backtrace: one line on stderr, then the
    // unwind is caught below and reported as error JSON.
    panic::set_hook(Box::new(|info| {
        log::error(&format!("panic: {info}"));
    }));
    let env = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    let mut stdin = std::io::stdin().lock();
    let outcome = dispatch(about, plugin, &env, &mut stdin);
    if let Some(text) = &outcome.stdout {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .is_err()
        {
            log::error("failed to write to stdout");
            std::process::exit(1);
        }
    }
    std::process::exit(outcome.exit_code)
}

/// The whole skeleton as a pure function of environment and stdin, so it
/// can be unit tested without spawning processes.
pub fn dispatch<P: Plugin>(
    about: &About,
    plugin: &P,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> Outcome {
    // The error JSON carries the config's version when we got that far.
    let mut err_version = Version::LATEST.as_str().to_string();
    let res = panic::catch_unwind(AssertUnwindSafe(|| {
        handle(about, plugin, env, stdin, &mut err_version)
    }));
    let res = match res {
        Ok(r) => r,
        Err(payload) => Err(Error::internal(format!(
            "{} plugin panicked: {}",
            about.name,
            panic_message(&payload)
        ))),
    };
    match res {
        Ok(stdout) => Outcome {
            stdout,
            exit_code: 0,
        },
        Err(e) => {
            log::debug(&format!("error: code {} {}", e.code, e));
            Outcome {
                stdout: Some(e.to_json(&err_version).to_string()),
                exit_code: 1,
            }
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn non_empty(env: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    env(key).filter(|v| !v.is_empty())
}

fn handle<P: Plugin>(
    about: &About,
    plugin: &P,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    err_version: &mut String,
) -> Result<Option<String>> {
    let Some(cmd_text) = non_empty(env, "CNI_COMMAND") else {
        log::error(&format!(
            "{}: {} (a CNI plugin; run it from a container runtime)",
            about.name, about.description
        ));
        return Err(Error::invalid_env(
            "CNI_COMMAND is not set: expected one of ADD, DEL, CHECK, STATUS, GC, VERSION",
        ));
    };
    let command = Command::parse(&cmd_text).ok_or_else(|| {
        Error::invalid_env(format!(
            "CNI_COMMAND {cmd_text:?} is unknown: expected one of ADD, DEL, CHECK, STATUS, GC, VERSION"
        ))
    })?;

    if command == Command::Version {
        return Ok(Some(version_info()));
    }

    let missing: Vec<&str> = command
        .required_env()
        .iter()
        .copied()
        .filter(|k| non_empty(env, k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid_env(format!(
            "required environment variables missing for {}: {}",
            command.as_str(),
            missing.join(", ")
        )));
    }

    let per_container = matches!(command, Command::Add | Command::Del | Command::Check);
    let (container_id, ifname) = if per_container {
        let id = non_empty(env, "CNI_CONTAINERID").unwrap_or_default();
        validate::container_id(&id)?;
        let ifname = non_empty(env, "CNI_IFNAME").unwrap_or_default();
        validate::interface_name("CNI_IFNAME", &ifname)?;
        (id, ifname)
    } else {
        (String::new(), String::new())
    };
    let netns = if per_container {
        non_empty(env, "CNI_NETNS").map(PathBuf::from)
    } else {
        None
    };
    let args = CniArgs::parse(&env("CNI_ARGS").unwrap_or_default())?;
    let path = env("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();

    let bytes = read_stdin(stdin)?;
    let config = NetConf::from_slice(&bytes)?;
    let version = if config.cni_version.is_empty() {
        return Err(Error::incompatible_version(format!(
            "network config has no cniVersion; plugin supports {}",
            version::supported_list()
        )));
    } else {
        Version::parse_supported(&config.cni_version)?
    };
    *err_version = version.as_str().to_string();
    if version < command.min_version() {
        return Err(Error::incompatible_version(format!(
            "config version \"{version}\" does not allow {}: it needs {} or later",
            command.as_str(),
            command.min_version()
        )));
    }

    if let Some(ns) = &netns {
        if command != Command::Del || ns.exists() {
            refuse_own_netns(env, ns)?;
        }
    }

    let req = Request {
        command,
        container_id,
        netns,
        ifname,
        args,
        path,
        config,
        version,
    };
    log::debug(&format!(
        "{} container={} ifname={} netns={:?}",
        command.as_str(),
        req.container_id,
        req.ifname,
        req.netns
    ));
    match command {
        Command::Add => {
            let result = plugin.add(&req)?;
            let out = result.to_value(version)?;
            Ok(Some(out.to_string()))
        }
        Command::Del => plugin.del(&req).map(|_| None),
        Command::Check => plugin.check(&req).map(|_| None),
        Command::Status => plugin.status(&req).map(|_| None),
        Command::Gc => plugin.gc(&req).map(|_| None),
        Command::Version => unreachable!("handled above"),
    }
}

/// `{"cniVersion": "1.1.0", "supportedVersions": [...]}`.
pub fn version_info() -> String {
    let versions: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
    json!({
        "cniVersion": Version::LATEST.as_str(),
        "supportedVersions": versions,
    })
    .to_string()
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    stdin
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("failed to read network config from stdin: {e}")))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(Error::decode(format!(
            "network config on stdin is larger than {} MiB",
            MAX_STDIN >> 20
        )));
    }
    Ok(buf)
}

/// A plugin asked to configure its own namespace would reconfigure the
/// host: refuse, as the reference does, unless CNI_NETNS_OVERRIDE is set.
fn refuse_own_netns(env: &dyn Fn(&str) -> Option<String>, ns: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if let Some(v) = env("CNI_NETNS_OVERRIDE") {
        if v == "1" || v.eq_ignore_ascii_case("true") {
            return Ok(());
        }
    }
    let (Ok(target), Ok(own)) = (
        std::fs::metadata(ns),
        std::fs::metadata("/proc/self/ns/net"),
    ) else {
        // Existence and type are checked when the plugin opens it.
        return Ok(());
    };
    if target.dev() == own.dev() && target.ino() == own.ino() {
        return Err(Error::invalid_netns(format!(
            "CNI_NETNS {} is the plugin's own network namespace",
            ns.display()
        )));
    }
    Ok(())
}

/// The parsed `prevResult` when there is one (a chained plugin must pass it
/// on), otherwise what `f` builds.
pub fn prev_result_or<F>(req: &Request, f: F) -> Result<CniResult>
where
    F: FnOnce() -> Result<CniResult>,
{
    match req.config.prev_result()? {
        Some(r) => Ok(r),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashMap;

    struct Fake;
    impl Plugin for Fake {
        fn add(&self, req: &Request) -> Result<CniResult> {
            if req.container_id == "boom" {
                panic!("kaboom");
            }
            prev_result_or(req, || {
                Ok(CniResult {
                    ips: vec![cni_spec::IpConfig {
                        interface: None,
                        address: "10.0.0.2/24".parse().unwrap(),
                        gateway: None,
                    }],
                    ..Default::default()
                })
            })
        }
        fn del(&self, _: &Request) -> Result<()> {
            Ok(())
        }
        fn check(&self, _: &Request) -> Result<()> {
            Ok(())
        }
    }

    const ABOUT: About = About {
        name: "fake",
        description: "test plugin",
    };

    fn call(vars: &[(&str, &str)], stdin: &str) -> (Option<Value>, i32) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        let out = dispatch(&ABOUT, &Fake, &env, &mut stdin.as_bytes());
        let json = out
            .stdout
            .map(|s| serde_json::from_str(&s).expect("stdout is JSON"));
        (json, out.exit_code)
    }

    fn add_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/nonexistent/ns"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        for (k, val) in extra {
            v.retain(|(k2, _)| k2 != k);
            v.push((k, val));
        }
        v
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"fake"}"#;

    fn code(out: &(Option<Value>, i32)) -> u64 {
        assert_eq!(out.1, 1, "exit status");
        out.0.as_ref().unwrap()["code"].as_u64().unwrap()
    }

    #[test]
    fn version_lists_supported() {
        let (out, rc) = call(&[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(rc, 0);
        let out = out.unwrap();
        assert_eq!(
            out["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn add_prints_result_in_config_version() {
        let (out, rc) = call(&add_env(&[]), CONF);
        assert_eq!(rc, 0);
        let out = out.unwrap();
        assert_eq!(out["cniVersion"], "1.0.0");
        assert_eq!(out["ips"][0]["address"], "10.0.0.2/24");
        let conf = r#"{"cniVersion":"0.3.1","name":"n","type":"fake"}"#;
        let (out, _) = call(&add_env(&[]), conf);
        assert_eq!(out.unwrap()["ips"][0]["version"], "4");
    }

    #[test]
    fn prev_result_passes_through_converted() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"fake",
            "prevResult":{"cniVersion":"0.4.0","ips":[{"version":"6","address":"fd00::3/64"}]}}"#;
        let (out, rc) = call(&add_env(&[]), conf);
        assert_eq!(rc, 0);
        let out = out.unwrap();
        assert_eq!(out["cniVersion"], "1.0.0");
        assert_eq!(out["ips"][0]["address"], "fd00::3/64");
        assert!(out["ips"][0].get("version").is_none());
    }

    #[test]
    fn bad_env_is_code_4_naming_the_variable() {
        let out = call(&[], CONF);
        assert_eq!(code(&out), 4);
        assert!(out.0.unwrap()["msg"]
            .as_str()
            .unwrap()
            .contains("CNI_COMMAND"));
        assert_eq!(code(&call(&[("CNI_COMMAND", "FROB")], CONF)), 4);
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let out = call(&add_env(&[(var, "")]), CONF);
            assert_eq!(code(&out), 4, "{var}");
            assert!(out.0.unwrap()["msg"].as_str().unwrap().contains(var));
        }
        assert_eq!(
            code(&call(&add_env(&[("CNI_CONTAINERID", "../x")]), CONF)),
            4
        );
        assert_eq!(code(&call(&add_env(&[("CNI_IFNAME", "eth0:1")]), CONF)), 4);
        assert_eq!(code(&call(&add_env(&[("CNI_ARGS", "junk")]), CONF)), 4);
    }

    #[test]
    fn del_needs_no_netns() {
        let mut env = add_env(&[("CNI_COMMAND", "DEL")]);
        env.retain(|(k, _)| *k != "CNI_NETNS");
        let (out, rc) = call(&env, CONF);
        assert_eq!((out, rc), (None, 0));
    }

    #[test]
    fn stdin_and_version_errors() {
        assert_eq!(code(&call(&add_env(&[]), "{nope")), 6);
        let v9 = r#"{"cniVersion":"9.9.9","name":"n","type":"fake"}"#;
        assert_eq!(code(&call(&add_env(&[]), v9)), 1);
        let nov = r#"{"name":"n","type":"fake"}"#;
        assert_eq!(code(&call(&add_env(&[]), nov)), 1);
        let noname = r#"{"cniVersion":"1.0.0","type":"fake"}"#;
        assert_eq!(code(&call(&add_env(&[]), noname)), 7);
    }

    #[test]
    fn verbs_need_their_minimum_version() {
        let c031 = r#"{"cniVersion":"0.3.1","name":"n","type":"fake"}"#;
        let out = call(&add_env(&[("CNI_COMMAND", "CHECK")]), c031);
        assert_eq!(code(&out), 1);
        assert_eq!(out.0.unwrap()["cniVersion"], "0.3.1");
        for verb in ["STATUS", "GC"] {
            assert_eq!(code(&call(&[("CNI_COMMAND", verb)], CONF)), 1, "{verb}");
            let c11 = r#"{"cniVersion":"1.1.0","name":"n","type":"fake"}"#;
            assert_eq!(call(&[("CNI_COMMAND", verb)], c11), (None, 0), "{verb}");
        }
    }

    #[test]
    fn own_netns_is_refused_unless_overridden() {
        let own = add_env(&[("CNI_NETNS", "/proc/self/ns/net")]);
        assert_eq!(code(&call(&own, CONF)), 8);
        let over = add_env(&[
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_NETNS_OVERRIDE", "1"),
        ]);
        assert_eq!(call(&over, CONF).1, 0);
    }

    #[test]
    fn oversized_stdin_is_refused() {
        let big = " ".repeat((MAX_STDIN + 10) as usize);
        assert_eq!(code(&call(&add_env(&[]), &big)), 6);
    }

    #[test]
    fn panics_become_error_json() {
        let out = call(&add_env(&[("CNI_CONTAINERID", "boom")]), CONF);
        assert_eq!(code(&out), 999);
        assert!(out.0.unwrap()["msg"].as_str().unwrap().contains("kaboom"));
    }
}
