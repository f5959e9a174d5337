//! Network sysctls under /proc/sys/net. They are per network namespace (the
//! namespace of the thread that opens the file), so a container's are set
//! from inside `NetNs::run`.

use std::fs;
use std::path::PathBuf;

use super::with_errno;
use cni_spec::error::{Error, Result};

/// The file of a key: "net/ipv4/ip_forward" or "net.ipv4.ip_forward".
/// Dotted keys are only split when they contain no '/', so slash keys may
/// name interfaces with dots ("net/ipv4/conf/eth0.100/forwarding").
pub fn path(key: &str) -> Result<PathBuf> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let bad = rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..");
    if bad || !rel.starts_with("net/") {
        return Err(Error::invalid_config(format!(
            "invalid sysctl {key:?}: only keys under net/ may be set"
        )));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// Current value, trimmed.
pub fn get(key: &str) -> Result<String> {
    let p = path(key)?;
    let v = fs::read_to_string(&p).map_err(|e| io_err("read sysctl", key, e))?;
    Ok(v.trim().to_string())
}

/// Set `key` to `value`; a value already there is success without a write
/// (so a namespace with a read-only /proc/sys that has the value works).
pub fn set(key: &str, value: &str) -> Result<()> {
    let p = path(key)?;
    // Read first, write only a change: a write of a host-wide key is not
    // free even when the value stays (`net.ipv4.ip_forward` took 10 ms
    // with 600 ports on the bridge, where the read takes 20 us).
    if let Ok(cur) = fs::read_to_string(&p) {
        if cur.trim() == value.trim() {
            return Ok(());
        }
    }
    fs::write(&p, value).map_err(|e| io_err("write sysctl", key, e))
}

fn io_err(what: &str, key: &str, e: std::io::Error) -> Error {
    let n = e.raw_os_error();
    let err = Error::from_io(format_args!("{what} {key}"), e);
    match n {
        Some(n) => with_errno(err, n),
        None => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        assert!(path("kernel.panic").is_err());
        assert!(path("net/../kernel/panic").is_err());
        assert!(path("net//x").is_err());
    }

    #[test]
    fn reads_a_net_sysctl() {
        let v = get("net/ipv4/ip_forward").unwrap();
        assert!(v == "0" || v == "1");
    }
}
