//! Where services live: one JSON file per service (`<name>.json`) in
//! `<config dir>/cni-rs-services/`, beside the networks' conflists, written
//! atomically; a lock file in the same folder serialises every change, so
//! two `cnitool service` commands never interleave their work.

use std::path::{Path, PathBuf};

use super::model::Service;
use cni_spec::error::{Error, Result};
use cni_state::{Dir, Durability, FileLock};

/// The folder below the config dir.
pub const FOLDER: &str = "cni-rs-services";

#[derive(Debug, Clone)]
pub struct ServiceStore {
    root: PathBuf,
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::from_io(what.to_string(), e)
}

impl ServiceStore {
    pub fn new(conf_dir: &Path) -> Self {
        ServiceStore {
            root: conf_dir.join(FOLDER),
        }
    }

    fn dir(&self) -> Result<Dir> {
        Dir::create_all(&self.root, 0o700).map_err(|e| io_err("open the services folder", e))
    }

    /// Held for the whole of a change.
    pub fn lock(&self) -> Result<FileLock> {
        self.dir()?
            .lock(".lock")
            .map_err(|e| io_err("lock the services folder", e))
    }

    pub fn write(&self, s: &Service) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(s).map_err(|e| Error::internal(e.to_string()))?;
        self.dir()?
            .write_atomic(
                &format!("{}.json", s.name),
                &bytes,
                0o600,
                Durability::Content,
            )
            .map_err(|e| io_err("write the service", e))
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.dir()?
            .remove(&format!("{name}.json"))
            .map(|_| ())
            .map_err(|e| io_err("remove the service", e))
    }

    /// Every service, by name. Unreadable files are skipped.
    pub fn list(&self) -> Result<Vec<Service>> {
        let dir = match Dir::open(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("open the services folder", e)),
        };
        let mut out = Vec::new();
        for e in dir.entries().map_err(|e| io_err("list services", e))? {
            let name = e.name.to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            if let Ok(Some(bytes)) = dir.read(&name) {
                if let Ok(s) = serde_json::from_slice::<Service>(&bytes) {
                    out.push(s);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A service by name, full ID or unique ID prefix: Docker's lookup.
    pub fn find(&self, key: &str) -> Result<Service> {
        let all = self.list()?;
        if let Some(s) = all.iter().find(|s| s.name == key || s.id == key) {
            return Ok(s.clone());
        }
        let by_prefix: Vec<&Service> = all.iter().filter(|s| s.id.starts_with(key)).collect();
        match by_prefix.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            _ => Err(Error::invalid_config(format!("No such service: {key}"))),
        }
    }
}
