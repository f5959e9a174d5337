//! Network configurations: the per-plugin config a plugin reads on stdin,
//! and the config list (`.conflist`) a runtime loads. Unknown keys are kept
//! verbatim (`raw`), as the spec requires them to pass through.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::result::CniResult;
use super::validate;
use super::version::Version;
use crate::error::{Error, Result};

/// The config one plugin receives: the well-known keys typed, the whole
/// object kept in `raw` for plugin-specific keys.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub plugin_type: String,
    /// `ipam.type`, when an `ipam` block with a type is present.
    pub ipam_type: Option<String>,
    pub raw: Map<String, Value>,
}

impl NetConf {
    /// Parse stdin. Not JSON or not an object: code 6. Missing or invalid
    /// `name`/`type`: code 7. The version is checked by the caller, which
    /// knows what it supports.
    pub fn from_slice(bytes: &[u8]) -> Result<NetConf> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("failed to decode network config: {e}")))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<NetConf> {
        let Value::Object(raw) = value else {
            return Err(Error::decode("network config is not a JSON object"));
        };
        let cni_version = match raw.get("cniVersion") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(Error::decode("network config: cniVersion is not a string")),
        };
        let name = string_field(&raw, "name")?;
        validate::network_name(&name)?;
        let plugin_type = string_field(&raw, "type")?;
        let ipam_type = match raw.get("ipam") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => match o.get("type") {
                None => None,
                Some(Value::String(t)) if t.is_empty() => None,
                Some(Value::String(t)) => {
                    validate_plugin_type("ipam.type", t)?;
                    Some(t.clone())
                }
                Some(_) => return Err(Error::invalid_config("ipam.type must be a string")),
            },
            Some(_) => return Err(Error::invalid_config("ipam must be an object")),
        };
        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            ipam_type,
            raw,
        })
    }

    /// The plugin-specific view of this config; type errors are code 7
    /// and name the field, as serde reports it.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(Value::Object(self.raw.clone()))
            .map_err(|e| Error::invalid_config(format!("invalid network config: {e}")))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }

    /// `runtimeConfig` as an object (empty when absent).
    pub fn runtime_config(&self) -> Map<String, Value> {
        match self.raw.get("runtimeConfig") {
            Some(Value::Object(o)) => o.clone(),
            _ => Map::new(),
        }
    }

    /// `args.cni.<key>` (the spec's convention for per-container metadata).
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.raw.get("args")?.get("cni")?.get(key)
    }

    /// The raw `prevResult`, if any.
    pub fn prev_result_value(&self) -> Option<&Value> {
        match self.raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// `prevResult` parsed into the canonical form. Its own `cniVersion` is
    /// used when present; otherwise the config's.
    pub fn prev_result(&self) -> Result<Option<CniResult>> {
        let Some(v) = self.prev_result_value() else {
            return Ok(None);
        };
        let mut v = v.clone();
        if let Value::Object(o) = &mut v {
            if !o.contains_key("cniVersion") && !self.cni_version.is_empty() {
                o.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
            }
        }
        CniResult::from_value(&v)
            .map(Some)
            .map_err(|e| e.context("failed to parse prevResult"))
    }

    /// The `ipam` block with `name` and `cniVersion` of the network, for
    /// handing to the IPAM plugin (which reads the whole config anyway).
    pub fn ipam(&self) -> Option<&Map<String, Value>> {
        self.raw.get("ipam").and_then(Value::as_object)
    }

    /// GC's list of attachments to keep: `cni.dev/valid-attachments`, or the
    /// older `cni.dev/attachments` (libcni sends both). `None` when neither
    /// key is present; an empty list means nothing is valid.
    pub fn valid_attachments(&self) -> Result<Option<Vec<Attachment>>> {
        let v = match (
            self.raw.get("cni.dev/valid-attachments"),
            self.raw.get("cni.dev/attachments"),
        ) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => return Ok(None),
        };
        if v.is_null() {
            return Ok(Some(Vec::new()));
        }
        serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| Error::invalid_config(format!("invalid cni.dev/valid-attachments: {e}")))
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.raw).unwrap_or_default()
    }
}

/// One attachment GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(rename = "ifname")]
    pub ifname: String,
}

fn string_field(raw: &Map<String, Value>, key: &str) -> Result<String> {
    match raw.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(Error::invalid_config(format!(
            "network config is missing \"{key}\""
        ))),
        Some(_) => Err(Error::invalid_config(format!(
            "network config: \"{key}\" must be a string"
        ))),
    }
}

/// A plugin `type` names a binary on CNI_PATH: a bare file name only.
pub fn validate_plugin_type(what: &str, t: &str) -> Result<()> {
    if t.is_empty()
        || t == "."
        || t == ".."
        || t.contains('/')
        || t.contains('\0')
        || t.chars().any(char::is_whitespace)
    {
        return Err(Error::invalid_config(format!(
            "{what} {t:?} is not a valid plugin name"
        )));
    }
    Ok(())
}

/// JSON bool, or the strings "true"/"false" (libcni accepts both).
fn read_bool(raw: &Map<String, Value>, key: &str) -> Result<bool> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(Error::invalid_config(format!(
            "\"{key}\" must be a boolean, got {other}"
        ))),
    }
}

/// A network configuration list (`.conflist`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfList {
    pub cni_version: String,
    pub cni_versions: Vec<String>,
    pub name: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    /// Each plugin's own object, as written.
    pub plugins: Vec<Map<String, Value>>,
    pub raw: Map<String, Value>,
}

impl NetConfList {
    pub fn from_slice(bytes: &[u8]) -> Result<NetConfList> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("failed to decode config list: {e}")))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<NetConfList> {
        let Value::Object(raw) = value else {
            return Err(Error::decode("config list is not a JSON object"));
        };
        let name = string_field(&raw, "name")?;
        validate::network_name(&name)?;
        let cni_version = match raw.get("cniVersion") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(Error::invalid_config("cniVersion must be a string")),
        };
        let cni_versions = match raw.get("cniVersions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::invalid_config("cniVersions must hold strings"))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(Error::invalid_config("cniVersions must be a list")),
        };
        let plugins = match raw.get("plugins") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let Value::Object(o) = p else {
                        return Err(Error::invalid_config(format!(
                            "plugins[{i}] is not an object"
                        )));
                    };
                    match o.get("type") {
                        Some(Value::String(t)) => {
                            validate_plugin_type(&format!("plugins[{i}].type"), t)?
                        }
                        _ => {
                            return Err(Error::invalid_config(format!(
                                "plugins[{i}] is missing \"type\""
                            )))
                        }
                    }
                    Ok(o.clone())
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
            Some(_) => return Err(Error::invalid_config("\"plugins\" must be a list")),
        };
        Ok(NetConfList {
            cni_version,
            cni_versions,
            name,
            disable_check: read_bool(&raw, "disableCheck")?,
            disable_gc: read_bool(&raw, "disableGC")?,
            load_only_inlined_plugins: read_bool(&raw, "loadOnlyInlinedPlugins")?,
            plugins,
            raw,
        })
    }

    /// The version to run this list at: the highest of `cniVersion` and
    /// `cniVersions` that `supported` holds (spec 1.1).
    pub fn effective_version(&self, supported: &[Version]) -> Result<Version> {
        let candidates = std::iter::once(self.cni_version.as_str())
            .chain(self.cni_versions.iter().map(String::as_str))
            .filter(|s| !s.is_empty());
        super::version::highest_supported(candidates, supported).ok_or_else(|| {
            Error::incompatible_version(format!(
                "network {:?}: none of its versions ({}) is supported",
                self.name,
                std::iter::once(self.cni_version.clone())
                    .chain(self.cni_versions.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn netconf_keeps_unknown_keys_and_reads_ipam_type() {
        let c = NetConf::from_slice(
            br#"{"cniVersion":"1.0.0","name":"n1","type":"bridge","ipam":{"type":"host-local"},"custom":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(c.ipam_type.as_deref(), Some("host-local"));
        assert_eq!(c.get("custom").unwrap()["a"], 1);
        assert_eq!(
            serde_json::from_slice::<Value>(&c.to_vec()).unwrap()["custom"]["a"],
            1
        );
    }

    #[test]
    fn netconf_errors_have_spec_codes() {
        assert_eq!(NetConf::from_slice(b"not json").unwrap_err().code, 6);
        assert_eq!(NetConf::from_slice(b"[1]").unwrap_err().code, 6);
        assert_eq!(NetConf::from_slice(br#"{"type":"x"}"#).unwrap_err().code, 7);
        assert_eq!(NetConf::from_slice(br#"{"name":"n"}"#).unwrap_err().code, 7);
        assert_eq!(
            NetConf::from_slice(br#"{"name":"a/b","type":"x"}"#)
                .unwrap_err()
                .code,
            7
        );
        assert_eq!(
            NetConf::from_slice(br#"{"name":"n","type":"x","ipam":{"type":"../x"}}"#)
                .unwrap_err()
                .code,
            7
        );
    }

    #[test]
    fn prev_result_takes_config_version_when_missing() {
        let c = NetConf::from_value(json!({
            "cniVersion": "0.4.0", "name": "n", "type": "t",
            "prevResult": {"ips": [{"version": "4", "address": "10.0.0.2/24"}]}
        }))
        .unwrap();
        let r = c.prev_result().unwrap().unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
    }

    #[test]
    fn valid_attachments_read_both_keys() {
        let mk = |extra: Value| {
            let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "t"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            NetConf::from_value(v).unwrap()
        };
        assert_eq!(mk(json!({})).valid_attachments().unwrap(), None);
        let a = mk(json!({"cni.dev/attachments": [{"containerID": "c1", "ifname": "eth0"}]}));
        assert_eq!(
            a.valid_attachments().unwrap().unwrap()[0].container_id,
            "c1"
        );
        let b = mk(json!({"cni.dev/valid-attachments": []}));
        assert!(b.valid_attachments().unwrap().unwrap().is_empty());
        let bad = mk(json!({"cni.dev/valid-attachments": [1]}));
        assert_eq!(bad.valid_attachments().unwrap_err().code, 7);
    }

    #[test]
    fn conflist_version_selection_and_bools() {
        let l = NetConfList::from_value(json!({
            "cniVersion": "0.4.0", "cniVersions": ["1.0.0", "2.0.0"], "name": "n",
            "disableCheck": "true", "plugins": [{"type": "bridge"}]
        }))
        .unwrap();
        assert!(l.disable_check);
        assert!(!l.disable_gc);
        assert_eq!(
            l.effective_version(super::super::SUPPORTED).unwrap(),
            Version::V1_0_0
        );
        let bad = NetConfList::from_value(json!({"name": "n", "plugins": [{}]}));
        assert_eq!(bad.unwrap_err().code, 7);
        let none =
            NetConfList::from_value(json!({"name": "n", "cniVersion": "9.0.0", "plugins": []}))
                .unwrap();
        assert_eq!(
            none.effective_version(super::super::SUPPORTED)
                .unwrap_err()
                .code,
            1
        );
    }
}
