//! Our objects in the kernel and the messages that make, find and remove
//! them. Two tables, both named `cni_rs`, one per family that needs it:
//!
//! ```text
//! table inet cni_rs {                       # networks: made once per network
//!     chain postrouting { type nat hook postrouting priority srcnat
//!         ip saddr 10.88.0.0/16 oifname != "cni0" counter masquerade comment "cni-rs net=… masq …"
//!     }
//!     chain forward { type filter hook forward priority filter
//!         iifname "cni0" oifname != "cni0" counter jump isolation comment "cni-rs net=… isolate-out cni0 …"
//!     }
//!     chain isolation {                     # Docker's isolation stage 2
//!         oifname "cni0" counter drop comment "cni-rs net=… isolate-in cni0 …"
//!     }
//! }
//! table bridge cni_rs {                     # macspoofchk: one rule, per-container set elements
//!     set spoof_ports   { type ifname }                 # host veths under the check
//!     set spoof_allowed { type ifname . ether_addr }    # (host veth, its container's MAC)
//!     chain prerouting { type filter hook prerouting priority -300
//!         iifname @spoof_ports iifname . ether saddr != @spoof_allowed counter drop
//!     }
//! }
//! ```
//!
//! A container costs no rule: its spoof check is two set elements, and
//! masquerade and isolation are per network, by subnet and bridge.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::expr::{self, Expr};
use super::ident;
use super::nl::{self, Attrs, NLM_F_CREATE};
use super::socket::Request;
use crate::netlink::{format_mac, Mac};

/// The name of both our tables.
pub const TABLE: &str = "cni_rs";

pub(crate) const POSTROUTING: &str = "postrouting";
pub(crate) const FORWARD: &str = "forward";
pub(crate) const ISOLATION: &str = "isolation";
pub(crate) const PREROUTING: &str = "prerouting";
pub(crate) const SPOOF_PORTS: &str = "spoof_ports";
pub(crate) const SPOOF_ALLOWED: &str = "spoof_allowed";

// enum nf_tables_msg_types
pub(crate) const NEWTABLE: u8 = 0;
pub(crate) const DELTABLE: u8 = 2;
pub(crate) const NEWCHAIN: u8 = 3;
pub(crate) const GETCHAIN: u8 = 4;
pub(crate) const DELCHAIN: u8 = 5;
pub(crate) const NEWRULE: u8 = 6;
pub(crate) const GETRULE: u8 = 7;
pub(crate) const DELRULE: u8 = 8;
pub(crate) const NEWSET: u8 = 9;
pub(crate) const GETSET: u8 = 10;
pub(crate) const DELSET: u8 = 11;
pub(crate) const NEWSETELEM: u8 = 12;
pub(crate) const GETSETELEM: u8 = 13;
pub(crate) const DELSETELEM: u8 = 14;

// Attribute numbers (nf_tables.h).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;

// Hooks and priorities.
pub(crate) const NF_INET_PRE_ROUTING: u32 = 0;
pub(crate) const NF_INET_LOCAL_OUT: u32 = 3;
pub(crate) const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_INET_FORWARD: u32 = 2;
pub(crate) const NF_INET_POST_ROUTING: u32 = 4;
const NF_BR_PRE_ROUTING: u32 = 0;
const NF_IP_PRI_FILTER: i32 = 0;
pub(crate) const NF_IP_PRI_NAT_SRC: i32 = 100;
/// Before anything else on the bridge, as the reference's spoof check.
const BRIDGE_PRI_SPOOFCHECK: i32 = -300;

/// `NFTNL_UDATA_SET_KEYBYTEORDER` and nft's `BYTEORDER_HOST_ENDIAN`.
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const BYTEORDER_HOST_ENDIAN: u32 = 1;

// nft's datatype numbers, so `nft list` prints set keys as names and MACs.
const TYPE_ETHERADDR: u32 = 9;
/// `mark`: a host-order u32, how nft names the key of a `numgen` map.
const TYPE_MARK: u32 = 19;
const TYPE_IPADDR: u32 = 7;
/// `NFT_SET_MAP`: elements carry data.
const NFT_SET_MAP: u32 = 0x8;
const TYPE_IFNAME: u32 = 41;
const TYPE_BITS: u32 = 6;

pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_IPV6: u8 = 10;

/// The two table families we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Inet,
    Bridge,
}

impl Family {
    pub(crate) fn proto(self) -> u8 {
        match self {
            Family::Inet => 1,   // NFPROTO_INET
            Family::Bridge => 7, // NFPROTO_BRIDGE
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
}

/// A rule we want, identified by its chain and comment.
#[derive(Debug, Clone)]
pub(crate) struct RuleSpec {
    pub(crate) family: Family,
    /// Which of our tables of `family` holds it.
    pub(crate) table: &'static str,
    pub(crate) chain: &'static str,
    pub(crate) comment: String,
    pub(crate) exprs: Vec<Expr>,
}

/// A rule as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleInfo {
    pub(crate) table: &'static str,
    pub(crate) chain: String,
    pub(crate) handle: u64,
    pub(crate) comment: Option<String>,
    /// The packets its `counter` counted (None: it has none). A NAT rule
    /// sees only a connection's first packet, so 0 means it never
    /// translated one.
    pub(crate) packets: Option<u64>,
}

/// A set element as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElemInfo {
    pub(crate) key: Vec<u8>,
    pub(crate) comment: Option<String>,
}

fn req(cmd: u8, family: Family, flags: u16, attrs: Attrs, what: String) -> Request {
    Request {
        cmd,
        family: family.proto(),
        flags,
        attrs: attrs.into_bytes(),
        what,
    }
}

fn new_table(family: Family) -> Request {
    new_table_named(family, TABLE)
}

/// Create (idempotently) one of our tables of `family`.
pub(crate) fn new_table_named(family: Family, table: &str) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_TABLE_NAME, table);
    req(
        NEWTABLE,
        family,
        NLM_F_CREATE,
        a,
        format!("create table {} {table}", family.name()),
    )
}

pub(crate) fn del_table(family: Family) -> Request {
    del_table_named(family, TABLE)
}

pub(crate) fn del_table_named(family: Family, table: &str) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_TABLE_NAME, table);
    req(
        DELTABLE,
        family,
        0,
        a,
        format!("delete table {} {table}", family.name()),
    )
}

/// A base chain (`hook` given) or a regular one.
fn new_chain(family: Family, name: &str, hook: Option<(&str, u32, i32)>) -> Request {
    new_chain_in(family, TABLE, name, hook)
}

/// A base chain (`hook`: type, hook number, priority) or a regular one in
/// `table`.
pub(crate) fn new_chain_in(
    family: Family,
    table: &str,
    name: &str,
    hook: Option<(&str, u32, i32)>,
) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_CHAIN_TABLE, table)
        .string(NFTA_CHAIN_NAME, name);
    if let Some((kind, hooknum, prio)) = hook {
        a.nested(NFTA_CHAIN_HOOK, |h| {
            h.be32(NFTA_HOOK_HOOKNUM, hooknum)
                .be32(NFTA_HOOK_PRIORITY, prio as u32);
        });
        // We never own the policy: accept, and let other tables decide.
        a.be32(NFTA_CHAIN_POLICY, expr::NF_ACCEPT as u32);
        a.string(NFTA_CHAIN_TYPE, kind);
    }
    req(
        NEWCHAIN,
        family,
        NLM_F_CREATE,
        a,
        format!("create chain {} {table} {name}", family.name()),
    )
}

fn new_set(family: Family, name: &str, key_type: u32, key_len: u32, id: u32) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_TABLE, TABLE)
        .string(NFTA_SET_NAME, name)
        .be32(NFTA_SET_FLAGS, 0)
        .be32(NFTA_SET_KEY_TYPE, key_type)
        .be32(NFTA_SET_KEY_LEN, key_len)
        .be32(NFTA_SET_ID, id);
    if key_type == TYPE_IFNAME {
        a.bytes(NFTA_SET_USERDATA, &host_order_udata());
    }
    req(
        NEWSET,
        family,
        NLM_F_CREATE,
        a,
        format!("create set {} {TABLE} {name}", family.name()),
    )
}

/// Set userdata saying the key is in host byte order. Without it `nft list`
/// byte-swaps a plain interface-name key and prints "" (the value is a
/// host-order u32, as libnftnl writes it).
fn host_order_udata() -> Vec<u8> {
    let mut v = vec![UDATA_SET_KEYBYTEORDER, 4];
    v.extend_from_slice(&BYTEORDER_HOST_ENDIAN.to_ne_bytes());
    v
}

/// Table and chains of the inet table that `existing` (chain names of our
/// table) lacks. NLM_F_CREATE without NLM_F_EXCL, so a race or a stale
/// listing is harmless; but only missing objects are sent, because
/// re-declaring an existing base chain makes the commit wait for an RCU
/// grace period (16 ms here) for nothing.
pub(crate) fn declare_inet(out: &mut Vec<Request>, existing: &[String]) {
    if existing.is_empty() {
        out.push(new_table(Family::Inet));
    }
    let has = |name: &str| existing.iter().any(|c| c == name);
    if !has(POSTROUTING) {
        out.push(new_chain(
            Family::Inet,
            POSTROUTING,
            Some(("nat", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC)),
        ));
    }
    if !has(FORWARD) {
        out.push(new_chain(
            Family::Inet,
            FORWARD,
            Some(("filter", NF_INET_FORWARD, NF_IP_PRI_FILTER)),
        ));
    }
    if !has(ISOLATION) {
        out.push(new_chain(Family::Inet, ISOLATION, None));
    }
}

/// Table, sets and chain of the bridge table (idempotent; sent only when
/// the spoof-check rule is missing, which in practice means no table).
pub(crate) fn declare_bridge(out: &mut Vec<Request>) {
    out.push(new_table(Family::Bridge));
    out.push(new_set(Family::Bridge, SPOOF_PORTS, TYPE_IFNAME, 16, 1));
    out.push(new_set(
        Family::Bridge,
        SPOOF_ALLOWED,
        (TYPE_IFNAME << TYPE_BITS) | TYPE_ETHERADDR,
        // Each part of a concatenation fills whole 4-byte registers.
        16 + 8,
        2,
    ));
    out.push(new_chain(
        Family::Bridge,
        PREROUTING,
        Some(("filter", NF_BR_PRE_ROUTING, BRIDGE_PRI_SPOOFCHECK)),
    ));
}

pub(crate) fn new_rule(rule: &RuleSpec) -> Request {
    let table = rule.table;
    let mut a = Attrs::new();
    a.string(NFTA_RULE_TABLE, table)
        .string(NFTA_RULE_CHAIN, rule.chain);
    a.nested(NFTA_RULE_EXPRESSIONS, |l| expr::encode_list(l, &rule.exprs));
    a.bytes(NFTA_RULE_USERDATA, &ident::encode_comment(&rule.comment));
    req(
        NEWRULE,
        rule.family,
        NLM_F_CREATE,
        a,
        format!(
            "add rule {} {table} {} ({:?})",
            rule.family.name(),
            rule.chain,
            rule.comment
        ),
    )
}

pub(crate) fn del_rule(family: Family, rule: &RuleInfo) -> Request {
    let table = rule.table;
    let mut a = Attrs::new();
    a.string(NFTA_RULE_TABLE, table)
        .string(NFTA_RULE_CHAIN, &rule.chain)
        .be64(NFTA_RULE_HANDLE, rule.handle);
    req(
        DELRULE,
        family,
        0,
        a,
        format!(
            "delete rule {} {table} {} handle {} ({:?})",
            family.name(),
            rule.chain,
            rule.handle,
            rule.comment.as_deref().unwrap_or("")
        ),
    )
}

/// Add elements (key, comment); existing identical keys are left alone.
pub(crate) fn new_elems(family: Family, set: &str, elems: &[(Vec<u8>, String)]) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_ELEM_LIST_TABLE, TABLE)
        .string(NFTA_SET_ELEM_LIST_SET, set);
    a.nested(NFTA_SET_ELEM_LIST_ELEMENTS, |l| {
        for (key, comment) in elems {
            l.nested(NFTA_LIST_ELEM, |e| {
                e.nested(NFTA_SET_ELEM_KEY, |k| {
                    k.bytes(NFTA_DATA_VALUE, key);
                });
                e.bytes(NFTA_SET_ELEM_USERDATA, &ident::encode_comment(comment));
            });
        }
    });
    let first = elems
        .first()
        .map(|(k, c)| format!("{} ({c:?})", describe_key(k)))
        .unwrap_or_default();
    req(
        NEWSETELEM,
        family,
        NLM_F_CREATE,
        a,
        format!("add element {first} to {} {TABLE} {set}", family.name()),
    )
}

pub(crate) fn del_elems(family: Family, set: &str, elems: &[&ElemInfo]) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_ELEM_LIST_TABLE, TABLE)
        .string(NFTA_SET_ELEM_LIST_SET, set);
    a.nested(NFTA_SET_ELEM_LIST_ELEMENTS, |l| {
        for el in elems {
            l.nested(NFTA_LIST_ELEM, |e| {
                e.nested(NFTA_SET_ELEM_KEY, |k| {
                    k.bytes(NFTA_DATA_VALUE, &el.key);
                });
            });
        }
    });
    let first = elems
        .first()
        .map(|e| describe_key(&e.key))
        .unwrap_or_default();
    req(
        DELSETELEM,
        family,
        0,
        a,
        format!(
            "delete element {first} ({} in all) from {} {TABLE} {set}",
            elems.len(),
            family.name()
        ),
    )
}

/// Filter of a rule dump: our table only.
pub(crate) fn rule_dump_filter() -> Vec<u8> {
    rule_dump_filter_in(TABLE)
}

/// Filter of a rule dump: one table of ours.
pub(crate) fn rule_dump_filter_in(table: &str) -> Vec<u8> {
    let mut a = Attrs::new();
    a.string(NFTA_RULE_TABLE, table);
    a.into_bytes()
}

/// Selector of an element dump: one set of our table.
pub(crate) fn elem_dump_filter(set: &str) -> Vec<u8> {
    let mut a = Attrs::new();
    a.string(NFTA_SET_ELEM_LIST_TABLE, TABLE)
        .string(NFTA_SET_ELEM_LIST_SET, set);
    a.into_bytes()
}

/// The name of a dumped chain if it belongs to our table.
pub(crate) fn parse_chain(attrs: &[u8]) -> Option<String> {
    parse_chain_in(attrs, TABLE)
}

/// The name of a dumped chain if it belongs to `want`.
pub(crate) fn parse_chain_in(attrs: &[u8], want: &str) -> Option<String> {
    let table = nl::as_str(nl::find(attrs, NFTA_CHAIN_TABLE)?);
    (table == want).then(|| nl::as_str(nl::find(attrs, NFTA_CHAIN_NAME).unwrap_or(&[])))
}

/// Decode one rule of a dump; None if it is not one of our table's.
pub(crate) fn parse_rule(attrs: &[u8]) -> Option<RuleInfo> {
    parse_rule_in(attrs, TABLE)
}

/// Decode one rule of a dump; None if it is not one of `want`'s.
pub(crate) fn parse_rule_in(attrs: &[u8], want: &'static str) -> Option<RuleInfo> {
    let table = nl::as_str(nl::find(attrs, NFTA_RULE_TABLE)?);
    if table != want {
        return None;
    }
    Some(RuleInfo {
        table: want,
        chain: nl::as_str(nl::find(attrs, NFTA_RULE_CHAIN)?),
        handle: nl::as_be64(nl::find(attrs, NFTA_RULE_HANDLE)?)?,
        comment: nl::find(attrs, NFTA_RULE_USERDATA).and_then(ident::decode_comment),
        packets: nl::find(attrs, NFTA_RULE_EXPRESSIONS).and_then(counter_packets),
    })
}

/// The packet count of the first `counter` in a rule's expression list.
fn counter_packets(list: &[u8]) -> Option<u64> {
    nl::AttrIter::new(list)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .find(|(_, e)| nl::find(e, NFTA_EXPR_NAME).is_some_and(|n| nl::as_str(n) == "counter"))
        .and_then(|(_, e)| {
            nl::as_be64(nl::find(
                nl::find(e, NFTA_EXPR_DATA)?,
                NFTA_COUNTER_PACKETS,
            )?)
        })
}

/// Decode the elements of one element-dump message.
pub(crate) fn parse_elems(attrs: &[u8]) -> Vec<ElemInfo> {
    let Some(list) = nl::find(attrs, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    nl::AttrIter::new(list)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .filter_map(|(_, e)| {
            let key = nl::find(nl::find(e, NFTA_SET_ELEM_KEY)?, NFTA_DATA_VALUE)?;
            Some(ElemInfo {
                key: key.to_vec(),
                comment: nl::find(e, NFTA_SET_ELEM_USERDATA).and_then(ident::decode_comment),
            })
        })
        .collect()
}

/// The network address of `net` (host bits cleared), as nft prints it.
fn canonical(net: &IpNetwork) -> IpNetwork {
    IpNetwork::new(net.network(), net.prefix()).unwrap_or(*net)
}

/// `ip saddr <subnet> oifname != <bridge> counter masquerade` (or `ip6`):
/// Docker's `-s <subnet> ! -o <bridge> -j MASQUERADE`.
pub(crate) fn masquerade_rule(network: &str, bridge: &str, subnet: &IpNetwork) -> RuleSpec {
    let subnet = canonical(subnet);
    let (proto, offset, addr, mask): (u8, u32, Vec<u8>, Vec<u8>) =
        match (subnet.network(), subnet.mask()) {
            (IpAddr::V4(a), IpAddr::V4(m)) => {
                (NFPROTO_IPV4, 12, a.octets().to_vec(), m.octets().to_vec())
            }
            (IpAddr::V6(a), IpAddr::V6(m)) => {
                (NFPROTO_IPV6, 8, a.octets().to_vec(), m.octets().to_vec())
            }
            // ipnetwork keeps address and mask of one family; be total anyway.
            (a, _) => {
                let full = match a {
                    IpAddr::V4(a) => (NFPROTO_IPV4, 12, a.octets().to_vec()),
                    IpAddr::V6(a) => (NFPROTO_IPV6, 8, a.octets().to_vec()),
                };
                let len = full.2.len();
                (full.0, full.1, full.2, vec![0xff; len])
            }
        };
    let len = addr.len() as u32;
    let mut exprs = vec![
        expr::meta(expr::META_NFPROTO, expr::REG_1),
        expr::cmp(expr::CMP_EQ, expr::REG_1, &[proto]),
        expr::payload(expr::PAYLOAD_NETWORK, offset, len, expr::REG_1),
    ];
    if mask.iter().any(|&b| b != 0xff) {
        exprs.push(expr::mask(expr::REG_1, &mask));
    }
    exprs.extend([
        expr::cmp(expr::CMP_EQ, expr::REG_1, &addr),
        expr::meta(expr::META_OIFNAME, expr::REG_1),
        expr::cmp(expr::CMP_NEQ, expr::REG_1, &expr::ifname_bytes(bridge)),
        expr::counter(),
        expr::masquerade(),
    ]);
    RuleSpec {
        family: Family::Inet,
        table: TABLE,
        chain: POSTROUTING,
        comment: ident::network_comment(network, &format!("masq {subnet} !{bridge}")),
        exprs,
    }
}

/// Docker's isolation, stage 1: traffic from this bridge to another
/// interface goes through the isolation chain.
pub(crate) fn isolate_out_rule(network: &str, bridge: &str) -> RuleSpec {
    let br = expr::ifname_bytes(bridge);
    RuleSpec {
        family: Family::Inet,
        table: TABLE,
        chain: FORWARD,
        comment: ident::network_comment(network, &format!("isolate-out {bridge}")),
        exprs: vec![
            expr::meta(expr::META_IIFNAME, expr::REG_1),
            expr::cmp(expr::CMP_EQ, expr::REG_1, &br),
            expr::meta(expr::META_OIFNAME, expr::REG_1),
            expr::cmp(expr::CMP_NEQ, expr::REG_1, &br),
            expr::counter(),
            expr::verdict(expr::NFT_JUMP, Some(ISOLATION)),
        ],
    }
}

/// Docker's isolation, stage 2: what arrives here from another isolated
/// bridge and leaves through this one is dropped.
pub(crate) fn isolate_in_rule(network: &str, bridge: &str) -> RuleSpec {
    RuleSpec {
        family: Family::Inet,
        table: TABLE,
        chain: ISOLATION,
        comment: ident::network_comment(network, &format!("isolate-in {bridge}")),
        exprs: vec![
            expr::meta(expr::META_OIFNAME, expr::REG_1),
            expr::cmp(expr::CMP_EQ, expr::REG_1, &expr::ifname_bytes(bridge)),
            expr::counter(),
            expr::verdict(expr::NF_DROP, None),
        ],
    }
}

/// The bridge table's one rule: a frame from a checked port must carry the
/// MAC registered for that port.
pub(crate) fn spoofcheck_rule() -> RuleSpec {
    RuleSpec {
        family: Family::Bridge,
        table: TABLE,
        chain: PREROUTING,
        comment: ident::SPOOFCHECK_RULE_COMMENT.to_string(),
        exprs: vec![
            expr::meta(expr::META_IIFNAME, expr::REG_1),
            expr::lookup(SPOOF_PORTS, expr::REG_1, false),
            expr::meta(expr::META_IIFNAME, expr::REG_1),
            // ether saddr, into the register after the name.
            expr::payload(expr::PAYLOAD_LL, 6, 6, expr::REG_2),
            expr::lookup(SPOOF_ALLOWED, expr::REG_1, true),
            expr::counter(),
            expr::verdict(expr::NF_DROP, None),
        ],
    }
}

/// Key of `spoof_ports`: the host veth's name.
pub(crate) fn port_key(host_veth: &str) -> Vec<u8> {
    expr::ifname_bytes(host_veth).to_vec()
}

/// Key of `spoof_allowed`: name (16 bytes) then MAC padded to 8 bytes.
pub(crate) fn allowed_key(host_veth: &str, mac: &Mac) -> Vec<u8> {
    let mut k = port_key(host_veth);
    k.extend_from_slice(mac);
    k.extend_from_slice(&[0, 0]);
    k
}

/// "veth1234 02:42:…" of an element key, for messages.
pub(crate) fn describe_key(key: &[u8]) -> String {
    let name = nl::as_str(key.get(..16).unwrap_or(key));
    match key.get(16..22).and_then(|m| <[u8; 6]>::try_from(m).ok()) {
        Some(mac) => format!("{name} . {}", format_mac(&mac)),
        None => name,
    }
}

/// Delete a chain of `table` (it must hold no rule by then).
pub(crate) fn del_chain_in(family: Family, table: &str, name: &str) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_CHAIN_TABLE, table)
        .string(NFTA_CHAIN_NAME, name);
    req(
        DELCHAIN,
        family,
        0,
        a,
        format!("delete chain {} {table} {name}", family.name()),
    )
}

/// Create (idempotently) a map `mark -> ipv4_addr` in `table`: what
/// `numgen ... map @name` reads.
pub(crate) fn new_index_map_in(family: Family, table: &str, name: &str, id: u32) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_TABLE, table)
        .string(NFTA_SET_NAME, name)
        .be32(NFTA_SET_FLAGS, NFT_SET_MAP)
        .be32(NFTA_SET_KEY_TYPE, TYPE_MARK)
        .be32(NFTA_SET_KEY_LEN, 4)
        .be32(NFTA_SET_DATA_TYPE, TYPE_IPADDR)
        .be32(NFTA_SET_DATA_LEN, 4)
        .be32(NFTA_SET_ID, id);
    a.bytes(NFTA_SET_USERDATA, &host_order_udata());
    req(
        NEWSET,
        family,
        NLM_F_CREATE,
        a,
        format!("create map {} {table} {name}", family.name()),
    )
}

/// Delete a set or map of `table`.
pub(crate) fn del_set_in(family: Family, table: &str, name: &str) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_TABLE, table).string(NFTA_SET_NAME, name);
    req(
        DELSET,
        family,
        0,
        a,
        format!("delete set {} {table} {name}", family.name()),
    )
}

/// Remove every element of a set of `table` (no element list: a flush).
pub(crate) fn flush_set_in(family: Family, table: &str, name: &str) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_ELEM_LIST_TABLE, table)
        .string(NFTA_SET_ELEM_LIST_SET, name);
    req(
        DELSETELEM,
        family,
        0,
        a,
        format!("flush set {} {table} {name}", family.name()),
    )
}

/// Add `key : data` elements to a map of `table`.
pub(crate) fn new_map_elems_in(
    family: Family,
    table: &str,
    name: &str,
    elems: &[(Vec<u8>, Vec<u8>)],
) -> Request {
    let mut a = Attrs::new();
    a.string(NFTA_SET_ELEM_LIST_TABLE, table)
        .string(NFTA_SET_ELEM_LIST_SET, name);
    a.nested(NFTA_SET_ELEM_LIST_ELEMENTS, |l| {
        for (key, data) in elems {
            l.nested(NFTA_LIST_ELEM, |e| {
                e.nested(NFTA_SET_ELEM_KEY, |k| {
                    k.bytes(NFTA_DATA_VALUE, key);
                });
                e.nested(NFTA_SET_ELEM_DATA, |d| {
                    d.bytes(NFTA_DATA_VALUE, data);
                });
            });
        }
    });
    req(
        NEWSETELEM,
        family,
        NLM_F_CREATE,
        a,
        format!(
            "add {} elements to map {} {table} {name}",
            elems.len(),
            family.name()
        ),
    )
}

/// The name of a dumped set if it belongs to `want`.
pub(crate) fn parse_set_in(attrs: &[u8], want: &str) -> Option<String> {
    let table = nl::as_str(nl::find(attrs, NFTA_SET_TABLE)?);
    (table == want).then(|| nl::as_str(nl::find(attrs, NFTA_SET_NAME).unwrap_or(&[])))
}
