//! Go's libcni (Debian's golang-github-appc-cni-dev, the library under
//! containerd, CRI-O and podman's CNI backend) drives our plugins through
//! `integration/clients/golibcni`: AddNetworkList, CheckNetworkList,
//! DelNetworkList and the result cache, at cniVersion 0.4.0 and 1.0.0.
//! libcni parses every result with its own types, so a result it prints is
//! a result a real runtime accepts. Also: libcni's cache and our cnitool's
//! read each other.

use integration::clients as common;

use common::{container_ip, same_attachment, GoCni, Machine};
use integration::netns::unique_ifname;
use integration::paths::Binary::Ours;
use integration::state::{link_is_up, ping};
use integration::{require_root, Netns};
use serde_json::{json, Value};

const VERSIONS: [&str; 2] = ["0.4.0", "1.0.0"];

fn ours() -> GoCni {
    GoCni::new(
        "golib",
        &[
            ("bridge", Ours),
            ("macvlan", Ours),
            ("loopback", Ours),
            ("host-local", Ours),
        ],
    )
}

fn bridge_conflist(g: &GoCni, name: &str, version: &str, bridge: &str) -> Value {
    json!({
        "cniVersion": version, "name": name,
        "plugins": [{
            "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": g.ipam_dir()}
        }]
    })
}

#[test]
fn root_golibcni_loopback_add_check_del() {
    require_root();
    let machine = Machine::snapshot();
    let g = ours();
    for v in VERSIONS {
        let net = format!("lo{}", v.replace('.', ""));
        g.write_conflist(&json!({"cniVersion": v, "name": net, "plugins": [{"type": "loopback"}]}));
        let ctr = Netns::new("golo");
        assert!(!link_is_up(&ctr, "lo"));

        let out = g.go_if("add", &net, &ctr, "lo");
        common::assert_success("Go libcni AddNetworkList (loopback)", &out);
        let res: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(res["cniVersion"], v, "{res}");
        assert_eq!(res["interfaces"][0]["name"], "lo", "{res}");
        assert_eq!(res["interfaces"][0]["sandbox"], ctr.path_str(), "{res}");
        let addrs: Vec<&str> = res["ips"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["address"].as_str())
            .collect();
        assert!(addrs.contains(&"127.0.0.1/8"), "{res}");
        assert!(link_is_up(&ctr, "lo"), "ADD left lo down");

        common::assert_success("CheckNetworkList", &g.go_if("check", &net, &ctr, "lo"));
        let cached: Value =
            serde_json::from_slice(&g.go_if("cached", &net, &ctr, "lo").stdout).unwrap();
        assert!(
            same_attachment(&cached, &res),
            "cached {cached} != added {res}"
        );

        common::assert_success("DelNetworkList", &g.go_if("del", &net, &ctr, "lo"));
        assert!(!link_is_up(&ctr, "lo"), "DEL left lo up");
        common::assert_success("DelNetworkList again", &g.go_if("del", &net, &ctr, "lo"));
        assert!(
            g.leftovers(&net, &[]).is_empty(),
            "{:?}",
            g.leftovers(&net, &[])
        );
    }
    machine.assert_unchanged();
}

#[test]
fn root_golibcni_bridge_add_check_del_and_two_containers_ping() {
    require_root();
    let machine = Machine::snapshot();
    let g = ours();
    let bridge = unique_ifname("gbr");
    for v in VERSIONS {
        let net = format!("br{}", v.replace('.', ""));
        g.write_conflist(&bridge_conflist(&g, &net, v, &bridge));
        let (c1, c2) = (Netns::new("gob1"), Netns::new("gob2"));

        let r1 = g.go_add(&net, &c1);
        g.go_ok("check", &net, &c1);
        let r2 = g.go_add(&net, &c2);
        g.go_ok("check", &net, &c2);
        let ip1 = container_ip(&r1, v, &c1.path_str(), "eth0", "10.88.");
        let ip2 = container_ip(&r2, v, &c2.path_str(), "eth0", "10.88.");
        assert_ne!(ip1, ip2);
        assert_eq!(r1["ips"][0]["gateway"], "10.88.0.1", "{r1}");
        // The host side is in the result too: the bridge and the veth.
        let names: Vec<&str> = r1["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        assert!(names.contains(&bridge.as_str()), "{r1}");
        assert!(same_attachment(&g.go_cached(&net, &c1), &r1));

        assert!(ping(&c1, &ip2), "{v}: c1 cannot reach c2 at {ip2}");
        assert!(ping(&c2, &ip1), "{v}: c2 cannot reach c1 at {ip1}");
        assert!(ping(&c1, "10.88.0.1"), "{v}: c1 cannot reach its gateway");

        // A runtime CHECKs any container at any time: c1's result (with
        // the bridge's MAC in it) must still hold after c2 joined. The
        // reference bridge pins its MAC; a bridge that takes the lowest MAC
        // of its ports fails here whenever c2's veth sorts first.
        let out = g.go("check", &net, &c1);
        assert!(
            out.status.success(),
            "{v}: CheckNetworkList of c1 after c2 joined the bridge failed: {}\nc1's ADD result: {r1}\nc2's: {r2}",
            String::from_utf8_lossy(&out.stderr).trim()
        );

        g.go_ok("del", &net, &c1);
        // CHECK still holds for the other one; the first is gone.
        g.go_ok("check", &net, &c2);
        assert!(
            !g.go("check", &net, &c1).status.success(),
            "CHECK after DEL succeeded"
        );
        g.go_ok("del", &net, &c2);
        // DEL twice (no cached result any more) is fine, as the spec wants.
        g.go_ok("del", &net, &c1);
        let left = g.leftovers(&net, &[&bridge]);
        assert!(left.is_empty(), "{v}: left behind: {left:#?}");
    }
    machine.assert_unchanged();
}

#[test]
fn root_golibcni_macvlan_add_check_del_and_two_containers_ping() {
    require_root();
    let machine = Machine::snapshot();
    let g = ours();
    // The LAN: the fake host's master is one end of a veth, a peer machine
    // holds the other end at 10.77.0.254.
    let lan = Netns::new("golan");
    let master = unique_ifname("gmv");
    g.host.ip_ok(&[
        "link",
        "add",
        &master,
        "type",
        "veth",
        "peer",
        "name",
        "wire0",
        "netns",
        lan.name(),
    ]);
    g.host.link_up(&master);
    lan.ip_ok(&["addr", "add", "10.77.0.254/24", "dev", "wire0"]);
    lan.link_up("wire0");

    for v in VERSIONS {
        let net = format!("mv{}", v.replace('.', ""));
        g.write_conflist(&json!({
            "cniVersion": v, "name": net,
            "plugins": [{
                "type": "macvlan", "master": master, "mode": "bridge",
                "ipam": {"type": "host-local",
                         "ranges": [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.100",
                                      "rangeEnd": "10.77.0.199", "gateway": "10.77.0.254"}]],
                         "dataDir": g.ipam_dir()}
            }]
        }));
        let (c1, c2) = (Netns::new("gom1"), Netns::new("gom2"));
        let r1 = g.go_add(&net, &c1);
        let r2 = g.go_add(&net, &c2);
        let ip1 = container_ip(&r1, v, &c1.path_str(), "eth0", "10.77.0.1");
        let ip2 = container_ip(&r2, v, &c2.path_str(), "eth0", "10.77.0.1");
        g.go_ok("check", &net, &c1);
        g.go_ok("check", &net, &c2);
        assert!(same_attachment(&g.go_cached(&net, &c2), &r2));

        assert!(ping(&c1, &ip2), "{v}: c1 cannot reach c2 at {ip2}");
        assert!(ping(&c2, &ip1), "{v}: c2 cannot reach c1 at {ip1}");
        assert!(ping(&c1, "10.77.0.254"), "{v}: c1 cannot reach the LAN");

        g.go_ok("del", &net, &c1);
        g.go_ok("del", &net, &c2);
        g.go_ok("del", &net, &c2);
        let left = g.leftovers(&net, &[&master]);
        assert!(left.is_empty(), "{v}: left behind: {left:#?}");
        assert_eq!(
            integration::state::link_names(&c1),
            vec!["lo"],
            "DEL left a link in c1"
        );
    }
    machine.assert_unchanged();
}

#[test]
fn root_golibcni_cache_is_shared_with_our_cnitool_both_ways() {
    require_root();
    let machine = Machine::snapshot();
    let g = ours();
    let bridge = unique_ifname("gcb");
    let net = "cachenet";
    g.write_conflist(&bridge_conflist(&g, net, "1.0.0", &bridge));
    let (c1, c2) = (Netns::new("goc1"), Netns::new("goc2"));

    // Go libcni ADDs; cnitool (same container id for the same netns path,
    // same cache folder) finds the attachment: CHECK, then DEL from the
    // cached result.
    let r1 = g.go_add(net, &c1);
    let entries: Vec<_> = std::fs::read_dir(g.cache_dir().join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "Go libcni's cache holds one entry");
    g.cnitool_ok(&["check", net, &c1.path_str()]);
    g.cnitool_ok(&["del", net, &c1.path_str()]);
    assert_eq!(
        integration::state::link_names(&c1),
        vec!["lo"],
        "cnitool's DEL left eth0 in c1"
    );
    let left = g.leftovers(net, &[&bridge]);
    assert!(
        left.is_empty(),
        "after Go ADD + cnitool DEL: {left:#?} (result was {r1})"
    );
    assert!(
        !g.go("cached", net, &c1).status.success(),
        "Go still sees a cached result"
    );

    // The other way: cnitool ADDs; Go libcni reads the cached result,
    // CHECKs and DELs.
    let out = g.cnitool_ok(&["add", net, &c2.path_str()]);
    let r2: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("cnitool add: {e}: {out}"));
    let ip2 = container_ip(&r2, "1.0.0", &c2.path_str(), "eth0", "10.88.");
    let cached = g.go_cached(net, &c2);
    assert!(
        same_attachment(&cached, &r2),
        "Go reads {cached}, cnitool printed {r2}"
    );
    g.go_ok("check", net, &c2);
    assert!(ping(&g.host, &ip2), "the host cannot reach c2");
    g.go_ok("del", net, &c2);
    assert_eq!(
        integration::state::link_names(&c2),
        vec!["lo"],
        "Go's DEL left eth0 in c2"
    );
    let left = g.leftovers(net, &[&bridge]);
    assert!(left.is_empty(), "after cnitool ADD + Go DEL: {left:#?}");
    machine.assert_unchanged();
}
