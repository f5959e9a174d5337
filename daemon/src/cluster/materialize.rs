//! The cluster's networks as this host's conflists: every stored network
//! is written to the host's config folder (so containerd and podman find
//! it by name too), and a conflist we wrote for a network the store no
//! longer has is removed. Ours are marked `"cnm": {"cluster": true}`;
//! no other file is ever touched. The one host-specific part is added
//! here: the overlay's `localIP` is this host's advertised address, so a
//! host needs no default route on its underlay.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use crate::log;

fn is_cluster_conflist(v: &Value) -> bool {
    v.get("cnm")
        .and_then(|c| c.get("cluster"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// The stored conflist as this host writes it.
fn for_host(list: &Value, local: IpAddr) -> Value {
    let mut list = list.clone();
    for p in list
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let ours = p.get("type").and_then(Value::as_str) == Some("vxlan-overlay")
            && p.get("cluster").and_then(Value::as_bool) == Some(true);
        let named = p.get("localIP").is_some() || p.get("underlayDevice").is_some();
        if ours && !named {
            p["localIP"] = Value::String(local.to_string());
        }
    }
    list
}

pub fn conflists(dir: &Path, networks: &BTreeMap<String, Value>, local: IpAddr) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        log::error(&format!("cluster: {}: {e}", dir.display()));
        return;
    }
    for (name, list) in networks {
        if !is_cluster_conflist(list) || name.contains('/') || name.starts_with('.') {
            continue;
        }
        let list = &for_host(list, local);
        let path = dir.join(format!("{name}.conflist"));
        let current: Option<Value> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if current.as_ref() == Some(list) {
            continue;
        }
        if current.as_ref().is_some_and(|c| !is_cluster_conflist(c)) {
            log::error(&format!(
                "cluster: {} is a local network of the same name: not replaced",
                path.display()
            ));
            continue;
        }
        let bytes = serde_json::to_vec_pretty(list).unwrap_or_default();
        match cni_state::write_atomic(&path, &bytes, 0o644, cni_state::Durability::Content) {
            Ok(()) => log::info(&format!("cluster: wrote {}", path.display())),
            Err(e) => log::error(&format!("cluster: writing {}: {e}", path.display())),
        }
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(net) = name.strip_suffix(".conflist") else {
            continue;
        };
        if networks.contains_key(net) {
            continue;
        }
        let ours = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| is_cluster_conflist(&v));
        if ours {
            match std::fs::remove_file(e.path()) {
                Ok(()) => log::info(&format!("cluster: removed {}", e.path().display())),
                Err(err) => log::error(&format!("cluster: removing {name}: {err}")),
            }
        }
    }
}
