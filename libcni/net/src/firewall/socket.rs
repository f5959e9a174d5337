//! One NETLINK_NETFILTER socket speaking nf_tables: transactional batches
//! with every message's ACK checked, and dumps retried when the kernel marks
//! them interrupted by a concurrent change.
//!
//! The kernel processes a batch synchronously inside `send`, so by the time
//! `send` returns every ACK is queued on our socket: we drain them without
//! blocking, and only wait (bounded) if some are still missing.

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::nl::{
    put_msg, replies, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NLMSG_DONE,
    NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};

/// Retries of a dump the kernel flagged as interrupted (as the Go plugins'
/// `netlinksafe` and our rtnetlink layer do).
const DUMP_RETRIES: usize = 5;

/// Receive buffer; bigger datagrams are detected with MSG_PEEK|MSG_TRUNC.
const RECV_BUF: usize = 64 * 1024;

/// How long to wait for a reply the kernel should already have queued.
const REPLY_TIMEOUT_SECS: libc::time_t = 5;

/// One message of a batch and, for error messages, what it does.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `NFT_MSG_*` command.
    pub(crate) cmd: u8,
    /// Protocol family of the table (NFPROTO_INET, NFPROTO_BRIDGE).
    pub(crate) family: u8,
    /// Extra netlink flags (NLM_F_CREATE...).
    pub(crate) flags: u16,
    pub(crate) attrs: Vec<u8>,
    /// "add rule inet cni_rs postrouting ..." for error messages.
    pub(crate) what: String,
}

/// Why an exchange failed, before it is turned into our error type.
#[derive(Debug)]
pub(crate) enum NfError {
    /// The kernel refused a message: which one (its `what`), the positive
    /// errno and the extended-ACK text.
    Kernel {
        what: String,
        errno: i32,
        msg: Option<String>,
    },
    Os(io::Error),
    /// A dump stayed inconsistent through all retries.
    Interrupted,
    /// The kernel acknowledged fewer messages than it was sent.
    Incomplete {
        acked: usize,
        sent: usize,
    },
}

impl From<io::Error> for NfError {
    fn from(e: io::Error) -> Self {
        NfError::Os(e)
    }
}

pub(crate) struct NfSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NfSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NfSocket").field("seq", &self.seq).finish()
    }
}

impl NfSocket {
    /// A socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // Errors then say why ("Device or resource busy" alone rarely does),
        // and echo only the header of the refused message.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        set_recv_timeout(&sock, REPLY_TIMEOUT_SECS)?;
        Ok(NfSocket {
            sock,
            seq: std::process::id().wrapping_mul(7919),
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Run `reqs` as one transaction: all of them take effect or none.
    pub(crate) fn batch(&mut self, reqs: &[Request]) -> Result<(), NfError> {
        if reqs.is_empty() {
            return Ok(());
        }
        let begin_seq = self.next_seq(reqs.len() as u32 + 2);
        let mut out = Vec::with_capacity(256 * reqs.len());
        put_msg(
            &mut out,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        for (i, r) in reqs.iter().enumerate() {
            put_msg(
                &mut out,
                (NFNL_SUBSYS_NFTABLES << 8) | u16::from(r.cmd),
                NLM_F_REQUEST | NLM_F_ACK | r.flags,
                begin_seq.wrapping_add(1 + i as u32),
                r.family,
                0,
                &r.attrs,
            );
        }
        let end_seq = begin_seq.wrapping_add(1 + reqs.len() as u32);
        put_msg(
            &mut out,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        self.sock.send(&out, 0)?;

        let mut acked = vec![false; reqs.len()];
        let mut n_acked = 0;
        let mut first_err: Option<NfError> = None;
        let mut blocking = false;
        while n_acked < reqs.len() {
            let flags = if blocking { 0 } else { libc::MSG_DONTWAIT };
            match self.recv_datagram(flags) {
                Ok(()) => {}
                Err(e) if !blocking && e.kind() == io::ErrorKind::WouldBlock => {
                    // Everything queued has been read. An error explains
                    // the missing ACKs; otherwise wait a little for them.
                    if first_err.is_some() {
                        break;
                    }
                    blocking = true;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(first_err.unwrap_or(NfError::Incomplete {
                        acked: n_acked,
                        sent: reqs.len(),
                    }));
                }
                Err(e) => return Err(NfError::Os(e)),
            }
            for r in replies(&self.buf) {
                let Some((errno, msg)) = r.error() else {
                    continue;
                };
                let idx = r.seq.wrapping_sub(begin_seq);
                if idx == 0 || idx as usize > reqs.len() {
                    // The batch as a whole (commit) failed, or a stale
                    // reply to an earlier exchange.
                    if idx == 0 && errno != 0 && first_err.is_none() {
                        first_err = Some(NfError::Kernel {
                            what: "commit nftables transaction".into(),
                            errno,
                            msg,
                        });
                    }
                    continue;
                }
                let i = idx as usize - 1;
                if !acked[i] {
                    acked[i] = true;
                    n_acked += 1;
                }
                if errno != 0 && first_err.is_none() {
                    first_err = Some(NfError::Kernel {
                        what: reqs[i].what.clone(),
                        errno,
                        msg,
                    });
                }
            }
        }
        // A commit failure is reported before the per-message ACKs; drain
        // whatever else is queued so it cannot be mistaken for success.
        while first_err.is_none() {
            match self.recv_datagram(libc::MSG_DONTWAIT) {
                Ok(()) => {
                    for r in replies(&self.buf) {
                        if let Some((errno, msg)) = r.error() {
                            if errno != 0 && r.seq.wrapping_sub(begin_seq) <= reqs.len() as u32 {
                                first_err = Some(NfError::Kernel {
                                    what: "commit nftables transaction".into(),
                                    errno,
                                    msg,
                                });
                            }
                        }
                    }
                }
                Err(_) => break,
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Dump objects of one kind (`NFT_MSG_GET*`) filtered by `attrs`;
    /// returns the attributes of each object. The kernel's own errors (a
    /// missing table or set: ENOENT) come back as `NfError::Kernel`.
    pub(crate) fn dump(
        &mut self,
        cmd: u8,
        family: u8,
        attrs: &[u8],
        what: &str,
    ) -> Result<Vec<Vec<u8>>, NfError> {
        for _ in 0..DUMP_RETRIES {
            let (objs, interrupted) = self.dump_once(cmd, family, attrs, what)?;
            if !interrupted {
                return Ok(objs);
            }
        }
        Err(NfError::Interrupted)
    }

    fn dump_once(
        &mut self,
        cmd: u8,
        family: u8,
        attrs: &[u8],
        what: &str,
    ) -> Result<(Vec<Vec<u8>>, bool), NfError> {
        let seq = self.next_seq(1);
        let mut out = Vec::with_capacity(64 + attrs.len());
        put_msg(
            &mut out,
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(cmd),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            family,
            0,
            attrs,
        );
        self.sock.send(&out, 0)?;
        let mut objs = Vec::new();
        let mut interrupted = false;
        loop {
            self.recv_datagram(0)?;
            for r in replies(&self.buf) {
                if r.seq != seq {
                    continue;
                }
                if r.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match r.msg_type {
                    NLMSG_DONE | NLMSG_ERROR => {
                        let (errno, msg) = r.error().unwrap_or((0, None));
                        if errno != 0 {
                            return Err(NfError::Kernel {
                                what: what.to_string(),
                                errno,
                                msg,
                            });
                        }
                        return Ok((objs, interrupted));
                    }
                    _ => objs.push(r.attrs().to_vec()),
                }
            }
        }
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n);
        s
    }

    /// Read one whole datagram into `self.buf`, growing the buffer when the
    /// kernel's datagram is bigger (a plain recv would truncate it).
    fn recv_datagram(&mut self, flags: libc::c_int) -> io::Result<()> {
        loop {
            self.buf.clear();
            let n = match self
                .sock
                .recv(&mut self.buf, flags | libc::MSG_PEEK | libc::MSG_TRUNC)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n > self.buf.capacity() {
                self.buf.clear();
                self.buf.reserve(n);
                continue;
            }
            self.buf.clear();
            match self.sock.recv(&mut self.buf, flags) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Bound every blocking receive: the kernel answers synchronously, so a
/// missing reply means something is wrong, not slow.
fn set_recv_timeout(sock: &Socket, secs: libc::time_t) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    // SAFETY: a valid socket fd and a timeval of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
