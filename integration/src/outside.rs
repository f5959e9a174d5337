//! The world outside a fake host: a namespace on a veth into it, with an
//! address of each family on both ends, for traffic that reaches the host
//! from elsewhere (a published port, say). Removed on drop (the veth goes
//! with the outside namespace).

use crate::Netns;

/// The host's end of the veth, inside the fake host.
pub const HOST_IF: &str = "out0";
/// The host's and the outside's addresses (TEST-NET-1, documentation IPv6).
pub const HOST_ADDR: &str = "192.0.2.1";
pub const OUTSIDE_ADDR: &str = "192.0.2.2";
pub const HOST_ADDR6: &str = "2001:db8:2::1";
pub const OUTSIDE_ADDR6: &str = "2001:db8:2::2";

pub struct Outside {
    ns: Netns,
}

impl Outside {
    /// The outside namespace (named after `tag`), wired to `host`.
    pub fn new(host: &Netns, tag: &str) -> Outside {
        let ns = Netns::new(tag);
        host.ip_ok(&[
            "link",
            "add",
            HOST_IF,
            "type",
            "veth",
            "peer",
            "name",
            "out1",
            "netns",
            ns.name(),
        ]);
        // Both ends are ours: no duplicate address detection to wait for.
        for (side, dev, v4, v6) in [
            (host, HOST_IF, HOST_ADDR, HOST_ADDR6),
            (&ns, "out1", OUTSIDE_ADDR, OUTSIDE_ADDR6),
        ] {
            side.ip_ok(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            side.ip_ok(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            side.link_up(dev);
        }
        ns.link_up("lo");
        Outside { ns }
    }
}

impl std::ops::Deref for Outside {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}
