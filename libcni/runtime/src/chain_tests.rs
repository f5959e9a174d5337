//! The chain logic against shell-script plugins that log what they were
//! asked: order, prevResult threading, cache life cycle, GC.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::conf::LoadedList;
use super::{CniConfig, RuntimeConf};
use cni_spec::{Attachment, NetConfList};

struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!("libcni-chain-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::set_permissions(root.join("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Sandbox { root };
        // Each plugin logs "<name> <verb> <container> <stdin>" and answers
        // ADD with its prevResult plus one address of its own.
        for (name, ip) in [("p1", "10.0.0.2/24"), ("p2", "10.0.0.3/24")] {
            s.script(
                name,
                &format!(
                    r#"in=$(cat)
echo "{name} $CNI_COMMAND $CNI_CONTAINERID $in" >> {log}
case "$CNI_COMMAND" in
ADD) echo '{{"cniVersion":"1.0.0","ips":[{{"address":"{ip}"}}]}}' ;;
esac"#,
                    log = s.log().display()
                ),
            );
        }
        s.script("fails", r#"cat >/dev/null; [ "$CNI_COMMAND" = ADD ] && { echo '{"code":11,"msg":"later"}'; exit 1; }; echo "fails $CNI_COMMAND" >> LOG"#.replace("LOG", &s.log().display().to_string()).as_str());
        s
    }

    fn script(&self, name: &str, body: &str) {
        let p = self.root.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.root.join("log")
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn cni(&self) -> CniConfig {
        CniConfig::new(vec![self.root.join("bin")], self.root.join("cache"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn list(v: Value) -> LoadedList {
    let bytes = serde_json::to_vec(&v).unwrap();
    LoadedList {
        list: NetConfList::from_slice(&bytes).unwrap(),
        bytes,
        source: Path::new("x").into(),
    }
}

fn rt(id: &str) -> RuntimeConf {
    RuntimeConf {
        container_id: id.into(),
        netns: Some("/var/run/netns/x".into()),
        ifname: "eth0".into(),
        ..Default::default()
    }
}

#[test]
fn add_threads_prev_result_caches_and_del_runs_in_reverse() {
    let s = Sandbox::new("add");
    let cni = s.cni();
    let l = list(
        json!({"cniVersion": "1.1.0", "name": "n1", "plugins": [{"type": "p1"}, {"type": "p2"}]}),
    );
    let res = cni.add(&l, &rt("c1")).unwrap();
    assert_eq!(res["cniVersion"], "1.1.0");
    assert_eq!(res["ips"][0]["address"], "10.0.0.3/24");
    let log = s.lines();
    assert!(log[0].starts_with("p1 ADD c1 "));
    assert!(!log[0].contains("prevResult"));
    assert!(log[1].starts_with("p2 ADD c1 "));
    assert!(
        log[1].contains(r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24"}]}"#)
    );
    let cached = cni.cache.get("n1", "c1", "eth0").unwrap().unwrap();
    assert_eq!(cached.result.unwrap(), res);

    cni.check(&l, &rt("c1")).unwrap();
    cni.del(&l, &rt("c1")).unwrap();
    let log = s.lines();
    assert!(log[4].starts_with("p2 DEL c1") && log[4].contains("prevResult"));
    assert!(log[5].starts_with("p1 DEL c1"));
    assert!(cni.cache.get("n1", "c1", "eth0").unwrap().is_none());
    // A second DEL with no cache still succeeds and runs the chain.
    cni.del(&l, &rt("c1")).unwrap();
}

#[test]
fn failed_add_is_rolled_back_and_not_cached() {
    let s = Sandbox::new("fail");
    let cni = s.cni();
    let l = list(
        json!({"cniVersion": "1.0.0", "name": "n2", "plugins": [{"type": "p1"}, {"type": "fails"}]}),
    );
    let e = cni.add(&l, &rt("c2")).unwrap_err();
    assert_eq!(e.code, 11);
    let log = s.lines();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[1].starts_with("fails DEL"));
    assert!(log[2].starts_with("p1 DEL c2"));
    assert!(cni.cache.get("n2", "c2", "eth0").unwrap().is_none());
}

#[test]
fn torn_cache_does_not_block_del() {
    let s = Sandbox::new("torn");
    let cni = s.cni();
    let l = list(json!({"cniVersion": "1.0.0", "name": "n3", "plugins": [{"type": "p1"}]}));
    cni.add(&l, &rt("c3")).unwrap();
    std::fs::write(cni.cache.path("n3", "c3", "eth0").unwrap(), "").unwrap();
    cni.del(&l, &rt("c3")).unwrap();
    assert!(!cni.cache.path("n3", "c3", "eth0").unwrap().exists());
}

#[test]
fn gc_deletes_unlisted_attachments_of_this_network_only_then_sends_gc() {
    let s = Sandbox::new("gc");
    let cni = s.cni();
    let a = list(json!({"cniVersion": "1.1.0", "name": "na", "plugins": [{"type": "p1"}]}));
    let b = list(json!({"cniVersion": "1.1.0", "name": "nb", "plugins": [{"type": "p1"}]}));
    cni.add(&a, &rt("keep")).unwrap();
    cni.add(&a, &rt("drop")).unwrap();
    cni.add(&b, &rt("other")).unwrap();
    let valid = [Attachment {
        container_id: "keep".into(),
        ifname: "eth0".into(),
    }];
    cni.gc(&a, &valid).unwrap();
    let log = s.lines();
    assert!(log.iter().any(|l| l.starts_with("p1 DEL drop")));
    assert!(!log
        .iter()
        .any(|l| l.starts_with("p1 DEL keep") || l.starts_with("p1 DEL other")));
    let gc = log.iter().find(|l| l.starts_with("p1 GC")).unwrap();
    assert!(gc.contains(r#""cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]"#));
    assert!(gc.contains(r#""cni.dev/attachments""#));
    assert!(cni.cache.get("na", "keep", "eth0").unwrap().is_some());
    assert!(cni.cache.get("na", "drop", "eth0").unwrap().is_none());
    assert!(cni.cache.get("nb", "other", "eth0").unwrap().is_some());
}
