//! nf_tables messages over the shared [`crate::transport`]: transactional
//! batches with every message's ACK checked, and dumps (retried by the
//! transport when the kernel marks them interrupted).

use std::io;

use super::nl::{
    put_msg, NFGENMSG_LEN, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES,
};
use crate::transport::{
    NlError, Protocol, Transport, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use cni_spec::error::Error;

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

/// One NETLINK_NETFILTER socket, bound to the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct NfSocket {
    transport: Transport,
}

impl NfSocket {
    /// A socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        Ok(NfSocket {
            transport: Transport::open(Protocol::Netfilter)?,
        })
    }

    /// Run `reqs` as one transaction: all of them take effect or none. A
    /// refusal names the refused request (its `what`).
    pub(crate) fn batch(&mut self, reqs: &[Request]) -> Result<(), Error> {
        if reqs.is_empty() {
            return Ok(());
        }
        let begin_seq = self.transport.reserve_seq(reqs.len() as u32 + 2);
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
        put_msg(
            &mut out,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            begin_seq.wrapping_add(1 + reqs.len() as u32),
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        self.transport
            .batch(&out, begin_seq.wrapping_add(1), reqs.len())
            .map_err(|e| batch_error(e, reqs))
    }

    /// Dump objects of one kind (`NFT_MSG_GET*`) filtered by `attrs`;
    /// returns the attributes of each object. The kernel's own errors (a
    /// missing table or set: ENOENT) come back as `NlError::Kernel`.
    pub(crate) fn dump(
        &mut self,
        cmd: u8,
        family: u8,
        attrs: &[u8],
    ) -> Result<Vec<Vec<u8>>, NlError> {
        let replies = self.transport.request(true, |seq| {
            let mut out = Vec::with_capacity(64 + attrs.len());
            put_msg(
                &mut out,
                (NFNL_SUBSYS_NFTABLES << 8) | u16::from(cmd),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
                seq,
                family,
                0,
                attrs,
            );
            out
        })?;
        // Each reply is a whole message: header, `nfgenmsg`, attributes.
        Ok(replies
            .iter()
            .map(|m| m.get(NLMSG_HDRLEN + NFGENMSG_LEN..).unwrap_or(&[]).to_vec())
            .collect())
    }
}

/// A failed batch as our error, naming the refused request (its `what`) or
/// the commit of the transaction as a whole.
pub(crate) fn batch_error(e: NlError, reqs: &[Request]) -> Error {
    let what = match &e {
        NlError::Kernel { index: Some(i), .. } => {
            reqs.get(*i).map_or("nftables transaction", |r| &r.what)
        }
        NlError::Kernel { index: None, .. } => "commit nftables transaction",
        _ => "nftables transaction",
    };
    e.into_error(format_args!("nftables: {what}"))
}
