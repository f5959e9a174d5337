//! Flushing conntrack entries over ctnetlink (NETLINK_NETFILTER, subsystem
//! CTNETLINK), on the same transport as nf_tables. A UDP "connection" made
//! before a port was published (or to a container since removed) lives on
//! in conntrack and keeps its old translation while packets keep coming;
//! deleting it makes the next packet meet the current rules.

use std::net::IpAddr;

use nix::errno::Errno;

use super::nl::{self, put_msg, Attrs, NFGENMSG_LEN};
use crate::transport::{
    NlError, Protocol, Transport, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use cni_spec::error::Result;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

// enum ctattr_type, ctattr_tuple, ctattr_l4proto
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// IPPROTO_UDP.
pub const UDP: u8 = 17;

/// Delete every conntrack entry of family `v6` whose original direction
/// goes to `proto` port `port` (any address). Returns how many went; an
/// entry that vanished meanwhile counts as gone.
pub fn flush_dport(v6: bool, proto: u8, port: u16) -> Result<usize> {
    let family = if v6 { AF_INET6 } else { AF_INET };
    let what = format!("conntrack: delete entries to port {port}");
    flush(family, &what, |attrs| deletion_for(attrs, proto, port))
}

/// Delete every IPv4 conntrack entry of `proto` whose reply comes from one
/// of `addrs`: the "connections" a service sent to tasks that are gone,
/// which would otherwise keep their translation (UDP) until they time out.
/// One dump for all of them.
pub fn flush_reply_sources_v4(proto: u8, addrs: &[std::net::Ipv4Addr]) -> Result<usize> {
    if addrs.is_empty() {
        return Ok(0);
    }
    let what = "conntrack: delete entries answered by removed tasks";
    flush(AF_INET, what, |attrs| {
        addrs
            .iter()
            .find_map(|a| deletion_if_reply_from(attrs, proto, *a))
    })
}

/// Delete every entry of `proto` to port `port` that was translated to one
/// of `targets` (its reply comes from there): the connections a published
/// port carried to a container that is going away. TCP entries would
/// otherwise linger for minutes (TIME_WAIT, or days when established) and
/// name an address the next container may get. Entries of other
/// destinations on the same port, such as the host's own connections out
/// to a remote port of that number, are left alone. One dump per family.
pub fn flush_translated(proto: u8, port: u16, targets: &[IpAddr]) -> Result<usize> {
    let mut deleted = 0;
    for (family, v6) in [(AF_INET, false), (AF_INET6, true)] {
        let mine: Vec<IpAddr> = targets
            .iter()
            .copied()
            .filter(|t| t.is_ipv6() == v6)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let what = format!("conntrack: delete entries to port {port} translated to {mine:?}");
        deleted += flush(family, &what, |attrs| {
            deletion_if_translated(attrs, proto, port, &mine)
        })?;
    }
    Ok(deleted)
}

/// Dump the entries of `family` and delete those `pick` turns into a
/// deletion request.
fn flush(family: u8, what: &str, pick: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Result<usize> {
    let mut t = Transport::open(Protocol::Netfilter)
        .map_err(|e| NlError::Os(e).into_error("conntrack: open NETLINK_NETFILTER socket"))?;
    let msg_type = |cmd: u16| (NFNL_SUBSYS_CTNETLINK << 8) | cmd;
    let entries = t
        .request(true, |seq| {
            let mut out = Vec::with_capacity(32);
            put_msg(
                &mut out,
                msg_type(IPCTNL_MSG_CT_GET),
                NLM_F_REQUEST | NLM_F_DUMP,
                seq,
                family,
                0,
                &[],
            );
            out
        })
        .map_err(|e| e.into_error(format_args!("conntrack: list entries")))?;
    let mut deleted = 0;
    for m in &entries {
        let attrs = m.get(NLMSG_HDRLEN + NFGENMSG_LEN..).unwrap_or(&[]);
        let Some(del) = pick(attrs) else {
            continue;
        };
        let res = t.request(false, |seq| {
            let mut out = Vec::with_capacity(64 + del.len());
            put_msg(
                &mut out,
                msg_type(IPCTNL_MSG_CT_DELETE),
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                family,
                0,
                &del,
            );
            out
        });
        match res {
            Ok(_) => deleted += 1,
            Err(NlError::Kernel { errno, .. }) if errno == Errno::ENOENT as i32 => {}
            Err(e) => return Err(e.into_error(what)),
        }
    }
    Ok(deleted)
}

/// The attributes of a delete request for a dumped entry, if its original
/// tuple is `proto` to `port`.
fn deletion_for(attrs: &[u8], proto: u8, port: u16) -> Option<Vec<u8>> {
    let orig = nl::find(attrs, CTA_TUPLE_ORIG)?;
    let l4 = nl::find(orig, CTA_TUPLE_PROTO)?;
    let num = *nl::find(l4, CTA_PROTO_NUM)?.first()?;
    let dport = nl::find(l4, CTA_PROTO_DST_PORT)?;
    if num != proto || dport.get(..2)? != port.to_be_bytes() {
        return None;
    }
    delete_request(attrs, orig)
}

/// The same, for an entry of `proto` whose reply tuple's source is `addr`.
fn deletion_if_reply_from(attrs: &[u8], proto: u8, addr: std::net::Ipv4Addr) -> Option<Vec<u8>> {
    let orig = nl::find(attrs, CTA_TUPLE_ORIG)?;
    let num = *nl::find(nl::find(orig, CTA_TUPLE_PROTO)?, CTA_PROTO_NUM)?.first()?;
    if num != proto || reply_source(attrs)? != IpAddr::V4(addr) {
        return None;
    }
    delete_request(attrs, orig)
}

/// The same, for an entry of `proto` to `port` answered by one of `targets`.
fn deletion_if_translated(
    attrs: &[u8],
    proto: u8,
    port: u16,
    targets: &[IpAddr],
) -> Option<Vec<u8>> {
    deletion_for(attrs, proto, port)?;
    let src = reply_source(attrs)?;
    if !targets.contains(&src) {
        return None;
    }
    delete_request(attrs, nl::find(attrs, CTA_TUPLE_ORIG)?)
}

/// The source address of an entry's reply tuple: where a translated
/// connection really goes.
fn reply_source(attrs: &[u8]) -> Option<IpAddr> {
    let ip = nl::find(nl::find(attrs, CTA_TUPLE_REPLY)?, CTA_TUPLE_IP)?;
    if let Some(v4) = nl::find(ip, CTA_IP_V4_SRC) {
        let b: [u8; 4] = v4.get(..4)?.try_into().ok()?;
        return Some(IpAddr::from(b));
    }
    let b: [u8; 16] = nl::find(ip, CTA_IP_V6_SRC)?.get(..16)?.try_into().ok()?;
    Some(IpAddr::from(b))
}

fn delete_request(attrs: &[u8], orig: &[u8]) -> Option<Vec<u8>> {
    let mut a = Attrs::new();
    a.nested(CTA_TUPLE_ORIG, |t| {
        t.raw(orig);
    });
    if let Some(zone) = nl::find(attrs, CTA_ZONE) {
        a.bytes(CTA_ZONE, zone);
    }
    Some(a.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(proto: u8, dport: u16) -> Vec<u8> {
        let mut a = Attrs::new();
        a.nested(CTA_TUPLE_ORIG, |t| {
            t.nested(CTA_TUPLE_PROTO, |p| {
                p.bytes(CTA_PROTO_NUM, &[proto]);
                p.bytes(CTA_PROTO_DST_PORT, &dport.to_be_bytes());
            });
        });
        a.into_bytes()
    }

    #[test]
    fn picks_only_the_protocol_and_port() {
        assert!(deletion_for(&entry(UDP, 5300), UDP, 5300).is_some());
        assert!(deletion_for(&entry(6, 5300), UDP, 5300).is_none());
        assert!(deletion_for(&entry(UDP, 5301), UDP, 5300).is_none());
        assert!(deletion_for(&[1, 2, 3], UDP, 5300).is_none());
        assert!(deletion_for(&[], UDP, 5300).is_none());
    }

    fn answered_by(proto: u8, src: [u8; 4]) -> Vec<u8> {
        let mut a = Attrs::new();
        a.nested(CTA_TUPLE_ORIG, |t| {
            t.nested(CTA_TUPLE_PROTO, |p| {
                p.bytes(CTA_PROTO_NUM, &[proto]);
            });
        });
        a.nested(CTA_TUPLE_REPLY, |t| {
            t.nested(CTA_TUPLE_IP, |ip| {
                ip.bytes(CTA_IP_V4_SRC, &src);
            });
        });
        a.into_bytes()
    }

    fn translated(proto: u8, dport: u16, reply_src: &[u8]) -> Vec<u8> {
        let mut a = Attrs::new();
        a.nested(CTA_TUPLE_ORIG, |t| {
            t.nested(CTA_TUPLE_PROTO, |p| {
                p.bytes(CTA_PROTO_NUM, &[proto]);
                p.bytes(CTA_PROTO_DST_PORT, &dport.to_be_bytes());
            });
        });
        a.nested(CTA_TUPLE_REPLY, |t| {
            t.nested(CTA_TUPLE_IP, |ip| {
                let kind = if reply_src.len() == 16 {
                    CTA_IP_V6_SRC
                } else {
                    CTA_IP_V4_SRC
                };
                ip.bytes(kind, reply_src);
            });
        });
        a.into_bytes()
    }

    #[test]
    fn picks_only_connections_translated_to_the_targets() {
        const TCP: u8 = 6;
        let v4: IpAddr = "10.0.0.4".parse().unwrap();
        let v6: IpAddr = "fd00::4".parse().unwrap();
        let targets = [v4, v6];
        let pick = |e: &[u8]| deletion_if_translated(e, TCP, 8080, &targets).is_some();
        assert!(pick(&translated(TCP, 8080, &[10, 0, 0, 4])));
        let v6_octets = match v6 {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(_) => unreachable!(),
        };
        assert!(pick(&translated(TCP, 8080, &v6_octets)));
        // Another destination on that port: the host's own connection out.
        assert!(!pick(&translated(TCP, 8080, &[192, 0, 2, 9])));
        assert!(!pick(&translated(TCP, 8081, &[10, 0, 0, 4])));
        assert!(!pick(&translated(UDP, 8080, &[10, 0, 0, 4])));
        assert!(!pick(&translated(TCP, 8080, &[10, 0, 0])));
        assert!(!pick(&entry(TCP, 8080)));
    }

    #[test]
    fn picks_only_entries_answered_by_the_address() {
        let task = std::net::Ipv4Addr::new(10, 0, 0, 4);
        assert!(deletion_if_reply_from(&answered_by(UDP, [10, 0, 0, 4]), UDP, task).is_some());
        assert!(deletion_if_reply_from(&answered_by(UDP, [10, 0, 0, 5]), UDP, task).is_none());
        assert!(deletion_if_reply_from(&answered_by(6, [10, 0, 0, 4]), UDP, task).is_none());
        assert!(deletion_if_reply_from(&[9, 9], UDP, task).is_none());
    }
}
