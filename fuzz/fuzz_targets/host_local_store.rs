//! The files in host-local's data dir: leases, last_reserved_ip.<n>, the
//! index buckets. Input: a kind byte, then the file content.
#![no_main]
use cni_fuzz::host_local::{parse_bucket, parse_last_reserved, LeaseOwner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(o) = LeaseOwner::parse(data) {
        assert!(!o.id.is_empty() || o.ifname.is_some());
    }
    let _ = parse_last_reserved(data);
    if let Ok(entries) = parse_bucket(data) {
        let again = serde_json::to_vec(&entries).expect("entries serialise");
        assert_eq!(parse_bucket(&again).expect("round trip"), entries);
    }
});
