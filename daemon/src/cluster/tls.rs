//! TLS to etcd: the cluster file's CA (to check etcd's certificate) and,
//! when etcd asks for one, this host's client certificate and key. rustls
//! with ring: nothing to install, nothing linked from the system.

use std::sync::Arc;

use cni_dns::cluster::TlsFiles;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn pem(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn connector(files: &TlsFiles) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem(&files.ca)?.as_slice()) {
        let c = c.map_err(|e| format!("{}: {e}", files.ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", files.ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", files.ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = rustls_pemfile::certs(&mut pem(cert)?.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key = rustls_pemfile::private_key(&mut pem(key)?.as_slice())
                .map_err(|e| format!("{}: {e}", key.display()))?
                .ok_or_else(|| format!("{}: no private key", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name etcd's certificate must carry: the endpoint's host (an IP
/// address or a DNS name).
pub fn server_name(endpoint: &str) -> Option<ServerName<'static>> {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_their_host() {
        assert!(matches!(
            server_name("192.0.2.1:2379"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("etcd.example:2379"),
            Some(ServerName::DnsName(_))
        ));
    }
}
