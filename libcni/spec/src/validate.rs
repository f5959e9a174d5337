//! Checks on untrusted identifiers. Container IDs and network names end up
//! in file names (IPAM store, result cache), interface names in the kernel.

use crate::error::{Error, Result};

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: the spec's rule for container IDs and
/// network names. It also keeps them from being `.`/`..` or holding `/`.
fn is_safe_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `CNI_CONTAINERID`: non-empty and of the spec's alphabet (code 4).
pub fn container_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_env("CNI_CONTAINERID is empty"));
    }
    if !is_safe_identifier(id) {
        return Err(Error::invalid_env(format!(
            "CNI_CONTAINERID {id:?} is invalid: it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        )));
    }
    Ok(())
}

/// Network `name` from the config (code 7).
pub fn network_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_config("network config is missing \"name\""));
    }
    if !is_safe_identifier(name) {
        return Err(Error::invalid_config(format!(
            "network name {name:?} is invalid: it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        )));
    }
    Ok(())
}

/// Maximum length of a Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// An interface name the kernel will accept: 1..=15 bytes, not `.`/`..`,
/// no `/`, `:` or whitespace. `what` names the variable for the message.
pub fn interface_name(what: &str, name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_IFNAME_LEN {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("must not be '.' or '..'")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        Some("must not contain '/', ':', NUL or whitespace")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::invalid_env(format!(
            "{what} {name:?} is invalid: it {why}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["a", "abc-123_x.y", "0", "Z9"] {
            assert!(container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "../x", "a b", "a:b", "a\0b", "é"] {
            let e = container_id(bad).unwrap_err();
            assert_eq!(e.code, 4, "{bad}");
            assert!(e.msg.contains("CNI_CONTAINERID"));
        }
    }

    #[test]
    fn network_names() {
        assert!(network_name("my-net.1").is_ok());
        for bad in ["", "a/b", "..", "_x", "a b"] {
            assert_eq!(network_name(bad).unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(interface_name("CNI_IFNAME", "eth0").is_ok());
        assert!(interface_name("CNI_IFNAME", "a23456789012345").is_ok());
        for bad in [
            "",
            "a234567890123456",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
        ] {
            let e = interface_name("CNI_IFNAME", bad).unwrap_err();
            assert_eq!(e.code, 4, "{bad:?}");
            assert!(e.msg.contains("CNI_IFNAME"));
        }
    }
}
