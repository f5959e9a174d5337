//! Names of the links we create on the host. They are derived from the
//! attachment, never random, so DEL and GC can find them from the
//! (containerID, ifname) pair alone, even when the container's namespace and
//! every cached result are gone.

use sha2::{Digest, Sha256};

/// Prefix of every host-side veth we create.
pub const HOST_VETH_PREFIX: &str = "veth";

/// `veth` + the first 8 hex digits of sha256("<containerID>:<ifname>").
/// Neither part may contain ':' (the spec forbids it in both), so the
/// input is unambiguous. 32 bits make a collision between two live
/// attachments on one host unlikely; should one happen, ADD fails with
/// "file exists" rather than touching the other container's link.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut h = Sha256::new();
    h.update(container_id.as_bytes());
    h.update(b":");
    h.update(ifname.as_bytes());
    let d = h.finalize();
    format!(
        "{HOST_VETH_PREFIX}{:02x}{:02x}{:02x}{:02x}",
        d[0], d[1], d[2], d[3]
    )
}

/// Whether `name` has the shape of [`host_veth_name`]: how the last DEL of a
/// network tells our ports on a bridge from links somebody else enslaved.
pub fn is_host_veth_name(name: &str) -> bool {
    name.strip_prefix(HOST_VETH_PREFIX).is_some_and(|rest| {
        rest.len() == 8 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_name_is_stable_short_and_recognised() {
        let a = host_veth_name("c1", "eth0");
        assert_eq!(a, host_veth_name("c1", "eth0"));
        assert_eq!(a.len(), 12);
        assert!(is_host_veth_name(&a));
        assert_ne!(a, host_veth_name("c1", "eth1"));
        assert_ne!(a, host_veth_name("c2", "eth0"));
        // Splitting the same characters differently gives another name.
        assert_ne!(host_veth_name("ab", "c"), host_veth_name("a", "bc"));
    }

    #[test]
    fn other_names_are_not_ours() {
        for n in [
            "veth",
            "veth0",
            "vethABCDEF12",
            "veth1234567",
            "eth012345678",
            "veth123456789",
        ] {
            assert!(!is_host_veth_name(n), "{n}");
        }
        assert!(is_host_veth_name("veth0123abcd"));
    }
}
