//! VERSION and the verb checks that need no namespace: these run without root.
//! (VERSION touches no network state, so it runs in the caller's namespace.)

use integration::{Invocation, OUR_VERSIONS};
use serde_json::json;

fn version(stdin: &[u8]) -> integration::Outcome {
    Invocation::ours("loopback")
        .command("VERSION")
        .stdin(stdin.to_vec())
        .run()
}

#[test]
fn version_lists_supported_versions() {
    let out = version(br#"{"cniVersion":"1.0.0"}"#);
    let v = out.expect_ok_json();
    assert_eq!(v["cniVersion"], "1.1.0", "{}", out.report());
    let mut got: Vec<String> = v["supportedVersions"]
        .as_array()
        .unwrap_or_else(|| panic!("no supportedVersions array:\n{}", out.report()))
        .iter()
        .map(|s| s.as_str().expect("version strings").to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = OUR_VERSIONS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{}", out.report());
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(2),
        "VERSION prints only cniVersion and supportedVersions:\n{}",
        out.report()
    );
}

#[test]
fn version_accepts_any_or_empty_stdin_config() {
    // Runtimes send `{"cniVersion": ...}`; some send the whole config, and a
    // runtime probing the plugin may send nothing useful at all.
    for stdin in [
        json!({"cniVersion": "0.3.1"}).to_string(),
        json!({"cniVersion": "1.1.0", "name": "n", "type": "loopback"}).to_string(),
        "{}".to_string(),
    ] {
        let out = version(stdin.as_bytes());
        let v = out.expect_ok_json();
        assert!(v["supportedVersions"].is_array(), "{}", out.report());
    }
}

#[test]
fn version_stdout_is_exactly_one_json_document() {
    let out = version(br#"{"cniVersion":"1.0.0"}"#);
    out.expect_ok();
    let mut docs =
        serde_json::Deserializer::from_slice(out.stdout()).into_iter::<serde_json::Value>();
    assert!(docs.next().is_some_and(|d| d.is_ok()), "{}", out.report());
    assert!(
        docs.next().is_none(),
        "more than one JSON document:\n{}",
        out.report()
    );
}

#[test]
fn missing_cni_command_is_error_4_naming_it() {
    let out = Invocation::ours("loopback")
        .stdin(br#"{"cniVersion":"1.0.0"}"#.to_vec())
        .run();
    out.expect_error(4);
    assert!(out.error_msg().contains("CNI_COMMAND"), "{}", out.report());
}

#[test]
fn unknown_cni_command_is_error_4() {
    let out = Invocation::ours("loopback")
        .command("FROB")
        .stdin(br#"{"cniVersion":"1.0.0"}"#.to_vec())
        .run();
    out.expect_error(4);
}
