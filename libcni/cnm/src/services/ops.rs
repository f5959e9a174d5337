//! What `service create|scale|rm` do, in the order that keeps traffic
//! right: tasks exist before rules point at them, rules stop pointing at
//! tasks before they go. The service file is written at each step, so a
//! failure midway (or a killed cnitool) leaves something `rm` can undo;
//! a failed create undoes itself.

use std::collections::HashMap;

use super::model::{self, vip_owner, EndpointMode, Port, Service};
use super::store::ServiceStore;
use super::{names, tasks, vip};
use crate::cli::Settings;
use crate::model::now_rfc3339;
use crate::registry::Entry;
use cni_dns::StateDir;
use cni_net::firewall::services::{self as rules, ServiceRules};
use cni_runtime::conf::LoadedList;
use cni_spec::error::{Error, ErrorList, Result};

/// Published ports Docker picks from when `-p TARGET` names none.
const AUTO_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// A validated `service create`.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub name: String,
    pub network: String,
    pub replicas: u64,
    pub mode: EndpointMode,
    /// (published or None, target, protocol)
    pub ports: Vec<(Option<u16>, u16, model::ProtoName)>,
}

fn store(s: &Settings) -> ServiceStore {
    ServiceStore::new(&s.conf_dir)
}

fn dns_state() -> StateDir {
    StateDir::resolve(None)
}

fn list_of(e: &Entry) -> Result<&LoadedList> {
    e.list
        .as_ref()
        .ok_or_else(|| Error::invalid_config(format!("network {} has no plugins", e.name)))
}

fn rules_of<'a>(
    svc: &'a Service,
    backends: &'a [std::net::Ipv4Addr],
    ports: &'a [cni_net::firewall::services::ServicePort],
) -> ServiceRules<'a> {
    ServiceRules {
        id: &svc.id,
        name: &svc.name,
        vip: svc.vip_addr(),
        backends,
        ports,
        mesh: None,
    }
}

fn apply_rules(svc: &Service) -> Result<()> {
    let backends = svc.backends();
    let ports: Vec<_> = svc.ports.iter().map(Port::rule).collect();
    rules::apply(&rules_of(svc, &backends, &ports))
}

/// Every published port of the other services (with its owner): their
/// rules exist only while they have tasks, their claims always.
fn ports_in_use(st: &ServiceStore) -> Result<HashMap<(u16, &'static str), String>> {
    Ok(st
        .list()?
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .map(|p| ((p.published, p.proto()), s.name.clone()))
        })
        .collect())
}

fn resolve_ports(spec: &CreateSpec, st: &ServiceStore) -> Result<Vec<Port>> {
    let used = ports_in_use(st)?;
    let mut out: Vec<Port> = Vec::new();
    for (published, target, protocol) in &spec.ports {
        let proto = Port {
            protocol: *protocol,
            target: *target,
            published: 0,
        }
        .proto();
        let published = match published {
            Some(p) => *p,
            None => AUTO_PORTS
                .clone()
                .find(|p| {
                    !used.contains_key(&(*p, proto))
                        && !out.iter().any(|o| o.published == *p && o.proto() == proto)
                })
                .ok_or_else(|| Error::invalid_config("no free port to publish on"))?,
        };
        if let Some(owner) = used.get(&(published, proto)) {
            return Err(Error::new(
                cni_net::firewall::portmap::PORT_TAKEN,
                format!("port '{published}' is already in use by service '{owner}'"),
            ));
        }
        if out
            .iter()
            .any(|o| o.published == published && o.proto() == proto)
        {
            return Err(Error::invalid_config(
                "rpc error: code = InvalidArgument desc = EndpointSpec: duplicate published ports provided",
            ));
        }
        out.push(Port {
            protocol: *protocol,
            target: *target,
            published,
        });
    }
    Ok(out)
}

/// `service create`: the new service, with its tasks running and its
/// rules and names in place; nothing is left when it fails.
pub fn create(spec: &CreateSpec, s: &Settings) -> Result<Service> {
    model::validate_name(&spec.name)?;
    if spec.mode == EndpointMode::Dnsrr && !spec.ports.is_empty() {
        return Err(Error::invalid_config(
            "rpc error: code = InvalidArgument desc = EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
        ));
    }
    let net = s.registry().find(&spec.network)?;
    let list = list_of(&net)?.clone();
    if spec.mode == EndpointMode::Vip && vip::bridge_of(&list).is_none() {
        return Err(Error::invalid_config(format!(
            "network {}: a virtual IP needs a bridge network on one host (use --endpoint-mode dnsrr)",
            net.name
        )));
    }
    let st = store(s);
    let _lock = st.lock()?;
    if st.list()?.iter().any(|x| x.name == spec.name) {
        return Err(Error::invalid_config(
            "rpc error: code = AlreadyExists desc = name conflicts with an existing object",
        ));
    }
    let ports = resolve_ports(spec, &st)?;
    let id = model::new_id()?;
    let rule_ports: Vec<_> = ports.iter().map(Port::rule).collect();
    rules::check_ports_free(&id, &rule_ports)?;

    let now = now_rfc3339();
    let mut svc = Service {
        id,
        name: spec.name.clone(),
        network: net.name.clone(),
        network_id: net.id.clone(),
        replicas: spec.replicas,
        endpoint_mode: spec.mode,
        ports,
        vip: None,
        tasks: Vec::new(),
        pending: Vec::new(),
        created: now.clone(),
        updated: now,
        version: 1,
        constraints: Vec::new(),
        cluster: false,
    };
    st.write(&svc)?;
    match build(&mut svc, &net, &list, s, &st) {
        Ok(()) => Ok(svc),
        Err(e) => {
            let undo = teardown(&svc, Some(&net), s);
            let _ = st.remove(&svc.name);
            match undo {
                Ok(()) => Err(e),
                Err(u) => {
                    let mut e = e;
                    e.msg = format!("{}; undoing it failed too: {u}", e.msg);
                    Err(e)
                }
            }
        }
    }
}

fn build(
    svc: &mut Service,
    net: &Entry,
    list: &LoadedList,
    s: &Settings,
    st: &ServiceStore,
) -> Result<()> {
    if svc.endpoint_mode == EndpointMode::Vip {
        let addr = vip::reserve(&s.cni, list, &vip_owner(&svc.id))?;
        svc.vip = Some(addr.to_string());
        st.write(svc)?;
    }
    for slot in 1..=svc.replicas {
        let t = tasks::start(&s.cni, net, &svc.name, slot)?;
        svc.tasks.push(t);
        st.write(svc)?;
    }
    place_vip(svc, list)?;
    apply_rules(svc)?;
    names::update(&dns_state(), &s.cni.path, Some(list), None, Some(svc))
}

/// The VIP on the network's bridge, once the bridge exists (its first
/// task makes it); with published ports, the bridge lets the host's own
/// 127.0.0.1:PORT through once translated (`route_localnet`, as `portmap`
/// does).
fn place_vip(svc: &Service, list: &LoadedList) -> Result<()> {
    let Some(br) = vip::bridge_of(list) else {
        return Ok(());
    };
    if let Some(a) = svc.vip_addr() {
        vip::add_to_bridge(&br, a)?;
    }
    if !svc.ports.is_empty() && !svc.tasks.is_empty() {
        cni_net::netlink::sysctl::set(&format!("net/ipv4/conf/{br}/route_localnet"), "1")?;
    }
    Ok(())
}

/// Remove everything of a service but its file: rules, names, tasks, the
/// VIP. Keeps going past failures and reports them all.
fn teardown(svc: &Service, net: Option<&Entry>, s: &Settings) -> Result<()> {
    let mut errs = ErrorList::new();
    errs.check(rules::remove(&svc.id));
    let list = net.and_then(|n| n.list.as_ref());
    errs.check(names::update(
        &dns_state(),
        &s.cni.path,
        list,
        Some(svc),
        None,
    ));
    let nets = s.registry().list().unwrap_or_default();
    for t in &svc.tasks {
        errs.check(tasks::stop(&s.cni, t, &nets));
    }
    errs.check(forget_udp_flows(&svc.tasks));
    if let Some(list) = list {
        if let (Some(br), Some(a)) = (vip::bridge_of(list), svc.vip_addr()) {
            errs.check(vip::remove_from_bridge(&br, a));
        }
        if svc.endpoint_mode == EndpointMode::Vip {
            errs.check(vip::release(&s.cni, list, &vip_owner(&svc.id)));
        }
    }
    errs.into_result()
}

/// UDP "connections" to tasks that left keep their translation while the
/// client keeps sending: drop them, so the next datagram meets the rules.
fn forget_udp_flows(gone: &[super::model::Task]) -> Result<()> {
    let addrs: Vec<_> = gone.iter().map(|t| t.address).collect();
    cni_net::firewall::conntrack::flush_reply_sources_v4(cni_net::firewall::conntrack::UDP, &addrs)
        .map(|_| ())
}

/// `service rm`.
pub fn remove(key: &str, s: &Settings) -> Result<Service> {
    let st = store(s);
    let _lock = st.lock()?;
    let svc = st.find(key)?;
    let net = s.registry().find(&svc.network).ok();
    teardown(&svc, net.as_ref(), s)?;
    st.remove(&svc.name)?;
    Ok(svc)
}

/// Rules and names brought from `old`'s tasks to `svc`'s.
fn follow_tasks(svc: &Service, old: &Service, list: &LoadedList, s: &Settings) -> Result<()> {
    apply_rules(svc)?;
    names::update(&dns_state(), &s.cni.path, Some(list), Some(old), Some(svc))
}

/// `service scale NAME=N`: new tasks first, then the rules; or the rules
/// first, then the tasks that go (highest slots).
pub fn scale(key: &str, replicas: u64, s: &Settings) -> Result<Service> {
    let st = store(s);
    let _lock = st.lock()?;
    let old = st.find(key)?;
    let net = s.registry().find(&old.network)?;
    let list = list_of(&net)?.clone();
    let mut svc = old.clone();
    svc.replicas = replicas;
    svc.version += 1;
    svc.updated = now_rfc3339();
    let current = svc.tasks.len() as u64;
    if replicas >= current {
        let mut err = None;
        for slot in current + 1..=replicas {
            match tasks::start(&s.cni, &net, &svc.name, slot) {
                Ok(t) => {
                    svc.tasks.push(t);
                    st.write(&svc)?;
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        place_vip(&svc, &list)?;
        follow_tasks(&svc, &old, &list, s)?;
        st.write(&svc)?;
        return match err {
            Some(e) => Err(e),
            None => Ok(svc),
        };
    }
    let leaving = svc.tasks.split_off(replicas as usize);
    follow_tasks(&svc, &old, &list, s)?;
    let nets = s.registry().list()?;
    let mut errs = ErrorList::new();
    for t in &leaving {
        errs.check(tasks::stop(&s.cni, t, &nets));
    }
    errs.check(forget_udp_flows(&leaving));
    st.write(&svc)?;
    errs.into_result().map(|()| svc)
}

/// Every service.
pub fn list(s: &Settings) -> Result<Vec<Service>> {
    store(s).list()
}

/// One service by name or ID.
pub fn find(key: &str, s: &Settings) -> Result<Service> {
    store(s).find(key)
}
