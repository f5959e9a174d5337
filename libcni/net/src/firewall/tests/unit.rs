//! Encoding and decoding without the kernel: attribute layout, message
//! framing, owner tags, and the rules we build.

use super::super::expr;
use super::super::ident;
use super::super::lock;
use super::super::nl::{self, AttrIter, Attrs};
use super::super::tables::{self, Family};
use super::super::*;

#[test]
fn attributes_are_padded_big_endian_and_nested() {
    let mut a = Attrs::new();
    a.string(1, "ab").be32(2, 0x0102_0304).nested(3, |n| {
        n.be64(4, 5);
    });
    let b = a.into_bytes();
    // "ab\0" -> len 7, padded to 8.
    assert_eq!(&b[..8], &[7, 0, 1, 0, b'a', b'b', 0, 0]);
    assert_eq!(&b[8..16], &[8, 0, 2, 0, 1, 2, 3, 4]);
    // Nested: NLA_F_NESTED set on the type, inner be64.
    assert_eq!(&b[16..20], &[16, 0, 3, 0x80]);
    assert_eq!(&b[20..32], &[12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    let attrs: Vec<(u16, &[u8])> = AttrIter::new(&b).collect();
    assert_eq!(attrs.len(), 3);
    assert_eq!(nl::as_str(attrs[0].1), "ab");
    assert_eq!(attrs[2].0, 3, "the nested flag is masked off");
    assert_eq!(nl::as_be64(nl::find(attrs[2].1, 4).unwrap()), Some(5));
}

#[test]
fn malformed_input_never_panics() {
    for bad in [
        &[][..],
        &[1],
        &[2, 0, 1, 0],
        &[255, 255, 1, 0, 1],
        &[8, 0, 1, 0, 1, 2],
    ] {
        let _ = AttrIter::new(bad).count();
        let _ = crate::transport::frames(bad);
        let _ = tables::parse_rule(bad);
        let _ = tables::parse_elems(bad);
        let _ = ident::decode_comment(bad);
    }
    assert_eq!(nl::as_be64(&[1, 2]), None);
}

#[test]
fn message_header_and_nfgenmsg() {
    let mut out = Vec::new();
    nl::put_msg(
        &mut out,
        (10 << 8) | 6,
        0x405,
        77,
        1,
        0,
        &[8, 0, 1, 0, 1, 2, 3, 4],
    );
    assert_eq!(out.len(), 16 + 4 + 8);
    assert_eq!(u32::from_ne_bytes(out[0..4].try_into().unwrap()), 28);
    assert_eq!(u16::from_ne_bytes(out[4..6].try_into().unwrap()), 0x0a06);
    assert_eq!(u16::from_ne_bytes(out[6..8].try_into().unwrap()), 0x405);
    assert_eq!(u32::from_ne_bytes(out[8..12].try_into().unwrap()), 77);
    assert_eq!(
        &out[16..20],
        &[1, 0, 0, 0],
        "family inet, version 0, res_id 0"
    );
    // Batch delimiters carry the subsystem as res_id, big-endian.
    let mut b = Vec::new();
    nl::put_msg(
        &mut b,
        nl::NFNL_MSG_BATCH_BEGIN,
        1,
        1,
        0,
        nl::NFNL_SUBSYS_NFTABLES,
        &[],
    );
    assert_eq!(&b[16..20], &[0, 0, 0, 10]);
    let r = crate::transport::frames(&out).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].seq, 77);
    assert_eq!(&r[0].body()[nl::NFGENMSG_LEN..], &[8, 0, 1, 0, 1, 2, 3, 4]);
}

#[test]
fn error_replies_give_errno_and_ext_ack_text() {
    // NLMSG_ERROR, flags NLM_F_ACK_TLVS, errno -EBUSY, echoed header,
    // then NLMSGERR_ATTR_MSG "busy".
    let mut body = (-libc::EBUSY).to_ne_bytes().to_vec();
    body.extend_from_slice(&[0u8; 16]);
    body.extend_from_slice(&[9, 0, 1, 0, b'b', b'u', b's', b'y', 0, 0, 0, 0]);
    let mut msg = Vec::new();
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
    msg.extend_from_slice(&0x200u16.to_ne_bytes()); // NLM_F_ACK_TLVS
    msg.extend_from_slice(&5u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    let r = crate::transport::frames(&msg).unwrap();
    assert_eq!(r[0].status(), Some((libc::EBUSY, Some("busy".to_string()))));
}

#[test]
fn owner_tags_match_exactly() {
    let c = ident::network_comment("blue", "masq 10.0.0.0/8 !br0");
    assert!(c.starts_with("cni-rs net="));
    assert!(ident::of_network(&c, "blue"));
    assert!(!ident::of_network(&c, "blue2"));
    assert!(!ident::of_network(&c, "blu"));
    let e = ident::container_comment("blue", "abc", "eth0");
    assert!(ident::of_container(&e, "blue", "abc", "eth0"));
    assert!(!ident::of_container(&e, "blue", "abc", "eth1"));
    assert!(!ident::of_container(&e, "red", "abc", "eth0"));
    assert!(ident::of_network(&e, "blue"));
    assert_eq!(
        ident::container_key_of(&e, "blue"),
        Some(ident::ctr_key("abc", "eth0").as_str())
    );
    assert_eq!(ident::container_key_of(&c, "blue"), None, "a network rule");
    assert_eq!(ident::container_key_of(&e, "red"), None);
    // Parts are separated: ("ab","c") is not ("a","bc").
    assert_ne!(ident::ctr_key("ab", "c"), ident::ctr_key("a", "bc"));
}

#[test]
fn comments_fit_nft_and_round_trip() {
    let long = "n".repeat(300);
    let c = ident::container_comment(&long, &"é".repeat(100), "eth0");
    assert!(c.len() <= 127, "{}", c.len());
    assert!(ident::of_container(&c, &long, &"é".repeat(100), "eth0"));
    let udata = ident::encode_comment(&c);
    assert_eq!(udata[0], 0, "NFTNL_UDATA_RULE_COMMENT");
    assert_eq!(usize::from(udata[1]), c.len() + 1);
    assert_eq!(ident::decode_comment(&udata).as_deref(), Some(c.as_str()));
    // A comment after another TLV is still found.
    let mut two = vec![5, 2, 0, 0];
    two.extend_from_slice(&udata);
    assert_eq!(ident::decode_comment(&two).as_deref(), Some(c.as_str()));
    assert_eq!(ident::decode_comment(&[0, 10, b'x']), None, "truncated TLV");
}

/// The expression names of a rule, in order.
fn expr_names(rule: &tables::RuleSpec) -> Vec<String> {
    let mut a = Attrs::new();
    expr::encode_list(&mut a, &rule.exprs);
    AttrIter::new(a.as_bytes())
        .map(|(_, el)| nl::as_str(nl::find(el, 1).unwrap()))
        .collect()
}

/// The NFTA_DATA_VALUE bytes of every `cmp` in a rule.
fn cmp_values(rule: &tables::RuleSpec) -> Vec<Vec<u8>> {
    let mut a = Attrs::new();
    expr::encode_list(&mut a, &rule.exprs);
    AttrIter::new(a.as_bytes())
        .filter(|(_, el)| nl::as_str(nl::find(el, 1).unwrap()) == "cmp")
        .map(|(_, el)| {
            let data = nl::find(el, 2).unwrap();
            nl::find(nl::find(data, 3).unwrap(), 1).unwrap().to_vec()
        })
        .collect()
}

#[test]
fn masquerade_rule_matches_subnet_and_not_own_bridge() {
    let r = tables::masquerade_rule("blue", "br0", &"10.1.2.3/16".parse().unwrap());
    assert_eq!(r.chain, "postrouting");
    assert!(r.comment.contains("masq 10.1.0.0/16 !br0"), "{}", r.comment);
    assert_eq!(
        expr_names(&r),
        ["meta", "cmp", "payload", "bitwise", "cmp", "meta", "cmp", "counter", "masq"]
    );
    let cmps = cmp_values(&r);
    assert_eq!(cmps[0], [2], "nfproto ipv4");
    assert_eq!(cmps[1], [10, 1, 0, 0], "host bits cleared");
    assert_eq!(&cmps[2][..4], b"br0\0");
    assert_eq!(cmps[2].len(), 16);

    let host = tables::masquerade_rule("blue", "br0", &"10.1.2.3/32".parse().unwrap());
    assert!(
        !expr_names(&host).contains(&"bitwise".to_string()),
        "no mask for /32"
    );

    let v6 = tables::masquerade_rule("blue", "br0", &"fd00:1::/64".parse().unwrap());
    let cmps = cmp_values(&v6);
    assert_eq!(cmps[0], [10], "nfproto ipv6");
    assert_eq!(cmps[1].len(), 16);
}

#[test]
fn isolation_and_spoofcheck_rules() {
    let out = tables::isolate_out_rule("blue", "br0");
    assert_eq!(out.chain, "forward");
    assert_eq!(
        expr_names(&out),
        ["meta", "cmp", "meta", "cmp", "counter", "immediate"]
    );
    let inn = tables::isolate_in_rule("blue", "br0");
    assert_eq!(inn.chain, "isolation");
    assert_ne!(out.comment, inn.comment);
    let sc = tables::spoofcheck_rule();
    assert_eq!(
        expr_names(&sc),
        [
            "meta",
            "lookup",
            "meta",
            "payload",
            "lookup",
            "counter",
            "immediate"
        ]
    );
}

#[test]
fn spoof_keys_follow_register_layout() {
    let k = tables::allowed_key("veth1", &[2, 0, 0, 0, 0, 1]);
    assert_eq!(k.len(), 24);
    assert_eq!(&k[..6], b"veth1\0");
    assert_eq!(&k[16..], &[2, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(tables::port_key("veth1").len(), 16);
    assert_eq!(tables::describe_key(&k), "veth1 . 02:00:00:00:00:01");
}

#[test]
fn desired_rules_follow_flags_without_duplicates() {
    let mut fw = NetworkFirewall {
        network: "blue".into(),
        bridge: "br0".into(),
        subnets: vec![
            "10.1.0.0/16".parse().unwrap(),
            "10.1.0.9/16".parse().unwrap(),
        ],
        masquerade: true,
        isolate: true,
    };
    assert_eq!(
        desired_rules(&fw).len(),
        3,
        "one masq (dup subnet) + 2 isolation"
    );
    fw.isolate = false;
    assert_eq!(desired_rules(&fw).len(), 1);
    fw.masquerade = false;
    assert!(desired_rules(&fw).is_empty());
}

#[test]
fn rule_and_element_messages_decode_like_dumps() {
    // A dumped rule has the attributes we send plus the handle.
    let r = tables::masquerade_rule("blue", "br0", &"10.1.0.0/16".parse().unwrap());
    let mut attrs = tables::new_rule(&r).attrs;
    let mut h = Attrs::new();
    h.be64(3, 42);
    attrs.extend_from_slice(h.as_bytes());
    let info = tables::parse_rule(&attrs).unwrap();
    assert_eq!(info.chain, "postrouting");
    assert_eq!(info.handle, 42);
    assert_eq!(info.comment.as_deref(), Some(r.comment.as_str()));
    assert_eq!(info.packets, None, "a counter we sent has no count yet");
    assert!(tables::del_rule(Family::Inet, &info)
        .what
        .contains("handle 42"));

    let els = tables::new_elems(
        Family::Bridge,
        tables::SPOOF_PORTS,
        &[
            (tables::port_key("veth1"), "c1".into()),
            (tables::port_key("veth2"), "c2".into()),
        ],
    );
    assert_eq!(els.flags, nl::NLM_F_CREATE, "create, never exclusive");
    let parsed = tables::parse_elems(&els.attrs);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[1].key, tables::port_key("veth2"));
    assert_eq!(parsed[1].comment.as_deref(), Some("c2"));
}

#[test]
fn invalid_input_is_a_config_error() {
    let fw = NetworkFirewall {
        network: "".into(),
        bridge: "br0".into(),
        subnets: vec![],
        masquerade: true,
        isolate: true,
    };
    assert_eq!(
        ensure_network(&fw).unwrap_err().code,
        cni_spec::error::code::INVALID_CONFIG
    );
    let fw = NetworkFirewall {
        network: "n".into(),
        bridge: "a-bridge-name-too-long".into(),
        ..fw
    };
    assert_eq!(
        check_network(&fw).unwrap_err().code,
        cni_spec::error::code::INVALID_CONFIG
    );
    assert!(del_container("n", "", "eth0").is_err());
    assert!(add_spoofcheck("n", "c", "eth0", "bad/name", &[0; 6]).is_err());
}

#[test]
fn lock_files_are_per_namespace() {
    let a = lock::lock_name(4, 4026531840);
    let b = lock::lock_name(4, 4026531841);
    assert_ne!(a, b);
    assert!(a.starts_with("nft-netns-4-"));
}

#[test]
fn kernel_errors_name_the_object_and_keep_errno() {
    let req = |what: &str| socket::Request {
        cmd: 0,
        family: 0,
        flags: 0,
        attrs: Vec::new(),
        what: what.into(),
    };
    let reqs = [
        req("add table inet cni_rs"),
        req("add rule inet cni_rs postrouting"),
    ];
    let refused = |index| crate::transport::NlError::Kernel {
        errno: libc::ENOENT,
        msg: Some("chain not found".into()),
        index,
    };
    let e = socket::batch_error(refused(Some(1)), &reqs);
    assert_eq!(e.code, cni_spec::error::code::IO);
    assert_eq!(
        e.msg,
        "nftables: add rule inet cni_rs postrouting: No such file or directory (chain not found)"
    );
    assert_eq!(crate::netlink::errno(&e), Some(libc::ENOENT));
    let e = socket::batch_error(refused(None), &reqs);
    assert!(
        e.msg.starts_with("nftables: commit nftables transaction: "),
        "{}",
        e.msg
    );
}

#[test]
fn a_dumped_rule_reports_its_counter() {
    let dumped = |count: Option<u64>| {
        let mut a = Attrs::new();
        a.string(1, tables::TABLE).string(2, "hostports").be64(3, 9);
        a.nested(4, |l| {
            l.nested(1, |e| {
                e.string(1, "meta");
            });
            l.nested(1, |e| {
                e.string(1, "counter");
                if let Some(n) = count {
                    e.nested(2, |d| {
                        d.be64(1, 6000).be64(2, n);
                    });
                }
            });
        });
        tables::parse_rule(a.as_bytes()).unwrap().packets
    };
    assert_eq!(dumped(Some(7)), Some(7));
    assert_eq!(dumped(Some(0)), Some(0));
    assert_eq!(dumped(None), None);
}
