//! A table of bad invocations and the CNI error each must produce. Every
//! case runs the real binary in a fake host with a real container namespace
//! beside it, so a plugin that wrongly goes ahead would act on a namespace
//! we own (and the test checks it did not: lo stays down).

use integration::state::link_is_up;
use integration::{loopback_conf, require_root, unique_id, FakeHost, Invocation, Netns, TempDir};
use serde_json::{json, Value};

enum Expect {
    /// Exit 1, error JSON with this code, and (if given) `msg` containing this.
    Code(u64, Option<&'static str>),
    /// Exit 1 and a valid error JSON, any code.
    AnyError,
}

struct Case {
    name: String,
    /// Starts as a complete valid ADD; the case edits it.
    edit: Box<dyn Fn(Invocation) -> Invocation>,
    expect: Expect,
}

fn case(
    name: impl Into<String>,
    expect: Expect,
    edit: impl Fn(Invocation) -> Invocation + 'static,
) -> Case {
    Case {
        name: name.into(),
        edit: Box::new(edit),
        expect,
    }
}

fn conf_without(key: &str) -> Value {
    let mut c = loopback_conf("1.0.0");
    c.as_object_mut().expect("object").remove(key);
    c
}

#[test]
fn root_bad_inputs_give_the_spec_error_codes() {
    require_root();
    let host = FakeHost::new("bad");
    let ctr = Netns::new("cbad");
    let tmp = TempDir::new("bad");
    let regular_file = tmp.join("not-a-netns");
    std::fs::write(&regular_file, b"").expect("creating a regular file");
    let regular_file = regular_file.to_string_lossy().into_owned();

    let mut cases = vec![
        case(
            "missing CNI_COMMAND",
            Expect::Code(4, Some("CNI_COMMAND")),
            |i| i.unset("CNI_COMMAND"),
        ),
        case("unknown CNI_COMMAND", Expect::Code(4, None), |i| {
            i.command("ATTACH")
        }),
        case("lower-case CNI_COMMAND", Expect::Code(4, None), |i| {
            i.command("add")
        }),
        case(
            "ADD without CNI_CONTAINERID",
            Expect::Code(4, Some("CNI_CONTAINERID")),
            |i| i.unset("CNI_CONTAINERID"),
        ),
        case(
            "ADD without CNI_NETNS",
            Expect::Code(4, Some("CNI_NETNS")),
            |i| i.unset("CNI_NETNS"),
        ),
        case(
            "ADD without CNI_IFNAME",
            Expect::Code(4, Some("CNI_IFNAME")),
            |i| i.unset("CNI_IFNAME"),
        ),
        case("stdin not JSON", Expect::Code(6, None), |i| {
            i.stdin(b"not json".to_vec())
        }),
        case("stdin empty", Expect::Code(6, None), |i| {
            i.stdin(Vec::new())
        }),
        case("stdin a JSON array", Expect::Code(6, None), |i| {
            i.stdin(b"[1,2]".to_vec())
        }),
        case("cniVersion 9.9.9", Expect::Code(1, None), |i| {
            let mut c = loopback_conf("9.9.9");
            c["cniVersion"] = json!("9.9.9");
            i.stdin_json(&c)
        }),
        case("config without name", Expect::Code(7, None), |i| {
            i.stdin_json(&conf_without("name"))
        }),
        case("config without type", Expect::Code(7, None), |i| {
            i.stdin_json(&conf_without("type"))
        }),
        case("network name a/b", Expect::Code(7, None), |i| {
            let mut c = loopback_conf("1.0.0");
            c["name"] = json!("a/b");
            i.stdin_json(&c)
        }),
        case("CNI_NETNS does not exist", Expect::AnyError, |i| {
            i.netns("/var/run/netns/cni-it-no-such-namespace")
        }),
    ];
    let own = host.path_str();
    cases.push(case(
        "CNI_NETNS is the plugin's own namespace",
        Expect::Code(8, None),
        move |i| i.netns(&own),
    ));
    let rf = regular_file.clone();
    cases.push(case(
        "CNI_NETNS is a regular file",
        Expect::AnyError,
        move |i| i.netns(&rf),
    ));
    for id in ["a/b", "../x", "-x", "", "a b", ".x", "x:y"] {
        cases.push(case(
            format!("CNI_CONTAINERID {id:?}"),
            Expect::Code(4, None),
            move |i| i.container_id(id),
        ));
    }
    for ifname in ["abcdefghijklmnop", "a/b", "a:b", "a b", ".", "..", ""] {
        cases.push(case(
            format!("CNI_IFNAME {ifname:?}"),
            Expect::Code(4, None),
            move |i| i.ifname(ifname),
        ));
    }

    let cid = unique_id("bad");
    let mut failures = Vec::new();
    for c in &cases {
        let inv = Invocation::ours("loopback").cni(
            "ADD",
            &host,
            &cid,
            &ctr.path_str(),
            "lo",
            &loopback_conf("1.0.0"),
        );
        let inv = (c.edit)(inv);
        let out = inv.run();
        let res = match c.expect {
            Expect::Code(code, needle) => out.check_error(code).and_then(|v| match needle {
                Some(n) if !v["msg"].as_str().unwrap_or_default().contains(n) => {
                    Err(format!("msg should name {n}:\n{}", out.report()))
                }
                _ => Ok(()),
            }),
            Expect::AnyError => out.check_any_error().map(|_| ()),
        };
        if let Err(e) = res {
            failures.push(format!("--- {}: {e}", c.name));
        }
    }
    if link_is_up(&ctr, "lo") {
        failures.push(
            "--- afterwards: a rejected ADD changed the container namespace (lo is UP)".into(),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad-input checks failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
