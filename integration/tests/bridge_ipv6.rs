//! The bridge plugin on dual-stack networks: both families in the result and
//! on the links, the gateway usable at once, DAD only when asked for.
//!
//! Each test runs the plugins inside a fake host namespace of its own (never
//! the machine's), with its own IPAM data dir; all tests need root. The
//! shared test host is `integration::bridge_host`.

use integration::bridge_host::*;
use integration::state::{addr_cidrs, ping};
use serde_json::json;

#[test]
fn root_bridge_dual_stack_and_dad() {
    let h = Host::new("v6");
    let net = h.net_name("");
    let ipam = |_: ()| {
        json!({"type": "host-local", "dataDir": h.data.path(),
        "ranges": [[{"subnet": "10.54.0.0/24"}], [{"subnet": "fd00:54::/64"}]]})
    };
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "br6",
                      "isGateway": true, "ipam": ipam(())});
    let c = h.ctr("six");
    let r = h.add(&c, &conf);
    assert_eq!(r["ips"].as_array().map(Vec::len), Some(2), "{r:#}");
    assert_eq!(
        c.ns.sysctl("net.ipv6.conf.eth0.accept_dad"),
        "0",
        "DAD off by default"
    );
    assert!(addr_cidrs(&h.host, "br6").contains(&"fd00:54::1/64".to_string()));
    assert_eq!(h.host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert!(ping(&c.ns, "fd00:54::1"), "ping6 gateway");
    assert!(ping(&c.ns, "10.54.0.1"));
    h.del(&c, &conf, &r);

    let mut dad = conf.clone();
    dad["enabledad"] = json!(true);
    let r = h.add(&c, &dad);
    assert_ne!(
        c.ns.sysctl("net.ipv6.conf.eth0.accept_dad"),
        "0",
        "enabledad keeps DAD on"
    );
    let tentative =
        c.ns.ip_ok(&["-6", "addr", "show", "dev", "eth0", "tentative"]);
    assert!(
        tentative.trim().is_empty(),
        "ADD returned before DAD finished: {tentative}"
    );
    h.del(&c, &dad, &r);
    h.assert_clean(&net);
}

/// The bridge's IPv6 gateway address is ours and unique by construction, so
/// it is added without duplicate address detection: never tentative, it
/// answers the container's very first ping (with DAD it would stay silent
/// for about 2 s).
#[test]
fn root_bridge_ipv6_gateway_answers_first_ping() {
    let h = Host::new("gw6");
    let net = h.net_name("");
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "brg6",
                      "isGateway": true,
                      "ipam": {"type": "host-local", "dataDir": h.data.path(),
                               "ranges": [[{"subnet": "10.55.0.0/24"}], [{"subnet": "fd00:55::/64"}]]}});
    let c = h.ctr("g6");
    let r = h.add(&c, &conf);

    let addrs = h.host.ip_ok(&["-6", "addr", "show", "dev", "brg6"]);
    let gw_line = addrs
        .lines()
        .find(|l| l.contains("inet6 fd00:55::1/64"))
        .unwrap_or_else(|| panic!("no gateway address on brg6: {addrs}"));
    assert!(
        !gw_line.contains("tentative"),
        "the gateway address is in DAD: {gw_line}"
    );
    // One echo request (-c1), one second to answer (-W1), no retry.
    assert!(
        ping(&c.ns, "fd00:55::1"),
        "the first ping -6 to the gateway went unanswered"
    );

    h.del(&c, &conf, &r);
    h.assert_clean(&net);
}
