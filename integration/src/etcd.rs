//! etcd (Debian's `etcd-server`) for the cluster tests: one or three
//! members, each inside a fake host and listening only on that host's
//! underlay address, data in a temporary folder. Killed and removed on
//! drop; never on the machine's own network.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{unique_id, Netns, TempDir};

struct Member {
    /// Behind a lock so a test can kill a member while hosts borrow the
    /// cluster (see `integration::cluster::Cluster`).
    child: Mutex<Option<Child>>,
    ns_path: String,
    addr: String,
}

impl Member {
    fn alive(&self) -> bool {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

pub struct EtcdCluster {
    members: Vec<Member>,
    tls: Option<EtcdTls>,
    _dir: TempDir,
}

/// A throw-away CA, a server certificate for the members' addresses and a
/// client certificate, made with the `openssl` tool (EC P-256: fast).
pub struct EtcdTls {
    pub dir: TempDir,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("spawn openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl EtcdTls {
    pub fn new(ips: &[String]) -> Self {
        let dir = TempDir::new("etcd-tls");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=cni-test-ca"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(d, &ca);
        let sans: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        for (name, ext) in [
            (
                "server",
                format!(
                    "subjectAltName={}\nextendedKeyUsage=serverAuth,clientAuth\n",
                    sans.join(",")
                ),
            ),
            ("client", "extendedKeyUsage=clientAuth\n".to_string()),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), ext).expect("ext file");
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let mut req = vec!["req", "-subj", "/CN=cni-test"];
            req.extend_from_slice(&ec);
            req.extend_from_slice(&["-keyout", &key, "-out", &csr]);
            openssl(d, &req);
            let pem = format!("{name}.pem");
            let extfile = format!("{name}.ext");
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-out",
                    &pem,
                    "-extfile",
                    &extfile,
                ],
            );
        }
        EtcdTls { dir }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl EtcdCluster {
    /// One member per `(host, underlay address)`; waits until the cluster
    /// answers.
    pub fn start(hosts: &[(&Netns, String)]) -> Self {
        Self::start_with(hosts, None)
    }

    /// With `tls`: clients must speak TLS and show a certificate of its CA
    /// (`--client-cert-auth`).
    pub fn start_with(hosts: &[(&Netns, String)], tls: Option<EtcdTls>) -> Self {
        let dir = TempDir::new("etcd");
        let scheme = if tls.is_some() { "https" } else { "http" };
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
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={}", ns.path_str())).arg("etcd");
            if let Some(t) = &tls {
                cmd.args(["--cert-file", &t.file("server.pem")])
                    .args(["--key-file", &t.file("server.key")])
                    .args(["--trusted-ca-file", &t.file("ca.pem")])
                    .arg("--client-cert-auth");
            }
            let child = cmd
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &format!("{scheme}://{ip}:2379")])
                .args(["--advertise-client-urls", &format!("{scheme}://{ip}:2379")])
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
                child: Mutex::new(Some(child)),
                ns_path: ns.path_str(),
                addr: ip.clone(),
            });
        }
        let c = EtcdCluster {
            members,
            tls,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.healthy() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// `etcd://a:2379,b:2379` (`etcds://` with TLS) for `cnitool cluster
    /// init --store`.
    pub fn store_url(&self) -> String {
        let eps: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:2379", m.addr))
            .collect();
        let scheme = if self.tls.is_some() { "etcds" } else { "etcd" };
        format!("{scheme}://{}", eps.join(","))
    }

    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    fn endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.alive())
            .map(|m| {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{}:2379", m.addr)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let m = self
            .members
            .iter()
            .find(|m| m.alive())
            .expect("a live etcd member");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", m.ns_path))
            .arg("etcdctl")
            .args(["--endpoints", &self.endpoints(), "--command-timeout=3s"]);
        if let Some(t) = &self.tls {
            cmd.args(["--cacert", &t.file("ca.pem")])
                .args(["--cert", &t.file("client.pem")])
                .args(["--key", &t.file("client.key")]);
        }
        cmd.args(args)
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

    /// Delete one key (a test undoing what a host published).
    pub fn del(&self, key: &str) {
        let out = self.etcdctl(&["del", key]);
        assert!(
            out.status.success(),
            "etcdctl del: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kill member `i` (a member failure).
    pub fn kill(&self, i: usize) {
        let child = self.members[i]
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut c) = child {
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
