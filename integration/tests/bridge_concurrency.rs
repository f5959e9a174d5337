//! The bridge plugin under concurrent ADDs and DELs on a fresh host: unique
//! addresses, one gateway address, shared rules made once.
//!
//! Each test runs the plugins inside a fake host namespace of its own (never
//! the machine's), with its own IPAM data dir; all tests need root. The
//! shared test host is `integration::bridge_host`.

use integration::bridge_host::*;
use integration::state::{addr_cidrs, ping};
use serde_json::{json, Value};

#[test]
fn root_bridge_concurrent_adds_on_fresh_host() {
    let h = Host::new("par");
    let net = h.net_name("");
    let conf = h.conf(
        &net,
        "brp",
        "10.65.0.0/24",
        json!({"isGateway": true, "ipMasq": true}),
    );
    let ctrs: Vec<Ctr> = (0..8).map(|i| h.ctr(&format!("p{i}"))).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = ctrs
            .iter()
            .map(|c| s.spawn(|| h.call("ADD", c, &conf)))
            .collect();
        hs.into_iter()
            .map(|j| j.join().unwrap().expect_ok_json())
            .collect()
    });
    let mut ips: Vec<String> = results.iter().map(ip_of).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8, "addresses must be unique");
    assert_eq!(h.our_veths().len(), 8);
    assert_eq!(
        addr_cidrs(&h.host, "brp")
            .iter()
            .filter(|a| a.as_str() == "10.65.0.1/24")
            .count(),
        1
    );
    assert_eq!(
        h.our_rule_comments().len(),
        3,
        "shared rules made once: {:?}",
        h.our_rule_comments()
    );
    for c in &ctrs {
        assert!(ping(&c.ns, "10.65.0.1"));
    }
    std::thread::scope(|s| {
        for (c, r) in ctrs.iter().zip(&results) {
            let conf = &conf;
            let h = &h;
            s.spawn(move || h.del(c, conf, r));
        }
    });
    h.assert_clean(&net);
}
