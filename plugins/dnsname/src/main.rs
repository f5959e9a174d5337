//! dnsname: a chained plugin that makes a container resolvable by its name
//! and aliases from the other containers of its networks, as Docker's
//! embedded DNS does. ADD writes the attachment's record (names, addresses
//! from `prevResult`) and asks the per-host daemon, started on demand, to
//! serve it at 127.0.0.11 inside the container; the result's `dns` then
//! points the container there. DEL removes the record. Drop-in for
//! containers/dnsname (`domainName`, the `aliases` capability,
//! `K8S_POD_NAME`).

mod config;

use std::collections::HashSet;
use std::time::Duration;

use cni_dns::control::{self, Request as Ctl};
use cni_dns::start::{self, StartError};
use cni_dns::{RecordKey, RecordStore, StateDir};
use cni_plugin::log;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::{CniResult, Error, Result};

use config::Conf;

const ABOUT: About = About {
    name: "dnsname",
    description: "registers container names with the per-host resolver",
};

/// Where containers find the resolver: inside their own namespace, as in
/// Docker, so it works on bridge, macvlan and overlay networks alike.
const RESOLVER: &str = "127.0.0.11";

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

struct DnsName;

impl Plugin for DnsName {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let mut result = req.config.prev_result()?.ok_or_else(|| {
            Error::invalid_config("dnsname is a chained plugin: prevResult is required")
        })?;
        // A path that is not a network namespace is refused (code 8)
        // before anything is written.
        cni_net::netns::NetNs::open(req.netns_path()?)?;
        let record = conf.record(req, &result)?;
        let store = store(&conf.state);
        store
            .write(&record)
            .map_err(|e| Error::from_io("writing the DNS record", e))?;
        if let Err(e) = serve(&conf.state, req, &record.key()) {
            // Leave nothing behind that a retry would trip over.
            let _ = store.remove(&record.key());
            return Err(e);
        }
        let dns = &mut result.dns;
        dns.nameservers = vec![RESOLVER.to_string()];
        dns.search.retain(|s| *s != conf.domain);
        dns.search.insert(0, conf.domain.clone());
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let key = conf.key(req);
        store(&conf.state)
            .remove(&key)
            .map_err(|e| Error::from_io("removing the DNS record", e))?;
        // A daemon that is not running has nothing to forget.
        if let Ok(r) = control::call(&conf.state.socket(), &Ctl::Del { key }, CALL_TIMEOUT) {
            if !r.ok {
                log::error(&format!("daemon: {}", r.error.unwrap_or_default()));
            }
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let key = conf.key(req);
        let record = store(&conf.state)
            .read(&key)
            .map_err(|e| Error::from_io("reading the DNS record", e))?
            .ok_or_else(|| {
                Error::io(format!(
                    "no DNS record for {}/{}",
                    key.container_id, key.ifname
                ))
            })?;
        let reply = ask(&conf.state, req, &Ctl::Check { key })?;
        if !reply.serving {
            return Err(Error::io(format!(
                "the resolver does not listen in {}",
                record.netns
            )));
        }
        if !record.names.is_empty() {
            let answered: HashSet<_> = reply.addresses.iter().collect();
            if let Some(missing) = record.addresses.iter().find(|a| !answered.contains(a)) {
                return Err(Error::io(format!(
                    "the resolver does not answer {} with {missing}",
                    record.names[0]
                )));
            }
        }
        Ok(())
    }

    fn status(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let dir = cni_state::Dir::create_all(conf.state.root(), 0o700)
            .and_then(|d| d.check_writable().map(|_| d))
            .map_err(|e| {
                Error::not_available(format!(
                    "DNS state folder {} is not usable: {e}",
                    conf.state.root().display()
                ))
            })?;
        drop(dir);
        start::ensure_running(&conf.state, &req.path)
            .map_err(|e| Error::not_available(format!("the resolver cannot run: {e}")))
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let Some(valid) = req.config.valid_attachments()? else {
            return Ok(());
        };
        let keep: HashSet<(String, String)> = valid
            .into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect();
        let store = store(&conf.state);
        let (records, _) = store
            .read_network(&conf.network)
            .map_err(|e| Error::from_io("reading the DNS records", e))?;
        let mut errors = cni_spec::ErrorList::new();
        for r in records {
            if keep.contains(&(r.container_id.clone(), r.ifname.clone())) {
                continue;
            }
            let key = r.key();
            errors.check(
                store
                    .remove(&key)
                    .map_err(|e| Error::from_io("removing a DNS record", e)),
            );
            let _ = control::call(&conf.state.socket(), &Ctl::Del { key }, CALL_TIMEOUT);
        }
        errors.into_result()
    }
}

fn store(state: &StateDir) -> RecordStore {
    RecordStore::new(state.records())
}

/// How often a request is tried: once, then after starting the daemon,
/// then once more for a daemon that was just exiting as we connected.
const ATTEMPTS: usize = 3;

/// Ask the daemon; when it does not answer (not running, killed, or just
/// exiting as we connected) start it and ask again. This is how a
/// `kill -9` heals: the new daemon reads every record at start.
fn ask(state: &StateDir, req: &Request, msg: &Ctl) -> Result<control::Reply> {
    let mut attempt = 0;
    let reply = loop {
        attempt += 1;
        match control::call(&state.socket(), msg, CALL_TIMEOUT) {
            Ok(r) => break r,
            Err(e) if attempt >= ATTEMPTS => {
                return Err(Error::try_again(format!(
                    "the resolver did not answer: {e}"
                )))
            }
            Err(e) => log::debug(&format!("the resolver did not answer ({e}): starting it")),
        }
        start::ensure_running(state, &req.path).map_err(|e| match e {
            StartError::NoBinary(m) => Error::not_available(m),
            StartError::Failed(m) => Error::try_again(m),
        })?;
    };
    if !reply.ok {
        return Err(Error::io(format!(
            "the resolver refused: {}",
            reply.error.clone().unwrap_or_default()
        )));
    }
    Ok(reply)
}

fn serve(state: &StateDir, req: &Request, key: &RecordKey) -> Result<()> {
    ask(state, req, &Ctl::Add { key: key.clone() }).map(|_| ())
}

fn main() {
    skel::run(&ABOUT, &DnsName)
}
