//! A service's names, served by the per-host resolver (`cni-rs-daemon`)
//! as Docker's embedded DNS does: in `vip` mode the service name answers
//! its VIP; in `dnsrr` mode it answers the task addresses (a name shared
//! by several records, which the resolver shuffles per answer); in both,
//! `tasks.NAME` answers the task addresses and each task its own name.
//! Records are files (`cni-dns`), one for the VIP (no namespace: nothing
//! to listen in) and one per task (in the task's namespace, so tasks get
//! the resolver too).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::model::{EndpointMode, Service};
use cni_dns::control::{self, Request};
use cni_dns::{Record, RecordKey, RecordStore, StateDir};
use cni_runtime::conf::LoadedList;
use cni_spec::error::{Error, Result};

const DEFAULT_DOMAIN: &str = "dns.podman";
const TASK_IFNAME: &str = "svc";
const VIP_IFNAME: &str = "vip";
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Domain and forwarding of the network's `dnsname` plugin, if any.
fn network_dns(list: &LoadedList) -> (String, bool) {
    let p = list
        .list
        .plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("dnsname"));
    let domain = p
        .and_then(|p| p.get("domainName"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_DOMAIN)
        .to_string();
    let forward = p
        .and_then(|p| p.get("forward"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    (domain, forward)
}

/// The domain of a conflist as stored (JSON): its `dnsname`'s, or podman's
/// default.
pub fn domain_of(list: &Value) -> String {
    list.get("plugins")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("type").and_then(Value::as_str) == Some("dnsname"))
        })
        .and_then(|p| p.get("domainName"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_DOMAIN)
        .to_string()
}

fn records(svc: &Service, list: &LoadedList) -> Vec<Record> {
    let (domain, forward) = network_dns(list);
    let name = svc.name.to_ascii_lowercase();
    let base = |id: String, ifname: &str, netns: String, names, addresses| Record {
        network: svc.network.clone(),
        domain: domain.clone(),
        forward,
        container_id: id,
        ifname: ifname.to_string(),
        netns,
        names,
        addresses,
    };
    let mut out = Vec::new();
    if let (EndpointMode::Vip, Some(vip)) = (svc.endpoint_mode, svc.vip_addr()) {
        out.push(base(
            svc.vip_owner(),
            VIP_IFNAME,
            String::new(),
            vec![name.clone()],
            vec![IpAddr::V4(vip)],
        ));
    }
    for t in &svc.tasks {
        let mut names = vec![t.name.to_ascii_lowercase(), format!("tasks.{name}")];
        if svc.endpoint_mode == EndpointMode::Dnsrr {
            names.push(name.clone());
        }
        out.push(base(
            t.name.clone(),
            TASK_IFNAME,
            format!("{}/{}", super::super::endpoints::NETNS_DIR, t.name),
            names,
            vec![IpAddr::V4(t.address)],
        ));
    }
    out
}

/// Make the resolver's records of a service go from `old` to `new` (None:
/// none). Names cannot break what rules already do: when the resolver
/// cannot be reached, the records stay on disk for it to read at start,
/// and the error says so.
pub fn update(
    state: &StateDir,
    cni_path: &[std::path::PathBuf],
    list: Option<&LoadedList>,
    old: Option<&Service>,
    new: Option<&Service>,
) -> Result<()> {
    let store = RecordStore::new(state.records());
    let old_recs = match (old, list) {
        (Some(s), Some(l)) => records(s, l),
        _ => Vec::new(),
    };
    let new_recs = match (new, list) {
        (Some(s), Some(l)) => records(s, l),
        _ => Vec::new(),
    };
    let keep: BTreeSet<RecordKey> = new_recs.iter().map(Record::key).collect();
    let mut gone: Vec<RecordKey> = old_recs
        .iter()
        .map(Record::key)
        .filter(|k| !keep.contains(k))
        .collect();
    // Without a list (network gone), remove what the old service had by key.
    if list.is_none() {
        if let Some(s) = old {
            gone.extend(keys_of(s));
        }
    }
    let io = |what: &str, e: std::io::Error| Error::from_io(format!("resolver records: {what}"), e);
    for k in &gone {
        store.remove(k).map_err(|e| io("remove", e))?;
    }
    let changed: Vec<&Record> = new_recs.iter().filter(|r| !old_recs.contains(r)).collect();
    for r in &changed {
        store.write(r).map_err(|e| io("write", e))?;
    }
    if gone.is_empty() && changed.is_empty() {
        return Ok(());
    }
    let socket = state.socket();
    if !changed.is_empty() {
        cni_dns::start::ensure_running(state, cni_path)
            .map_err(|e| Error::io(format!("resolver: {e}")))?;
    } else if !cni_dns::start::is_running(state) {
        return Ok(());
    }
    let mut problems = Vec::new();
    for k in &gone {
        if let Err(e) = control::call(&socket, &Request::Del { key: k.clone() }, CALL_TIMEOUT) {
            problems.push(format!("del {}: {e}", k.container_id));
        }
    }
    for r in &changed {
        match control::call(&socket, &Request::Add { key: r.key() }, CALL_TIMEOUT) {
            Ok(reply) if reply.ok => {}
            Ok(reply) => problems.push(format!(
                "add {}: {}",
                r.container_id,
                reply.error.unwrap_or_default()
            )),
            Err(e) => problems.push(format!("add {}: {e}", r.container_id)),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::io(format!("resolver: {}", problems.join("; "))))
    }
}

/// The record keys a service may have, whatever its network's list.
fn keys_of(s: &Service) -> Vec<RecordKey> {
    let key = |id: String, ifname: &str| RecordKey {
        network: s.network.clone(),
        container_id: id,
        ifname: ifname.to_string(),
    };
    let mut out = vec![key(s.vip_owner(), VIP_IFNAME)];
    out.extend(s.tasks.iter().map(|t| key(t.name.clone(), TASK_IFNAME)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::model::Task;
    use cni_spec::NetConfList;

    fn list() -> LoadedList {
        let bytes = br#"{"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"bridge"},
            {"type":"dnsname","domainName":"corp.example","forward":false}]}"#
            .to_vec();
        LoadedList {
            list: NetConfList::from_slice(&bytes).unwrap(),
            bytes,
            source: "x".into(),
        }
    }

    fn svc(mode: EndpointMode) -> Service {
        Service {
            id: "abc".into(),
            name: "Web".into(),
            network: "n1".into(),
            network_id: "id".into(),
            replicas: 2,
            endpoint_mode: mode,
            ports: vec![],
            vip: (mode == EndpointMode::Vip).then(|| "10.0.0.2/24".into()),
            tasks: (1..=2)
                .map(|i| Task {
                    slot: i,
                    id: format!("t{i}"),
                    name: format!("Web.{i}.t{i}"),
                    address: std::net::Ipv4Addr::new(10, 0, 0, 2 + i as u8),
                    host: None,
                })
                .collect(),
            pending: Vec::new(),
            created: String::new(),
            updated: String::new(),
            version: 1,
            constraints: Vec::new(),
            cluster: false,
        }
    }

    #[test]
    fn vip_mode_names_the_vip_and_dnsrr_shares_the_name() {
        let r = records(&svc(EndpointMode::Vip), &list());
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].names.clone(), r[0].netns.as_str()),
            (vec!["web".into()], "")
        );
        assert_eq!(r[0].addresses, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(r[1].names, vec!["web.1.t1".to_string(), "tasks.web".into()]);
        assert_eq!(r[1].netns, "/var/run/netns/Web.1.t1");
        assert!(r.iter().all(|x| x.domain == "corp.example" && !x.forward));
        assert!(r.iter().all(|x| x.validate().is_ok()));
        let rr = records(&svc(EndpointMode::Dnsrr), &list());
        assert_eq!(rr.len(), 2);
        assert!(rr.iter().all(|x| x.names.contains(&"web".to_string())));
    }
}
