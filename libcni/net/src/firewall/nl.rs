//! The byte layout of nf_tables messages: netlink attributes (with the
//! big-endian integers nf_tables uses throughout), message headers and the
//! `nfgenmsg` that follows them. Only encoding and decoding, no I/O, so it is
//! unit-tested without privileges.

/// `NLA_F_NESTED`: the kernel's strict parser wants nested attributes marked.
const NLA_F_NESTED: u16 = 0x8000;
/// Masks the two flag bits off an attribute type.
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLA_HDRLEN: usize = 4;
/// `struct nfgenmsg`: family, version, resource id.
pub(crate) const NFGENMSG_LEN: usize = 4;

pub(crate) const NLM_F_CREATE: u16 = 0x400;

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type,
/// and the resource id of the batch delimiters.
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 17;

use crate::transport::{align4, NLMSG_HDRLEN};

/// A sequence of attributes under construction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Attrs {
    buf: Vec<u8>,
}

impl Attrs {
    pub(crate) fn new() -> Self {
        Attrs::default()
    }

    pub(crate) fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = NLA_HDRLEN + value.len();
        // Our attributes are small by construction (names are checked,
        // comments truncated); an impossible length is clamped so the kernel
        // rejects the message rather than us panicking.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    /// A NUL-terminated string, as the kernel's NLA_STRING policies expect.
    pub(crate) fn string(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.bytes(kind, &v)
    }

    /// nf_tables integers travel in network byte order.
    pub(crate) fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }

    pub(crate) fn be64(&mut self, kind: u16, v: u64) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }

    pub(crate) fn nested(&mut self, kind: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::new();
        f(&mut inner);
        self.bytes(kind | NLA_F_NESTED, &inner.buf)
    }

    /// Append attributes encoded elsewhere (the body of a nest).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn pad(&mut self) {
        let target = align4(self.buf.len());
        self.buf.resize(target, 0);
    }
}

/// Iterates `(type, value)` over a run of attributes; stops quietly at the
/// first malformed one, so hostile or truncated input never panics.
#[derive(Debug, Clone)]
pub(crate) struct AttrIter<'a> {
    buf: &'a [u8],
}

impl<'a> AttrIter<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        AttrIter { buf }
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let hdr = self.buf.get(..NLA_HDRLEN)?;
        let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
        let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let value = &self.buf[NLA_HDRLEN..len];
        self.buf = self.buf.get(align4(len)..).unwrap_or(&[]);
        Some((kind, value))
    }
}

/// The first attribute of type `kind`.
pub(crate) fn find(buf: &[u8], kind: u16) -> Option<&[u8]> {
    AttrIter::new(buf).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// A NUL-terminated (or not) string attribute.
pub(crate) fn as_str(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

pub(crate) fn as_be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// Append one netlink message: header, `nfgenmsg`, attributes.
pub(crate) fn put_msg(
    out: &mut Vec<u8>,
    msg_type: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len32.to_ne_bytes());
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
    let target = align4(out.len());
    out.resize(target, 0);
}
