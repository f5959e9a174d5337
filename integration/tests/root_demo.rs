//! `just demo` (integration/demo/demo.sh) runs clean and leaves nothing
//! behind: no namespace, no temporary folder.

use std::process::Command;

use integration::{paths, require_root};

#[test]
fn root_demo_runs_clean_and_leaves_nothing() {
    require_root();
    let script = paths::workspace_root().join("integration/demo/demo.sh");
    let before = namespaces();
    let out = Command::new("bash")
        .arg(&script)
        .env("BIN", paths::our_bin_dir())
        .output()
        .expect("run the demo");
    // cnitool's refusals go to stderr, the rest to stdout.
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo failed:\n{stdout}");
    // The story's key moments happened.
    for want in [
        "cnitool network ls",
        "64 bytes from 10.1.0.3",
        "1 packets transmitted, 0 received",
        "2 packets transmitted, 2 received",
        "has active endpoints",
        "pre-defined network and cannot be removed",
        "Deleted Networks:",
        "verify: Service converged",
        "whoami scaled to 1",
    ] {
        assert!(
            stdout.contains(want),
            "demo output lacks {want:?}:\n{stdout}"
        );
    }
    // The services act: the client by name and the outside caller each saw
    // all three tasks answer.
    for slot in 1..=3 {
        let seen = stdout.matches(&format!("whoami.{slot}.")).count();
        assert!(seen >= 2, "task {slot} answered {seen} times:\n{stdout}");
    }
    let etc_left: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("shop.") || n.starts_with("whoami."))
                .collect()
        })
        .unwrap_or_default();
    assert!(etc_left.is_empty(), "/etc/netns entries left: {etc_left:?}");
    let after = namespaces();
    let left: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

fn namespaces() -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
