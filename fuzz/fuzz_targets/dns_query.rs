//! The resolver's packet handling: any bytes a container sends to
//! 127.0.0.11 (over UDP or TCP), answered from two networks (one that
//! forwards, one internal), and the upstream-reply helpers. Never a panic;
//! every reply carries the query's id.
#![no_main]
use cni_dns::Record;
use cni_rs_daemon::dns::answer::{self, Action, Transport};
use cni_rs_daemon::dns::zone::NetworkZone;
use libfuzzer_sys::fuzz_target;

fn record(net: &str, id: &str, names: &[&str], addrs: &[&str], forward: bool) -> Record {
    Record {
        network: net.into(),
        domain: "dns.podman".into(),
        forward,
        container_id: id.into(),
        ifname: "eth0".into(),
        netns: "/var/run/netns/x".into(),
        names: names.iter().map(|s| s.to_string()).collect(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let n1 = [
        record("n1", "c1", &["web", "svc"], &["10.0.0.2", "fd00::2"], true),
        record("n1", "c2", &["api", "svc"], &["10.0.0.3"], true),
    ];
    let n2 = [record("n2", "c3", &["db"], &["10.1.0.2"], false)];
    let z1 = NetworkZone::build("n1", &n1);
    let z2 = NetworkZone::build("n2", &n2);
    for view in [vec![&z1], vec![&z2], vec![&z1, &z2], vec![]] {
        for t in [Transport::Udp, Transport::Tcp] {
            if let Action::Reply(r) = answer::answer(data, &view, t, data.len() as u64) {
                assert!(data.len() >= 12 && r.len() >= 12 && r[..2] == data[..2]);
                if t == Transport::Udp {
                    assert!(r.len() <= answer::EDNS_PAYLOAD as usize);
                }
            }
        }
    }
    let limit = answer::udp_limit(data);
    if let Some(r) = answer::fit_udp(data, limit) {
        assert!(r.len() <= limit);
    }
    let _ = answer::servfail(data);
    let _ = answer::reply_addresses(data);
});
