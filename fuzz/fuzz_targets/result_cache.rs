//! Result cache files (`cniCacheV1` and legacy result-only files), and the
//! cached result converted to every version as DEL and CHECK do.
#![no_main]
use cni_runtime::cache::{parse_entry, CachedAttachment};
use cni_spec::version::SUPPORTED;
use cni_spec::CniResult;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<CachedAttachment>(data);
    if let Ok(e) = parse_entry(data, "net", "ctr", "eth0") {
        if let Some(r) = &e.result {
            for v in SUPPORTED {
                let _ = CniResult::convert(r, *v);
            }
        }
        let _ = serde_json::to_vec(&e).expect("an entry serialises");
    }
});
