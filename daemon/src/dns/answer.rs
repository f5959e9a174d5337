//! One query in, one decision out: a reply built from the networks the
//! asking container is on, a forward to the upstream resolvers, or silence.
//! Pure (no I/O, randomness from the caller's seed) so the fuzzer can drive
//! it with any bytes: malformed, truncated or oversized queries get FORMERR
//! or no answer, never a panic.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::zone::NetworkZone;

/// Containers come and go: answers must not outlive them for long.
pub const TTL: u32 = 10;

/// The UDP size we announce and cap client buffers at (the DNS flag day
/// value, safe against fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// A plain DNS message over UDP without EDNS.
pub const CLASSIC_UDP: usize = 512;

/// Longest query we read: one question and an OPT record fit in far less;
/// anything longer is malformed or hostile.
pub const MAX_QUERY: usize = 4096;

/// The DNS header length: shorter input is not a query at all.
const HEADER_LEN: usize = 12;

/// How the query reached us (decides truncation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not ours: forward the query as it came, then hand the upstream's
    /// reply through [`fit_udp`] (UDP) or as is (TCP).
    Forward,
    /// Say nothing (not a query, or too broken to answer).
    Drop,
}

/// Decide what to answer to `bytes`, asked by a container attached to the
/// networks in `view`.
pub fn answer(bytes: &[u8], view: &[&NetworkZone], transport: Transport, seed: u64) -> Action {
    if bytes.len() < HEADER_LEN {
        return Action::Drop;
    }
    // Never answer a response: two resolvers would loop.
    if bytes[2] & 0x80 != 0 {
        return Action::Drop;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    if bytes.len() > MAX_QUERY {
        return error_reply(id, ResponseCode::FormErr);
    }
    let msg = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => return error_reply(id, ResponseCode::FormErr),
    };
    if msg.metadata.message_type != MessageType::Query {
        return Action::Drop;
    }
    if msg.metadata.op_code != OpCode::Query {
        return reply(&msg, ResponseCode::NotImp, Vec::new(), transport);
    }
    if msg.queries.len() != 1 {
        return reply(&msg, ResponseCode::FormErr, Vec::new(), transport);
    }
    let query = &msg.queries[0];
    let forward = view.iter().any(|z| z.forward);
    if query.query_class() != DNSClass::IN {
        return not_ours(&msg, forward, transport);
    }
    let qname = lower_name(query.name());
    let qtype = query.query_type();

    if let Some(addr) = reverse_name(query.name()) {
        let names = collect(view.iter().filter_map(|z| z.reverse(&addr)));
        if names.is_empty() {
            return not_ours(&msg, forward, transport);
        }
        let records = if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            names
                .iter()
                .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
                .map(|n| Record::from_rdata(query.name().clone(), TTL, RData::PTR(PTR(n))))
                .collect()
        } else {
            Vec::new()
        };
        return reply(&msg, ResponseCode::NoError, records, transport);
    }

    let mut addrs: Vec<IpAddr> = collect(view.iter().filter_map(|z| z.lookup(&qname)));
    let known = view.iter().any(|z| z.lookup(&qname).is_some());
    if !known {
        if view.iter().any(|z| z.is_apex(&qname)) {
            return reply(&msg, ResponseCode::NoError, Vec::new(), transport);
        }
        if view.iter().any(|z| z.owns(&qname)) {
            return reply(&msg, ResponseCode::NXDomain, Vec::new(), transport);
        }
        return not_ours(&msg, forward, transport);
    }
    addrs.retain(|a| match qtype {
        RecordType::A => a.is_ipv4(),
        RecordType::AAAA => a.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    });
    shuffle(&mut addrs, seed);
    let records = addrs
        .into_iter()
        .map(|a| {
            let data = match a {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            Record::from_rdata(query.name().clone(), TTL, data)
        })
        .collect();
    reply(&msg, ResponseCode::NoError, records, transport)
}

/// The largest reply a client takes over UDP: 512 bytes, or its EDNS
/// buffer size (capped at ours).
pub fn udp_limit(query: &[u8]) -> usize {
    match Message::from_vec(query) {
        Ok(m) => match &m.edns {
            Some(e) => (e.max_payload() as usize).clamp(CLASSIC_UDP, EDNS_PAYLOAD as usize),
            None => CLASSIC_UDP,
        },
        Err(_) => CLASSIC_UDP,
    }
}

/// An upstream reply made to fit a UDP client: as is when small enough,
/// else the header and question with TC set, so the client retries over
/// TCP (where we forward over TCP).
pub fn fit_udp(reply: &[u8], limit: usize) -> Option<Vec<u8>> {
    if reply.len() <= limit {
        return Some(reply.to_vec());
    }
    let msg = Message::from_vec(reply).ok()?;
    let out = msg.truncate().to_vec().ok()?;
    (out.len() <= limit).then_some(out)
}

/// SERVFAIL for a query whose upstreams all failed.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    match reply(&msg, ResponseCode::ServFail, Vec::new(), Transport::Tcp) {
        Action::Reply(b) => Some(b),
        _ => None,
    }
}

fn not_ours(msg: &Message, forward: bool, transport: Transport) -> Action {
    if forward {
        Action::Forward
    } else {
        reply(msg, ResponseCode::Refused, Vec::new(), transport)
    }
}

fn error_reply(id: u16, code: ResponseCode) -> Action {
    match Message::error_msg(id, OpCode::Query, code).to_vec() {
        Ok(b) => Action::Reply(b),
        Err(_) => Action::Drop,
    }
}

fn reply(
    query: &Message,
    code: ResponseCode,
    answers: Vec<Record>,
    transport: Transport,
) -> Action {
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata.response_code = code;
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.checking_disabled = query.metadata.checking_disabled;
    // We recurse for containers (by forwarding); local answers are ours.
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = code == ResponseCode::NoError || code == ResponseCode::NXDomain;
    resp.add_queries(query.queries.iter().cloned());
    resp.insert_answers(answers);
    let limit = if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        resp.set_edns(e);
        query
            .edns
            .as_ref()
            .map(|e| e.max_payload() as usize)
            .unwrap_or(CLASSIC_UDP)
            .clamp(CLASSIC_UDP, EDNS_PAYLOAD as usize)
    } else {
        CLASSIC_UDP
    };
    let Ok(bytes) = resp.to_vec() else {
        return Action::Drop;
    };
    if transport == Transport::Udp && bytes.len() > limit {
        return match resp.truncate().to_vec() {
            Ok(b) => Action::Reply(b),
            Err(_) => Action::Drop,
        };
    }
    Action::Reply(bytes)
}

/// Lower case, no trailing dot: how zones key their names.
fn lower_name(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').unwrap_or(&s).to_string()
}

/// The address of a complete `in-addr.arpa`/`ip6.arpa` name.
fn reverse_name(name: &Name) -> Option<IpAddr> {
    let lower = lower_name(name);
    if !(lower.ends_with(".in-addr.arpa") || lower.ends_with(".ip6.arpa")) {
        return None;
    }
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// Flatten, keeping the first of duplicates.
fn collect<'a, T: PartialEq + Clone + 'a>(sets: impl Iterator<Item = &'a [T]>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for set in sets {
        for x in set {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
    }
    out
}

/// Docker's round robin: a shared alias lists its addresses in a new
/// order per answer (Fisher-Yates on a splitmix64 stream).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

/// A query for tests and the fuzz corpus.
pub fn query_bytes(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    if let Ok(n) = Name::from_ascii(name) {
        m.add_query(Query::query(n, qtype));
    }
    m.to_vec().unwrap_or_default()
}

/// The addresses in a reply's answer section (CHECK and tests).
pub fn reply_addresses(bytes: &[u8]) -> Vec<IpAddr> {
    let Ok(m) = Message::from_vec(bytes) else {
        return Vec::new();
    };
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
