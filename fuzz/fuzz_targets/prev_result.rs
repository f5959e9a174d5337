//! prevResult / plugin results in every version, and conversion to every
//! version: what parses must render, and a rendered result must parse back
//! to the same rendering.
#![no_main]
use cni_spec::version::Version;
use cni_spec::CniResult;
use libfuzzer_sys::fuzz_target;

const ALL: [Version; 7] = [
    Version::V0_1_0,
    Version::V0_2_0,
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

fuzz_target!(|data: &[u8]| {
    let _ = CniResult::from_slice(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(r) = CniResult::from_value(&v) else {
        return;
    };
    for to in ALL {
        let Ok(out) = r.to_value(to) else {
            continue;
        };
        let back = CniResult::from_value(&out)
            .unwrap_or_else(|e| panic!("{to} rendering does not parse: {e}\n{out}"));
        let again = back
            .to_value(to)
            .unwrap_or_else(|e| panic!("{to} rendering does not render again: {e}\n{out}"));
        assert_eq!(out, again, "{to} rendering is not stable");
        let _ = CniResult::convert(&v, to);
    }
});
