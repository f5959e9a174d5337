//! Reboot: leases and cache entries whose namespaces are gone (the fake
//! host and its containers are deleted and a new one made, as a reboot
//! empties the kernel but keeps the disk) are released by GC: by
//! `cnitool gc NET` (all of them, or all but CNI_VALID_ATTACHMENTS), and
//! by the plugins' own GC (spec 1.1) for attachments no cache knows.

use integration::reliability as common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Ctr, Net};
use integration::{our_binary, FakeHost, Invocation, Netns, TempDir};
use serde_json::{json, Value};

fn cnitool(net: &Net, dir: &Path, args: &[&str], valid: Option<&str>) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", net.host.path_str()))
        .arg(our_binary("cnitool"))
        .args(args)
        .env("NETCONFPATH", dir.join("net.d"))
        .env("CNI_CACHE_DIR", dir.join("cache"))
        .env("CNI_PATH", our_binary("bridge").parent().unwrap());
    if let Some(v) = valid {
        cmd.env("CNI_VALID_ATTACHMENTS", v);
    }
    let out = cmd.output().expect("spawn cnitool");
    assert!(
        out.status.success(),
        "cnitool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cache_entries(dir: &Path) -> Vec<Value> {
    std::fs::read_dir(dir.join("cache/results"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A reboot of the fake host: its kernel state goes, the disk stays.
fn reboot(net: &mut Net) {
    net.host = FakeHost::new("reboot");
}

#[test]
fn root_reliability_gc_after_reboot_through_cnitool() {
    let mut net = Net::new("reb", "10.81.0.0/24");
    let tmp = TempDir::new("reb");
    let dir = tmp.path();
    net.write_conflist(dir);
    let nss: Vec<Netns> = (0..4).map(|_| Netns::new("rb")).collect();
    for ns in &nss {
        cnitool(&net, dir, &["add", &net.name, &ns.path_str()], None);
    }
    // One attachment made by a runtime that keeps no cache of ours.
    let direct = Ctr::new("direct");
    net.add(&direct);
    assert_eq!(net.leases().len(), 5);
    let keep = cache_entries(dir)
        .into_iter()
        .find(|e| e["netns"] == nss[0].path_str())
        .expect("cache entry");
    drop(nss);
    drop(direct);
    reboot(&mut net);

    // The runtime comes back knowing only the first container is alive.
    let valid = json!([{"containerID": keep["containerId"], "ifname": "eth0"}]).to_string();
    cnitool(&net, dir, &["gc", &net.name], Some(&valid));
    let entries = cache_entries(dir);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["containerId"], keep["containerId"]);
    let kept_ip = keep["result"]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(net.leases(), [kept_ip].into(), "only the valid lease stays");

    // Nobody is valid: everything goes.
    cnitool(&net, dir, &["gc", &net.name], None);
    assert!(cache_entries(dir).is_empty());
    assert!(net.snapshot().is_empty(), "{:?}", net.snapshot());
    eprintln!("reliability: reboot: 5 stale attachments released by cnitool gc, 1 valid kept");
}

/// Without any runtime cache: the plugin's GC (spec 1.1), as a runtime
/// sends it at start with the attachments it knows to be alive.
#[test]
fn root_reliability_plugin_gc_after_reboot() {
    let mut net = Net::new("rebp", "10.82.0.0/24");
    let ctrs: Vec<Ctr> = (0..3).map(|i| Ctr::new(&format!("p{i}"))).collect();
    let results: Vec<Value> = ctrs.iter().map(|c| net.add(c)).collect();
    let alive_id = ctrs[0].id.clone();
    let alive_ip = common::ip_of(&results[0]);
    drop(ctrs);
    reboot(&mut net);
    let gc = |valid: Value| {
        let mut c = net.conf.clone();
        c["cni.dev/valid-attachments"] = valid;
        Invocation::ours("bridge")
            .command("GC")
            .cni_path(&integration::paths::default_cni_path())
            .stdin_json(&c)
            .in_host(&net.host)
            .run()
            .expect_ok_silent();
    };
    gc(json!([{"containerID": alive_id, "ifname": "eth0"}]));
    assert_eq!(net.leases(), [alive_ip].into());
    gc(json!([]));
    assert!(net.snapshot().is_empty(), "{:?}", net.snapshot());
}
