//! A sandbox's resolv.conf, where `ip netns exec <sandbox>` finds it:
//! iproute2 bind-mounts every file of `/etc/netns/<name>/` over `/etc/` for
//! the command it runs, so `ip netns exec web ping api` asks the resolver
//! the network's `dnsname` handed back in the result's `dns`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::endpoints::{Sandbox, NETNS_DIR};
use cni_spec::error::{Error, Result};

/// iproute2's fixed folder of per-namespace `/etc` files.
pub const ETC_NETNS: &str = "/etc/netns";

/// The first line of the files we write: only those are ours to remove.
const MARK: &str = "# written by cnitool from the CNI result's dns; removed with the sandbox";

fn dir_of(sandbox: &Sandbox) -> Option<PathBuf> {
    // Only named sandboxes: `ip netns exec` knows no other.
    (sandbox.path.parent() == Some(Path::new(NETNS_DIR)))
        .then(|| Path::new(ETC_NETNS).join(&sandbox.name))
}

fn strings<'a>(dns: &'a Value, key: &str) -> Vec<&'a str> {
    dns.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// resolv.conf text for a result's `dns`, or None when it names no server.
pub fn render(result: &Value) -> Option<String> {
    let dns = result.get("dns")?;
    let servers = strings(dns, "nameservers");
    if servers.is_empty() {
        return None;
    }
    let mut out = format!("{MARK}\n");
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let search = strings(dns, "search");
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    let options = strings(dns, "options");
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    Some(out)
}

/// Write the sandbox's resolv.conf from a connect's result, unless one is
/// there already: as in Docker, the first network with a resolver sets it
/// (every network's names are served by the same 127.0.0.11).
pub fn write_first(sandbox: &Sandbox, result: &Value) -> Result<()> {
    let (Some(dir), Some(text)) = (dir_of(sandbox), render(result)) else {
        return Ok(());
    };
    let file = dir.join("resolv.conf");
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::from_io(format!("create {}", dir.display()), e))?;
    cni_state::write_atomic(&file, text.as_bytes(), 0o644, cni_state::Durability::None)
        .map_err(|e| Error::from_io(format!("write {}", file.display()), e))
}

/// Remove the resolv.conf we wrote for the sandbox, and its folder once
/// empty; a file somebody else put there stays.
pub fn remove(sandbox: &Sandbox) -> Result<()> {
    let Some(dir) = dir_of(sandbox) else {
        return Ok(());
    };
    let file = dir.join("resolv.conf");
    match std::fs::read_to_string(&file) {
        Ok(t) if t.starts_with(MARK) => std::fs::remove_file(&file)
            .map_err(|e| Error::from_io(format!("remove {}", file.display()), e))?,
        _ => {}
    }
    // Fails harmlessly when other files remain or it never existed.
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_servers_search_and_options() {
        let r = json!({"dns": {"nameservers": ["127.0.0.11"], "search": ["front", "dns.podman"],
                               "options": ["ndots:0"]}});
        let t = render(&r).unwrap();
        assert!(t.starts_with(MARK));
        assert!(t.contains("\nnameserver 127.0.0.11\nsearch front dns.podman\noptions ndots:0\n"));
        assert_eq!(render(&json!({"dns": {}})), None);
        assert_eq!(render(&json!({})), None);
    }

    #[test]
    fn only_named_sandboxes_have_a_folder() {
        let named = Sandbox::resolve("web").unwrap();
        assert_eq!(dir_of(&named), Some(PathBuf::from("/etc/netns/web")));
        assert_eq!(dir_of(&Sandbox::resolve("/proc/1/ns/net").unwrap()), None);
    }
}
