//! The NAT table of published ports, its rules and their comments:
//!
//! ```text
//! table inet cni_rs_nat {
//!     chain prerouting { type nat hook prerouting priority dstnat
//!         fib daddr type local jump hostports          # never forwarded traffic
//!     }
//!     chain output { type nat hook output priority dstnat
//!         fib daddr type local jump hostports          # the host's own connections
//!     }
//!     chain hostports {                                # one rule per mapping and family
//!         meta nfproto ipv4 [ip daddr H] meta l4proto tcp th dport 8080 counter dnat ip to 10.88.0.5:80
//!     }
//!     chain postrouting { type nat hook postrouting priority srcnat
//!         ip saddr 10.88.0.5 ip daddr 10.88.0.5 masquerade   # hairpin
//!         ip saddr 127.0.0.1 ip daddr 10.88.0.5 masquerade   # the host's 127.0.0.1:PORT
//!     }
//! }
//! ```
//!
//! A table of its own, so the bridge's `inet cni_rs` bookkeeping (delete the
//! table with its last rule) and ours never meet; service VIPs can take a
//! `services` chain and maps beside `hostports` later. Matching only local
//! destinations (`fib daddr type local`) keeps us off forwarded traffic.
//!
//! Every per-container rule's comment is `<ctr tag> <what>`, where `<what>`
//! says everything the rule does (a target behind a hash, to stay under the
//! comment limit), so CHECK compares comments and a taken port is found by
//! reading the `pm` part of other attachments' comments.

use std::fmt;
use std::net::IpAddr;

use super::expr::{self, Expr};
use super::ident;
use super::socket::Request;
use super::tables::{
    self, Family, RuleSpec, NFPROTO_IPV4, NFPROTO_IPV6, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING,
    NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST, NF_IP_PRI_NAT_SRC,
};

/// Our NAT table (family inet).
pub const NAT_TABLE: &str = "cni_rs_nat";

pub(crate) const PREROUTING: &str = "prerouting";
pub(crate) const OUTPUT: &str = "output";
pub(crate) const HOSTPORTS: &str = "hostports";
pub(crate) const POSTROUTING: &str = "postrouting";

/// Comments of the two shared jump rules.
pub(crate) const JUMP_PREROUTING: &str = "cni-rs hostports: local destinations from outside";
pub(crate) const JUMP_OUTPUT: &str = "cni-rs hostports: local destinations from this host";

/// A transport protocol a port can be published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// Case-insensitive, as runtimes differ in spelling.
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (conntrack and the rules match on it).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
}

/// One published port, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub proto: Proto,
    /// None: every local address of both families; an unspecified address
    /// (`0.0.0.0`, `::`): every local address of its family only.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// What a host port rule claims: family, protocol, port, address. Two
/// claims collide when all but the address are equal and either address is
/// "any" or both are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub v6: bool,
    pub proto: Proto,
    pub port: u16,
    pub host_ip: Option<IpAddr>,
}

impl Claim {
    pub fn collides(&self, other: &Claim) -> bool {
        self.v6 == other.v6
            && self.proto == other.proto
            && self.port == other.port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }

    /// `pm ip tcp/8080@*`: the comment part a claim is read back from.
    fn encode(&self) -> String {
        let host = self.host_ip.map_or("*".to_string(), |a| a.to_string());
        let fam = if self.v6 { "ip6" } else { "ip" };
        format!("pm {fam} {}/{}@{host}", self.proto.name(), self.port)
    }

    /// The claim in a per-container comment (after its tag), if it is one.
    pub(crate) fn decode(rest: &str) -> Option<Claim> {
        let mut words = rest.split(' ');
        if words.next()? != "pm" {
            return None;
        }
        let v6 = match words.next()? {
            "ip" => false,
            "ip6" => true,
            _ => return None,
        };
        let (proto, rest) = words.next()?.split_once('/')?;
        let (port, host) = rest.split_once('@')?;
        Some(Claim {
            v6,
            proto: Proto::parse(proto)?,
            port: port.parse().ok()?,
            host_ip: if host == "*" {
                None
            } else {
                Some(host.parse().ok()?)
            },
        })
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:{}/{}", self.port, self.proto.name()),
            Some(a) => write!(f, "{a}:{}/{}", self.port, self.proto.name()),
            None if self.v6 => write!(f, "[::]:{}/{}", self.port, self.proto.name()),
            None => write!(f, "0.0.0.0:{}/{}", self.port, self.proto.name()),
        }
    }
}

/// The claim of `m` for a container address of family `v6`.
pub fn claim_of(m: &PortMapping, v6: bool) -> Claim {
    Claim {
        v6,
        proto: m.proto,
        port: m.host_port,
        host_ip: m.host_ip.filter(|a| !a.is_unspecified()),
    }
}

fn nfproto(ip: &IpAddr) -> u8 {
    if ip.is_ipv6() {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    }
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `ip saddr`/`ip6 saddr` (or daddr) equal to `ip`; the family match first,
/// as payload offsets depend on it.
fn addr_match(ip: &IpAddr, dst: bool) -> Vec<Expr> {
    addr_cmp(ip, dst, expr::CMP_EQ)
}

fn addr_cmp(ip: &IpAddr, dst: bool, op: u32) -> Vec<Expr> {
    let offset = match (ip.is_ipv6(), dst) {
        (false, false) => 12,
        (false, true) => 16,
        (true, false) => 8,
        (true, true) => 24,
    };
    let bytes = octets(ip);
    vec![
        expr::payload(
            expr::PAYLOAD_NETWORK,
            offset,
            bytes.len() as u32,
            expr::REG_1,
        ),
        expr::cmp(op, expr::REG_1, &bytes),
    ]
}

fn family_match(ip: &IpAddr) -> Vec<Expr> {
    vec![
        expr::meta(expr::META_NFPROTO, expr::REG_1),
        expr::cmp(expr::CMP_EQ, expr::REG_1, &[nfproto(ip)]),
    ]
}

fn rule(chain: &'static str, comment: String, exprs: Vec<Expr>) -> RuleSpec {
    RuleSpec {
        family: Family::Inet,
        table: NAT_TABLE,
        chain,
        comment,
        exprs,
    }
}

/// FNV-1a of the DNAT target, so the comment names it in 8 hex digits.
fn target_hash(ip: &IpAddr, port: u16) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in octets(ip).iter().chain(port.to_be_bytes().iter()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The DNAT rule of mapping `m` to container address `ip`.
///
/// An IPv6 rule for every local address leaves out `::1`: the kernel has no
/// `route_localnet` for IPv6 and drops a translated connection from `::1`
/// (masquerade or not), so the host's `[::1]:PORT` would hang until the
/// client gives up. Untranslated, it is refused at once by the host's own
/// stack, and a client trying `localhost` falls back to 127.0.0.1, which is
/// translated. (The reference maps `::1` too, and hangs.)
pub(crate) fn dnat_rule(tag: &str, readable: &str, m: &PortMapping, ip: &IpAddr) -> RuleSpec {
    let claim = claim_of(m, ip.is_ipv6());
    let mut exprs = family_match(ip);
    match m.host_ip.filter(|a| !a.is_unspecified()) {
        Some(h) => exprs.extend(addr_match(&h, true)),
        None if ip.is_ipv6() => exprs.extend(addr_cmp(
            &IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            true,
            expr::CMP_NEQ,
        )),
        None => {}
    }
    exprs.extend([
        expr::meta(expr::META_L4PROTO, expr::REG_1),
        expr::cmp(expr::CMP_EQ, expr::REG_1, &[m.proto.number()]),
        expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, expr::REG_1),
        expr::cmp(expr::CMP_EQ, expr::REG_1, &m.host_port.to_be_bytes()),
        expr::counter(),
        expr::immediate(expr::REG_1, &octets(ip)),
        expr::immediate(expr::REG_2, &m.container_port.to_be_bytes()),
        expr::dnat(nfproto(ip), expr::REG_1, expr::REG_2),
    ]);
    let what = format!(
        "{} t={:08x}",
        claim.encode(),
        target_hash(ip, m.container_port)
    );
    rule(HOSTPORTS, comment(tag, &what, readable), exprs)
}

/// Masquerade of connections to container address `ip` that need it:
/// hairpin (from itself), the host's 127.0.0.1 (IPv4), or from anywhere
/// (`masq_all`).
pub(crate) fn masq_rules(tag: &str, readable: &str, ip: &IpAddr, masq_all: bool) -> Vec<RuleSpec> {
    let mk = |what: &str, src: Option<IpAddr>| {
        let mut exprs = family_match(ip);
        if let Some(s) = &src {
            exprs.extend(addr_match(s, false));
        }
        exprs.extend(addr_match(ip, true));
        exprs.extend([expr::counter(), expr::masquerade()]);
        rule(
            POSTROUTING,
            comment(tag, &format!("{what} {ip}"), readable),
            exprs,
        )
    };
    if masq_all {
        return vec![mk("masq-all", None)];
    }
    let mut out = vec![mk("masq-hairpin", Some(*ip))];
    if ip.is_ipv4() {
        // IPv6 has no route_localnet: ::1 is never translated (dnat_rule).
        out.push(mk(
            "masq-localhost",
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        ));
    }
    out
}

/// Cut to what `nft` keeps, so desired and stored comments compare equal.
fn comment(tag: &str, what: &str, readable: &str) -> String {
    ident::truncate(format!("{tag} {what} {readable}"))
}

/// The two shared rules sending local destinations to `hostports`.
pub(crate) fn jump_rules() -> Vec<RuleSpec> {
    let jump = |chain, text: &str| {
        rule(
            chain,
            text.to_string(),
            vec![
                expr::fib_daddr_type(expr::REG_1),
                expr::cmp(expr::CMP_EQ, expr::REG_1, &expr::RTN_LOCAL.to_ne_bytes()),
                expr::verdict(expr::NFT_JUMP, Some(HOSTPORTS)),
            ],
        )
    };
    vec![jump(PREROUTING, JUMP_PREROUTING), jump(OUTPUT, JUMP_OUTPUT)]
}

/// A base chain's type, hook number and priority.
type BaseHook = (&'static str, u32, i32);

/// Table and chains that `existing` (chain names of our NAT table) lacks.
pub(crate) fn declare(out: &mut Vec<Request>, existing: &[String]) {
    if existing.is_empty() {
        out.push(tables::new_table_named(Family::Inet, NAT_TABLE));
    }
    let chains: [(&str, Option<BaseHook>); 4] = [
        (HOSTPORTS, None),
        (
            PREROUTING,
            Some(("nat", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST)),
        ),
        (OUTPUT, Some(("nat", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST))),
        (
            POSTROUTING,
            Some(("nat", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC)),
        ),
    ];
    for (name, hook) in chains {
        if !existing.iter().any(|c| c == name) {
            out.push(tables::new_chain_in(Family::Inet, NAT_TABLE, name, hook));
        }
    }
}

/// The readable owner part of per-container comments.
pub(crate) fn readable(network: &str, container_id: &str, ifname: &str) -> String {
    format!("[{network} {container_id} {ifname}]")
}

/// The claim and the readable owner in a comment of `network`'s rules.
pub(crate) fn claim_in(comment: &str) -> Option<Claim> {
    // "cni-rs net=<16> ctr=<16> pm ...": skip the two tag words.
    let rest = comment.strip_prefix(ident::TAG)?.strip_prefix(' ')?;
    let rest = rest.split_once(' ')?.1; // net=
    let rest = rest.split_once(' ')?.1; // ctr=
    Claim::decode(rest)
}

/// The owner in brackets at the end of a comment, for a message: a
/// container's `[net id ifname]` reads "container ID (IFNAME on network
/// NET)". The comment limit may have cut it short: then it ends in "…".
pub(crate) fn owner_in(comment: &str) -> String {
    let Some(i) = comment.find('[') else {
        return "another container".to_string();
    };
    let inner = &comment[i + 1..];
    let (inner, cut) = match inner.strip_suffix(']') {
        Some(whole) => (whole, ""),
        None => (inner, "…"),
    };
    match inner.split(' ').collect::<Vec<_>>()[..] {
        [net, id, ifname] if cut.is_empty() => {
            format!("container {id} ({ifname} on network {net})")
        }
        [net, id, ..] => format!("container {id}{cut} (network {net})"),
        [net] if !cut.is_empty() => format!("a container of network {net}{cut}"),
        _ => format!("[{inner}{cut}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_read_as_words_even_when_cut_short() {
        assert_eq!(
            owner_in("cni-rs net=a ctr=b pm x [web c0ffee eth0]"),
            "container c0ffee (eth0 on network web)"
        );
        assert_eq!(
            owner_in("cni-rs net=a ctr=b pm x [web c0ffeec0ffee"),
            "container c0ffeec0ffee… (network web)"
        );
        assert_eq!(owner_in("no owner"), "another container");
    }

    #[test]
    fn claims_round_trip_and_collide() {
        let m = PortMapping {
            proto: Proto::Udp,
            host_ip: Some("fd00::1".parse().unwrap()),
            host_port: 5353,
            container_port: 53,
        };
        let c = claim_of(&m, true);
        assert_eq!(Claim::decode(&c.encode()), Some(c));
        let any = Claim { host_ip: None, ..c };
        assert!(c.collides(&any) && any.collides(&c));
        let other = Claim {
            host_ip: Some("fd00::2".parse().unwrap()),
            ..c
        };
        assert!(!c.collides(&other));
        assert!(!c.collides(&Claim { v6: false, ..any }));
        assert!(!c.collides(&Claim { port: 5354, ..c }));
        assert!(!c.collides(&Claim {
            proto: Proto::Tcp,
            ..c
        }));
    }

    #[test]
    fn comments_fit_and_parse() {
        let tag = ident::ctr_tag("net", "id", "eth0");
        let m = PortMapping {
            proto: Proto::Sctp,
            host_ip: Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
            host_port: 65535,
            container_port: 65535,
        };
        let ip: IpAddr = "fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let r = dnat_rule(&tag, &readable("net", "id", "eth0"), &m, &ip);
        let stored = ident::decode_comment(&ident::encode_comment(&r.comment)).unwrap();
        assert_eq!(claim_in(&stored), Some(claim_of(&m, true)));
        assert!(ident::of_container(&stored, "net", "id", "eth0"));
    }

    #[test]
    fn protocols_parse_case_insensitively() {
        assert_eq!(Proto::parse("TCP"), Some(Proto::Tcp));
        assert_eq!(Proto::parse("Udp"), Some(Proto::Udp));
        assert_eq!(Proto::parse("icmp"), None);
        assert_eq!(Proto::parse(""), None);
    }
}
