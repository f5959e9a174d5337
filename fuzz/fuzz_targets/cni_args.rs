//! CNI_ARGS (K=V;K2=V2), and the keys the plugins look up in it.
#![no_main]
use cni_spec::CniArgs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(a) = CniArgs::parse(&s) {
        for k in ["IP", "MAC", "IgnoreUnknown", "K8S_POD_NAME"] {
            let _ = a.get(k);
        }
        assert!(a.pairs().iter().all(|(k, _)| !k.is_empty()));
    }
});
