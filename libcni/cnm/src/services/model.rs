//! A service as `cnitool service` keeps it, and the checks of what a user
//! may ask for, with Docker's (swarmkit's) messages.

use std::net::Ipv4Addr;

use cni_net::firewall::portmap::Proto;
use cni_net::firewall::services::ServicePort;
use cni_spec::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most tasks one service may have on this host: every task is a
/// namespace, a veth pair and an address.
pub const MAX_REPLICAS: u64 = 1000;

/// Docker's `--endpoint-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

impl EndpointMode {
    pub fn parse(s: &str) -> Result<EndpointMode> {
        match s {
            "vip" => Ok(EndpointMode::Vip),
            "dnsrr" => Ok(EndpointMode::Dnsrr),
            _ => Err(Error::invalid_config(format!(
                "invalid argument \"{s}\" for \"--endpoint-mode\" flag: must be vip or dnsrr"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        }
    }
}

/// One published port, as `docker service inspect` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub protocol: ProtoName,
    pub target: u16,
    pub published: u16,
}

/// A protocol as stored (serde-friendly twin of [`Proto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtoName {
    Tcp,
    Udp,
}

impl Port {
    pub fn rule(&self) -> ServicePort {
        ServicePort {
            proto: match self.protocol {
                ProtoName::Tcp => Proto::Tcp,
                ProtoName::Udp => Proto::Udp,
            },
            published: self.published,
            target: self.target,
        }
    }

    pub fn proto(&self) -> &'static str {
        match self.protocol {
            ProtoName::Tcp => "tcp",
            ProtoName::Udp => "udp",
        }
    }
}

/// One task: a sandbox attached to the service's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub slot: u64,
    pub id: String,
    /// `NAME.<slot>.<id>`: the sandbox's name.
    pub name: String,
    pub address: Ipv4Addr,
    /// The cluster host that runs it (cluster services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A cluster task no alive host can take (swarm's "pending"): no host, no
/// address, not counted as running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTask {
    pub slot: u64,
    pub id: String,
    pub name: String,
    /// Docker's "no suitable node (...)".
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub network: String,
    pub network_id: String,
    pub replicas: u64,
    pub endpoint_mode: EndpointMode,
    #[serde(default)]
    pub ports: Vec<Port>,
    /// The virtual IP with the network's prefix length (vip mode).
    #[serde(default)]
    pub vip: Option<String>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Cluster tasks waiting for a suitable host (never in `tasks`, which
    /// are running and are the backends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingTask>,
    pub created: String,
    pub updated: String,
    /// Bumped on every change, as swarm's object version.
    pub version: u64,
    /// Docker's placement constraints (`node.hostname==H`, `!=`): cluster
    /// services only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Kept in the cluster store, its tasks spread over the hosts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

impl Service {
    pub fn vip_addr(&self) -> Option<Ipv4Addr> {
        self.vip
            .as_deref()
            .and_then(|v| v.split('/').next())
            .and_then(|a| a.parse().ok())
    }

    pub fn backends(&self) -> Vec<Ipv4Addr> {
        self.tasks.iter().map(|t| t.address).collect()
    }

    /// The IPAM owner of the VIP: never a container ID a sandbox can have.
    pub fn vip_owner(&self) -> String {
        vip_owner(&self.id)
    }
}

pub fn vip_owner(id: &str) -> String {
    format!("service-{id}")
}

/// swarmkit's rule: a DNS label of letters, digits, `-` and `_`, starting
/// and ending with a letter or digit, 63 bytes at most.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |m: &str| {
        Err(Error::invalid_config(format!(
            "rpc error: code = InvalidArgument desc = {m}"
        )))
    };
    if name.is_empty() {
        return bad("meta: name must be provided");
    }
    if name.len() > 63 {
        return bad(&format!("name \"{name}\" is too long (max 63 characters)"));
    }
    let b = name.as_bytes();
    let ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    if !ok {
        return bad("name must be valid as a DNS name component");
    }
    Ok(())
}

/// `--replicas` / `scale NAME=N`: a count of 0 to [`MAX_REPLICAS`].
pub fn parse_replicas(s: &str, flag: &str) -> Result<u64> {
    let n: u64 = s.parse().map_err(|_| {
        Error::invalid_config(format!(
            "invalid argument \"{s}\" for \"{flag}\" flag: strconv.ParseUint: parsing \"{s}\": invalid syntax"
        ))
    })?;
    if n > MAX_REPLICAS {
        return Err(Error::invalid_config(format!(
            "invalid argument \"{s}\" for \"{flag}\" flag: at most {MAX_REPLICAS} replicas on one host"
        )));
    }
    Ok(n)
}

/// `-p PUBLISHED:TARGET[/tcp|udp]` (or `-p TARGET`: the published port is
/// chosen by the caller), with Docker's messages.
pub fn parse_publish(s: &str) -> Result<(Option<u16>, u16, ProtoName)> {
    let bad = |m: String| {
        Error::invalid_config(format!(
            "invalid argument \"{s}\" for \"-p, --publish\" flag: {m}"
        ))
    };
    let (ports, proto) = match s.split_once('/') {
        Some((p, pr)) => (p, pr),
        None => (s, "tcp"),
    };
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => ProtoName::Tcp,
        "udp" => ProtoName::Udp,
        _ => return Err(bad(format!("invalid proto: {proto}"))),
    };
    let port = |v: &str, what: &str| -> Result<u16> {
        match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad(format!("Invalid {what}: {v}"))),
        }
    };
    match ports.split_once(':') {
        Some((p, t)) => Ok((Some(port(p, "hostPort")?), port(t, "containerPort")?, proto)),
        None => Ok((None, port(ports, "containerPort")?, proto)),
    }
}

/// Docker's object IDs: 25 characters of `[a-z0-9]`, from the kernel's
/// random source.
pub fn new_id() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut buf = [0u8; 25];
    let mut f =
        std::fs::File::open("/dev/urandom").map_err(|e| Error::from_io("open /dev/urandom", e))?;
    std::io::Read::read_exact(&mut f, &mut buf)
        .map_err(|e| Error::from_io("read /dev/urandom", e))?;
    // 252 = 7 * 36: no bias from the modulo for bytes below it; redraw none,
    // the few above are folded (a negligible skew for an identifier).
    Ok(buf
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_swarmkit() {
        for good in ["web", "a", "my_svc-2", &"x".repeat(63)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-web",
            "web-",
            "a.b",
            "a b",
            "../x",
            "wéb",
            &"x".repeat(64),
        ] {
            let e = validate_name(bad).unwrap_err();
            assert!(
                e.msg.starts_with("rpc error: code = InvalidArgument"),
                "{e}"
            );
        }
    }

    #[test]
    fn publish_specs_parse_like_docker() {
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            (Some(8080), 80, ProtoName::Tcp)
        );
        assert_eq!(
            parse_publish("53:53/UDP").unwrap(),
            (Some(53), 53, ProtoName::Udp)
        );
        assert_eq!(parse_publish("80").unwrap(), (None, 80, ProtoName::Tcp));
        for (bad, msg) in [
            ("99999:80", "Invalid hostPort: 99999"),
            ("80:0", "Invalid containerPort: 0"),
            ("80:80/icmp", "invalid proto: icmp"),
            ("a:b", "Invalid hostPort: a"),
            ("", "Invalid containerPort: "),
            ("1:2:3", "Invalid containerPort: 2:3"),
        ] {
            let e = parse_publish(bad).unwrap_err();
            assert!(e.msg.ends_with(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn replicas_and_ids() {
        assert_eq!(parse_replicas("3", "--replicas").unwrap(), 3);
        assert!(parse_replicas("-1", "--replicas").is_err());
        assert!(parse_replicas("1001", "--replicas").is_err());
        let id = new_id().unwrap();
        assert_eq!(id.len(), 25);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}
