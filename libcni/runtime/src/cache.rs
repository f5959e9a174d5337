//! The result cache, in Go libcni's format and place, so that a runtime
//! built on Go libcni and ours can hand attachments to each other:
//! `<cacheDir>/results/<network>-<containerID>-<ifname>` holding a
//! `cniCacheV1` object. Unlike Go's, writes are atomic, and a torn or
//! empty file is treated as absent instead of blocking teardown.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use cni_spec::error::{Error, Result};
use cni_spec::validate;
use cni_state::{Dir, Durability};

/// Go libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
const KIND: &str = "cniCacheV1";

/// One cached attachment, field for field Go's `cachedInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The config list's bytes (base64 on the wire, as Go's []byte).
    #[serde(with = "b64")]
    pub config: Vec<u8>,
    #[serde(rename = "ifName")]
    pub ifname: String,
    #[serde(rename = "networkName")]
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// The cache below one directory.
#[derive(Debug, Clone)]
pub struct ResultCache {
    root: PathBuf,
}

impl ResultCache {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        ResultCache {
            root: cache_dir.into(),
        }
    }

    /// The cache directory itself (`/var/lib/cni` by default).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn results_dir(&self) -> PathBuf {
        self.root.join("results")
    }

    /// The file name of an attachment; every part is validated first so no
    /// name can leave the results directory.
    pub fn key(network: &str, container_id: &str, ifname: &str) -> Result<String> {
        validate::network_name(network)?;
        validate::container_id(container_id)?;
        validate::interface_name("CNI_IFNAME", ifname)?;
        Ok(format!("{network}-{container_id}-{ifname}"))
    }

    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> Result<PathBuf> {
        Ok(self
            .results_dir()
            .join(Self::key(network, container_id, ifname)?))
    }

    fn dir(&self, create: bool) -> Result<Option<Dir>> {
        let p = self.results_dir();
        let res = if create {
            Dir::create_all(&p, 0o700)
        } else {
            Dir::open(&p)
        };
        match res {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => Ok(None),
            Err(e) => Err(Error::from_io(format!("open cache dir {}", p.display()), e)),
        }
    }

    /// Store an attachment after a successful ADD (atomically, synced).
    pub fn put(&self, entry: &CachedAttachment) -> Result<()> {
        let key = Self::key(&entry.network, &entry.container_id, &entry.ifname)?;
        let bytes = serde_json::to_vec(entry).map_err(|e| Error::internal(e.to_string()))?;
        let dir = self.dir(true)?.ok_or_else(|| Error::io("no cache dir"))?;
        dir.write_atomic(&key, &bytes, 0o600, Durability::Full)
            .map_err(|e| Error::from_io(format!("write cache entry {key}"), e))
    }

    /// The attachment, if a readable one is cached. A file that does not
    /// parse (torn, empty, foreign) is reported as `Err` with code 6 so a
    /// caller can decide; DEL treats it as absent.
    pub fn get(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>> {
        let key = Self::key(network, container_id, ifname)?;
        let Some(dir) = self.dir(false)? else {
            return Ok(None);
        };
        let bytes = match dir.read(&key) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Error::from_io(format!("read cache entry {key}"), e)),
        };
        parse_entry(&bytes, network, container_id, ifname).map(Some)
    }

    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        let key = Self::key(network, container_id, ifname)?;
        let Some(dir) = self.dir(false)? else {
            return Ok(());
        };
        dir.remove(&key)
            .map(|_| ())
            .map_err(|e| Error::from_io(format!("remove cache entry {key}"), e))
    }

    /// Every readable `cniCacheV1` entry (for GC and `network inspect`);
    /// unreadable files are skipped.
    pub fn list(&self) -> Result<Vec<CachedAttachment>> {
        let Some(dir) = self.dir(false)? else {
            return Ok(Vec::new());
        };
        let entries = dir
            .entries()
            .map_err(|e| Error::from_io("list cache dir", e))?;
        let mut out = Vec::new();
        for e in entries {
            let Some(name) = e.name.to_str() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(Some(bytes)) = dir.read(name) else {
                continue;
            };
            if let Ok(entry) = serde_json::from_slice::<CachedAttachment>(&bytes) {
                if entry.kind == KIND {
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }
}

/// A V1 entry, or a legacy file holding only the result (public for the
/// fuzzers: cache files are untrusted input).
pub fn parse_entry(
    bytes: &[u8],
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<CachedAttachment> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(format!("cached result is unreadable: {e}")))?;
    if v.get("kind").and_then(Value::as_str) == Some(KIND) {
        return serde_json::from_value(v)
            .map_err(|e| Error::decode(format!("cached result is unreadable: {e}")));
    }
    if v.get("cniVersion").is_some() {
        return Ok(CachedAttachment {
            kind: KIND.into(),
            container_id: container_id.into(),
            config: Vec::new(),
            ifname: ifname.into(),
            network: network.into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: Some(v),
        });
    }
    Err(Error::decode("cached result has an unknown format"))
}

/// Base64 of the list's bytes, as Go's encoding/json writes a []byte.
pub fn encode_config(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Where a cache dir points, for messages.
pub fn describe(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("libcni-cache-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    /// A file as Go libcni v1.2 writes it (fields in Go's order, config as
    /// base64, result as the plugin returned it).
    const GO_FIXTURE: &str = r#"{"kind":"cniCacheV1","containerId":"cnitool-77383ca0a0715733ca6f","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoibmV0MSIsInBsdWdpbnMiOlt7InR5cGUiOiJicmlkZ2UifV19","ifName":"eth0","networkName":"net1","netns":"/var/run/netns/c1","cniArgs":[["IP","10.1.0.9"]],"capabilityArgs":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]},"result":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:01:00:09","sandbox":"/var/run/netns/c1"}],"ips":[{"interface":0,"address":"10.1.0.9/24","gateway":"10.1.0.1"}],"dns":{}}}"#;

    #[test]
    fn reads_go_written_entries_and_writes_the_same_shape() {
        let root = temp("go");
        let cache = ResultCache::new(&root);
        std::fs::create_dir_all(cache.results_dir()).unwrap();
        let key = ResultCache::key("net1", "cnitool-77383ca0a0715733ca6f", "eth0").unwrap();
        std::fs::write(cache.results_dir().join(&key), GO_FIXTURE).unwrap();
        let e = cache
            .get("net1", "cnitool-77383ca0a0715733ca6f", "eth0")
            .unwrap()
            .unwrap();
        assert_eq!(e.netns, "/var/run/netns/c1");
        assert_eq!(e.cni_args, vec![("IP".to_string(), "10.1.0.9".to_string())]);
        let conf: Value = serde_json::from_slice(&e.config).unwrap();
        assert_eq!(conf["plugins"][0]["type"], "bridge");
        assert_eq!(
            e.result.as_ref().unwrap()["ips"][0]["address"],
            "10.1.0.9/24"
        );

        // Written back, it is byte-for-byte what Go would parse.
        cache.put(&e).unwrap();
        let again: Value =
            serde_json::from_slice(&std::fs::read(cache.results_dir().join(&key)).unwrap())
                .unwrap();
        let go: Value = serde_json::from_str(GO_FIXTURE).unwrap();
        assert_eq!(again, go);
        assert_eq!(cache.list().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn torn_files_are_decode_errors_and_legacy_results_load() {
        let root = temp("torn");
        let cache = ResultCache::new(&root);
        std::fs::create_dir_all(cache.results_dir()).unwrap();
        let dir = cache.results_dir();
        std::fs::write(dir.join("n-c1-eth0"), "").unwrap();
        std::fs::write(dir.join("n-c2-eth0"), "{\"kind\":\"cniCa").unwrap();
        std::fs::write(
            dir.join("n-c3-eth0"),
            json!({"cniVersion":"0.4.0"}).to_string(),
        )
        .unwrap();
        assert_eq!(cache.get("n", "c1", "eth0").unwrap_err().code, 6);
        assert_eq!(cache.get("n", "c2", "eth0").unwrap_err().code, 6);
        assert!(cache
            .get("n", "c3", "eth0")
            .unwrap()
            .unwrap()
            .result
            .is_some());
        assert!(cache.get("n", "c4", "eth0").unwrap().is_none());
        assert!(cache.list().unwrap().is_empty());
        cache.remove("n", "c1", "eth0").unwrap();
        cache.remove("n", "c1", "eth0").unwrap();
        assert!(ResultCache::key("n", "../x", "eth0").is_err());
        let _ = std::fs::remove_dir_all(root);
    }
}
