//! The runtime side, like Go's libcni: load network configs, run a plugin
//! chain for each verb, keep the result cache. What containerd and CRI-O
//! do through Go's libcni, our `cnitool` does through this.

pub mod cache;
pub mod conf;

use std::path::PathBuf;

use serde_json::{Map, Value};

use cache::{CachedAttachment, ResultCache};
use cni_plugin::invoke::{self, Env};
use cni_plugin::skel::Command;
use cni_spec::error::{Error, ErrorList, Result};
use cni_spec::{Attachment, CniResult, Version, SUPPORTED};
use conf::LoadedList;

/// What the runtime knows about one attachment (Go's `RuntimeConf`).
#[derive(Debug, Clone, Default)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// CNI_ARGS pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `ips`, `mac`, ...), handed to
    /// each plugin that declares the capability, in `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    fn env(&self, path: &[PathBuf]) -> Env {
        Env {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self
                .args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";"),
            path: path.to_vec(),
        }
    }
}

/// Runs chains: where plugins are found and where results are cached.
#[derive(Debug, Clone)]
pub struct CniConfig {
    pub path: Vec<PathBuf>,
    pub cache: ResultCache,
}

impl CniConfig {
    pub fn new(path: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        CniConfig {
            path,
            cache: ResultCache::new(cache_dir),
        }
    }

    /// The config one plugin of the chain receives (libcni's
    /// `buildOneConfig`): the plugin's own object plus the list's name and
    /// version, `prevResult`, and the capability arguments it declared.
    pub fn plugin_config(
        list: &LoadedList,
        version: Version,
        plugin: &Map<String, Value>,
        prev_result: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Vec<u8> {
        let mut conf = plugin.clone();
        conf.insert("name".into(), Value::String(list.list.name.clone()));
        conf.insert("cniVersion".into(), Value::String(version.as_str().into()));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let mut runtime = Map::new();
        if let Some(Value::Object(caps)) = plugin.get("capabilities") {
            for (cap, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = rt.capability_args.get(cap) {
                        runtime.insert(cap.clone(), v.clone());
                    }
                }
            }
        }
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        serde_json::to_vec(&conf).unwrap_or_default()
    }

    fn run_plugin(
        &self,
        command: Command,
        plugin: &Map<String, Value>,
        env: &Env,
        stdin: &[u8],
    ) -> Result<Vec<u8>> {
        let name = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let binary = invoke::find_plugin(name, &self.path)?;
        invoke::exec(&binary, command, env, stdin)
    }

    /// ADD the whole chain; on success cache and return the final result
    /// (in the list's version). A failure midway runs DEL for the chain
    /// before returning the error, so nothing of a failed ADD is left.
    pub fn add(&self, list: &LoadedList, rt: &RuntimeConf) -> Result<Value> {
        let version = list.list.effective_version(SUPPORTED)?;
        invoke::validate_env(&rt.env(&self.path))?;
        match self.add_chain(list, version, rt) {
            Ok(result) => {
                cni_plugin::fault::point("cnitool.add.before-cache");
                let entry = CachedAttachment {
                    kind: "cniCacheV1".into(),
                    container_id: rt.container_id.clone(),
                    config: list.bytes.clone(),
                    ifname: rt.ifname.clone(),
                    network: list.list.name.clone(),
                    netns: path_string(&rt.netns),
                    cni_args: rt.args.clone(),
                    capability_args: rt.capability_args.clone(),
                    result: Some(result.clone()),
                };
                if let Err(e) = self.cache.put(&entry) {
                    let _ = self.del_chain(list, version, rt, None);
                    return Err(e.context("ADD succeeded but caching the result failed"));
                }
                cni_plugin::fault::point("cnitool.add.after-cache");
                Ok(result)
            }
            Err(e) => match self.del_chain(list, version, rt, None) {
                Ok(()) => Err(e),
                // The cause first, then what its cleanup could not undo.
                Err(del) => Err(with_cleanup_problem(e, &del)),
            },
        }
    }

    fn add_chain(&self, list: &LoadedList, version: Version, rt: &RuntimeConf) -> Result<Value> {
        let env = rt.env(&self.path);
        let mut prev: Option<Value> = None;
        for plugin in &list.list.plugins {
            let stdin = Self::plugin_config(list, version, plugin, prev.as_ref(), rt);
            let out = self.run_plugin(Command::Add, plugin, &env, &stdin)?;
            // Normalise to the list's version: the next plugin and the cache
            // get one shape whatever version each plugin answered in.
            let value: Value = serde_json::from_slice(&out)
                .map_err(|e| Error::decode(format!("plugin result is not JSON: {e}")))?;
            prev = Some(CniResult::convert(&value, version)?);
        }
        prev.ok_or_else(|| Error::invalid_config("network has no plugins"))
    }

    /// The cached result for the attachment, converted to `version`;
    /// `None` when absent or unreadable (a torn cache must not block DEL).
    pub fn cached_result(
        &self,
        network: &str,
        rt: &RuntimeConf,
        version: Version,
    ) -> Option<Value> {
        let entry = self
            .cache
            .get(network, &rt.container_id, &rt.ifname)
            .ok()
            .flatten()?;
        CniResult::convert(entry.result.as_ref()?, version).ok()
    }

    /// DEL the chain in reverse order with the cached result as
    /// `prevResult` (0.4.0+), then drop the cache entry.
    pub fn del(&self, list: &LoadedList, rt: &RuntimeConf) -> Result<()> {
        let version = list.list.effective_version(SUPPORTED)?;
        invoke::validate_env(&rt.env(&self.path))?;
        let prev = if version >= Version::V0_4_0 {
            self.cached_result(&list.list.name, rt, version)
        } else {
            None
        };
        self.del_chain(list, version, rt, prev.as_ref())?;
        cni_plugin::fault::point("cnitool.del.before-cache-remove");
        self.cache
            .remove(&list.list.name, &rt.container_id, &rt.ifname)
    }

    fn del_chain(
        &self,
        list: &LoadedList,
        version: Version,
        rt: &RuntimeConf,
        prev: Option<&Value>,
    ) -> Result<()> {
        let env = rt.env(&self.path);
        for plugin in list.list.plugins.iter().rev() {
            let stdin = Self::plugin_config(list, version, plugin, prev, rt);
            self.run_plugin(Command::Del, plugin, &env, &stdin)?;
        }
        Ok(())
    }

    /// CHECK every plugin against the cached result (0.4.0+; a list with
    /// `disableCheck` passes without calling anything).
    pub fn check(&self, list: &LoadedList, rt: &RuntimeConf) -> Result<()> {
        let version = list.list.effective_version(SUPPORTED)?;
        if version < Version::V0_4_0 {
            return Err(Error::incompatible_version(format!(
                "network {:?} is at {version}: CHECK needs 0.4.0 or later",
                list.list.name
            )));
        }
        if list.list.disable_check {
            return Ok(());
        }
        let prev = self
            .cached_result(&list.list.name, rt, version)
            .ok_or_else(|| {
                Error::unknown_container(format!(
                    "no cached result for container {} on network {:?}: was it added?",
                    rt.container_id, list.list.name
                ))
            })?;
        let env = rt.env(&self.path);
        for plugin in &list.list.plugins {
            let stdin = Self::plugin_config(list, version, plugin, Some(&prev), rt);
            self.run_plugin(Command::Check, plugin, &env, &stdin)?;
        }
        Ok(())
    }

    /// STATUS of every plugin (1.1.0+).
    pub fn status(&self, list: &LoadedList) -> Result<()> {
        let version = list.list.effective_version(SUPPORTED)?;
        if version < Version::V1_1_0 {
            return Err(Error::incompatible_version(format!(
                "network {:?} is at {version}: STATUS needs 1.1.0",
                list.list.name
            )));
        }
        let rt = RuntimeConf::default();
        let env = rt.env(&self.path);
        for plugin in &list.list.plugins {
            let stdin = Self::plugin_config(list, version, plugin, None, &rt);
            self.run_plugin(Command::Status, plugin, &env, &stdin)?;
        }
        Ok(())
    }

    /// GC as Go's libcni does it: DEL every cached attachment of this
    /// network that is not in `valid`, then (1.1.0+, unless `disableGC`)
    /// send GC with the valid list to every plugin. Keeps going past
    /// failures and reports them all.
    pub fn gc(&self, list: &LoadedList, valid: &[Attachment]) -> Result<()> {
        let version = list.list.effective_version(SUPPORTED)?;
        let mut errors = ErrorList::new();
        for cached in errors.check(self.cache.list()).unwrap_or_default() {
            if cached.network != list.list.name
                || valid
                    .iter()
                    .any(|a| a.container_id == cached.container_id && a.ifname == cached.ifname)
            {
                continue;
            }
            let rt = RuntimeConf {
                container_id: cached.container_id.clone(),
                netns: (!cached.netns.is_empty()).then(|| PathBuf::from(&cached.netns)),
                ifname: cached.ifname.clone(),
                args: cached.cni_args.clone(),
                capability_args: cached.capability_args.clone(),
            };
            errors.check(self.del(list, &rt));
        }
        if version >= Version::V1_1_0 && !list.list.disable_gc {
            let valid_json = serde_json::to_value(valid).unwrap_or(Value::Array(Vec::new()));
            let rt = RuntimeConf::default();
            let env = rt.env(&self.path);
            for plugin in &list.list.plugins {
                let mut conf = plugin.clone();
                conf.insert("cni.dev/valid-attachments".into(), valid_json.clone());
                conf.insert("cni.dev/attachments".into(), valid_json.clone());
                let stdin = Self::plugin_config(list, version, &conf, None, &rt);
                errors.check(self.run_plugin(Command::Gc, plugin, &env, &stdin));
            }
        }
        errors.into_result()
    }
}

fn path_string(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// A failed ADD's error with its cleanup's failure after it, in the
/// details: the message stays the cause a user must act on.
fn with_cleanup_problem(cause: Error, cleanup: &Error) -> Error {
    let problem = format!("cleanup after failed ADD: {cleanup}");
    let details = if cause.details.is_empty() {
        problem
    } else {
        format!("{}; {problem}", cause.details)
    };
    cause.with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_add_reports_its_cause_before_its_cleanup() {
        let cause = Error::invalid_config("bridge: invalid interface name");
        let e = with_cleanup_problem(cause, &Error::io("veth busy"));
        let text = e.to_string();
        assert!(
            text.starts_with("bridge: invalid interface name ("),
            "{text}"
        );
        assert!(
            text.ends_with("cleanup after failed ADD: veth busy)"),
            "{text}"
        );
        assert_eq!(e.code, 7);
        let e = with_cleanup_problem(Error::io("a").with_details("b"), &Error::io("c"));
        assert_eq!(e.details, "b; cleanup after failed ADD: c");
    }

    fn list(v: Value) -> LoadedList {
        let bytes = serde_json::to_vec(&v).unwrap();
        LoadedList {
            list: cni_spec::NetConfList::from_slice(&bytes).unwrap(),
            bytes,
            source: PathBuf::new(),
        }
    }

    #[test]
    fn plugin_config_injects_name_version_prev_and_declared_capabilities_only() {
        let l = list(json!({
            "cniVersion": "1.0.0", "name": "net1",
            "plugins": [
                {"type": "bridge", "capabilities": {"mac": true, "ips": false}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        }));
        let rt = RuntimeConf {
            capability_args: json!({"mac": "c2:00:00:00:00:01", "ips": ["10.0.0.9/24"],
                                    "portMappings": [{"hostPort": 80}]})
            .as_object()
            .unwrap()
            .clone(),
            ..Default::default()
        };
        let prev = json!({"cniVersion": "1.0.0"});
        let c0: Value = serde_json::from_slice(&CniConfig::plugin_config(
            &l,
            Version::V1_0_0,
            &l.list.plugins[0],
            None,
            &rt,
        ))
        .unwrap();
        assert_eq!(c0["name"], "net1");
        assert_eq!(c0["cniVersion"], "1.0.0");
        assert!(c0.get("prevResult").is_none());
        assert_eq!(c0["runtimeConfig"], json!({"mac": "c2:00:00:00:00:01"}));
        let c1: Value = serde_json::from_slice(&CniConfig::plugin_config(
            &l,
            Version::V1_0_0,
            &l.list.plugins[1],
            Some(&prev),
            &rt,
        ))
        .unwrap();
        assert_eq!(c1["prevResult"], prev);
        assert_eq!(c1["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        let none: Value = serde_json::from_slice(&CniConfig::plugin_config(
            &l,
            Version::V1_0_0,
            &l.list.plugins[0],
            None,
            &RuntimeConf::default(),
        ))
        .unwrap();
        assert!(none.get("runtimeConfig").is_none());
    }
}

#[cfg(test)]
mod chain_tests;
