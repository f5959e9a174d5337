//! Invoking a plugin binary the way a runtime does: the CNI_* environment,
//! the config on stdin, inside a (fake host) network namespace; then looking
//! at what it printed and how it exited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::paths::{self, Binary};
use crate::proc::{self, Finished};

/// The CNI_* variables the skeleton reads.
pub const CNI_VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_PATH",
    "CNI_ARGS",
];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One plugin call, built up and then `run`. Every CNI variable is optional,
/// so a test can leave any of them out; the rest of the environment is
/// cleared except PATH (and CNI_LOG_LEVEL when the caller set it).
#[derive(Debug, Clone)]
pub struct Invocation {
    program: PathBuf,
    env: BTreeMap<String, String>,
    stdin: Vec<u8>,
    host: Option<PathBuf>,
    /// A mount namespace to join first, open for as long as the call lives.
    mount_ns: Option<std::sync::Arc<std::fs::File>>,
    timeout: Option<Duration>,
}

impl Invocation {
    /// A call of `program` with no environment and empty stdin.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Invocation {
            program: program.into(),
            env: BTreeMap::new(),
            stdin: Vec::new(),
            host: None,
            mount_ns: None,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Our release binary for plugin type `name` (panics if not built).
    pub fn ours(name: &str) -> Self {
        Self::new(paths::our_binary(name))
    }

    /// The reference Go binary for plugin type `name`.
    pub fn reference(name: &str) -> Self {
        Self::new(paths::reference_binary(name))
    }

    /// `which` implementation of plugin `name`.
    pub fn of(which: Binary, name: &str) -> Self {
        match which {
            Binary::Ours => Self::ours(name),
            Binary::Reference => Self::reference(name),
        }
    }

    /// A complete call as a runtime makes it: CNI_COMMAND, CNI_CONTAINERID,
    /// CNI_NETNS, CNI_IFNAME, CNI_PATH (ours first, then the reference), the
    /// config on stdin, run inside `host`.
    pub fn cni(
        self,
        command: &str,
        host: &Netns,
        container_id: &str,
        netns: &str,
        ifname: &str,
        conf: &Value,
    ) -> Self {
        self.command(command)
            .container_id(container_id)
            .netns(netns)
            .ifname(ifname)
            .cni_path(&paths::default_cni_path())
            .stdin_json(conf)
            .in_host(host)
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The CNI_COMMAND this call runs, if set (reports group by verb).
    pub fn cni_command(&self) -> Option<&str> {
        self.env.get("CNI_COMMAND").map(String::as_str)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    pub fn unset(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    pub fn command(self, v: &str) -> Self {
        self.env("CNI_COMMAND", v)
    }

    pub fn container_id(self, v: &str) -> Self {
        self.env("CNI_CONTAINERID", v)
    }

    pub fn netns(self, v: &str) -> Self {
        self.env("CNI_NETNS", v)
    }

    pub fn ifname(self, v: &str) -> Self {
        self.env("CNI_IFNAME", v)
    }

    pub fn cni_path(self, v: &str) -> Self {
        self.env("CNI_PATH", v)
    }

    pub fn cni_args(self, v: &str) -> Self {
        self.env("CNI_ARGS", v)
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    pub fn stdin_json(self, v: &Value) -> Self {
        self.stdin(serde_json::to_vec(v).expect("serialising config"))
    }

    /// Run inside this namespace (joined with setns between fork and exec).
    pub fn in_host(mut self, host: &Netns) -> Self {
        self.host = Some(host.path());
        self
    }

    /// Also join the mount namespace open as `ns` (before the network one):
    /// for a plugin that hard-codes the machine's paths, run where those
    /// paths are private.
    pub fn in_mount_ns(mut self, ns: std::sync::Arc<std::fs::File>) -> Self {
        self.mount_ns = Some(ns);
        self
    }

    /// Kill the plugin after this long (default 60 s; `None`: never).
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    /// The std Command for this call, and the namespace file that must stay
    /// open until it is spawned.
    pub fn to_command(&self) -> std::io::Result<(Command, Option<std::fs::File>)> {
        let mut cmd = Command::new(&self.program);
        cmd.env_clear();
        cmd.env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        );
        if let Some(level) = std::env::var_os("CNI_LOG_LEVEL") {
            cmd.env("CNI_LOG_LEVEL", level);
        }
        cmd.envs(&self.env);
        if let Some(m) = &self.mount_ns {
            proc::enter_ns_before_exec(&mut cmd, proc::raw(m), libc::CLONE_NEWNS);
        }
        let file = match &self.host {
            Some(p) => {
                let f = std::fs::File::open(p)?;
                proc::enter_netns_before_exec(&mut cmd, proc::raw(&f));
                Some(f)
            }
            None => None,
        };
        Ok((cmd, file))
    }

    pub fn stdin_bytes(&self) -> &[u8] {
        &self.stdin
    }

    /// A shell-like rendering, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(h) = &self.host {
            s.push_str(&format!("[in netns {}] ", h.display()));
        }
        for (k, v) in &self.env {
            s.push_str(&format!("{k}={v:?} "));
        }
        s.push_str(&self.program.display().to_string());
        s.push_str(&format!(" <<< {}", String::from_utf8_lossy(&self.stdin)));
        s
    }

    /// Start the plugin and wait for it.
    pub fn run(&self) -> Outcome {
        let (mut cmd, file) = self
            .to_command()
            .unwrap_or_else(|e| panic!("preparing {}: {e}", self.describe()));
        let running = proc::spawn(&mut cmd, &self.stdin, self.timeout)
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.describe()));
        drop(file);
        let finished = running
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.describe()));
        let out = Outcome {
            call: self.describe(),
            finished,
        };
        assert!(
            !out.finished.timed_out,
            "plugin hung and was killed:\n{}",
            out.report()
        );
        out
    }
}

/// What a plugin call produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub call: String,
    pub finished: Finished,
}

impl Outcome {
    pub fn stdout(&self) -> &[u8] {
        &self.finished.stdout
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.finished.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.finished.stderr).into_owned()
    }

    /// The exit code (None when killed by a signal).
    pub fn exit_code(&self) -> Option<i32> {
        self.finished.status.code()
    }

    pub fn success(&self) -> bool {
        self.finished.status.success()
    }

    /// Everything about the call, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "call: {}\nstatus: {}\nstdout: {}\nstderr: {}",
            self.call,
            self.finished.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }

    /// Stdout parsed as exactly one JSON document (whitespace around it is
    /// allowed, anything else fails).
    pub fn json(&self) -> Value {
        serde_json::from_slice(self.stdout()).unwrap_or_else(|e| {
            panic!(
                "stdout is not exactly one JSON document: {e}\n{}",
                self.report()
            )
        })
    }

    /// Asserts exit status 0; returns self for chaining.
    pub fn expect_ok(&self) -> &Self {
        assert!(self.success(), "expected success:\n{}", self.report());
        self
    }

    /// Asserts success and returns stdout as one JSON document.
    pub fn expect_ok_json(&self) -> Value {
        self.expect_ok().json()
    }

    /// Asserts success with nothing on stdout (DEL, CHECK, STATUS, GC).
    pub fn expect_ok_silent(&self) -> &Self {
        self.expect_ok();
        assert!(
            self.stdout().iter().all(u8::is_ascii_whitespace),
            "expected no output on stdout:\n{}",
            self.report()
        );
        self
    }

    /// Checks for a spec error: exit status 1 and exactly one JSON object on
    /// stdout with `cniVersion` (string), `code` (number), `msg` (string) and
    /// optionally `details` (string). Returns the error object, or what is
    /// wrong (with the whole call) for table tests that collect failures.
    pub fn check_any_error(&self) -> Result<Value, String> {
        if self.exit_code() != Some(1) {
            return Err(format!(
                "expected exit status 1 with an error JSON:\n{}",
                self.report()
            ));
        }
        let v: Value = serde_json::from_slice(self.stdout()).map_err(|e| {
            format!(
                "stdout is not exactly one JSON document: {e}\n{}",
                self.report()
            )
        })?;
        let ok = v.is_object()
            && v.get("code").map(Value::is_u64).unwrap_or(false)
            && v.get("msg").map(Value::is_string).unwrap_or(false)
            && v.get("cniVersion").map(Value::is_string).unwrap_or(false)
            && v.get("details").map(Value::is_string).unwrap_or(true);
        if !ok {
            return Err(format!(
                "stdout is not a CNI error object {{cniVersion, code, msg[, details]}}:\n{}",
                self.report()
            ));
        }
        Ok(v)
    }

    /// Like `check_any_error`, and the code must be `code`.
    pub fn check_error(&self, code: u64) -> Result<Value, String> {
        let v = self.check_any_error()?;
        if v["code"].as_u64() != Some(code) {
            return Err(format!("expected error code {code}:\n{}", self.report()));
        }
        Ok(v)
    }

    /// Asserts a spec error (see `check_any_error`); returns the error object.
    pub fn expect_any_error(&self) -> Value {
        self.check_any_error().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts a spec error with this code; returns the error object.
    pub fn expect_error(&self, code: u64) -> Value {
        self.check_error(code).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error's `msg` (after `expect_error`).
    pub fn error_msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_string()
    }
}
