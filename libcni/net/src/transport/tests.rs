//! The receive logic on hand-made datagrams: no socket, no privileges.

use super::*;

const NLM_F_MULTIPART: u16 = 0x2;
/// Any payload type of a family (RTM_NEWLINK).
const DATA: u16 = 16;

fn packet(msg_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + body.len();
    let mut p = Vec::with_capacity(align4(len));
    p.extend_from_slice(&(len as u32).to_ne_bytes());
    p.extend_from_slice(&msg_type.to_ne_bytes());
    p.extend_from_slice(&flags.to_ne_bytes());
    p.extend_from_slice(&seq.to_ne_bytes());
    p.extend_from_slice(&0u32.to_ne_bytes());
    p.extend_from_slice(body);
    p.resize(align4(len), 0);
    p
}

fn data(seq: u32, flags: u16, tag: u8) -> Vec<u8> {
    packet(DATA, NLM_F_MULTIPART | flags, seq, &[tag, 0, 0, 0])
}

fn done(seq: u32) -> Vec<u8> {
    packet(NLMSG_DONE, NLM_F_MULTIPART, seq, &0i32.to_ne_bytes())
}

/// An NLMSG_ERROR for `seq` with a capped echo and, if given, the
/// extended-ACK text.
fn nack(seq: u32, errno: i32, text: Option<&str>) -> Vec<u8> {
    let mut body = (-errno).to_ne_bytes().to_vec();
    body.extend(packet(DATA, 0, seq, &[])); // the echoed request header
    let mut flags = NLM_F_CAPPED;
    if let Some(t) = text {
        flags |= NLM_F_ACK_TLVS;
        let len = 4 + t.len() + 1;
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        body.extend_from_slice(t.as_bytes());
        body.push(0);
        body.resize(align4(body.len()), 0);
    }
    packet(NLMSG_ERROR, flags, seq, &body)
}

fn ack(seq: u32) -> Vec<u8> {
    nack(seq, 0, None)
}

#[test]
fn dump_reply_skips_stale_seq_and_notes_interruption() {
    let mut dgram = data(5, NLM_F_DUMP_INTR, 1);
    dgram.extend(data(4, 0, 2));
    dgram.extend(done(5));
    let mut r = Reply::default();
    assert!(matches!(r.absorb(&dgram, 5), Some(Ok(()))));
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0][NLMSG_HDRLEN], 1, "the whole message is kept");
    assert!(r.interrupted);
}

#[test]
fn reply_may_span_datagrams() {
    let mut r = Reply::default();
    assert!(r.absorb(&data(9, 0, 1), 9).is_none());
    assert!(r.absorb(&data(9, 0, 2), 9).is_none());
    assert!(matches!(r.absorb(&done(9), 9), Some(Ok(()))));
    assert_eq!(r.messages.len(), 2);
    assert!(!r.interrupted);
}

#[test]
fn nack_carries_errno_and_kernel_message() {
    let mut r = Reply::default();
    match r.absorb(&nack(3, Errno::EEXIST as i32, Some("taken")), 3) {
        Some(Err(NlError::Kernel { errno, msg, index })) => {
            assert_eq!(errno, Errno::EEXIST as i32);
            assert_eq!(msg.as_deref(), Some("taken"));
            assert_eq!(index, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A plain ACK ends a request successfully.
    assert!(matches!(Reply::default().absorb(&ack(4), 4), Some(Ok(()))));
}

#[test]
fn ext_ack_after_an_uncapped_echo_is_found() {
    let mut body = (-(Errno::EINVAL as i32)).to_ne_bytes().to_vec();
    body.extend(packet(DATA, 0, 1, &[9; 12])); // the whole request echoed
    body.extend_from_slice(&[8, 0, 1, 0]);
    body.extend_from_slice(b"bad\0");
    let p = packet(NLMSG_ERROR, NLM_F_ACK_TLVS, 1, &body);
    let f = frames(&p).unwrap();
    assert_eq!(
        f[0].status(),
        Some((Errno::EINVAL as i32, Some("bad".to_string())))
    );
}

#[test]
fn garbage_does_not_panic() {
    let mut r = Reply::default();
    for len in 0..64 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let _ = r.absorb(&junk, 1);
        let mut acks = BatchAcks::new(1, 3);
        acks.absorb(&junk);
        if let Ok(fs) = frames(&junk) {
            fs.iter().for_each(|f| drop(f.status()));
        }
    }
    // A header claiming more bytes than the datagram holds.
    let mut p = data(1, 0, 1);
    p[0] = 0xff;
    assert!(matches!(r.absorb(&p, 1), Some(Err(NlError::Decode(_)))));
    // An error message too short to hold its code.
    let short = packet(NLMSG_ERROR, NLM_F_ACK_TLVS, 2, &[]);
    assert!(matches!(Reply::default().absorb(&short, 2), Some(Ok(()))));
}

#[test]
fn ext_ack_message_is_extracted() {
    // NLA: len=4+6 ("hello\0"), type 1, padded to 12.
    let mut tlv = vec![10, 0, 1, 0];
    tlv.extend_from_slice(b"hello\0\0\0");
    assert_eq!(ext_ack_msg(&tlv).as_deref(), Some("hello"));
    assert_eq!(ext_ack_msg(&[]), None);
    // Garbage must not panic.
    assert_eq!(ext_ack_msg(&[255, 255, 1, 0, 1]), None);
    assert_eq!(ext_ack_msg(&[2, 0, 1, 0, 1]), None);
}

#[test]
fn batch_counts_acks_by_sequence_number() {
    // Messages 10, 11, 12; the envelope is 9.
    let mut acks = BatchAcks::new(10, 3);
    let mut dgram = ack(10);
    dgram.extend(ack(11));
    dgram.extend(ack(8)); // stale
    acks.absorb(&dgram);
    assert!(!acks.complete());
    acks.absorb(&ack(12));
    assert!(acks.complete());
    assert!(acks.finish().is_ok());
}

#[test]
fn batch_names_the_refused_message_or_the_envelope() {
    let mut acks = BatchAcks::new(10, 3);
    let mut dgram = ack(10);
    dgram.extend(nack(11, Errno::ENOENT as i32, Some("no such chain")));
    acks.absorb(&dgram);
    match acks.finish() {
        Err(NlError::Kernel { errno, index, msg }) => {
            assert_eq!(errno, Errno::ENOENT as i32);
            assert_eq!(index, Some(1));
            assert_eq!(msg.as_deref(), Some("no such chain"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut acks = BatchAcks::new(10, 1);
    acks.absorb(&nack(9, Errno::EBUSY as i32, None));
    assert!(matches!(
        acks.finish(),
        Err(NlError::Kernel { index: None, .. })
    ));
    let mut acks = BatchAcks::new(10, 2);
    acks.absorb(&ack(10));
    assert!(matches!(
        acks.finish(),
        Err(NlError::Incomplete { acked: 1, sent: 2 })
    ));
}

#[test]
fn sequence_numbers_are_reserved_in_blocks() {
    let mut t = Transport {
        sock: Socket::new(NETLINK_ROUTE).unwrap(),
        seq: u32::MAX - 1,
        buf: Vec::new(),
    };
    assert_eq!(t.reserve_seq(3), u32::MAX);
    assert_eq!(t.reserve_seq(1), 2, "wraps around");
}

#[test]
fn errors_keep_errno_and_reason() {
    let e = NlError::Kernel {
        errno: Errno::EEXIST as i32,
        msg: Some("taken".into()),
        index: None,
    }
    .into_error("add link x");
    assert_eq!(e.errno, Some(Errno::EEXIST as i32));
    assert!(
        e.msg.contains("add link x: File exists (taken)"),
        "{}",
        e.msg
    );
    let e = NlError::Interrupted.into_error("list links");
    assert_eq!(e.code, 11);
}
