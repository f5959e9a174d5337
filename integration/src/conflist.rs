//! Network configuration lists, and running a whole chain the way a runtime
//! does (SPEC.md "Deriving request configuration"): for each plugin, the
//! plugin object plus the list's `name` and `cniVersion`, plus `prevResult`
//! for every ADD but the first and for every DEL and CHECK; ADD in order,
//! DEL in reverse.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::netns::Netns;
use crate::paths;
use crate::plugin::{Invocation, Outcome};

#[derive(Debug, Clone)]
pub struct ConfList {
    pub path: PathBuf,
    pub raw: Value,
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

/// `conf-examples/` at the workspace root.
pub fn examples_dir() -> PathBuf {
    paths::workspace_root().join("conf-examples")
}

/// Every file in `conf-examples/`, sorted by name (as libcni sorts a config dir).
pub fn example_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl ConfList {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Self::from_value(path, raw)
    }

    pub fn from_value(path: &Path, raw: Value) -> Result<Self> {
        let name = raw["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: no string `name`", path.display()))?
            .to_string();
        let cni_version = raw["cniVersion"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: no string `cniVersion`", path.display()))?
            .to_string();
        let plugins = raw["plugins"]
            .as_array()
            .ok_or_else(|| anyhow!("{}: no `plugins` list", path.display()))?
            .clone();
        if plugins.is_empty() {
            bail!("{}: `plugins` is empty", path.display());
        }
        for (i, p) in plugins.iter().enumerate() {
            if !p["type"].is_string() {
                bail!("{}: plugins[{i}] has no string `type`", path.display());
            }
        }
        Ok(ConfList {
            path: path.to_path_buf(),
            raw,
            name,
            cni_version,
            plugins,
        })
    }

    /// Every version the list declares (`cniVersion` and `cniVersions`),
    /// oldest first. A runtime picks the newest one it supports.
    pub fn versions(&self) -> Vec<String> {
        let mut v = vec![self.cni_version.clone()];
        for x in self.raw["cniVersions"].as_array().into_iter().flatten() {
            if let Some(s) = x.as_str() {
                v.push(s.to_string());
            }
        }
        v.sort_by_key(|s| version_key(s));
        v.dedup();
        v
    }

    /// The newest declared version (what a runtime supporting all of them uses).
    pub fn newest_version(&self) -> String {
        self.versions().pop().expect("at least cniVersion")
    }

    /// The same list, run at another version.
    pub fn at_version(&self, v: &str) -> ConfList {
        let mut c = self.clone();
        c.cni_version = v.to_string();
        c
    }

    /// The `type` of each plugin in the chain.
    pub fn plugin_types(&self) -> Vec<String> {
        self.plugins
            .iter()
            .map(|p| p["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Every binary the chain needs: plugin types and their `ipam.type`s.
    pub fn all_types(&self) -> Vec<String> {
        let mut v = self.plugin_types();
        for p in &self.plugins {
            if let Some(t) = p["ipam"]["type"].as_str() {
                v.push(t.to_string());
            }
        }
        v.dedup();
        v
    }

    /// The config plugin `i` receives: its object plus `name`, `cniVersion`
    /// and (when given) `prevResult`.
    pub fn plugin_conf(&self, i: usize, prev_result: Option<&Value>) -> Value {
        let mut c = self.plugins[i].clone();
        let obj = c.as_object_mut().expect("plugin entries are objects");
        obj.insert("name".into(), Value::String(self.name.clone()));
        obj.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        match prev_result {
            Some(r) => {
                obj.insert("prevResult".into(), r.clone());
            }
            None => {
                obj.remove("prevResult");
            }
        }
        c
    }

    /// Point every host-local IPAM at `dir`, so a test never writes to the
    /// machine's /var/lib/cni.
    pub fn set_ipam_data_dir(&mut self, dir: &Path) {
        for p in &mut self.plugins {
            if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
                if ipam.get("type").and_then(Value::as_str) == Some("host-local") {
                    ipam.insert(
                        "dataDir".into(),
                        Value::String(dir.to_string_lossy().into_owned()),
                    );
                }
            }
        }
    }
}

/// "1.0.0" -> (1, 0, 0), for ordering versions.
pub fn version_key(v: &str) -> (u32, u32, u32) {
    let mut p = v.split('.').map(|x| x.parse().unwrap_or(0));
    (
        p.next().unwrap_or(0),
        p.next().unwrap_or(0),
        p.next().unwrap_or(0),
    )
}

/// Where a chain attaches: the fake host the plugins run in, the container
/// namespace, the container id and interface name.
pub struct Attachment<'a> {
    pub host: &'a Netns,
    pub container: &'a Netns,
    pub container_id: String,
    pub ifname: String,
    pub cni_path: String,
    /// Capability arguments (`portMappings`...), handed as `runtimeConfig`
    /// to each plugin that declares the capability, as runtimes do.
    pub cap_args: serde_json::Map<String, Value>,
    /// More environment for every plugin call (CNI_ARGS, test overrides).
    pub env: Vec<(String, String)>,
}

impl<'a> Attachment<'a> {
    pub fn new(host: &'a Netns, container: &'a Netns, container_id: &str, ifname: &str) -> Self {
        Attachment {
            host,
            container,
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            cni_path: paths::default_cni_path(),
            cap_args: serde_json::Map::new(),
            env: Vec::new(),
        }
    }

    /// Set a capability argument, e.g. `portMappings`.
    pub fn with_cap_arg(mut self, capability: &str, value: Value) -> Self {
        self.cap_args.insert(capability.to_string(), value);
        self
    }

    /// Set an environment variable for every call of the chain.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The binary CNI_PATH resolves for plugin `ty` (ours first).
    pub fn resolve(&self, ty: &str) -> Option<PathBuf> {
        self.cni_path
            .split(':')
            .map(|d| Path::new(d).join(ty))
            .find(|p| p.is_file())
    }

    fn call(
        &self,
        list: &ConfList,
        i: usize,
        command: &str,
        prev: Option<&Value>,
    ) -> Result<Outcome> {
        let ty = list.plugins[i]["type"].as_str().unwrap_or_default();
        let bin = self.resolve(ty).ok_or_else(|| {
            anyhow!(
                "no binary for plugin type {ty} on CNI_PATH {}",
                self.cni_path
            )
        })?;
        let mut conf = list.plugin_conf(i, prev);
        for (cap, value) in &self.cap_args {
            if conf["capabilities"][cap] == Value::Bool(true) {
                conf["runtimeConfig"][cap] = value.clone();
            }
        }
        let mut inv = Invocation::new(bin);
        for (k, v) in &self.env {
            inv = inv.env(k, v);
        }
        Ok(inv
            .command(command)
            .container_id(&self.container_id)
            .netns(&self.container.path_str())
            .ifname(&self.ifname)
            .cni_path(&self.cni_path)
            .stdin_json(&conf)
            .in_host(self.host)
            .run())
    }

    /// ADD through the chain; returns the final result.
    pub fn add(&self, list: &ConfList) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for i in 0..list.plugins.len() {
            let out = self.call(list, i, "ADD", prev.as_ref())?;
            if !out.success() {
                bail!("ADD failed at plugins[{i}]:\n{}", out.report());
            }
            let r: Value = serde_json::from_slice(out.stdout()).map_err(|e| {
                anyhow!(
                    "ADD result of plugins[{i}] is not JSON: {e}\n{}",
                    out.report()
                )
            })?;
            prev = Some(r);
        }
        prev.ok_or_else(|| anyhow!("empty chain"))
    }

    /// CHECK through the chain with the final ADD result.
    pub fn check(&self, list: &ConfList, result: &Value) -> Result<()> {
        for i in 0..list.plugins.len() {
            let out = self.call(list, i, "CHECK", Some(result))?;
            if !out.success() {
                bail!("CHECK failed at plugins[{i}]:\n{}", out.report());
            }
        }
        Ok(())
    }

    /// DEL through the chain in reverse order. Keeps going past a failure and
    /// reports all of them, like a runtime would.
    pub fn del(&self, list: &ConfList, result: Option<&Value>) -> Result<()> {
        let mut errors = Vec::new();
        for i in (0..list.plugins.len()).rev() {
            match self.call(list, i, "DEL", result) {
                Ok(out) if out.success() => {}
                Ok(out) => errors.push(format!("DEL failed at plugins[{i}]:\n{}", out.report())),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("\n"))
        }
    }
}
