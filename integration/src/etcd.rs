//! etcd (Debian's `etcd-server`) for the cluster tests: one or three
//! members, each inside a fake host and listening only on that host's
//! underlay address, data in a temporary folder. Killed and removed on
//! drop; never on the machine's own network.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{unique_id, Netns, TempDir};

struct Member {
    child: Option<Child>,
    ns_path: String,
    addr: String,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    _dir: TempDir,
}

impl EtcdCluster {
    /// One member per `(host, underlay address)`; waits until the cluster
    /// answers.
    pub fn start(hosts: &[(&Netns, String)]) -> Self {
        let dir = TempDir::new("etcd");
        let token = unique_id("etcd");
        let initial: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, (_, ip))| format!("m{i}=http://{ip}:2380"))
            .collect();
        let mut members = Vec::new();
        for (i, (ns, ip)) in hosts.iter().enumerate() {
            let data = dir.join(format!("m{i}"));
            let log = std::fs::File::create(dir.join(format!("m{i}.log"))).expect("etcd log");
            let child = Command::new("nsenter")
                .arg(format!("--net={}", ns.path_str()))
                .arg("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &format!("http://{ip}:2379")])
                .args(["--advertise-client-urls", &format!("http://{ip}:2379")])
                .args(["--listen-peer-urls", &format!("http://{ip}:2380")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://{ip}:2380"),
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn etcd (install etcd-server: just deps-clients)");
            members.push(Member {
                child: Some(child),
                ns_path: ns.path_str(),
                addr: ip.clone(),
            });
        }
        let c = EtcdCluster { members, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.healthy() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// `etcd://a:2379,b:2379` for `cnitool cluster init --store`.
    pub fn store_url(&self) -> String {
        let eps: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:2379", m.addr))
            .collect();
        format!("etcd://{}", eps.join(","))
    }

    fn endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://{}:2379", m.addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let m = self
            .members
            .iter()
            .find(|m| m.child.is_some())
            .expect("a live etcd member");
        Command::new("nsenter")
            .arg(format!("--net={}", m.ns_path))
            .arg("etcdctl")
            .args(["--endpoints", &self.endpoints(), "--command-timeout=3s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("spawn etcdctl")
    }

    fn healthy(&self) -> bool {
        self.etcdctl(&["endpoint", "health"]).status.success()
    }

    /// Every key under `prefix` with its value.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self.etcdctl(&["get", "--prefix", prefix]);
        assert!(
            out.status.success(),
            "etcdctl get: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect()
    }

    /// Kill member `i` (a member failure).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
