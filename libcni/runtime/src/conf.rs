//! Finding network configurations in a directory with Go libcni's rules:
//! `.conflist` files in name order, first whose `name` matches wins; then
//! legacy single-plugin `.conf`/`.json` files, wrapped into a list.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use cni_spec::error::{Error, Result};
use cni_spec::NetConfList;

/// Largest config file we read: configs are small, a huge file is a mistake.
const MAX_CONF_FILE: u64 = 1 << 20;

/// Config files of `dir` with one of `extensions`, sorted by file name.
pub fn conf_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::from_io(
                format!("read config dir {}", dir.display()),
                e,
            ))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .unwrap_or(false)
        })
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| extensions.contains(&x))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::from_io(format!("read {}", path.display()), e))?;
    let mut buf = Vec::new();
    f.take(MAX_CONF_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::from_io(format!("read {}", path.display()), e))?;
    if buf.len() as u64 > MAX_CONF_FILE {
        return Err(Error::invalid_config(format!(
            "{} is larger than 1 MiB",
            path.display()
        )));
    }
    Ok(buf)
}

/// A loaded list with the bytes it came from (the cache stores them).
#[derive(Debug, Clone)]
pub struct LoadedList {
    pub list: NetConfList,
    pub bytes: Vec<u8>,
    pub source: PathBuf,
}

/// Parse a `.conflist` file, adding plugins from `<dir>/<name>/*.conf`
/// unless the list says `loadOnlyInlinedPlugins`.
pub fn load_conflist(path: &Path) -> Result<LoadedList> {
    let bytes = read_small(path)?;
    let mut list =
        NetConfList::from_slice(&bytes).map_err(|e| e.context(format!("{}", path.display())))?;
    let mut bytes = bytes;
    if !list.load_only_inlined_plugins {
        if let Some(dir) = path.parent() {
            let extra_dir = dir.join(&list.name);
            let extra = conf_files(&extra_dir, &["conf"])?;
            if !extra.is_empty() {
                for f in extra {
                    let v: Value = serde_json::from_slice(&read_small(&f)?)
                        .map_err(|e| Error::decode(format!("{}: {e}", f.display())))?;
                    list.raw
                        .entry("plugins")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Some(Value::Array(a)) = list.raw.get_mut("plugins") {
                        a.push(v);
                    }
                }
                bytes = serde_json::to_vec(&list.raw).unwrap_or_default();
                list = NetConfList::from_slice(&bytes)?;
            }
        }
    }
    if list.plugins.is_empty() {
        return Err(Error::invalid_config(format!(
            "{}: network {:?} has no plugins",
            path.display(),
            list.name
        )));
    }
    Ok(LoadedList {
        list,
        bytes,
        source: path.to_path_buf(),
    })
}

/// Wrap a legacy single-plugin config into a list (what libcni's
/// `ConfListFromConf` does): the list takes its name and version.
pub fn conflist_from_conf(bytes: &[u8]) -> Result<Vec<u8>> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(format!("failed to decode network config: {e}")))?;
    let Value::Object(conf) = v else {
        return Err(Error::decode("network config is not a JSON object"));
    };
    let mut list = Map::new();
    for key in ["cniVersion", "name"] {
        if let Some(v) = conf.get(key) {
            list.insert(key.into(), v.clone());
        }
    }
    list.insert("plugins".into(), Value::Array(vec![Value::Object(conf)]));
    serde_json::to_vec(&Value::Object(list)).map_err(|e| Error::internal(e.to_string()))
}

/// Every network in `dir`, the first file per name winning, in file order.
pub fn load_all(dir: &Path) -> Result<Vec<LoadedList>> {
    let mut out: Vec<LoadedList> = Vec::new();
    for f in conf_files(dir, &["conflist"])? {
        match load_conflist(&f) {
            Ok(l) if !out.iter().any(|o| o.list.name == l.list.name) => out.push(l),
            Ok(_) => {}
            Err(e) => cni_plugin::log::info(&format!("skipping {}: {e}", f.display())),
        }
    }
    for f in conf_files(dir, &["conf", "json"])? {
        let loaded = read_small(&f)
            .and_then(|b| conflist_from_conf(&b))
            .and_then(|bytes| {
                Ok(LoadedList {
                    list: NetConfList::from_slice(&bytes)?,
                    bytes,
                    source: f.clone(),
                })
            });
        match loaded {
            Ok(l) if !out.iter().any(|o| o.list.name == l.list.name) => out.push(l),
            Ok(_) => {}
            Err(e) => cni_plugin::log::info(&format!("skipping {}: {e}", f.display())),
        }
    }
    Ok(out)
}

/// The network called `name` in `dir` (libcni's `LoadConfList`).
pub fn load_network(dir: &Path, name: &str) -> Result<LoadedList> {
    for f in conf_files(dir, &["conflist"])? {
        if let Ok(l) = load_conflist(&f) {
            if l.list.name == name {
                return Ok(l);
            }
        }
    }
    for f in conf_files(dir, &["conf", "json"])? {
        let Ok(bytes) = read_small(&f) else { continue };
        let Ok(list_bytes) = conflist_from_conf(&bytes) else {
            continue;
        };
        if let Ok(list) = NetConfList::from_slice(&list_bytes) {
            if list.name == name {
                return Ok(LoadedList {
                    list,
                    bytes: list_bytes,
                    source: f,
                });
            }
        }
    }
    Err(Error::invalid_config(format!(
        "no network named {name:?} in {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("libcni-conf-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn write(&self, name: &str, body: &str) {
            let p = self.0.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn first_conflist_by_file_name_wins_then_legacy_conf() {
        let d = TempDir::new("order");
        d.write(
            "20-b.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"second"}]}"#,
        );
        d.write(
            "10-a.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"}]}"#,
        );
        d.write(
            "05-old.conf",
            r#"{"cniVersion":"0.4.0","name":"old","type":"bridge"}"#,
        );
        d.write("01-bad.conflist", "{not json");
        d.write("README.md", "ignored");
        let l = load_network(&d.0, "net").unwrap();
        assert_eq!(l.list.plugins[0]["type"], "first");
        let old = load_network(&d.0, "old").unwrap();
        assert_eq!(old.list.cni_version, "0.4.0");
        assert_eq!(old.list.plugins[0]["type"], "bridge");
        let all = load_all(&d.0).unwrap();
        let names: Vec<_> = all.iter().map(|l| l.list.name.as_str()).collect();
        assert_eq!(names, ["net", "old"]);
        assert_eq!(load_network(&d.0, "nope").unwrap_err().code, 7);
    }

    #[test]
    fn plugins_dir_is_appended_unless_inlined_only() {
        let d = TempDir::new("extra");
        d.write(
            "a.conflist",
            r#"{"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"a"}]}"#,
        );
        d.write("n1/10-x.conf", r#"{"type":"extra"}"#);
        d.write(
            "b.conflist",
            r#"{"cniVersion":"1.0.0","name":"n2","loadOnlyInlinedPlugins":true,"plugins":[{"type":"a"}]}"#,
        );
        d.write("n2/10-x.conf", r#"{"type":"extra"}"#);
        assert_eq!(load_network(&d.0, "n1").unwrap().list.plugins.len(), 2);
        assert_eq!(load_network(&d.0, "n2").unwrap().list.plugins.len(), 1);
    }
}
