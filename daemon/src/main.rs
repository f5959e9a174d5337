//! cni-rs-daemon: the per-host resolver for container names and cluster
//! member. Started on demand by the `dnsname` plugin, cnitool's cluster
//! verbs or the cluster plugins (or by systemd, see
//! `cni-rs-daemon.service`); one per state folder, enforced by a lock held
//! for life; gone a moment after its last record (unless the host is
//! clustered), leaving no socket file.
//!
//! Usage: cni-rs-daemon [--state-dir DIR] [--idle-exit-ms N]
//! (environment: CNI_RS_DNS_DIR, CNI_RS_DNS_IDLE_MS; N = 0: never exit)

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_dns::StateDir;
use cni_rs_daemon::cluster::ClusterHandle;
use cni_rs_daemon::control::{self, ControlSocket};
use cni_rs_daemon::dns::upstream::Upstreams;
use cni_rs_daemon::listeners::Shared;
use cni_rs_daemon::log;
use cni_rs_daemon::service::Service;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Default: exit this long after the last record went away.
const DEFAULT_IDLE: Duration = Duration::from_secs(2);
const ENV_IDLE_MS: &str = "CNI_RS_DNS_IDLE_MS";

/// How often namespaces and record files are checked.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(200);

/// A daemon still on its way out holds the lock this long at most.
const LOCK_WAIT: Duration = Duration::from_secs(1);

struct Options {
    state: StateDir,
    idle: Option<Duration>,
}

fn options() -> Result<Options, String> {
    let mut state = None;
    let mut idle_ms = std::env::var(ENV_IDLE_MS).ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--state-dir" => state = Some(args.next().ok_or("--state-dir needs a value")?),
            "--idle-exit-ms" => idle_ms = Some(args.next().ok_or("--idle-exit-ms needs a value")?),
            "-h" | "--help" => {
                println!("usage: cni-rs-daemon [--state-dir DIR] [--idle-exit-ms N (0: never)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let idle = match idle_ms.filter(|s| !s.is_empty()) {
        None => Some(DEFAULT_IDLE),
        Some(s) => match s.parse::<u64>() {
            Ok(0) => None,
            Ok(n) => Some(Duration::from_millis(n)),
            Err(_) => return Err(format!("idle exit {s:?} is not a number of milliseconds")),
        },
    };
    Ok(Options {
        state: StateDir::resolve(state.as_deref()),
        idle,
    })
}

/// The one-daemon-per-folder lock, waiting briefly for a daemon that is
/// exiting; `None` when another daemon is alive.
fn take_daemon_lock(path: &Path) -> std::io::Result<Option<Flock<std::fs::File>>> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(Some(l)),
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(std::io::Error::from_raw_os_error(e as i32)),
        }
    }
}

fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            log::error(&e);
            std::process::exit(2);
        }
    };
    let root = opts.state.root();
    if let Err(e) = cni_state::Dir::create_all(root, 0o700) {
        log::error(&format!("state folder {}: {e}", root.display()));
        std::process::exit(1);
    }
    let _lock = match take_daemon_lock(&opts.state.daemon_lock()) {
        Ok(Some(l)) => l,
        Ok(None) => {
            log::info(&format!("another daemon serves {}", root.display()));
            std::process::exit(0);
        }
        Err(e) => {
            log::error(&format!(
                "locking {}: {e}",
                opts.state.daemon_lock().display()
            ));
            std::process::exit(1);
        }
    };
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error(&format!("starting the runtime: {e}"));
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(opts));
    // The listeners' tasks die with the runtime, closing every socket
    // before the lock is released.
    drop(rt);
    std::process::exit(code)
}

/// Two sockets per container namespace: a thousand containers need more
/// descriptors than the usual soft limit of 1024.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::error(&format!("raising the descriptor limit: {e}"));
            }
        }
    }
}

async fn run(opts: Options) -> i32 {
    let root_ino = std::fs::metadata(opts.state.root()).map(|m| m.ino()).ok();
    let shared = Arc::new(Shared::new(Upstreams::from_env()));
    let service = Arc::new(Mutex::new(Service::new(&opts.state, shared)));
    service.lock().unwrap_or_else(|p| p.into_inner()).load_all();
    let sink_service = service.clone();
    let cluster = ClusterHandle::new(
        opts.state.root().to_path_buf(),
        Arc::new(move |records| {
            sink_service
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_remote(records)
        }),
    );
    // A clustered host's daemon (re)joins at once: after a kill -9, the
    // watch and the lease must not wait for the next plugin.
    tokio::spawn(cluster.clone().maintain());
    let socket = match ControlSocket::bind(&opts.state.socket()) {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!("binding {}: {e}", opts.state.socket().display()));
            return 1;
        }
    };
    log::info(&format!("serving {}", opts.state.root().display()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut tick = tokio::time::interval(TICK);
    let mut last_sweep = Instant::now();
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::select! {
            conn = socket.listener.accept() => {
                if let Ok((stream, _)) = conn {
                    tokio::spawn(control::serve_client(stream, service.clone(), cluster.clone()));
                }
            }
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {
                log::info("terminated");
                break;
            }
            _ = tick.tick() => {
                // Tests remove their state folder: nothing left to serve.
                if std::fs::metadata(opts.state.root()).map(|m| m.ino()).ok() != root_ino {
                    log::info("state folder gone");
                    break;
                }
                let mut svc = service.lock().unwrap_or_else(|p| p.into_inner());
                if last_sweep.elapsed() >= SWEEP_EVERY {
                    svc.sweep();
                    last_sweep = Instant::now();
                    tokio::spawn(cluster.clone().maintain());
                }
                match (svc.is_idle() && !cluster.keeps_daemon(), opts.idle) {
                    (true, Some(limit)) => {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= limit {
                            // Last look at the disk: a plugin may just have written one.
                            svc.sweep();
                            if svc.is_idle() && !cluster.keeps_daemon() {
                                log::info("no records left: exiting");
                                break;
                            }
                        }
                    }
                    _ => idle_since = None,
                }
            }
        }
    }
    // Unlink first, so no client connects to a daemon that is leaving.
    socket.remove();
    service
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .close_all();
    0
}
