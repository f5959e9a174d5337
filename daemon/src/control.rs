//! The control socket: one JSON request per line, one JSON reply per line
//! (protocol in `cni_dns::control`). Root only (0600). Bound under a
//! temporary name and renamed into place, so a client never sees a socket
//! file that does not answer yet.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_dns::control::{Reply, Request, MAX_LINE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::cluster::ClusterHandle;
use crate::log;
use crate::service::Service;

/// A client has this long to send its line.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound control socket; [`ControlSocket::remove`] unlinks it only if
/// the path still is ours.
pub struct ControlSocket {
    pub listener: UnixListener,
    path: PathBuf,
    ino: u64,
}

impl ControlSocket {
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        let tmp = path.with_file_name(format!(".daemon.sock.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        let ino = std::fs::metadata(&tmp)?.ino();
        std::fs::rename(&tmp, path)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            ino,
        })
    }

    pub fn remove(&self) {
        if std::fs::symlink_metadata(&self.path).map(|m| m.ino()).ok() == Some(self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serve one client: requests until it closes the connection.
pub async fn serve_client(
    stream: UnixStream,
    service: Arc<Mutex<Service>>,
    cluster: Arc<ClusterHandle>,
) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r.take(MAX_LINE as u64 * 64));
    loop {
        let mut line = String::new();
        match tokio::time::timeout(READ_TIMEOUT, lines.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        let reply = if line.len() > MAX_LINE {
            Reply::error("request too long")
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(req) => {
                    let started = Instant::now();
                    let what = format!("{req:?}");
                    let reply = match req {
                        Request::Cluster { req } => cluster.handle(req).await,
                        req => {
                            let key = match &req {
                                Request::Add { key } | Request::Del { key } => Some(key.clone()),
                                _ => None,
                            };
                            let is_add = matches!(req, Request::Add { .. });
                            let (reply, record) = {
                                let mut svc = service.lock().unwrap_or_else(|p| p.into_inner());
                                let reply = svc.handle(req);
                                let record = key.as_ref().and_then(|k| svc.record(k));
                                (reply, record)
                            };
                            // Names of cluster networks go to the store too.
                            match (key, is_add, reply.ok) {
                                (Some(_), true, true) => {
                                    if let Some(r) = record {
                                        cluster.names_added(r).await;
                                    }
                                }
                                (Some(k), false, true) => cluster.names_removed(&k).await,
                                _ => {}
                            }
                            reply
                        }
                    };
                    log::info(&format!(
                        "{what}: ok={} in {:?}",
                        reply.ok,
                        started.elapsed()
                    ));
                    reply
                }
                Err(e) => Reply::error(format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}
