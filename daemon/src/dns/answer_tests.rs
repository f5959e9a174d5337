use super::*;
use cni_dns::Record as DnsRecord;

fn rec(net: &str, id: &str, names: &[&str], addrs: &[&str], forward: bool) -> DnsRecord {
    DnsRecord {
        network: net.into(),
        domain: "dns.podman".into(),
        forward,
        container_id: id.into(),
        ifname: "eth0".into(),
        netns: format!("/var/run/netns/{id}"),
        names: names.iter().map(|s| s.to_string()).collect(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fn zone(recs: &[DnsRecord]) -> NetworkZone {
    NetworkZone::build(&recs[0].network, recs)
}

fn reply_of(a: Action) -> Message {
    match a {
        Action::Reply(b) => Message::from_vec(&b).unwrap(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn names_with_and_without_domain_answer_a_and_aaaa() {
    let z = zone(&[rec("n1", "c1", &["web"], &["10.0.0.2", "fd00::2"], true)]);
    for name in ["web.", "WEB.dns.podman."] {
        let r = reply_of(answer(
            &query_bytes(name, RecordType::A, 7),
            &[&z],
            Transport::Udp,
            1,
        ));
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert_eq!(
            reply_addresses(&r.to_vec().unwrap()),
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
    }
    let r = answer(
        &query_bytes("web.dns.podman.", RecordType::AAAA, 1),
        &[&z],
        Transport::Udp,
        1,
    );
    let Action::Reply(b) = r else { panic!() };
    assert_eq!(
        reply_addresses(&b),
        vec!["fd00::2".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn unknown_names_of_our_domain_are_nxdomain_others_are_forwarded_or_refused() {
    let z = zone(&[rec("n1", "c1", &["web"], &["10.0.0.2"], true)]);
    let r = reply_of(answer(
        &query_bytes("db.dns.podman.", RecordType::A, 1),
        &[&z],
        Transport::Udp,
        1,
    ));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        answer(
            &query_bytes("example.org.", RecordType::A, 1),
            &[&z],
            Transport::Udp,
            1
        ),
        Action::Forward
    );
    let internal = zone(&[rec("n2", "c2", &["api"], &["10.1.0.2"], false)]);
    let r = reply_of(answer(
        &query_bytes("example.org.", RecordType::A, 1),
        &[&internal],
        Transport::Udp,
        1,
    ));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn a_shared_alias_returns_every_address_in_changing_order() {
    let z = zone(&[
        rec("n1", "c1", &["a1", "svc"], &["10.0.0.2"], true),
        rec("n1", "c2", &["a2", "svc"], &["10.0.0.3"], true),
        rec("n1", "c3", &["a3", "svc"], &["10.0.0.4"], true),
    ]);
    let mut orders = std::collections::HashSet::new();
    for seed in 0..20 {
        let Action::Reply(b) = answer(
            &query_bytes("svc.", RecordType::A, 1),
            &[&z],
            Transport::Udp,
            seed,
        ) else {
            panic!()
        };
        let a = reply_addresses(&b);
        assert_eq!(a.len(), 3);
        orders.insert(a);
    }
    assert!(orders.len() > 1, "round robin never changed the order");
}

#[test]
fn ptr_answers_the_fqdn() {
    let z = zone(&[rec("n1", "c1", &["web"], &["10.0.0.2"], true)]);
    let r = reply_of(answer(
        &query_bytes("2.0.0.10.in-addr.arpa.", RecordType::PTR, 1),
        &[&z],
        Transport::Udp,
        1,
    ));
    let RData::PTR(p) = &r.answers[0].data else {
        panic!()
    };
    assert_eq!(p.0.to_ascii(), "web.dns.podman.");
    assert_eq!(
        answer(
            &query_bytes("9.0.0.10.in-addr.arpa.", RecordType::PTR, 1),
            &[&z],
            Transport::Udp,
            1
        ),
        Action::Forward
    );
}

#[test]
fn hostile_bytes_get_formerr_or_nothing() {
    let z = zone(&[rec("n1", "c1", &["web"], &["10.0.0.2"], true)]);
    assert_eq!(answer(b"", &[&z], Transport::Udp, 1), Action::Drop);
    assert_eq!(answer(&[0u8; 11], &[&z], Transport::Udp, 1), Action::Drop);
    let mut q = query_bytes("web.", RecordType::A, 9);
    q.truncate(q.len() - 3);
    let r = reply_of(answer(&q, &[&z], Transport::Udp, 1));
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(r.metadata.id, 9);
    // A response is never answered.
    let mut resp = query_bytes("web.", RecordType::A, 9);
    resp[2] |= 0x80;
    assert_eq!(answer(&resp, &[&z], Transport::Udp, 1), Action::Drop);
    let mut big = query_bytes("web.", RecordType::A, 9);
    big.extend(std::iter::repeat_n(0xffu8, 70000));
    let r = reply_of(answer(&big, &[&z], Transport::Udp, 1));
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn many_addresses_are_truncated_over_udp_only() {
    let recs: Vec<DnsRecord> = (0..100)
        .map(|i| {
            rec(
                "n1",
                &format!("c{i}"),
                &["svc"],
                &[&format!("10.0.{}.{}", i / 200, i % 200 + 2)],
                true,
            )
        })
        .collect();
    let z = zone(&recs);
    let r = reply_of(answer(
        &query_bytes("svc.", RecordType::A, 1),
        &[&z],
        Transport::Udp,
        1,
    ));
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    let r = reply_of(answer(
        &query_bytes("svc.", RecordType::A, 1),
        &[&z],
        Transport::Tcp,
        1,
    ));
    assert_eq!(r.answers.len(), 100);
}
