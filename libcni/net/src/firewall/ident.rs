//! Who owns an object in our tables. Every rule and set element we make
//! carries a comment (nftables "userdata") that starts with a fixed-length
//! tag derived from its owner:
//!
//! ```text
//! cni-rs net=<16 hex> <what the rule does> [<network>]          network rules
//! cni-rs net=<16 hex> ctr=<16 hex> [<network> <id> <ifname>]   container elements
//! ```
//!
//! Names are hashed because they have no length limit while a comment has
//! (`nft` accepts 128 bytes); the readable part in brackets may be cut. DEL
//! and GC match on the tag, never on the readable part, so an object is only
//! ever removed by its owner, even if an IP address or name is reused.
//! The hash is FNV-1a (64 bits): an identity key among a host's networks and
//! containers, not a security boundary.

/// Every comment we write starts with this.
pub(crate) const TAG: &str = "cni-rs";

/// The comment of the bridge table's one shared rule.
pub(crate) const SPOOFCHECK_RULE_COMMENT: &str =
    "cni-rs macspoofchk: drop frames whose source MAC is not the port's container";

/// Longest comment `nft` will print back (its limit is 128 with the NUL).
const COMMENT_MAX: usize = 127;

/// `NFTNL_UDATA_RULE_COMMENT` and `NFTNL_UDATA_SET_ELEM_COMMENT`: the TLV
/// type libnftnl uses for comments in rule and element userdata.
const UDATA_COMMENT: u8 = 0;

fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // 0xff never occurs in UTF-8: ("a","bc") and ("ab","c") differ.
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `cni-rs net=<hash>`: the prefix of everything a network owns.
pub(crate) fn net_tag(network: &str) -> String {
    format!("{TAG} net={:016x}", fnv1a(&[network]))
}

/// The key of one attachment (container ID, interface) within a network.
pub(crate) fn ctr_key(container_id: &str, ifname: &str) -> String {
    format!("ctr={:016x}", fnv1a(&[container_id, ifname]))
}

/// `cni-rs net=<hash> ctr=<hash>`: the prefix of a container's objects.
pub(crate) fn ctr_tag(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{} {}", net_tag(network), ctr_key(container_id, ifname))
}

/// The comment of a network-level rule; `what` says what the rule does and
/// is part of the identity (a changed config gives a different comment).
pub(crate) fn network_comment(network: &str, what: &str) -> String {
    truncate(format!("{} {what} [{network}]", net_tag(network)))
}

/// The comment of a container's set element.
pub(crate) fn container_comment(network: &str, container_id: &str, ifname: &str) -> String {
    truncate(format!(
        "{} [{network} {container_id} {ifname}]",
        ctr_tag(network, container_id, ifname)
    ))
}

/// Whether `comment` marks an object of `network`.
pub(crate) fn of_network(comment: &str, network: &str) -> bool {
    has_prefix(comment, &net_tag(network))
}

/// Whether `comment` marks an object of this attachment.
pub(crate) fn of_container(comment: &str, network: &str, container_id: &str, ifname: &str) -> bool {
    has_prefix(comment, &ctr_tag(network, container_id, ifname))
}

/// The `ctr=<hash>` part of a container comment of `network`, if it is one.
pub(crate) fn container_key_of<'a>(comment: &'a str, network: &str) -> Option<&'a str> {
    let rest = comment.strip_prefix(&net_tag(network))?.strip_prefix(' ')?;
    let key = rest.split(' ').next()?;
    key.starts_with("ctr=").then_some(key)
}

/// `prefix` followed by a space: `net=ab` must not match `net=abc`.
fn has_prefix(comment: &str, prefix: &str) -> bool {
    comment
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with(' '))
}

/// Cut to what `nft` prints back, on a character boundary.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > COMMENT_MAX {
        let mut end = COMMENT_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The userdata TLV that makes `nft` show `comment "<text>"`.
pub(crate) fn encode_comment(comment: &str) -> Vec<u8> {
    let text = truncate(comment.replace('\0', " "));
    let mut v = Vec::with_capacity(text.len() + 3);
    v.push(UDATA_COMMENT);
    // text.len() <= 127, so the length with its NUL fits in a byte.
    v.push(u8::try_from(text.len() + 1).unwrap_or(u8::MAX));
    v.extend_from_slice(text.as_bytes());
    v.push(0);
    v
}

/// The comment in a rule's or element's userdata, if any.
pub(crate) fn decode_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], usize::from(rest[1]));
        let value = rest.get(2..2 + len)?;
        if kind == UDATA_COMMENT {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        rest = &rest[2 + len..];
    }
    None
}
