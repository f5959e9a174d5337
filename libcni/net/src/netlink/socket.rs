//! Request/reply plumbing of one NETLINK_ROUTE socket: serialise a request,
//! match replies by sequence number, gather multi-part dumps, read the ACK,
//! and retry dumps the kernel marks as interrupted (NLM_F_DUMP_INTR), since a
//! concurrent change during a dump may otherwise give a silently partial list.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLM_F_ACK,
    NLM_F_ACK_TLVS, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

/// How often an interrupted dump is retried before giving up (the Go plugins'
/// `netlinksafe` uses the same bound).
const DUMP_RETRIES: usize = 5;

/// Initial receive buffer. The kernel sizes dump datagrams to at most 32 KiB
/// unless the buffer offered is bigger; larger datagrams are detected with
/// MSG_PEEK|MSG_TRUNC and the buffer grows.
const RECV_BUF: usize = 64 * 1024;

/// `NLMSGERR_ATTR_MSG`: the human readable extended-ACK message.
const NLMSGERR_ATTR_MSG: u16 = 1;

const NLMSG_HDRLEN: usize = 16;

/// A failure of one exchange, before it is given the operation's context.
#[derive(Debug)]
pub(crate) enum NlError {
    /// The kernel refused the request (positive errno), maybe with an
    /// extended-ACK message saying why.
    Kernel { errno: i32, msg: Option<String> },
    /// The socket itself failed.
    Os(io::Error),
    /// A reply we could not decode.
    Decode(String),
    /// A dump stayed inconsistent after all retries.
    Interrupted,
}

impl NlError {
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { errno, .. } => Some(*errno),
            NlError::Os(e) => e.raw_os_error(),
            NlError::Decode(_) => None,
            NlError::Interrupted => Some(libc::EINTR),
        }
    }
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> Self {
        NlError::Os(e)
    }
}

/// One NETLINK_ROUTE socket, bound to the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct NlSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NlSocket {
    pub(crate) fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        // Lets the kernel filter dumps by the header fields we set (ifindex,
        // family) and reject malformed requests instead of guessing.
        // Old kernels lack these options; they only make things better.
        let _ = sock.set_netlink_get_strict_chk(true);
        // Errors then carry the kernel's reason ("Unknown device type").
        let _ = sock.set_ext_ack(true);
        // Errors echo only the request header, not the whole request.
        let _ = sock.set_cap_ack(true);
        // Start from a per-process value so that replies to an earlier user
        // of the same port id can never be mistaken for ours.
        let seq = std::process::id().wrapping_mul(7919);
        Ok(NlSocket {
            sock,
            seq,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Send one request and return the messages answering it. NLM_F_REQUEST
    /// and NLM_F_ACK are always set; `flags` adds NLM_F_DUMP, NLM_F_CREATE...
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        if !is_dump {
            return self.exchange(msg, flags).map(|(out, _)| out);
        }
        for _ in 0..DUMP_RETRIES {
            let (out, interrupted) = self.exchange(msg.clone(), flags)?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NlError::Interrupted)
    }

    /// Send a dump request and hand the replies to `found` as they arrive,
    /// until it says true: then Ok(true) without reading further. The
    /// kernel builds a dump's datagrams only as they are read, so stopping
    /// early spares it (and us) the rest. The socket is then left in the
    /// middle of the dump (a later dump on it would fail with EBUSY): the
    /// caller closes it. Ok(false): the whole consistent dump had no match.
    pub(crate) fn dump_until(
        &mut self,
        msg: RouteNetlinkMessage,
        mut found: impl FnMut(&RouteNetlinkMessage) -> bool,
    ) -> Result<bool, NlError> {
        for _ in 0..DUMP_RETRIES {
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            self.sock.send(&encode(msg.clone(), NLM_F_DUMP, seq), 0)?;
            let mut reply = Reply::default();
            loop {
                self.recv_datagram()?;
                let end = reply.absorb(&self.buf, seq);
                // A match is a link that existed during the dump, even an
                // interrupted one.
                if reply.messages.drain(..).any(|m| found(&m)) {
                    return Ok(true);
                }
                if let Some(result) = end {
                    result?;
                    if !reply.interrupted {
                        return Ok(false);
                    }
                    break;
                }
            }
        }
        Err(NlError::Interrupted)
    }

    /// One send and the replies up to the final ACK or DONE. Returns the
    /// replies and whether the kernel flagged the dump as interrupted.
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), NlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let packet = encode(msg, flags, seq);
        self.sock.send(&packet, 0)?;

        let mut reply = Reply::default();
        loop {
            self.recv_datagram()?;
            if let Some(result) = reply.absorb(&self.buf, seq) {
                return result.map(|()| (reply.messages, reply.interrupted));
            }
        }
    }

    /// Read one whole datagram into `self.buf`, growing it if the kernel's
    /// datagram is bigger (a plain recv would silently truncate it).
    fn recv_datagram(&mut self) -> io::Result<()> {
        loop {
            self.buf.clear();
            let peeked = match self
                .sock
                .recv(&mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if peeked > self.buf.capacity() {
                self.buf.clear();
                self.buf.reserve(peeked);
                continue;
            }
            self.buf.clear();
            match self.sock.recv(&mut self.buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The replies to one request, gathered datagram by datagram.
#[derive(Debug, Default)]
struct Reply {
    messages: Vec<RouteNetlinkMessage>,
    interrupted: bool,
    decode_err: Option<String>,
}

impl Reply {
    /// Take in one datagram. Some(result) once the final ACK, error or DONE
    /// for `seq` has arrived; None while more is to come.
    fn absorb(&mut self, buf: &[u8], seq: u32) -> Option<Result<(), NlError>> {
        let mut off = 0;
        while off + NLMSG_HDRLEN <= buf.len() {
            let rest = &buf[off..];
            let nlbuf = match NetlinkBuffer::new_checked(rest) {
                Ok(b) => b,
                Err(e) => return Some(Err(NlError::Decode(format!("netlink reply: {e}")))),
            };
            let len = nlbuf.length() as usize;
            // new_checked guarantees NLMSG_HDRLEN <= len <= rest.len().
            let bytes = &rest[..len];
            off += align4(len);
            if nlbuf.sequence_number() != seq {
                // A late reply to an earlier request we gave up on.
                continue;
            }
            if nlbuf.flags() & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                Ok(m) => m,
                Err(e) => {
                    // Keep draining so the socket stays in step; report
                    // the first failure when the reply is complete.
                    self.decode_err
                        .get_or_insert_with(|| format!("netlink reply: {e}"));
                    continue;
                }
            };
            let header_flags = parsed.header.flags;
            match parsed.payload {
                NetlinkPayload::InnerMessage(m) => self.messages.push(m),
                NetlinkPayload::Done(done) => {
                    if done.code < 0 {
                        return Some(Err(NlError::Kernel {
                            errno: done.code.saturating_neg(),
                            msg: ext_ack_msg(&done.extended_ack),
                        }));
                    }
                    return Some(self.finish());
                }
                NetlinkPayload::Error(e) => {
                    let code = e.raw_code();
                    if code == 0 {
                        return Some(self.finish());
                    }
                    let tlvs = if header_flags & NLM_F_ACK_TLVS != 0 {
                        e.header.get(NLMSG_HDRLEN..).unwrap_or(&[])
                    } else {
                        &[]
                    };
                    return Some(Err(NlError::Kernel {
                        errno: code.saturating_abs(),
                        msg: ext_ack_msg(tlvs),
                    }));
                }
                NetlinkPayload::Overrun(_) => {
                    return Some(Err(NlError::Os(io::Error::from_raw_os_error(
                        libc::ENOBUFS,
                    ))))
                }
                _ => {}
            }
        }
        None
    }

    fn finish(&mut self) -> Result<(), NlError> {
        match self.decode_err.take() {
            // An interrupted dump is retried anyway; a decode error is final.
            Some(e) if !self.interrupted => Err(NlError::Decode(e)),
            _ => Ok(()),
        }
    }
}

/// Serialise a request with our flags and sequence number.
pub(crate) fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The NLMSGERR_ATTR_MSG string from extended-ACK attributes, if any.
fn ext_ack_msg(tlvs: &[u8]) -> Option<String> {
    for nla in NlasIterator::new(tlvs) {
        let Ok(nla) = nla else { break };
        if nla.kind() == NLMSGERR_ATTR_MSG {
            let raw = nla.value();
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            let s = String::from_utf8_lossy(&raw[..end]).trim().to_string();
            if !s.is_empty() {
                return Some(s);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage, NLM_F_MULTIPART};
    use netlink_packet_route::link::LinkMessage;

    #[test]
    fn encode_sets_request_ack_and_seq() {
        let buf = encode(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            42,
        );
        let nl = NetlinkBuffer::new_checked(&buf[..]).unwrap();
        assert_eq!(nl.length() as usize, buf.len());
        assert_eq!(nl.sequence_number(), 42);
        assert_eq!(nl.message_type(), 18); // RTM_GETLINK
        assert_eq!(
            nl.flags(),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
            "every request asks for an ACK"
        );
    }

    fn packet(seq: u32, flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, payload);
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn link(index: u32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut l = LinkMessage::default();
        l.header.index = index;
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
    }

    fn done() -> NetlinkPayload<RouteNetlinkMessage> {
        NetlinkPayload::Done(DoneMessage::default())
    }

    #[test]
    fn dump_reply_skips_stale_seq_and_notes_interruption() {
        let mut dgram = packet(5, NLM_F_MULTIPART | NLM_F_DUMP_INTR, link(1));
        dgram.extend(packet(4, NLM_F_MULTIPART, link(2)));
        dgram.extend(packet(5, NLM_F_MULTIPART, done()));
        let mut r = Reply::default();
        assert!(matches!(r.absorb(&dgram, 5), Some(Ok(()))));
        assert_eq!(r.messages.len(), 1);
        assert!(r.interrupted);
    }

    #[test]
    fn reply_may_span_datagrams() {
        let mut r = Reply::default();
        assert!(r.absorb(&packet(9, NLM_F_MULTIPART, link(1)), 9).is_none());
        assert!(r.absorb(&packet(9, NLM_F_MULTIPART, link(2)), 9).is_none());
        assert!(matches!(r.absorb(&packet(9, 0, done()), 9), Some(Ok(()))));
        assert_eq!(r.messages.len(), 2);
        assert!(!r.interrupted);
    }

    #[test]
    fn nack_carries_errno_and_kernel_message() {
        let mut e = ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(-libc::EEXIST);
        // Echoed request header, then NLMSGERR_ATTR_MSG.
        e.header = vec![0u8; NLMSG_HDRLEN];
        e.header.extend_from_slice(&[10, 0, 1, 0]);
        e.header.extend_from_slice(b"taken\0\0\0");
        let dgram = packet(3, NLM_F_ACK_TLVS, NetlinkPayload::Error(e));
        let mut r = Reply::default();
        match r.absorb(&dgram, 3) {
            Some(Err(NlError::Kernel { errno, msg })) => {
                assert_eq!(errno, libc::EEXIST);
                assert_eq!(msg.as_deref(), Some("taken"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A plain ACK ends a request successfully.
        let ack = packet(4, 0, NetlinkPayload::Error(ErrorMessage::default()));
        assert!(matches!(Reply::default().absorb(&ack, 4), Some(Ok(()))));
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut r = Reply::default();
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = r.absorb(&junk, 1);
        }
        // A header claiming more bytes than the datagram holds.
        let mut p = packet(1, 0, link(1));
        p[0] = 0xff;
        assert!(matches!(r.absorb(&p, 1), Some(Err(NlError::Decode(_)))));
        // A truncated inner message of our seq is a decode error at the end.
        let mut short = packet(2, NLM_F_MULTIPART, link(1));
        short.truncate(NLMSG_HDRLEN + 4);
        short[0] = (NLMSG_HDRLEN + 4) as u8;
        short.extend(packet(2, 0, done()));
        let mut r = Reply::default();
        assert!(matches!(r.absorb(&short, 2), Some(Err(NlError::Decode(_)))));
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
    }
}
