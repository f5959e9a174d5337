//! Reading back the real kernel state inside a namespace: links, addresses,
//! routes, nftables, reachability. Everything goes through the namespace the
//! caller names; nothing here reads or changes the root namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::netns::Netns;

fn ip_json(ns: &Netns, args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ns.ip_ok(&full);
    if out.trim().is_empty() {
        return Value::Array(vec![]);
    }
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("parsing `ip {full:?}` output: {e}\n{out}"))
}

/// `ip -j link show`: every link in the namespace.
pub fn links(ns: &Netns) -> Vec<Value> {
    match ip_json(ns, &["link", "show"]) {
        Value::Array(v) => v,
        other => panic!("unexpected ip -j link output: {other}"),
    }
}

/// One link by name, if it exists.
pub fn link(ns: &Netns, name: &str) -> Option<Value> {
    links(ns).into_iter().find(|l| l["ifname"] == name)
}

/// The names of all links in the namespace.
pub fn link_names(ns: &Netns) -> Vec<String> {
    links(ns)
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

/// The link's flags (`UP`, `LOWER_UP`, `LOOPBACK`…); panics if it is missing.
pub fn link_flags(ns: &Netns, name: &str) -> Vec<String> {
    let l = link(ns, name).unwrap_or_else(|| panic!("no link {name} in netns {}", ns.name()));
    l["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Administratively up (the `UP` flag).
pub fn link_is_up(ns: &Netns, name: &str) -> bool {
    link_flags(ns, name).iter().any(|f| f == "UP")
}

/// One address as `ip -j addr` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub ifname: String,
    /// "inet" or "inet6".
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
    pub scope: String,
}

impl Addr {
    /// "10.0.0.2/24"
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.local, self.prefixlen)
    }
}

/// All addresses in the namespace, or only those on `ifname`.
pub fn addrs(ns: &Netns, ifname: Option<&str>) -> Vec<Addr> {
    let mut args = vec!["addr", "show"];
    if let Some(i) = ifname {
        args.extend_from_slice(&["dev", i]);
    }
    let v = ip_json(ns, &args);
    let mut out = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        let name = l["ifname"].as_str().unwrap_or_default();
        for a in l["addr_info"].as_array().into_iter().flatten() {
            // Entries without `local` are lifetime-only fragments.
            let Some(local) = a["local"].as_str() else {
                continue;
            };
            out.push(Addr {
                ifname: name.to_string(),
                family: a["family"].as_str().unwrap_or_default().to_string(),
                local: local.to_string(),
                prefixlen: a["prefixlen"].as_u64().unwrap_or(0) as u8,
                scope: a["scope"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// The addresses on `ifname` as CIDR strings.
pub fn addr_cidrs(ns: &Netns, ifname: &str) -> Vec<String> {
    addrs(ns, Some(ifname)).iter().map(Addr::cidr).collect()
}

/// The IPv4 addresses on `ifname` as CIDR strings.
pub fn ipv4_cidrs(ns: &Netns, ifname: &str) -> Vec<String> {
    addrs(ns, Some(ifname))
        .iter()
        .filter(|a| a.family == "inet")
        .map(Addr::cidr)
        .collect()
}

/// Routes of one family (4 or 6) in `table` ("main", "local", "all", a number).
pub fn routes_in(ns: &Netns, family: u8, table: &str) -> Vec<Value> {
    let fam = if family == 6 { "-6" } else { "-4" };
    match ip_json(ns, &[fam, "route", "show", "table", table]) {
        Value::Array(v) => v,
        other => panic!("unexpected ip -j route output: {other}"),
    }
}

/// Routes of one family in the main table.
pub fn routes(ns: &Netns, family: u8) -> Vec<Value> {
    routes_in(ns, family, "main")
}

/// The route whose `dst` is exactly this ("default", "10.1.0.0/24", …).
pub fn route_to(ns: &Netns, family: u8, dst: &str) -> Option<Value> {
    routes(ns, family).into_iter().find(|r| r["dst"] == dst)
}

/// `nft -j list ruleset` inside the namespace, as the `nftables` array.
pub fn nft_ruleset(ns: &Netns) -> Vec<Value> {
    let out = ns.exec_ok(&["nft", "-j", "list", "ruleset"]);
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("parsing nft -j: {e}\n{out}"));
    v["nftables"].as_array().cloned().unwrap_or_default()
}

/// The (family, name) of every nftables table in the namespace.
pub fn nft_tables(ns: &Netns) -> Vec<(String, String)> {
    nft_ruleset(ns)
        .iter()
        .filter_map(|o| o.get("table"))
        .map(|t| {
            (
                t["family"].as_str().unwrap_or_default().to_string(),
                t["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The rule objects of the ruleset (each `{"family","table","chain","expr",…}`).
pub fn nft_rules(ns: &Netns) -> Vec<Value> {
    nft_ruleset(ns)
        .into_iter()
        .filter_map(|o| o.get("rule").cloned())
        .collect()
}

/// One ICMP echo from namespace `from` to `ip`, waiting at most a second.
pub fn ping(from: &Netns, ip: &str) -> bool {
    let six = ip.contains(':');
    let mut args = vec!["ping"];
    if six {
        args.push("-6");
    }
    args.extend_from_slice(&["-c1", "-W1", "-q", ip]);
    from.exec(&args).status.success()
}

/// A small TCP exchange: a listener in `server` on `ip:port`, a client in
/// `client` connects, sends a line, gets it back reversed. Timeouts of a few
/// seconds keep a broken path from hanging the test.
pub fn tcp_exchange(server: &Netns, client: &Netns, ip: &str, port: u16) -> Result<()> {
    let addr: IpAddr = ip.parse().context("server ip")?;
    let sa = SocketAddr::new(addr, port);
    tcp_exchange_via(server, sa, client, sa)
}

/// The same exchange through a translation: the server listens on `bind`,
/// the client connects to `dst` (a published port, say).
pub fn tcp_exchange_via(
    server: &Netns,
    bind: SocketAddr,
    client: &Netns,
    dst: SocketAddr,
) -> Result<()> {
    let sa = bind;
    let server_file = server.open()?;
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let srv = std::thread::spawn(move || -> Result<()> {
        crate::netns::enter(&server_file)?;
        let l = match bind_when_free(sa) {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return Err(e.into());
            }
        };
        l.set_nonblocking(false)?;
        let (mut s, _) = accept_with_timeout(&l, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        let mut reply = buf[..n].to_vec();
        reply.reverse();
        s.write_all(&reply)?;
        Ok(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| anyhow!("tcp server never got ready"))?
        .map_err(|e| anyhow!("binding {sa} in {}: {e}", server.name()))?;
    let reply = client.run(move || -> Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"hello")?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(buf)
    });
    let srv_res = srv.join().map_err(|_| anyhow!("tcp server panicked"))?;
    let reply = reply.with_context(|| format!("client in {} -> {dst}", client.name()))?;
    srv_res.with_context(|| format!("server in {}", server.name()))?;
    anyhow::ensure!(
        reply == b"olleh",
        "unexpected reply {:?}",
        String::from_utf8_lossy(&reply)
    );
    Ok(())
}

/// Bind a listener, waiting (2 s at most) while an earlier exchange's
/// connection on the same port is still closing in the kernel.
fn bind_when_free(sa: SocketAddr) -> std::io::Result<TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(sa) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn accept_with_timeout(l: &TcpListener, t: Duration) -> Result<(TcpStream, SocketAddr)> {
    l.set_nonblocking(true)?;
    let deadline = std::time::Instant::now() + t;
    loop {
        match l.accept() {
            Ok((s, a)) => {
                s.set_nonblocking(false)?;
                return Ok((s, a));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err(anyhow!("no connection within {t:?}"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
