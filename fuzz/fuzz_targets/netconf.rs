//! Network configs and config lists as a plugin and a runtime read them.
#![no_main]
use cni_spec::version::SUPPORTED;
use cni_spec::{NetConf, NetConfList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = NetConf::from_slice(data) {
        let _ = c.prev_result();
        let _ = c.valid_attachments();
        let _ = c.runtime_config();
        let _ = c.ipam();
        let _ = c.cni_arg("mac");
        // What a plugin re-serialises for its IPAM plugin must parse again.
        let again = NetConf::from_slice(&c.to_vec());
        assert!(
            again.is_ok(),
            "re-serialised config does not parse: {again:?}"
        );
    }
    if let Ok(l) = NetConfList::from_slice(data) {
        let _ = l.effective_version(SUPPORTED);
    }
    let _ = cni_runtime::conf::conflist_from_conf(data);
});
