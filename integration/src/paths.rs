//! Where the binaries under test live.
//!
//! Ours: `target/release/<type>` (override the folder with `CNI_BIN_DIR`).
//! The reference Go plugins: `/usr/lib/cni/<type>` (Debian's
//! containernetworking-plugins; override with `CNI_REF_DIR`).

use std::path::{Path, PathBuf};

/// Which implementation of a plugin type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {
    Ours,
    Reference,
}

impl Binary {
    pub fn label(self) -> &'static str {
        match self {
            Binary::Ours => "ours",
            Binary::Reference => "reference",
        }
    }

    /// The path of plugin `name` in this implementation (it may not exist).
    pub fn path(self, name: &str) -> PathBuf {
        match self {
            Binary::Ours => our_bin_dir().join(name),
            Binary::Reference => ref_bin_dir().join(name),
        }
    }
}

/// The workspace root (the folder holding the root Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ sits inside the workspace")
        .to_path_buf()
}

/// The folder with our release binaries.
pub fn our_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNI_BIN_DIR") {
        return PathBuf::from(dir);
    }
    profile_dir("release")
}

/// The folder with our binaries built with test-only fault injection
/// (`just build-fault`: cargo profile `fault`, feature `cni-plugin/fault`);
/// override with `CNI_FAULT_BIN_DIR`. Release binaries ignore
/// `CNI_RS_FAULT_AFTER`, so the fault suites need these.
pub fn fault_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNI_FAULT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    profile_dir("fault")
}

/// Our fault-injecting binary `name`; panics with the command that builds it.
pub fn fault_binary(name: &str) -> PathBuf {
    let p = fault_bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} not found: build the fault-injecting binaries first with `just build-fault`, \
         or point CNI_FAULT_BIN_DIR at the folder holding them",
        p.display()
    );
    p
}

/// Cargo's output folder of `profile`.
fn profile_dir(profile: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        workspace_root().join(target)
    };
    // .cargo/config.toml builds for an explicit target (static binaries), so
    // fresh builds land below the triple; `just build` also links them into
    // target/release, which may be stale after a bare `cargo build`.
    let triple = target.join(env!("BUILD_TARGET")).join(profile);
    if triple.is_dir() {
        return triple;
    }
    target.join(profile)
}

/// The folder with the reference Go plugins.
pub fn ref_bin_dir() -> PathBuf {
    std::env::var_os("CNI_REF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/cni"))
}

/// `CNI_PATH` as a runtime would set it: ours first, then the reference.
pub fn default_cni_path() -> String {
    format!("{}:{}", our_bin_dir().display(), ref_bin_dir().display())
}

/// Our binary for plugin `name`; panics with the command that builds it.
pub fn our_binary(name: &str) -> PathBuf {
    let p = Binary::Ours.path(name);
    assert!(
        p.is_file(),
        "{} not found: build it first with `cargo build --release` (or `just build`), \
         or point CNI_BIN_DIR at the folder holding it",
        p.display()
    );
    p
}

/// The reference Go binary for plugin `name`; panics with the package to install.
pub fn reference_binary(name: &str) -> PathBuf {
    let p = Binary::Reference.path(name);
    assert!(
        p.is_file(),
        "{} not found: install Debian's containernetworking-plugins (`just deps`)",
        p.display()
    );
    p
}
