//! containerd (Debian's `containerd` with `runc`) drives our bridge and
//! host-local: a private daemon in a sandbox inside a fake host, and
//! `ctr run --cni` of a busybox root filesystem. ctr runs the CNI chain
//! itself (containerd's go-cni over Go's libcni), from the config in
//! `/etc/cni/net.d` and the plugins in `/opt/cni/bin`, which the sandbox
//! replaces with private folders.

use integration::clients as common;

use std::path::Path;
use std::process::Command;

use common::{leftovers, need, ok, spy_calls, spy_plugin_dir, Machine, Sandbox};
use integration::netns::unique_ifname;
use integration::paths::Binary;
use integration::{require_root, unique_id, FakeHost, TempDir};
use serde_json::json;

fn containerd_toml(work: &Path) -> String {
    let w = work.display();
    format!(
        r#"version = 2
root = "{w}/root"
state = "{w}/state"
# Only what `ctr run` needs: no CRI (it would run its own CNI setup), no
# snapshotters or tracing this machine cannot use.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{w}/containerd.sock"
[ttrpc]
  address = "{w}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{w}/opt"
"#
    )
}

struct Containerd {
    sandbox: Sandbox,
    sock: String,
    /// ctr's namespace, also the cgroup its containers go under.
    ns: String,
}

impl Containerd {
    fn start(host: &FakeHost, dir: &TempDir, conf_dir: &Path, bin_dir: &Path) -> Containerd {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let toml = work.join("containerd.toml");
        std::fs::write(&toml, containerd_toml(&work)).unwrap();
        let ns = format!("cni-it-{}", std::process::id());
        let mut sandbox = Sandbox::new(host, &work, conf_dir, bin_dir);
        // runc puts ctr's containers in cgroup /<namespace>/<id>.
        sandbox.cgroups.push(ns.clone());
        let mut daemon = sandbox.command("containerd");
        daemon.arg("--config").arg(&toml);
        sandbox.spawn_daemon(daemon, &work.join("containerd.log"));
        let c = Containerd {
            sandbox,
            sock: work.join("containerd.sock").display().to_string(),
            ns,
        };
        // Readiness, not timing: the daemon answers once its socket is up.
        for _ in 0..300 {
            if c.ctr(&["version"]).status.success() {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd never answered; its log:\n{}",
            std::fs::read_to_string(work.join("containerd.log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        self.sandbox
            .command("ctr")
            .args(["--address", &self.sock, "--namespace", &self.ns])
            .args(args)
            .output()
            .expect("spawning ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        common::assert_success(&format!("ctr {args:?}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn root_containerd_ctr_run_cni_gets_an_address_from_our_bridge_and_del_leaves_nothing() {
    require_root();
    let machine = Machine::snapshot();
    need("/usr/bin/containerd", "containerd");
    need("/usr/bin/ctr", "containerd");
    need("/usr/sbin/runc", "runc");
    let version = ok(Command::new("containerd").arg("--version"));

    let host = FakeHost::new("ctrd");
    let dir = TempDir::new("ctrd");
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let spy_log = dir.join("calls.log");
    let bin_dir = spy_plugin_dir(
        &dir.join("bin"),
        &[
            ("bridge", Binary::Ours),
            ("host-local", Binary::Ours),
            ("loopback", Binary::Ours),
        ],
        &spy_log,
    );
    let rootfs = common::busybox_rootfs(dir.path());
    let bridge = unique_ifname("ctr");
    let d = Containerd::start(&host, &dir, &conf_dir, &bin_dir);
    let varlib_cni = d.sandbox.work.join("varlib/cni");

    for (i, cni_version) in ["0.4.0", "1.0.0"].into_iter().enumerate() {
        let net = format!("ctrnet{i}");
        let conflist = json!({
            "cniVersion": cni_version, "name": net,
            "plugins": [{
                "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24"}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}
            }]
        });
        // ctr loads the first config of the folder: one at a time.
        for e in std::fs::read_dir(&conf_dir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        std::fs::write(conf_dir.join("10-test.conflist"), conflist.to_string()).unwrap();
        std::fs::write(&spy_log, "").unwrap();

        let id = unique_id("ctr");
        let out = d.ctr_ok(&[
            "run",
            "--cni",
            "--rm",
            "--rootfs",
            rootfs.to_str().unwrap(),
            &id,
            "/bin/sh",
            "-c",
            "ip -4 -o addr show dev eth0 && ping -c1 -W5 10.89.0.1",
        ]);
        let ctx = format!("{version} at cniVersion {cni_version}:\n{out}");

        // The container saw an address of our bridge's subnet and reached
        // the gateway.
        assert!(
            out.contains("inet 10.89.0."),
            "no address in 10.89.0.0/24: {ctx}"
        );
        assert!(
            out.contains("1 packets received"),
            "gateway not reached: {ctx}"
        );

        // The calls ctr made: ADD with the task's netns, then (task deleted,
        // its netns gone) DEL with an empty CNI_NETNS; each plugin answered 0.
        let calls = spy_calls(&spy_log);
        let of = |p: &str, c: &str| {
            calls
                .iter()
                .filter(|x| x.plugin == p && x.command == c)
                .count()
        };
        assert_eq!(
            (of("bridge", "ADD"), of("bridge", "DEL")),
            (1, 1),
            "{calls:#?}"
        );
        assert_eq!(
            (of("host-local", "ADD"), of("host-local", "DEL")),
            (1, 1),
            "{calls:#?}"
        );
        assert!(
            calls.iter().all(|c| c.status == 0),
            "a plugin failed: {calls:#?}"
        );
        assert!(
            calls
                .iter()
                .all(|c| c.ifname == "eth0" && c.container_id == calls[0].container_id),
            "{calls:#?}"
        );
        let add = calls
            .iter()
            .find(|c| c.plugin == "bridge" && c.command == "ADD")
            .unwrap();
        assert!(
            add.netns.starts_with("/proc/") && add.netns.ends_with("/ns/net"),
            "{add:?}"
        );
        let del = calls
            .iter()
            .find(|c| c.plugin == "bridge" && c.command == "DEL")
            .unwrap();
        assert_eq!(del.netns, "", "ctr's DEL after the task is gone: {del:?}");

        // Nothing left: no container or task, no veth, no lease, no cache
        // entry, no rule of ours.
        assert_eq!(d.ctr_ok(&["containers", "ls", "-q"]).trim(), "");
        assert_eq!(d.ctr_ok(&["tasks", "ls", "-q"]).trim(), "");
        let left = leftovers(
            &host,
            &[&bridge],
            &varlib_cni.join("networks").join(&net),
            &varlib_cni,
        );
        assert!(
            left.is_empty(),
            "left behind after ctr run --rm ({ctx}): {left:#?}"
        );
    }
    drop(d);
    machine.assert_unchanged();
}
