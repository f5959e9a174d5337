//! Running another plugin binary the way a runtime does: find it on
//! CNI_PATH, pass the CNI_* variables and the config on stdin, read a
//! result or an error JSON from stdout. Used for IPAM delegation and by the
//! runtime side.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::skel::Command;
use cni_spec::error::{Error, Result};
use cni_spec::validate;

/// How often and how long to wait when the binary is being replaced
/// ("text file busy"), as Go's libcni does.
const BUSY_RETRIES: u32 = 5;
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// Find `name` in the CNI_PATH directories. Relative and world-writable
/// directories are refused: a plugin runs as root, and a binary someone
/// else can plant must never be executed.
pub fn find_plugin(name: &str, path: &[PathBuf]) -> Result<PathBuf> {
    cni_spec::config::validate_plugin_type("plugin type", name)?;
    if path.is_empty() {
        return Err(Error::invalid_env(format!(
            "CNI_PATH is empty: cannot find plugin {name:?}"
        )));
    }
    for dir in path {
        if !dir.is_absolute() {
            return Err(Error::invalid_env(format!(
                "CNI_PATH entry {:?} is not an absolute path",
                dir.display().to_string()
            )));
        }
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        // World-writable without the sticky bit: anyone could drop a binary in.
        let mode = meta.permissions().mode();
        if meta.is_dir() && mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(Error::invalid_env(format!(
                "CNI_PATH entry {} is world-writable: refusing to run plugins from it",
                dir.display()
            )));
        }
        let candidate = dir.join(name);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(Error::invalid_config(format!(
        "failed to find plugin {name:?} in path {:?}",
        path.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    )))
}

/// The CNI_* variables of one call.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: String,
    pub path: Vec<PathBuf>,
}

impl Env {
    fn apply(&self, cmd: &mut Process, command: Command) {
        let path = std::env::join_paths(&self.path).unwrap_or_default();
        cmd.env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &self.container_id)
            .env(
                "CNI_NETNS",
                self.netns.as_deref().unwrap_or_else(|| Path::new("")),
            )
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", path);
    }
}

/// Run `binary` for `command` with `stdin`; stdout on success. A non-zero
/// exit becomes the plugin's own error (code and message) when it printed
/// one, else an error carrying its stderr.
pub fn exec(binary: &Path, command: Command, env: &Env, stdin: &[u8]) -> Result<Vec<u8>> {
    let mut attempt = 0;
    loop {
        let mut cmd = Process::new(binary);
        env.apply(&mut cmd, command);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                    && attempt < BUSY_RETRIES =>
            {
                attempt += 1;
                std::thread::sleep(BUSY_WAIT);
                continue;
            }
            Err(e) => return Err(Error::from_io(format!("exec {}", binary.display()), e)),
        };
        return finish(binary, child, stdin);
    }
}

/// Run `f` with SIGPIPE ignored, then restore its action. The action is
/// process-wide; callers that run plugins from several threads keep the
/// Rust default (ignored), for which this changes nothing.
fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installs SIG_IGN, then puts back the action that was there;
    // no handler function is involved.
    let previous = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let out = f();
    if let Ok(p) = previous {
        // SAFETY: as above, restoring the previous action.
        let _ = unsafe { signal(Signal::SIGPIPE, p) };
    }
    out
}

fn finish(binary: &Path, mut child: std::process::Child, stdin: &[u8]) -> Result<Vec<u8>> {
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that exits without reading stdin closes the pipe: not our
        // error, and not our death either, in a caller that runs with
        // SIGPIPE's default action (cnitool does, to end quietly under
        // `| head`): the write must see EPIPE, not the signal.
        let _ = without_sigpipe(|| pipe.write_all(stdin));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::from_io(format!("wait for {}", binary.display()), e))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(plugin_error(&name, &out.stdout, &out.stderr))
}

/// The error a failed plugin reported on stdout, or one made from stderr.
fn plugin_error(name: &str, stdout: &[u8], stderr: &[u8]) -> Error {
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(stdout) {
        if let Some(code) = o.get("code").and_then(Value::as_u64) {
            let msg = o.get("msg").and_then(Value::as_str).unwrap_or_default();
            let details = o.get("details").and_then(Value::as_str).unwrap_or_default();
            return Error::new(code as u32, format!("{name}: {msg}")).with_details(details);
        }
    }
    let text = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
    let text = text.trim();
    Error::internal(format!(
        "plugin {name} failed{}{}",
        if text.is_empty() { "" } else { ": " },
        text.chars().take(512).collect::<String>()
    ))
}

/// Validate what we pass on, so a bad value is reported as ours.
pub fn validate_env(env: &Env) -> Result<()> {
    if !env.container_id.is_empty() {
        validate::container_id(&env.container_id)?;
    }
    if !env.ifname.is_empty() {
        validate::interface_name("CNI_IFNAME", &env.ifname)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "libcni-invoke-{}-{tag}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn finds_plugins_and_refuses_unsafe_paths() {
        let d = TempDir::new("find");
        script(&d.0, "ipam1", "exit 0");
        assert_eq!(
            find_plugin("ipam1", std::slice::from_ref(&d.0)).unwrap(),
            d.0.join("ipam1")
        );
        assert_eq!(
            find_plugin("nope", std::slice::from_ref(&d.0))
                .unwrap_err()
                .code,
            7
        );
        assert_eq!(
            find_plugin("../x", std::slice::from_ref(&d.0))
                .unwrap_err()
                .code,
            7
        );
        assert_eq!(
            find_plugin("ipam1", &[PathBuf::from("rel")])
                .unwrap_err()
                .code,
            4
        );
        assert_eq!(find_plugin("ipam1", &[]).unwrap_err().code, 4);
        std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = find_plugin("ipam1", std::slice::from_ref(&d.0)).unwrap_err();
        assert!(e.msg.contains("world-writable"), "{e}");
    }

    #[test]
    fn exec_passes_env_and_stdin_and_reads_errors() {
        let d = TempDir::new("exec");
        let ok = script(
            &d.0,
            "echoer",
            r#"printf '{"cmd":"%s","id":"%s","in":' "$CNI_COMMAND" "$CNI_CONTAINERID"; cat; printf '}'"#,
        );
        let env = Env {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            path: vec![d.0.clone()],
            ..Default::default()
        };
        let out = exec(&ok, Command::Add, &env, br#"{"x":1}"#).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cmd"], "ADD");
        assert_eq!(v["id"], "c1");
        assert_eq!(v["in"]["x"], 1);

        let bad = script(
            &d.0,
            "failer",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"busy"}'; exit 1"#,
        );
        let e = exec(&bad, Command::Add, &env, b"{}").unwrap_err();
        assert_eq!(e.code, 11);
        assert!(e.msg.contains("busy"));

        let crash = script(&d.0, "crasher", "echo oops >&2; exit 2");
        let e = exec(&crash, Command::Del, &env, b"{}").unwrap_err();
        assert_eq!(e.code, 999);
        assert!(e.msg.contains("oops"));
    }
}
