//! The resolver's sockets: 127.0.0.11:53, UDP and TCP, inside each
//! container's namespace (Docker's model: it works whatever the network
//! type, since the host needs no route to the container). The sockets are
//! bound on a short-lived thread that enters the namespace, then served
//! from the daemon's own namespace, where upstream forwarding happens.
//!
//! A socket pins its namespace, so a [`Listener`] closes everything it
//! opened (listening sockets, TCP connections, pending forwards) when it is
//! dropped: on DEL of the namespace's last record, or when the sweep finds
//! its namespace gone.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cni_net::netlink::Netlink;
use cni_net::netns::NetNs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};

use crate::dns::answer::{self, Action, Transport};
use crate::dns::upstream::{self, Upstreams};
use crate::records::{NsId, Snapshot};

/// Docker's address for the embedded resolver.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
pub const RESOLVER_PORT: u16 = 53;

/// TCP connections served at once per container; more are refused.
const MAX_TCP_CONNECTIONS: usize = 16;

/// Queries being forwarded at once per container; more are dropped (the
/// client retries), so a flood cannot exhaust the daemon's descriptors.
const MAX_FORWARDS: usize = 128;

/// An idle TCP client is dropped after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What every query reads.
pub struct Shared {
    pub snapshot: RwLock<Arc<Snapshot>>,
    pub upstreams: Upstreams,
    seed: AtomicU64,
}

impl Shared {
    pub fn new(upstreams: Upstreams) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            upstreams,
            seed: AtomicU64::new(t ^ u64::from(std::process::id())),
        }
    }

    pub fn set_snapshot(&self, s: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answer `query` as seen from namespace `ns`.
    pub fn answer(&self, query: &[u8], ns: NsId, transport: Transport) -> Action {
        let snap = self.snapshot();
        let view = snap.view(ns);
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        answer::answer(query, &view, transport, seed)
    }
}

/// The sockets of one namespace; dropping it closes them all.
pub struct Listener {
    pub ns: NsId,
    /// The path it was opened from: the sweep checks it still names `ns`.
    pub path: String,
    _close: watch::Sender<()>,
}

/// Open the resolver's sockets in the namespace at `path` and serve them.
pub fn open(path: &str, shared: Arc<Shared>) -> std::io::Result<Listener> {
    let p = path.to_string();
    let (ns, udp, tcp) = std::thread::spawn(move || bind_in(&p))
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))??;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    let udp = Arc::new(UdpSocket::from_std(udp)?);
    let tcp = TcpListener::from_std(tcp)?;
    let (tx, rx) = watch::channel(());
    tokio::spawn(serve_udp(udp, ns, shared.clone(), rx.clone()));
    tokio::spawn(serve_tcp(tcp, ns, shared, rx));
    Ok(Listener {
        ns,
        path: path.to_string(),
        _close: tx,
    })
}

/// On a thread of its own: enter the namespace, bring `lo` up if it is
/// down (the address lives on it), bind, return.
fn bind_in(path: &str) -> std::io::Result<(NsId, std::net::UdpSocket, std::net::TcpListener)> {
    let io = |e: cni_spec::Error| std::io::Error::other(e.to_string());
    let ns = NetNs::open(path).map_err(io)?;
    let id = ns.identity().map_err(io)?;
    let mut nl = Netlink::new_in(&ns).map_err(io)?;
    let lo = nl.link_by_name("lo").map_err(io)?;
    if !lo.up {
        nl.set_link_up(lo.index).map_err(io)?;
    }
    let addr = SocketAddr::from((RESOLVER_ADDR, RESOLVER_PORT));
    let (udp, tcp) = ns
        .run(|| {
            let udp = std::net::UdpSocket::bind(addr)?;
            let tcp = std::net::TcpListener::bind(addr)?;
            Ok::<_, std::io::Error>((udp, tcp))
        })
        .map_err(io)??;
    Ok((id, udp, tcp))
}

async fn serve_udp(
    sock: Arc<UdpSocket>,
    ns: NsId,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<()>,
) {
    let mut buf = vec![0u8; 65535];
    let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
    loop {
        let (n, peer) = tokio::select! {
            _ = closed.changed() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let query = &buf[..n];
        match shared.answer(query, ns, Transport::Udp) {
            Action::Reply(bytes) => {
                let _ = sock.send_to(&bytes, peer).await;
            }
            Action::Drop => {}
            Action::Forward => {
                let Ok(permit) = forwards.clone().try_acquire_owned() else {
                    continue;
                };
                let query = query.to_vec();
                let (sock, shared, mut closed) = (sock.clone(), shared.clone(), closed.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let servers = shared.upstreams.current();
                    let reply = tokio::select! {
                        _ = closed.changed() => return,
                        r = upstream::forward_udp(&query, &servers) => r,
                    };
                    let limit = answer::udp_limit(&query);
                    let out = reply
                        .and_then(|r| answer::fit_udp(&r, limit))
                        .or_else(|| answer::servfail(&query));
                    if let Some(out) = out {
                        let _ = sock.send_to(&out, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    ns: NsId,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = closed.changed() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (shared, mut closed) = (shared.clone(), closed.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = closed.changed() => {}
                _ = serve_connection(stream, ns, &shared) => {}
            }
            drop(permit);
        });
    }
}

/// Length-prefixed queries until the client goes quiet or away.
async fn serve_connection(mut s: TcpStream, ns: NsId, shared: &Shared) {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, s.read_u16()).await {
            Ok(Ok(n)) => n as usize,
            _ => return,
        };
        let mut query = vec![0u8; len];
        if tokio::time::timeout(TCP_IDLE, s.read_exact(&mut query))
            .await
            .is_err()
        {
            return;
        }
        let reply = match shared.answer(&query, ns, Transport::Tcp) {
            Action::Reply(b) => b,
            Action::Drop => return,
            Action::Forward => {
                let servers = shared.upstreams.current();
                match upstream::forward_tcp(&query, &servers).await {
                    Some(r) => r,
                    None => match answer::servfail(&query) {
                        Some(b) => b,
                        None => return,
                    },
                }
            }
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&reply);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}
