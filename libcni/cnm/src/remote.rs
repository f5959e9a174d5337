//! Docker's third-party ("remote") drivers over CNI: `-d TYPE` names any
//! CNI plugin on CNI_PATH. It is looked up and asked its spec versions at
//! `network create`, so a missing or mute plugin is refused there and the
//! conflist only lists versions both sides speak.

use std::path::PathBuf;

use serde_json::Value;

use super::model::{Driver, Remote};
use cni_plugin::invoke;
use cni_spec::error::{Error, Result};
use cni_spec::{Command, SUPPORTED};

/// The driver named `name`: a built-in one, else the CNI plugin of that
/// type on `path`.
pub fn resolve(name: &str, path: &[PathBuf]) -> Result<Driver> {
    if let Some(d) = Driver::builtin(name) {
        return Ok(d);
    }
    cni_spec::config::validate_plugin_type("driver", name)?;
    let binary = invoke::find_plugin(name, path)
        .map_err(|e| Error::invalid_config(format!("plugin {name:?} not found: {}", e.msg)))?;
    let env = invoke::Env {
        path: path.to_vec(),
        ..Default::default()
    };
    let out = invoke::exec(
        &binary,
        Command::Version,
        &env,
        br#"{"cniVersion":"1.1.0"}"#,
    )
    .map_err(|e| e.context(format!("plugin {name:?} VERSION")))?;
    Ok(Driver::Remote(Remote {
        plugin: name.to_string(),
        versions: common_versions(name, &out)?,
    }))
}

/// The versions of a VERSION answer that we support too, oldest first.
fn common_versions(name: &str, answer: &[u8]) -> Result<Vec<String>> {
    let v: Value = serde_json::from_slice(answer)
        .map_err(|e| Error::decode(format!("plugin {name:?} VERSION answer: {e}")))?;
    let theirs: Vec<&str> = v
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let common: Vec<String> = SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .filter(|v| theirs.contains(v))
        .map(str::to_string)
        .collect();
    if common.is_empty() {
        return Err(Error::incompatible_version(format!(
            "plugin {name:?} speaks CNI versions [{}], none of which cnitool supports",
            theirs.join(", ")
        )));
    }
    Ok(common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_the_common_ones() {
        let v = common_versions(
            "ptp",
            br#"{"cniVersion":"1.0.0","supportedVersions":["0.1.0","0.4.0","1.0.0","9.9.9"]}"#,
        )
        .unwrap();
        assert!(v.contains(&"1.0.0".to_string()) && v.contains(&"0.4.0".to_string()));
        assert!(!v.contains(&"9.9.9".to_string()));
        let e = common_versions("x", br#"{"supportedVersions":["9.9.9"]}"#).unwrap_err();
        assert!(e.msg.contains("none of which"), "{}", e.msg);
        assert!(common_versions("x", b"not json").is_err());
    }

    #[test]
    fn builtins_win_and_missing_plugins_are_refused_like_docker() {
        assert_eq!(resolve("bridge", &[]).unwrap(), Driver::Bridge);
        let dir = std::env::temp_dir();
        let e = resolve("no-such-plugin-xyz", &[dir]).unwrap_err();
        assert!(
            e.msg.starts_with("plugin \"no-such-plugin-xyz\" not found"),
            "{}",
            e.msg
        );
        for bad in ["../../bin/sh", "a b", ".."] {
            assert!(resolve(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plugin_on_the_path_is_asked_its_versions() {
        let dir = std::env::temp_dir().join(format!("cnm-remote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plugin = dir.join("fake");
        std::fs::write(
            &plugin,
            "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = resolve("fake", std::slice::from_ref(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let Driver::Remote(r) = d else {
            panic!("not remote: {d:?}")
        };
        assert_eq!(r.plugin, "fake");
        assert_eq!(r.versions, ["0.4.0", "1.0.0"]);
    }
}
