//! `cnitool` run inside a fake host with private directories (configs,
//! result cache, leases, resolver state), for tests, the benchmark and the
//! demo that drive Docker's commands end to end.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::netns::Netns;
use crate::paths::our_binary;
use crate::tempdir::TempDir;

/// Where one fake host's cnitool keeps its state.
pub struct CnitoolEnv {
    pub dir: TempDir,
}

impl CnitoolEnv {
    pub fn new(tag: &str) -> CnitoolEnv {
        CnitoolEnv {
            dir: TempDir::new(tag),
        }
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }

    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }

    pub fn dns_dir(&self) -> PathBuf {
        self.dir.join("dns")
    }

    /// `cnitool ARGS` in `host`'s network namespace only (nsenter keeps
    /// the mount namespace, so sandboxes under /var/run/netns stay visible).
    pub fn command(&self, host: &Netns, args: &[&str]) -> Command {
        let bin = our_binary("cnitool");
        let bin_dir = bin.parent().map(PathBuf::from).unwrap_or_default();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", host.path_str()))
            .arg(bin)
            .args(args)
            .env("NETCONFPATH", self.conf_dir())
            .env("CNI_CACHE_DIR", self.cache_dir())
            .env("CNI_IPAM_DATA_DIR", self.ipam_dir())
            .env("CNI_RS_DNS_DIR", self.dns_dir())
            .env("CNI_PATH", format!("{}:/usr/lib/cni", bin_dir.display()));
        c
    }

    pub fn run(&self, host: &Netns, args: &[&str]) -> Output {
        self.command(host, args).output().expect("spawn cnitool")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, host: &Netns, args: &[&str]) -> String {
        let out = self.run(host, args);
        assert!(
            out.status.success(),
            "cnitool {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, host: &Netns, args: &[&str]) -> String {
        let out = self.run(host, args);
        assert!(
            !out.status.success(),
            "cnitool {args:?} should fail but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The named namespaces whose name starts with `prefix` (a service's
/// tasks are `NAME.<slot>.<id>`).
pub fn named_netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Remove named namespaces (test cleanup; errors ignored).
pub fn delete_named_netns(names: &[String]) {
    for n in names {
        let _ = Command::new("ip").args(["netns", "del", n]).output();
    }
}
