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
        "host-b joined the cluster as host-b (192.0.2.2)",
        "swarm-net   overlay   swarm",
        "left the cluster",
        "has active endpoints",
        "pre-defined network and cannot be removed",
        "Deleted Networks:",
    ] {
        assert!(
            stdout.contains(want),
            "demo output lacks {want:?}:\n{stdout}"
        );
    }
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
