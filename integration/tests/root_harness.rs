//! The harness itself: namespaces really appear and disappear, plugins run
//! inside the fake host, state readers and reachability helpers work. Uses
//! only iproute2 and the kernel, no plugin of ours.

use integration::netns::unique_ifname;
use integration::state::{
    addr_cidrs, ipv4_cidrs, link, link_is_up, nft_tables, ping, tcp_exchange,
};
use integration::{require_root, FakeHost, Invocation, Netns};

fn root_ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .expect("reading root ip_forward")
        .trim()
        .to_string()
}

#[test]
fn root_netns_is_created_and_removed_on_drop() {
    require_root();
    let ns = Netns::new("life");
    let path = ns.path();
    assert!(path.exists());
    assert!(
        ns.name().len() <= 40,
        "netns names stay short: {}",
        ns.name()
    );
    drop(ns);
    assert!(!path.exists(), "{} survived drop", path.display());
}

#[test]
fn root_netns_is_removed_when_a_test_panics() {
    require_root();
    let mut seen = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = Netns::new("panic");
        seen = Some(ns.path());
        panic!("boom");
    }));
    assert!(r.is_err());
    let p = seen.expect("namespace was created");
    assert!(!p.exists(), "{} survived a panic", p.display());
}

#[test]
fn root_fake_host_has_lo_up_and_keeps_the_root_namespace_untouched() {
    require_root();
    let before = root_ip_forward();
    let host = FakeHost::new("fwd");
    assert!(link_is_up(&host, "lo"));
    assert!(
        !host.ip_forward(),
        "a fresh namespace starts with ip_forward=0"
    );
    host.set_ip_forward(true);
    assert!(host.ip_forward());
    assert_eq!(
        root_ip_forward(),
        before,
        "setting ip_forward in a fake host leaked to the root namespace"
    );
}

#[test]
fn root_plugin_runs_inside_the_fake_host() {
    require_root();
    let host = FakeHost::new("inside");
    let marker = unique_ifname("mk");
    // (This kernel has no dummy links; a bridge serves as a marker.)
    host.ip_ok(&["link", "add", &marker, "type", "bridge"]);
    // A stand-in "plugin" that looks for the marker link: it must see the
    // fake host's links; the root namespace must not have the marker.
    let out = Invocation::new("/bin/sh")
        .env("MARK", &marker)
        .stdin(b"ip -o link show dev \"$MARK\"".to_vec())
        .in_host(&host)
        .run();
    out.expect_ok();
    assert!(out.stdout_str().contains(&marker), "{}", out.report());
    assert!(link(&host, &marker).is_some());
    let root = std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", &marker])
        .output()
        .expect("running ip");
    assert!(
        !root.status.success(),
        "the marker link leaked into the root namespace"
    );
}

#[test]
fn root_env_is_exactly_what_the_invocation_sets() {
    require_root();
    let host = FakeHost::new("env");
    let out = Invocation::new("/usr/bin/env")
        .command("ADD")
        .ifname("eth0")
        .in_host(&host)
        .run();
    out.expect_ok();
    let s = out.stdout_str();
    assert!(
        s.contains("CNI_COMMAND=ADD") && s.contains("CNI_IFNAME=eth0"),
        "{s}"
    );
    assert!(
        !s.contains("CNI_NETNS") && !s.contains("CNI_CONTAINERID"),
        "{s}"
    );
}

#[test]
fn root_unique_ifnames_fit_ifnamsiz() {
    let a = unique_ifname("veth");
    let b = unique_ifname("veth");
    assert_ne!(a, b);
    assert!(a.len() <= 15 && b.len() <= 15);
}

#[test]
fn root_veth_pair_between_namespaces_carries_ping_and_tcp() {
    require_root();
    let a = Netns::new("pa");
    let b = Netns::new("pb");
    let (va, vb) = (unique_ifname("va"), unique_ifname("vb"));
    a.ip_ok(&[
        "link",
        "add",
        &va,
        "type",
        "veth",
        "peer",
        "name",
        &vb,
        "netns",
        b.name(),
    ]);
    a.ip_ok(&["addr", "add", "10.199.0.1/30", "dev", &va]);
    b.ip_ok(&["addr", "add", "10.199.0.2/30", "dev", &vb]);
    a.link_up(&va);
    b.link_up(&vb);
    assert_eq!(ipv4_cidrs(&a, &va), vec!["10.199.0.1/30"]);
    assert!(addr_cidrs(&a, &va).contains(&"10.199.0.1/30".to_string()));
    assert!(ping(&a, "10.199.0.2"), "ping a -> b");
    tcp_exchange(&b, &a, "10.199.0.2", 8080).expect("tcp a -> b");
    assert!(
        !ping(&a, "10.199.0.9"),
        "ping to an absent address must fail"
    );
}

#[test]
fn root_nft_ruleset_is_read_per_namespace() {
    require_root();
    let ns = Netns::new("nft");
    assert!(
        nft_tables(&ns).is_empty(),
        "a fresh namespace has no nftables tables"
    );
    ns.exec_ok(&["nft", "add", "table", "inet", "cni_it_test"]);
    assert_eq!(
        nft_tables(&ns),
        vec![("inet".to_string(), "cni_it_test".to_string())]
    );
}
