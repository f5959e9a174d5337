//! Tasks' stand-in workload for service tests, the benchmark and the demo:
//! a TCP server bound inside a namespace that greets each connection with
//! its task name and then echoes what it reads. It lives in this process
//! (a listener opened in the namespace, served from a thread), so nothing
//! outlives a test: dropping it stops the accept loop and closes the
//! listener, which also releases the namespace it pins.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::netns::enter;

/// Run `f` on a thread inside the namespace `ns` (an open nsfs file).
pub fn in_netns<T: Send + 'static>(ns: &File, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = ns.try_clone().expect("clone netns fd");
    let h = std::thread::spawn(move || {
        enter(&file).expect("setns");
        f()
    });
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A greeting echo server in one namespace.
pub struct NameServer {
    ns: File,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl NameServer {
    /// The server a service's task runs: port 80 in the task's named
    /// namespace, greeting with the task's name.
    pub fn in_task(task: &str) -> Result<NameServer> {
        Self::start(&PathBuf::from("/var/run/netns").join(task), 80, task)
    }

    /// Listen on `0.0.0.0:port` inside the namespace at `netns`.
    pub fn start(netns: &Path, port: u16, name: &str) -> Result<NameServer> {
        let ns = File::open(netns).with_context(|| format!("open {}", netns.display()))?;
        let listener = in_netns(&ns, move || TcpListener::bind(("0.0.0.0", port)))
            .with_context(|| format!("bind port {port} in {}", netns.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let greeting = format!("{name}\n");
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let greeting = greeting.clone();
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                    if s.write_all(greeting.as_bytes()).is_err() {
                        return;
                    }
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(NameServer {
            ns,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stop,
            accept: Some(accept),
        })
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept from inside its namespace (held open by
        // `ns` even when its name is gone).
        let addr = self.addr;
        in_netns(&self.ns, move || {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        });
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// A task as `cnitool service inspect` shows it.
pub struct Task {
    pub name: String,
    pub addr: Ipv4Addr,
    /// Its node (`NodeID`, the host's name in a cluster).
    pub host: String,
}

/// The running tasks of one service from `service inspect`'s output (panics on a
/// malformed one: the tests' reader).
pub fn tasks_of(inspect: &Value) -> Vec<Task> {
    inspect["Tasks"]
        .as_array()
        .expect("Tasks")
        .iter()
        // A pending task (no host could take it) has no address yet.
        .filter_map(|t| {
            Some(Task {
                name: t["Name"].as_str().unwrap().to_string(),
                addr: t["Addresses"][0].as_str()?.parse().unwrap(),
                host: t["NodeID"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// Connect to `addr`, read the greeting line, close: which task answered.
pub fn ask_name(addr: SocketAddr) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// Which task answered each of `n` connections to `addr`, made from
/// inside the namespace `ns` (panics on a failed connection: a test's
/// check of how a service spreads its load).
pub fn spread(ns: &File, addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    in_netns(ns, move || {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let who = ask_name(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            *counts.entry(who).or_insert(0) += 1;
        }
        counts
    })
}

/// An open connection to a task: its name, and a way to check it still
/// carries data both ways.
pub struct Held {
    pub name: String,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Held {
    pub fn open(addr: SocketAddr) -> std::io::Result<Held> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut name = String::new();
        reader.read_line(&mut name)?;
        Ok(Held {
            name: name.trim_end().to_string(),
            stream,
            reader,
        })
    }

    /// Send a line and expect it back.
    pub fn echo(&mut self, text: &str) -> std::io::Result<bool> {
        self.stream.write_all(format!("{text}\n").as_bytes())?;
        let mut back = String::new();
        self.reader.read_line(&mut back)?;
        Ok(back.trim_end() == text)
    }
}
