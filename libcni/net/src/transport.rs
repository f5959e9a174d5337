//! The one netlink transport under both our rtnetlink layer
//! (NETLINK_ROUTE, [`crate::netlink`]) and our nftables layer
//! (NETLINK_NETFILTER, [`crate::firewall`]): one socket setup, one sequence
//! scheme, one receive timeout and one receive loop that reads ACKs, errors
//! with their extended-ACK text, multi-part dumps, and retries dumps the
//! kernel marks as interrupted (NLM_F_DUMP_INTR), since a concurrent change
//! during a dump may otherwise give a silently partial list.
//!
//! It moves whole netlink messages as bytes; encoding the payloads is the
//! business of the layer above.

use std::fmt;
use std::io;

use cni_spec::error::Error;
use netlink_sys::{
    protocols::{NETLINK_NETFILTER, NETLINK_ROUTE},
    Socket,
};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt, MsgFlags};
use nix::sys::time::{TimeVal, TimeValLike};

/// How often an interrupted dump is retried before giving up (the Go
/// plugins' `netlinksafe` uses the same bound).
const DUMP_RETRIES: usize = 5;

/// Initial receive buffer. The kernel sizes dump datagrams to at most
/// 32 KiB unless the buffer offered is bigger; larger datagrams are detected
/// with MSG_PEEK|MSG_TRUNC and the buffer grows.
const RECV_BUF: usize = 64 * 1024;

/// How long a blocking receive waits. The kernel answers synchronously, so a
/// missing reply means something is wrong, not slow.
const REPLY_TIMEOUT_SECS: i64 = 5;

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// On an NLMSG_ERROR: the echoed request was cut to its header.
const NLM_F_CAPPED: u16 = 0x100;
/// On an NLMSG_ERROR or NLMSG_DONE: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the human readable extended-ACK message.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The netlink families we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// rtnetlink: links, addresses, routes, neighbours.
    Route,
    /// nfnetlink: nf_tables.
    Netfilter,
}

/// A failure of one exchange, before the layer above gives it context.
#[derive(Debug)]
pub(crate) enum NlError {
    /// The kernel refused a message (positive errno), maybe with an
    /// extended-ACK text saying why. `index` is the refused message's place
    /// in a batch; None for a single request or the batch as a whole.
    Kernel {
        errno: i32,
        msg: Option<String>,
        index: Option<usize>,
    },
    /// The socket itself failed (a timeout included).
    Os(io::Error),
    /// A reply we could not decode.
    Decode(String),
    /// A dump stayed inconsistent after all retries.
    Interrupted,
    /// The kernel acknowledged fewer messages of a batch than it was sent.
    Incomplete { acked: usize, sent: usize },
}

impl NlError {
    /// The errno behind the failure, if there is one.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { errno, .. } => Some(*errno),
            NlError::Os(e) => e.raw_os_error(),
            NlError::Decode(_) | NlError::Incomplete { .. } => None,
            NlError::Interrupted => Some(Errno::EINTR as i32),
        }
    }

    /// Our error type: `what` names the operation and object; the kernel's
    /// reason and extended-ACK text follow; the errno is kept as a field.
    /// An interrupted dump is worth retrying (code 11), the rest is I/O.
    pub(crate) fn into_error(self, what: impl fmt::Display) -> Error {
        let errno = self.errno();
        let text = match &self {
            NlError::Kernel { errno, msg, .. } => match msg {
                Some(m) => format!("{what}: {} ({m})", errno_text(*errno)),
                None => format!("{what}: {}", errno_text(*errno)),
            },
            NlError::Os(io) => match io.raw_os_error() {
                Some(n) => format!("{what}: {}", errno_text(n)),
                None => format!("{what}: {io}"),
            },
            NlError::Decode(d) => format!("{what}: {d}"),
            NlError::Interrupted => {
                format!("{what}: dump interrupted by concurrent changes, retries exhausted")
            }
            NlError::Incomplete { acked, sent } => {
                format!("{what}: kernel acknowledged {acked} of {sent} messages")
            }
        };
        let err = if matches!(self, NlError::Interrupted) {
            Error::try_again(text)
        } else {
            Error::io(text)
        };
        match errno {
            Some(n) => err.with_errno(n),
            None => err,
        }
    }
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> Self {
        NlError::Os(e)
    }
}

/// "File exists" for 17: the text `ip` prints, without "(os error 17)".
pub(crate) fn errno_text(errno: i32) -> &'static str {
    Errno::from_raw(errno).desc()
}

/// One netlink socket, bound to the namespace it was opened in.
pub(crate) struct Transport {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").field("seq", &self.seq).finish()
    }
}

impl Transport {
    /// A socket of `proto` in the calling thread's network namespace.
    pub(crate) fn open(proto: Protocol) -> io::Result<Self> {
        let mut sock = Socket::new(match proto {
            Protocol::Route => NETLINK_ROUTE,
            Protocol::Netfilter => NETLINK_NETFILTER,
        })?;
        sock.bind_auto()?;
        // The options below only make things better, and old kernels lack
        // them: failures to set them are ignored.
        // Errors then carry the kernel's reason ("Unknown device type").
        let _ = sock.set_ext_ack(true);
        // Errors echo only the request header, not the whole request.
        let _ = sock.set_cap_ack(true);
        if proto == Protocol::Route {
            // Lets the kernel filter dumps by the header fields we set
            // (ifindex, family) and reject malformed requests.
            let _ = sock.set_netlink_get_strict_chk(true);
        }
        setsockopt(
            &sock,
            sockopt::ReceiveTimeout,
            &TimeVal::seconds(REPLY_TIMEOUT_SECS),
        )
        .map_err(io::Error::from)?;
        Ok(Transport {
            sock,
            // Start from a per-process value so that replies to an earlier
            // user of the same port id can never be mistaken for ours.
            seq: std::process::id().wrapping_mul(7919),
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Reserve `n` consecutive sequence numbers; returns the first.
    pub(crate) fn reserve_seq(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n.max(1));
        first
    }

    /// Send one request, built by `build` for a sequence number, and return
    /// the whole messages (headers included) answering it, up to the final
    /// ACK, error or DONE. A dump flagged as interrupted is sent again.
    pub(crate) fn request(
        &mut self,
        dump: bool,
        build: impl Fn(u32) -> Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, NlError> {
        let tries = if dump { DUMP_RETRIES } else { 1 };
        for _ in 0..tries {
            let seq = self.reserve_seq(1);
            self.sock.send(&build(seq), 0)?;
            let mut reply = Reply::default();
            let done = loop {
                self.recv_datagram(MsgFlags::empty())?;
                if let Some(done) = reply.absorb(&self.buf, seq) {
                    break done;
                }
            };
            done?;
            if !(dump && reply.interrupted) {
                return Ok(reply.messages);
            }
        }
        Err(NlError::Interrupted)
    }

    /// Send a dump request and hand the replies to `found` as they arrive,
    /// until it says true: then Ok(true) without reading further. The
    /// kernel builds a dump's datagrams only as they are read, so stopping
    /// early spares it (and us) the rest. The socket is then left in the
    /// middle of the dump (a later dump on it would fail with EBUSY): the
    /// caller drops it. Ok(false): the whole consistent dump had no match.
    pub(crate) fn dump_until(
        &mut self,
        build: impl Fn(u32) -> Vec<u8>,
        mut found: impl FnMut(&[u8]) -> Result<bool, NlError>,
    ) -> Result<bool, NlError> {
        for _ in 0..DUMP_RETRIES {
            let seq = self.reserve_seq(1);
            self.sock.send(&build(seq), 0)?;
            let mut reply = Reply::default();
            loop {
                self.recv_datagram(MsgFlags::empty())?;
                let end = reply.absorb(&self.buf, seq);
                // A match is an object that existed during the dump, even
                // an interrupted one.
                for m in reply.messages.drain(..) {
                    if found(&m)? {
                        return Ok(true);
                    }
                }
                if let Some(done) = end {
                    done?;
                    if !reply.interrupted {
                        return Ok(false);
                    }
                    break;
                }
            }
        }
        Err(NlError::Interrupted)
    }

    /// Send a batch whose acknowledged messages carry the sequence numbers
    /// `first .. first + count`, and check every ACK. An error with the
    /// sequence number `first - 1` (the envelope, e.g. nfnetlink's batch
    /// begin) is a failure of the batch as a whole.
    ///
    /// The kernel processes a batch synchronously inside `send`, so by the
    /// time it returns every ACK is queued: they are drained without
    /// blocking, and only missing ones are waited for (bounded).
    pub(crate) fn batch(&mut self, packet: &[u8], first: u32, count: usize) -> Result<(), NlError> {
        if count == 0 {
            return Ok(());
        }
        self.sock.send(packet, 0)?;
        let mut acks = BatchAcks::new(first, count);
        let mut blocking = false;
        while !acks.complete() {
            let flags = if blocking {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            };
            match self.recv_datagram(flags) {
                Ok(()) => acks.absorb(&self.buf),
                // Everything queued has been read. An error explains the
                // missing ACKs; otherwise wait (bounded) for them.
                Err(e) if !blocking && e.kind() == io::ErrorKind::WouldBlock => {
                    if acks.first_err.is_some() {
                        break;
                    }
                    blocking = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(NlError::Os(e)),
            }
        }
        // A commit failure may follow the per-message ACKs; drain whatever
        // else is queued so it cannot be mistaken for success.
        while acks.first_err.is_none() && self.recv_datagram(MsgFlags::MSG_DONTWAIT).is_ok() {
            acks.absorb(&self.buf);
        }
        acks.finish()
    }

    /// Read one whole datagram into `self.buf`, growing it if the kernel's
    /// datagram is bigger (a plain recv would silently truncate it).
    fn recv_datagram(&mut self, flags: MsgFlags) -> io::Result<()> {
        let peek = flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
        loop {
            self.buf.clear();
            let size = match self.sock.recv(&mut self.buf, peek.bits()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if size > self.buf.capacity() {
                self.buf.reserve(size);
                continue;
            }
            self.buf.clear();
            match self.sock.recv(&mut self.buf, flags.bits()) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One message of a datagram the kernel sent us.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub(crate) msg_type: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    /// The whole message, header included.
    pub(crate) bytes: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Everything after the netlink header.
    pub(crate) fn body(&self) -> &'a [u8] {
        &self.bytes[NLMSG_HDRLEN..]
    }

    /// For NLMSG_ERROR and NLMSG_DONE: the positive errno (0 for an ACK or
    /// a clean end) and the extended-ACK text if the kernel gave one.
    pub(crate) fn status(&self) -> Option<(i32, Option<String>)> {
        if self.msg_type != NLMSG_ERROR && self.msg_type != NLMSG_DONE {
            return None;
        }
        let body = self.body();
        let code = body
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes)
            .unwrap_or(0);
        let mut ext = None;
        if self.flags & NLM_F_ACK_TLVS != 0 {
            let tlv_start = if self.msg_type == NLMSG_DONE {
                4
            } else if self.flags & NLM_F_CAPPED != 0 {
                4 + NLMSG_HDRLEN
            } else {
                // The whole request was echoed: skip it by its length.
                let echoed = body
                    .get(4..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes)
                    .unwrap_or(0) as usize;
                4 + align4(echoed.max(NLMSG_HDRLEN))
            };
            ext = body.get(tlv_start..).and_then(ext_ack_msg);
        }
        Some((code.saturating_abs(), ext))
    }
}

/// Split a datagram into messages. Err if a header is malformed (a length
/// shorter than a header or past the end of the datagram).
pub(crate) fn frames(buf: &[u8]) -> Result<Vec<Frame<'_>>, NlError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let malformed = || NlError::Decode(format!("netlink reply: bad header at byte {off}"));
        let hdr = buf.get(off..off + NLMSG_HDRLEN).ok_or_else(malformed)?;
        let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() - off {
            return Err(malformed());
        }
        out.push(Frame {
            msg_type: u16::from_ne_bytes([hdr[4], hdr[5]]),
            flags: u16::from_ne_bytes([hdr[6], hdr[7]]),
            seq: u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]),
            bytes: &buf[off..off + len],
        });
        off += align4(len);
    }
    Ok(out)
}

/// The replies to one request, gathered datagram by datagram.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub(crate) messages: Vec<Vec<u8>>,
    pub(crate) interrupted: bool,
}

impl Reply {
    /// Take in one datagram. Some(result) once the final ACK, error or DONE
    /// for `seq` has arrived; None while more is to come.
    pub(crate) fn absorb(&mut self, buf: &[u8], seq: u32) -> Option<Result<(), NlError>> {
        let frames = match frames(buf) {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        for f in frames {
            if f.seq != seq {
                // A late reply to an earlier request we gave up on.
                continue;
            }
            if f.flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match f.msg_type {
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => {
                    return Some(Err(NlError::Os(io::Error::from_raw_os_error(
                        Errno::ENOBUFS as i32,
                    ))))
                }
                NLMSG_ERROR | NLMSG_DONE => {
                    let (errno, msg) = f.status().unwrap_or((0, None));
                    return Some(if errno == 0 {
                        Ok(())
                    } else {
                        Err(NlError::Kernel {
                            errno,
                            msg,
                            index: None,
                        })
                    });
                }
                _ => self.messages.push(f.bytes.to_vec()),
            }
        }
        None
    }
}

/// The ACKs of one batch, gathered datagram by datagram.
#[derive(Debug)]
struct BatchAcks {
    first: u32,
    acked: Vec<bool>,
    n_acked: usize,
    first_err: Option<NlError>,
}

impl BatchAcks {
    fn new(first: u32, count: usize) -> Self {
        BatchAcks {
            first,
            acked: vec![false; count],
            n_acked: 0,
            first_err: None,
        }
    }

    fn complete(&self) -> bool {
        self.n_acked == self.acked.len()
    }

    fn absorb(&mut self, buf: &[u8]) {
        // A malformed datagram cannot be ours to count; what it hid shows
        // up as missing ACKs.
        let Ok(frames) = frames(buf) else { return };
        for f in frames {
            let Some((errno, msg)) = f.status() else {
                continue;
            };
            // 0 = the envelope, 1..=count = the messages, else stale.
            let idx = f.seq.wrapping_sub(self.first.wrapping_sub(1)) as usize;
            if idx > self.acked.len() {
                continue;
            }
            if idx > 0 && !self.acked[idx - 1] {
                self.acked[idx - 1] = true;
                self.n_acked += 1;
            }
            if errno != 0 && self.first_err.is_none() {
                self.first_err = Some(NlError::Kernel {
                    errno,
                    msg,
                    index: idx.checked_sub(1),
                });
            }
        }
    }

    fn finish(self) -> Result<(), NlError> {
        match self.first_err {
            Some(e) => Err(e),
            None if self.complete() => Ok(()),
            None => Err(NlError::Incomplete {
                acked: self.n_acked,
                sent: self.acked.len(),
            }),
        }
    }
}

pub(crate) fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The NLMSGERR_ATTR_MSG string from extended-ACK attributes, if any.
fn ext_ack_msg(tlvs: &[u8]) -> Option<String> {
    let mut rest = tlvs;
    while let Some(hdr) = rest.get(..4) {
        let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
        let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & 0x3fff;
        let value = rest.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            let s = String::from_utf8_lossy(&value[..end]).trim().to_string();
            return (!s.is_empty()).then_some(s);
        }
        rest = rest.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests;
