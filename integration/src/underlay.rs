//! Fake hosts on one L2 underlay: a bridge in a "switch" namespace with a
//! veth to each host, `192.0.2.<n+1>/24` on the host ends (`eth0`, also
//! the default route's device). Everything is removed on drop.

use crate::netns::unique_ifname;
use crate::{require_root, FakeHost, Netns};

pub struct Underlay {
    pub hosts: Vec<FakeHost>,
    /// Declared after `hosts`: dropped last, when its veths are gone.
    _switch: Netns,
}

/// Host `i`'s underlay address.
pub fn host_ip(i: usize) -> String {
    format!("192.0.2.{}", i + 1)
}

impl Underlay {
    pub fn new(n: usize, tag: &str) -> Self {
        require_root();
        let switch = Netns::new(&format!("sw{tag}"));
        switch.ip_ok(&["link", "add", "sw0", "type", "bridge"]);
        switch.link_up("sw0");
        let mut hosts = Vec::new();
        for i in 0..n {
            let h = FakeHost::new(&format!("{tag}{i}"));
            let port = unique_ifname("up");
            switch.ip_ok(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                h.name(),
            ]);
            switch.ip_ok(&["link", "set", &port, "master", "sw0", "up"]);
            h.ip_ok(&["addr", "add", &format!("{}/24", host_ip(i)), "dev", "eth0"]);
            h.link_up("eth0");
            h.ip_ok(&["route", "add", "default", "dev", "eth0"]);
            hosts.push(h);
        }
        Underlay {
            hosts,
            _switch: switch,
        }
    }

    /// Every host's underlay address (an overlay's `peers`).
    pub fn all_ips(&self) -> Vec<String> {
        (0..self.hosts.len()).map(host_ip).collect()
    }
}
