//! Every file in conf-examples/ must be a valid conflist whose plugins exist
//! and speak its cniVersion; and (as root) its whole chain must ADD, CHECK
//! and DEL in a fake host, as a runtime would run it.

use integration::conflist::{example_files, examples_dir, version_key, Attachment, ConfList};
use integration::paths::Binary;
use integration::{require_root, unique_id, FakeHost, Invocation, Netns, TempDir};
use serde_json::{json, Value};

/// Every example; an empty folder is a failure (the tests would check nothing).
fn load_all() -> Vec<ConfList> {
    let files = example_files();
    assert!(
        !files.is_empty(),
        "{} holds no examples: nothing would be checked",
        examples_dir().display()
    );
    files
        .iter()
        .map(|p| ConfList::load(p).unwrap_or_else(|e| panic!("{e:#}")))
        .collect()
}

fn supported_versions(bin: &std::path::Path) -> Vec<String> {
    let out = Invocation::new(bin)
        .command("VERSION")
        .stdin_json(&json!({"cniVersion": "1.0.0"}))
        .run();
    out.expect_ok_json()["supportedVersions"]
        .as_array()
        .unwrap_or_else(|| panic!("no supportedVersions:\n{}", out.report()))
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

#[test]
fn examples_are_valid_conflists_of_existing_plugins() {
    for list in load_all() {
        let file = list.path.display().to_string();
        assert!(
            list.path.extension().is_some_and(|e| e == "conflist"),
            "{file}: examples are .conflist files"
        );
        for ty in list.all_types() {
            let ours = Binary::Ours.path(&ty);
            let reference = Binary::Reference.path(&ty);
            assert!(
                ours.is_file() || reference.is_file(),
                "{file}: plugin type {ty} is neither built ({}) nor a reference plugin ({})",
                ours.display(),
                reference.display()
            );
            if ours.is_file() {
                let supported = supported_versions(&ours);
                for v in list.versions() {
                    assert!(
                        supported.contains(&v),
                        "{file}: declares cniVersion {v}, but our {ty} supports only {supported:?}"
                    );
                }
            }
        }
    }
}

/// What a plugin needs on the host before it can ADD, set up in the fake
/// host; or why the generic chain test cannot run it.
fn prepare_host(host: &FakeHost, plugin: &Value) -> Result<(), String> {
    let ty = plugin["type"].as_str().unwrap_or_default();
    if let Some(master) = plugin["master"].as_str() {
        if master.len() > 15 {
            return Err(format!("master {master} is not a valid link name"));
        }
        if integration::state::link(host, master).is_none() {
            // An Ethernet-like parent: one end of a veth pair (this kernel
            // has no dummy links); the other end stands for the LAN.
            let lan = integration::netns::unique_ifname("lan");
            host.ip_ok(&["link", "add", master, "type", "veth", "peer", "name", &lan]);
            host.link_up(master);
            host.link_up(&lan);
        }
    } else if ty == "macvlan" || ty == "ipvlan" {
        return Err(format!(
            "{ty} without `master` uses the host's default-route link"
        ));
    }
    Ok(())
}

#[test]
fn root_examples_chain_add_check_del() {
    require_root();
    let mut ran = 0;
    let mut not_exercised = Vec::new();
    for list in load_all() {
        let mut ran_of_file = 0;
        // Every version the list declares, newest (what a runtime would pick) first.
        for version in list.versions().into_iter().rev() {
            if run_chain(&list.at_version(&version)) {
                ran_of_file += 1;
            }
        }
        if ran_of_file == 0 {
            not_exercised.push(list.path.display().to_string());
        }
        ran += ran_of_file;
    }
    eprintln!("ran {ran} chain(s)");
    assert!(ran > 0, "no example chain ran");
    assert!(
        not_exercised.is_empty(),
        "examples whose chain never ran (see the skip notes above): {not_exercised:?}"
    );
}

/// ADD, CHECK (when the version has it), DEL, DEL again. False when skipped.
fn run_chain(list: &ConfList) -> bool {
    let mut list = list.clone();
    let file = format!("{} at {}", list.path.display(), list.cni_version);
    let host = FakeHost::new("ex");
    let ctr = Netns::new("cex");
    let data = TempDir::new("ipam");
    list.set_ipam_data_dir(data.path());
    // A published port for chains with a portmap, as a runtime's `-p`.
    let att = Attachment::new(&host, &ctr, &unique_id("ex"), "eth0").with_cap_arg(
        "portMappings",
        json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]),
    );

    for p in &list.plugins {
        if let Err(why) = prepare_host(&host, p) {
            eprintln!("skipping chain test of {file}: {why}");
            return false;
        }
    }
    for ty in list.all_types() {
        match att.resolve(&ty) {
            None => {
                eprintln!("skipping chain test of {file}: no binary for {ty} on CNI_PATH");
                return false;
            }
            Some(bin) => {
                let supported = supported_versions(&bin);
                if !supported.contains(&list.cni_version) {
                    eprintln!(
                        "skipping chain test of {file}: {} supports only {supported:?}",
                        bin.display()
                    );
                    return false;
                }
            }
        }
    }

    let result = att.add(&list).unwrap_or_else(|e| panic!("{file}: {e:#}"));
    assert_eq!(
        result["cniVersion"], list.cni_version,
        "{file}: the chain's result must be in the list's cniVersion: {result:#}"
    );
    let disable_check =
        list.raw["disableCheck"] == json!(true) || list.raw["disableCheck"] == "true";
    if version_key(&list.cni_version) >= (0, 4, 0) && !disable_check {
        att.check(&list, &result)
            .unwrap_or_else(|e| panic!("{file}: {e:#}"));
    }
    att.del(&list, Some(&result))
        .unwrap_or_else(|e| panic!("{file}: {e:#}"));
    // Runtimes may repeat DEL; it must still succeed.
    att.del(&list, Some(&result))
        .unwrap_or_else(|e| panic!("{file}: second DEL: {e:#}"));
    true
}
