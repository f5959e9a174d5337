//! rtnetlink messages over the shared [`crate::transport`]: serialise a
//! request with `netlink-packet-route`, decode the replies. Sequence numbers,
//! ACKs, dumps and their retries are the transport's.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP};
use netlink_packet_route::RouteNetlinkMessage;

use crate::transport::{NlError, Protocol, Transport, NLM_F_ACK, NLM_F_REQUEST};

/// One NETLINK_ROUTE socket, bound to the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct NlSocket {
    transport: Transport,
}

impl NlSocket {
    pub(crate) fn open() -> std::io::Result<Self> {
        Ok(NlSocket {
            transport: Transport::open(Protocol::Route)?,
        })
    }

    /// Send one request and return the messages answering it. NLM_F_REQUEST
    /// and NLM_F_ACK are always set; `flags` adds NLM_F_DUMP, NLM_F_CREATE...
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let replies = self
            .transport
            .request(dump, |seq| encode(msg.clone(), flags, seq))?;
        replies.iter().map(|bytes| decode(bytes)).collect()
    }

    /// Send a dump request and hand the replies to `found` as they arrive,
    /// until it says true (see [`Transport::dump_until`]): the socket is
    /// then in the middle of the dump, and the caller drops it.
    pub(crate) fn dump_until(
        mut self,
        msg: RouteNetlinkMessage,
        mut found: impl FnMut(&RouteNetlinkMessage) -> bool,
    ) -> Result<bool, NlError> {
        self.transport.dump_until(
            |seq| encode(msg.clone(), NLM_F_DUMP, seq),
            |bytes| decode(bytes).map(|m| found(&m)),
        )
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

/// One reply message of the transport as an rtnetlink message.
fn decode(bytes: &[u8]) -> Result<RouteNetlinkMessage, NlError> {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
        Ok(NetlinkMessage {
            payload: NetlinkPayload::InnerMessage(m),
            ..
        }) => Ok(m),
        Ok(other) => Err(NlError::Decode(format!(
            "netlink reply: unexpected message type {}",
            other.header.message_type
        ))),
        Err(e) => Err(NlError::Decode(format!("netlink reply: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkBuffer, NLM_F_MULTIPART};
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

    #[test]
    fn decode_round_trips_and_rejects_truncation() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        let mut bytes = encode(RouteNetlinkMessage::NewLink(l), NLM_F_MULTIPART, 1);
        match decode(&bytes) {
            Ok(RouteNetlinkMessage::NewLink(l)) => assert_eq!(l.header.index, 7),
            other => panic!("unexpected {other:?}"),
        }
        // A header that claims only part of the link header.
        bytes.truncate(20);
        bytes[0] = 20;
        assert!(matches!(decode(&bytes), Err(NlError::Decode(_))));
    }
}
