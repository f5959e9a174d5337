//! `just demo` (integration/demo/demo.sh) runs clean and leaves nothing
//! behind: no namespace, no temporary folder, no resolver, no resolv.conf.

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
        // Names: by name within a network, not across, a shared alias.
        "PING api.frontend (10.1.0.3)",
        "ping: db: ",
        "PING db (10.2.0.50)",
        "resolver of demo-host-a: gone",
        "resolver of demo-host-b: gone",
        "verify: Service converged",
        "whoami scaled to 1",
        // The routing mesh: tasks on both hosts, the mesh's source address.
        "NodeID\": \"host-a",
        "NodeID\": \"host-b",
        "snat ip to 10.60.0.",
    ] {
        assert!(
            stdout.contains(want),
            "demo output lacks {want:?}:\n{stdout}"
        );
    }
    let both = ["10.1.0.2 10.1.0.3", "10.1.0.3 10.1.0.2"];
    assert!(
        stdout.lines().any(|l| both.contains(&l.trim())),
        "the shared alias did not answer with both:\n{stdout}"
    );
    for s in ["web", "api", "db", "printer", "ovl-a", "ovl-b"] {
        let dir = format!("/etc/netns/{s}");
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    }
    assert_eq!(
        demo_resolvers(),
        Vec::<u32>::new(),
        "resolvers left running"
    );
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

/// Our cni-rs-daemon processes serving a demo folder (/tmp/cni-demo.*).
fn demo_resolvers() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            // This workspace's daemon: other checkouts may run demos too.
            if !exe.starts_with(paths::workspace_root()) || !exe.ends_with("cni-rs-daemon") {
                return None;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|kv| kv.starts_with(b"CNI_RS_DNS_DIR=/tmp/cni-demo."))
                .then_some(pid)
        })
        .collect()
}
