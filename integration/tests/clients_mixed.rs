//! Chains mixing our plugins and the reference Go plugins (Debian's
//! containernetworking-plugins) in both directions, run by Go's libcni: our
//! host-local under the reference bridge, the reference host-local under our
//! bridge, and the reference chained plugins (tuning, portmap) after our
//! bridge, each reading the other's results (prevResult) and leases.

use integration::clients as common;

use common::{container_ip, GoCni, Machine};
use integration::netns::unique_ifname;
use integration::paths::Binary::{self, Ours, Reference};
use integration::state::ping;
use integration::{require_root, Netns};
use serde_json::{json, Value};

/// ADD two containers at each version, CHECK, ping, look at the leases the
/// IPAM plugin wrote, DEL; nothing may be left.
fn run_chain(bridge_impl: Binary, ipam_impl: Binary, extra: &[Value]) {
    require_root();
    let machine = Machine::snapshot();
    let g = GoCni::new(
        "mix",
        &[
            ("bridge", bridge_impl),
            ("host-local", ipam_impl),
            ("tuning", Reference),
            ("portmap", Reference),
        ],
    );
    let bridge = unique_ifname("mbr");
    let what = format!(
        "{} bridge + {} host-local",
        bridge_impl.label(),
        ipam_impl.label()
    );
    for v in ["0.4.0", "1.0.0"] {
        let net = format!("mix{}", v.replace('.', ""));
        let mut plugins = vec![json!({
            "type": "bridge", "bridge": bridge, "isGateway": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.66.0.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": g.ipam_dir()}
        })];
        plugins.extend_from_slice(extra);
        g.write_conflist(&json!({"cniVersion": v, "name": net, "plugins": plugins}));
        let (c1, c2) = (Netns::new("mix1"), Netns::new("mix2"));

        // Each CHECKed right after its ADD, and again once both are in.
        let r1 = g.go_add(&net, &c1);
        g.go_ok("check", &net, &c1);
        let r2 = g.go_add(&net, &c2);
        g.go_ok("check", &net, &c2);
        let ip1 = container_ip(&r1, v, &c1.path_str(), "eth0", "10.66.0.");
        let ip2 = container_ip(&r2, v, &c2.path_str(), "eth0", "10.66.0.");
        // The lease file format is shared: whichever host-local wrote it,
        // it is named by the address and holds the container id and ifname.
        let lease = std::fs::read_to_string(g.ipam_dir().join(&net).join(&ip1))
            .unwrap_or_else(|e| panic!("{what} {v}: no lease file for {ip1}: {e}"));
        let mut lines = lease.lines();
        assert!(
            lines.next().is_some_and(|id| id.starts_with("cnitool-")),
            "{what}: lease {lease:?}"
        );
        assert_eq!(lines.next(), Some("eth0"), "{what}: lease {lease:?}");

        assert!(ping(&c1, &ip2), "{what} {v}: c1 cannot reach c2");
        assert!(
            ping(&c2, "10.66.0.1"),
            "{what} {v}: c2 cannot reach the gateway"
        );
        g.go_ok("check", &net, &c1);

        g.go_ok("del", &net, &c1);
        g.go_ok("del", &net, &c2);
        let left = g.leftovers(&net, &[&bridge]);
        assert!(left.is_empty(), "{what} {v}: left behind: {left:#?}");
    }
    machine.assert_unchanged();
}

#[test]
fn root_mixed_our_host_local_under_the_reference_bridge() {
    run_chain(Reference, Ours, &[]);
}

#[test]
fn root_mixed_reference_host_local_under_our_bridge() {
    run_chain(Ours, Reference, &[]);
}

#[test]
fn root_mixed_reference_tuning_and_portmap_chained_after_our_bridge() {
    run_chain(
        Ours,
        Ours,
        &[
            json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}),
            json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ],
    );
}
