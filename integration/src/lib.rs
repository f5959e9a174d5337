//! The end-to-end harness: fake hosts and containers as network namespaces,
//! the built plugin binaries invoked the way a runtime invokes them, and
//! helpers that read back the real kernel state inside a namespace.
//!
//! Nothing here touches the machine's root network namespace: every plugin
//! runs inside a namespace the harness created, and every namespace is
//! deleted when its handle drops (also while a test panics).

pub mod bridge_host;
pub mod clients;
pub mod cluster;
pub mod cnitool;
pub mod conflist;
pub mod etcd;
pub mod netns;
pub mod outside;
pub mod paths;
pub mod plugin;
pub mod proc;
pub mod reliability;
pub mod services;
pub mod state;
pub mod tempdir;
pub mod underlay;

pub use netns::{FakeHost, Netns, NetnsPool};
pub use paths::{our_binary, reference_binary, Binary};
pub use plugin::{Invocation, Outcome};
pub use tempdir::TempDir;

/// True when the process runs as root; namespace tests need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Call at the top of every `root_` test: fails with a clear message rather
/// than with a confusing `ip netns add` error further down.
pub fn require_root() {
    assert!(
        is_root(),
        "this test creates network namespaces and needs root; run `just test` as root, \
         or skip these tests with `cargo test -- --skip root_`"
    );
}

/// A container id unique to this process and call, valid per the spec
/// (`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
pub fn unique_id(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!(
        "it{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The loopback plugin's config as a runtime hands it over (one-plugin chain).
pub fn loopback_conf(cni_version: &str) -> serde_json::Value {
    serde_json::json!({"cniVersion": cni_version, "name": "lo-net", "type": "loopback"})
}

/// The versions our plugins advertise in VERSION.
pub const OUR_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
