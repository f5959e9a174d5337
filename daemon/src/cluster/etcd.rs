//! A small etcd v3 client over etcd's JSON gateway (HTTP/1.1 + JSON on the
//! client port, keys and values base64, 64-bit numbers as strings): no
//! gRPC stack, no protoc, one TCP (or TLS) connection per unary call on
//! the underlay. Endpoints are tried in order, starting with the last one that
//! answered, so losing a member costs one refused connect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A connection to etcd: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = Box<dyn Io>;

/// One call's budget (connect, send, answer): a loaded etcd commits in
/// seconds, not milliseconds; a dead member refuses at once anyway.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// Longest answer we read from a unary call.
const MAX_BODY: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// No endpoint answered: the store is unreachable from here.
    Unreachable(String),
    /// An endpoint answered with something we cannot use.
    Protocol(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Unreachable(m) => write!(f, "etcd unreachable: {m}"),
            EtcdError::Protocol(m) => write!(f, "etcd: {m}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, EtcdError>;

/// A key and its value as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete(String),
}

pub struct Etcd {
    endpoints: Vec<String>,
    tls: Option<TlsConnector>,
    preferred: AtomicUsize,
    /// Round trips made (unary calls and watch opens), for the bench.
    pub calls: std::sync::atomic::AtomicU64,
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// The end of the key range that holds exactly the keys starting with
/// `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            return b64(&b);
        }
    }
    b64(&[0])
}

/// The gateway writes int64 as strings; accept numbers too.
pub fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kv_of(v: &Value) -> Option<Kv> {
    let key = B64.decode(v.get("key")?.as_str()?).ok()?;
    let value = match v.get("value").and_then(Value::as_str) {
        Some(s) => B64.decode(s).ok()?,
        None => Vec::new(),
    };
    Some(Kv {
        key: String::from_utf8(key).ok()?,
        value,
    })
}

fn kvs_of(v: &Value) -> Vec<Kv> {
    v.get("kvs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(kv_of).collect())
        .unwrap_or_default()
}

impl Etcd {
    pub fn new(endpoints: Vec<String>, tls: Option<TlsConnector>) -> Self {
        Etcd {
            endpoints,
            tls,
            preferred: AtomicUsize::new(0),
            calls: Default::default(),
        }
    }

    /// One unary call on the first endpoint that answers.
    async fn call(&self, path: &str, body: &Value) -> Result<Value> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = EtcdError::Unreachable("no endpoint configured".into());
        for i in 0..n {
            let idx = (first + i) % n;
            let ep = &self.endpoints[idx];
            match tokio::time::timeout(CALL_TIMEOUT, post(ep, self.tls.as_ref(), path, body)).await
            {
                Ok(Ok(v)) => {
                    self.preferred.store(idx, Ordering::Relaxed);
                    return Ok(v);
                }
                Ok(Err(EtcdError::Protocol(m))) => return Err(EtcdError::Protocol(m)),
                Ok(Err(e)) => last = e,
                Err(_) => last = EtcdError::Unreachable(format!("{ep}: no answer in time")),
            }
        }
        Err(last)
    }

    /// Every key under `prefix`, and the store's revision of that view.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let r = self
            .call(
                "/v3/kv/range",
                &json!({"key": b64(prefix.as_bytes()), "range_end": prefix_end(prefix)}),
            )
            .await?;
        Ok((kvs_of(&r), num(&r["header"]["revision"])))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let r = self
            .call("/v3/kv/range", &json!({"key": b64(key.as_bytes())}))
            .await?;
        Ok(kvs_of(&r).into_iter().next())
    }

    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<()> {
        let mut req = json!({"key": b64(key.as_bytes()), "value": b64(value)});
        if let Some(l) = lease {
            req["lease"] = json!(l.to_string());
        }
        self.call("/v3/kv/put", &req).await.map(|_| ())
    }

    /// Create `key` only if absent, in one transaction. `None`: created;
    /// `Some(kv)`: it existed, with this value.
    pub async fn create(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<Option<Kv>> {
        let k = b64(key.as_bytes());
        let mut put = json!({"key": k, "value": b64(value)});
        if let Some(l) = lease {
            put["lease"] = json!(l.to_string());
        }
        let r = self
            .call(
                "/v3/kv/txn",
                &json!({
                    "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                    "success": [{"request_put": put}],
                    "failure": [{"request_range": {"key": k}}],
                }),
            )
            .await?;
        if r.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        let existing = r["responses"]
            .as_array()
            .and_then(|a| a.first())
            .map(|x| kvs_of(&x["response_range"]))
            .and_then(|v| v.into_iter().next());
        match existing {
            Some(kv) => Ok(Some(kv)),
            // Deleted between compare and range: report it as taken; the
            // caller tries again or elsewhere.
            None => Ok(Some(Kv {
                key: key.to_string(),
                value: Vec::new(),
            })),
        }
    }

    /// Put `key` only while `guard` holds `guard_value`, in one
    /// transaction (an endpoint only while its block is still ours).
    pub async fn put_if(
        &self,
        key: &str,
        value: &[u8],
        guard: &str,
        guard_value: &[u8],
    ) -> Result<bool> {
        let g = b64(guard.as_bytes());
        let r = self
            .call(
                "/v3/kv/txn",
                &json!({
                    "compare": [{"key": g, "target": "VALUE", "result": "EQUAL", "value": b64(guard_value)}],
                    "success": [{"request_put": {"key": b64(key.as_bytes()), "value": b64(value)}}],
                }),
            )
            .await?;
        Ok(r.get("succeeded").and_then(Value::as_bool) == Some(true))
    }

    /// Delete `key` only if it still holds `value` (a block or an endpoint
    /// that another host took over meanwhile stays).
    pub async fn delete_if(&self, key: &str, value: &[u8]) -> Result<bool> {
        let k = b64(key.as_bytes());
        let r = self
            .call(
                "/v3/kv/txn",
                &json!({
                    "compare": [{"key": k, "target": "VALUE", "result": "EQUAL", "value": b64(value)}],
                    "success": [{"request_delete_range": {"key": k}}],
                }),
            )
            .await?;
        Ok(r.get("succeeded").and_then(Value::as_bool) == Some(true))
    }

    /// Put `value` at `key` only if it still holds `expected` (a task's
    /// host writes its state back unless the task was removed meanwhile).
    pub async fn replace(&self, key: &str, expected: &[u8], value: &[u8]) -> Result<bool> {
        self.put_if(key, value, key, expected).await
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.call("/v3/kv/deleterange", &json!({"key": b64(key.as_bytes())}))
            .await
            .map(|_| ())
    }

    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.call(
            "/v3/kv/deleterange",
            &json!({"key": b64(prefix.as_bytes()), "range_end": prefix_end(prefix)}),
        )
        .await
        .map(|_| ())
    }

    pub async fn grant(&self, ttl: u64) -> Result<i64> {
        let r = self
            .call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))
            .await?;
        match num(&r["ID"]) {
            0 => Err(EtcdError::Protocol(format!("lease grant answered {r}"))),
            id => Ok(id),
        }
    }

    /// Renew a lease; `Ok(false)` when it has expired already.
    pub async fn keepalive(&self, id: i64) -> Result<bool> {
        let r = self
            .call("/v3/lease/keepalive", &json!({"ID": id.to_string()}))
            .await?;
        Ok(num(&r["result"]["TTL"]) > 0)
    }

    pub async fn revoke(&self, id: i64) -> Result<()> {
        self.call("/v3/lease/revoke", &json!({"ID": id.to_string()}))
            .await
            .map(|_| ())
    }

    /// Watch every key under `prefix` from `revision` on.
    pub async fn watch(&self, prefix: &str, revision: i64) -> Result<Watch> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let body = json!({"create_request": {
            "key": b64(prefix.as_bytes()),
            "range_end": prefix_end(prefix),
            "start_revision": revision.to_string(),
        }});
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = EtcdError::Unreachable("no endpoint configured".into());
        for i in 0..n {
            let ep = &self.endpoints[(first + i) % n];
            let open = open_stream(ep, self.tls.as_ref(), "/v3/watch", &body);
            match tokio::time::timeout(CALL_TIMEOUT, open).await {
                Ok(Ok(w)) => return Ok(w),
                Ok(Err(e)) => last = e,
                Err(_) => last = EtcdError::Unreachable(format!("{ep}: no answer in time")),
            }
        }
        Err(last)
    }
}

fn request_bytes(ep: &str, path: &str, body: &Value, close: bool) -> Vec<u8> {
    let body = body.to_string();
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {ep}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

async fn connect(ep: &str, tls: Option<&TlsConnector>) -> Result<Conn> {
    let s = TcpStream::connect(ep)
        .await
        .map_err(|e| EtcdError::Unreachable(format!("{ep}: {e}")))?;
    let _ = s.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Box::new(s));
    };
    let name = super::tls::server_name(ep)
        .ok_or_else(|| EtcdError::Protocol(format!("{ep}: not a host name for TLS")))?;
    // A refused handshake (bad certificate) is a configuration error, not
    // an unreachable store.
    let t = tls
        .connect(name, s)
        .await
        .map_err(|e| EtcdError::Protocol(format!("{ep}: TLS: {e}")))?;
    Ok(Box::new(t))
}

/// Read one whole response: up to the end its length or its chunking
/// says (a TLS peer that closes without close_notify must not turn a
/// complete answer into an error).
async fn read_response(ep: &str, s: &mut Conn) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(split) = find(&buf, b"\r\n\r\n") {
            let (_, chunked, length) = parse_head(&buf[..split])?;
            let body = &buf[split + 4..];
            let complete = match (chunked, length) {
                (true, _) => body.ends_with(b"0\r\n\r\n") && dechunk(body).is_ok(),
                (false, Some(l)) => body.len() >= l,
                (false, None) => false,
            };
            if complete {
                return Ok(buf);
            }
        }
        if buf.len() > MAX_BODY {
            return Err(EtcdError::Protocol(format!("{ep}: answer too large")));
        }
        match s.read(&mut chunk).await {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) if !buf.is_empty() => return Ok(buf),
            Err(e) => return Err(EtcdError::Unreachable(format!("{ep}: {e}"))),
        }
    }
}

/// The status line and headers: (status, chunked, content length).
fn parse_head(head: &[u8]) -> Result<(u16, bool, Option<usize>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| EtcdError::Protocol("bad HTTP status line".into()))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = v.parse().ok();
        }
    }
    Ok((status, chunked, length))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decode a complete chunked body.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Err(EtcdError::Protocol("truncated chunked body".into()));
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| EtcdError::Protocol("bad chunk size".into()))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err(EtcdError::Protocol("truncated chunk".into()));
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

async fn post(ep: &str, tls: Option<&TlsConnector>, path: &str, body: &Value) -> Result<Value> {
    let mut s = connect(ep, tls).await?;
    s.write_all(&request_bytes(ep, path, body, true))
        .await
        .map_err(|e| EtcdError::Unreachable(format!("{ep}: {e}")))?;
    let buf = read_response(ep, &mut s).await?;
    let split = find(&buf, b"\r\n\r\n")
        .ok_or_else(|| EtcdError::Unreachable(format!("{ep}: no HTTP answer")))?;
    let (status, chunked, _) = parse_head(&buf[..split])?;
    let raw = &buf[split + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| EtcdError::Protocol(format!("answer is not JSON: {e}")))?;
    if status != 200 || v.get("error").is_some() {
        let msg = v
            .get("message")
            .or_else(|| v.get("error"))
            .map(|m| m.to_string())
            .unwrap_or_else(|| v.to_string());
        // A member without a leader (quorum lost) answers 503: as good as
        // unreachable for our purposes.
        if status == 503 || msg.contains("no leader") || msg.contains("timed out") {
            return Err(EtcdError::Unreachable(format!("{ep}: {msg}")));
        }
        return Err(EtcdError::Protocol(format!("{path}: HTTP {status}: {msg}")));
    }
    Ok(v)
}

/// A watch's stream of newline-separated JSON messages (chunked).
pub struct Watch {
    stream: Conn,
    /// Raw bytes not yet decoded (chunk framing included).
    raw: Vec<u8>,
    /// Decoded body bytes not yet split into messages.
    body: Vec<u8>,
}

async fn open_stream(
    ep: &str,
    tls: Option<&TlsConnector>,
    path: &str,
    body: &Value,
) -> Result<Watch> {
    let mut s = connect(ep, tls).await?;
    s.write_all(&request_bytes(ep, path, body, false))
        .await
        .map_err(|e| EtcdError::Unreachable(format!("{ep}: {e}")))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let split = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i;
        }
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| EtcdError::Unreachable(format!("{ep}: {e}")))?;
        if n == 0 || raw.len() > 64 * 1024 {
            return Err(EtcdError::Unreachable(format!("{ep}: watch closed")));
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let (status, chunked, _) = parse_head(&raw[..split])?;
    if status != 200 || !chunked {
        return Err(EtcdError::Protocol(format!("watch answered HTTP {status}")));
    }
    Ok(Watch {
        stream: s,
        raw: raw[split + 4..].to_vec(),
        body: Vec::new(),
    })
}

impl Watch {
    /// The next batch of events; an error when the stream ends (the
    /// caller starts a new watch from the last revision it saw).
    pub async fn next(&mut self) -> Result<(Vec<Event>, i64)> {
        loop {
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                let v: Value = match serde_json::from_slice(&line) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                let r = &v["result"];
                if v.get("error").is_some()
                    || r.get("canceled").and_then(Value::as_bool) == Some(true)
                {
                    return Err(EtcdError::Protocol(format!("watch ended: {v}")));
                }
                let rev = num(&r["header"]["revision"]);
                let events = r["events"]
                    .as_array()
                    .map(|a| a.iter().filter_map(event_of).collect())
                    .unwrap_or_default();
                return Ok((events, rev));
            }
            self.decode_chunks()?;
            if self.body.contains(&b'\n') {
                continue;
            }
            let mut chunk = [0u8; 16384];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| EtcdError::Unreachable(format!("watch: {e}")))?;
            if n == 0 {
                return Err(EtcdError::Unreachable("watch stream closed".into()));
            }
            self.raw.extend_from_slice(&chunk[..n]);
        }
    }

    /// Move every complete chunk from `raw` to `body`.
    fn decode_chunks(&mut self) -> Result<()> {
        loop {
            let Some(eol) = find(&self.raw, b"\r\n") else {
                return Ok(());
            };
            let size_text = String::from_utf8_lossy(&self.raw[..eol]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| EtcdError::Protocol("bad chunk size in watch".into()))?;
            if size == 0 {
                return Err(EtcdError::Unreachable("watch stream ended".into()));
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return Ok(());
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }
}

fn event_of(e: &Value) -> Option<Event> {
    let kv = kv_of(&e["kv"])?;
    match e.get("type").and_then(Value::as_str) {
        Some("DELETE") => Some(Event::Delete(kv.key)),
        _ => Some(Event::Put(kv)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(B64.decode(prefix_end("/a/")).unwrap(), b"/a0");
        assert_eq!(B64.decode(prefix_end("ab")).unwrap(), b"ac");
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
    }

    #[test]
    fn events_and_numbers_parse_as_the_gateway_writes_them() {
        let e = json!({"type": "DELETE", "kv": {"key": b64(b"/k"), "mod_revision": "5"}});
        assert_eq!(event_of(&e), Some(Event::Delete("/k".into())));
        let e = json!({"kv": {"key": b64(b"/k"), "value": b64(b"v")}});
        assert_eq!(
            event_of(&e),
            Some(Event::Put(Kv {
                key: "/k".into(),
                value: b"v".to_vec()
            }))
        );
        assert_eq!(num(&json!("12")), 12);
        assert_eq!(num(&json!(7)), 7);
    }
}
