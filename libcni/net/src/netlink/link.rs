//! Links: lookup, listing, state changes, and creation of the kinds our
//! plugins need (veth, bridge, macvlan, vxlan).

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridgePort, InfoData, InfoKind, InfoMacVlan,
    InfoPortData, InfoPortKind, InfoVeth, InfoVlan, InfoVxlan, LinkAttribute, LinkExtentMask,
    LinkFlags, LinkInfo, LinkMessage, MacVlanMode as NlMacVlanMode, State,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{check_ifname, Mac, Netlink};
use crate::netns::NetNs;
use cni_spec::error::{Error, Result};

/// What we read back about a link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// None for links without a 6-byte hardware address (tun, ipip...).
    pub mac: Option<Mac>,
    /// IFF_UP: administratively up.
    pub up: bool,
    /// IFF_RUNNING: up and the driver reports it usable.
    pub running: bool,
    /// IFF_LOWER_UP: carrier present (for veth: the peer is up).
    pub lower_up: bool,
    pub promisc: bool,
    pub oper_state: OperState,
    /// "veth", "bridge", "macvlan", "vxlan"...; None for plain devices (lo,
    /// physical NICs).
    pub kind: Option<String>,
    /// Index of the bridge (or other master) the link is enslaved to.
    pub master: Option<u32>,
    /// IFLA_LINK: veth peer index / macvlan or vxlan parent index; it may
    /// live in the namespace named by `link_netnsid`.
    pub link: Option<u32>,
    /// The peer namespace's id as seen from this link's namespace.
    pub link_netnsid: Option<i32>,
    /// Macvlan mode, when `kind` is macvlan.
    pub macvlan_mode: Option<MacvlanMode>,
    /// VXLAN id, when `kind` is vxlan.
    pub vxlan_id: Option<u32>,
    /// The rest of a VXLAN device's settings, when `kind` is vxlan: what an
    /// overlay compares with its config to decide whether to reuse it.
    pub vxlan: Option<VxlanInfo>,
    /// 802.1Q id, when `kind` is vlan.
    pub vlan_id: Option<u16>,
}

/// RFC 2863 operational state (IFLA_OPERSTATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OperState {
    #[default]
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

/// Macvlan modes a CNI config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacvlanMode {
    #[default]
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    /// Parse a config value; the empty string means the default, bridge.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" | "bridge" => Ok(MacvlanMode::Bridge),
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "passthru" => Ok(MacvlanMode::Passthru),
            _ => Err(Error::invalid_config(format!(
                "unknown macvlan mode {s:?} (bridge, private, vepa, passthru)"
            ))),
        }
    }
}

/// A veth pair. The first end is created in the socket's namespace; the
/// peer directly in `peer_netns` (never created and then moved: a move takes
/// a global lock and is slow under concurrency).
#[derive(Debug, Default, Clone)]
pub struct VethSpec<'a> {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
    pub peer_name: String,
    pub peer_mtu: Option<u32>,
    pub peer_mac: Option<Mac>,
    /// None: the peer stays in the socket's namespace.
    pub peer_netns: Option<&'a NetNs>,
}

/// A Linux bridge.
#[derive(Debug, Default, Clone)]
pub struct BridgeSpec {
    pub name: String,
    pub mtu: Option<u32>,
    /// A fixed MAC keeps the bridge's MAC from following its ports.
    pub mac: Option<Mac>,
}

/// A macvlan on `parent` (an index in the socket's namespace), created
/// directly in `netns`. The kernel checks the name in both namespaces, so
/// callers create it under a temporary name and rename it inside the target.
#[derive(Debug, Default, Clone)]
pub struct MacvlanSpec<'a> {
    pub name: String,
    pub parent: u32,
    pub mode: MacvlanMode,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
    pub netns: Option<&'a NetNs>,
    /// IFLA_MACVLAN_BC_QUEUE_LEN: how many broadcast frames may wait for
    /// delivery to the macvlans of one parent (kernel default 1000); None
    /// leaves the kernel's value.
    pub bc_queue_len: Option<u32>,
}

/// An 802.1Q sub-interface (`ip link add link eth0 name eth0.20 type vlan
/// id 20`), created in the socket's namespace on `parent`.
#[derive(Debug, Default, Clone)]
pub struct VlanSpec {
    pub name: String,
    pub parent: u32,
    /// 1-4094.
    pub id: u16,
    pub mtu: Option<u32>,
}

/// A VXLAN device.
#[derive(Debug, Default, Clone)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    /// UDP destination port; None: the kernel's default (8472).
    pub port: Option<u16>,
    /// Source address of the tunnel packets.
    pub local: Option<IpAddr>,
    /// Underlay device index.
    pub underlay: Option<u32>,
    /// Learn remote MACs from received packets. Off when a control plane
    /// programs the FDB.
    pub learning: bool,
    /// Answer ARP/NDP from the device's neighbour table instead of
    /// flooding it (a control plane programs that table).
    pub proxy: bool,
    pub ttl: Option<u8>,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
}

/// A VXLAN device's settings as read back (IFLA_VXLAN_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    /// UDP destination port.
    pub port: Option<u16>,
    pub local: Option<IpAddr>,
    /// Underlay device index.
    pub underlay: Option<u32>,
    pub learning: bool,
    pub proxy: bool,
}

/// Bridge port options (IFLA_BRPORT_*); None leaves an option unchanged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BridgePortFlags {
    pub hairpin: Option<bool>,
    pub learning: Option<bool>,
    pub isolated: Option<bool>,
    pub unicast_flood: Option<bool>,
}

impl Netlink {
    /// The link called `name`; not found is ENODEV ([`super::is_not_found`]).
    pub fn link_by_name(&mut self, name: &str) -> Result<Link> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_one_link(msg, format_args!("find link {name}"))
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Link> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_one_link(msg, format_args!("find link #{index}"))
    }

    /// Like [`Netlink::link_by_name`], but a missing link is `Ok(None)`.
    pub fn link_by_name_opt(&mut self, name: &str) -> Result<Option<Link>> {
        match self.link_by_name(name) {
            Ok(l) => Ok(Some(l)),
            Err(e) if super::is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "list links",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })
            .collect())
    }

    /// The links enslaved to `master` (a bridge's ports). The kernel
    /// filters the dump (IFLA_MASTER in the request, honoured under
    /// NETLINK_GET_STRICT_CHK since Linux 4.20) and leaves the statistics
    /// out, so the cost follows the ports of this master, not every link of
    /// the namespace.
    pub fn links_with_master(&mut self, master: u32) -> Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(master_filter(master)),
            NLM_F_DUMP,
            format_args!("list links of master #{master}"),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })
            .filter(|l| l.master == Some(master))
            .collect())
    }

    /// Whether a link enslaved to `master` satisfies `pred`. Reads the
    /// kernel-filtered dump only up to the first match, so asking "is any
    /// other port left?" costs about the same with 1,000 ports as with
    /// one. Consumes the socket: it is closed mid-dump.
    pub fn any_link_with_master(
        self,
        master: u32,
        mut pred: impl FnMut(&Link) -> bool,
    ) -> Result<bool> {
        self.sock
            .dump_until(
                RouteNetlinkMessage::GetLink(master_filter(master)),
                |m| match m {
                    RouteNetlinkMessage::NewLink(l) => {
                        let link = parse_link(l.clone());
                        link.master == Some(master) && pred(&link)
                    }
                    _ => false,
                },
            )
            .map_err(|e| super::to_error(e, format_args!("list links of master #{master}")))
    }

    fn get_one_link(&mut self, msg: LinkMessage, what: std::fmt::Arguments) -> Result<Link> {
        let what = what.to_string();
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0, &what)?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })
            .ok_or_else(|| Error::io(format!("{what}: no reply from the kernel")))
    }

    pub fn set_link_up(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, true, "up")
    }

    pub fn set_link_down(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, false, "down")
    }

    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        let what = if on { "promisc on" } else { "promisc off" };
        self.set_flag(index, LinkFlags::Promisc, on, what)
    }

    fn set_flag(&mut self, index: u32, flag: LinkFlags, on: bool, what: &str) -> Result<()> {
        let mut msg = link_msg(index);
        msg.header.change_mask = flag;
        if on {
            msg.header.flags = flag;
        }
        self.set_link(msg, format_args!("set link #{index} {what}"))
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut msg = link_msg(index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(msg, format_args!("set link #{index} mtu {mtu}"))
    }

    pub fn set_mac(&mut self, index: u32, mac: Mac) -> Result<()> {
        let mut msg = link_msg(index);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        let m = super::format_mac(&mac);
        self.set_link(msg, format_args!("set link #{index} address {m}"))
    }

    /// Enslave to `master` (a bridge), or release with None.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        let mut msg = link_msg(index);
        msg.attributes
            .push(LinkAttribute::Controller(master.unwrap_or(0)));
        match master {
            Some(m) => self.set_link(msg, format_args!("set link #{index} master #{m}")),
            None => self.set_link(msg, format_args!("set link #{index} nomaster")),
        }
    }

    /// Make a link a port of bridge `master`, with no IPv6 address of its
    /// own. A port forwards frames and needs none; with a link-local address
    /// it would send DAD, MLD and router solicitations when it comes up,
    /// multicast the bridge floods to every other port, so each new port
    /// would cost more the more ports there are. Call before the link is up.
    pub fn enslave_port(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = link_msg(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        self.set_link(msg, format_args!("set link #{index} master #{master}"))
    }

    /// Rename a link; the kernel requires it to be down.
    pub fn rename_link(&mut self, index: u32, new_name: &str) -> Result<()> {
        check_ifname(new_name)?;
        let mut msg = link_msg(index);
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        self.set_link(msg, format_args!("rename link #{index} to {new_name}"))
    }

    /// Set bridge port options of a link enslaved to a bridge.
    pub fn set_bridge_port(&mut self, index: u32, flags: &BridgePortFlags) -> Result<()> {
        let mut port = Vec::new();
        if let Some(v) = flags.hairpin {
            port.push(InfoBridgePort::HairpinMode(v));
        }
        if let Some(v) = flags.learning {
            port.push(InfoBridgePort::Learning(v));
        }
        if let Some(v) = flags.isolated {
            port.push(InfoBridgePort::Isolated(v));
        }
        if let Some(v) = flags.unicast_flood {
            port.push(InfoBridgePort::UnicastFlood(v));
        }
        if port.is_empty() {
            return Ok(());
        }
        let mut msg = link_msg(index);
        // The slave-data form of `ip link set X type bridge_slave ...`; it
        // needs RTM_NEWLINK (the kernel only parses IFLA_LINKINFO there).
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(port)),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            0,
            format_args!("set bridge port options of link #{index}"),
        )?;
        Ok(())
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelLink(link_msg(index)),
            0,
            format_args!("delete link #{index}"),
        )?;
        Ok(())
    }

    pub fn delete_link_by_name(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(
            RouteNetlinkMessage::DelLink(msg),
            0,
            format_args!("delete link {name}"),
        )?;
        Ok(())
    }

    fn set_link(&mut self, msg: LinkMessage, what: std::fmt::Arguments) -> Result<()> {
        self.request(RouteNetlinkMessage::SetLink(msg), 0, what)?;
        Ok(())
    }

    /// Create a veth pair; EEXIST if either name is taken.
    pub fn create_veth(&mut self, spec: &VethSpec) -> Result<()> {
        check_ifname(&spec.name)?;
        check_ifname(&spec.peer_name)?;
        let msg = veth_msg(spec);
        self.create(msg, format_args!("create veth {}", spec.name))
    }

    /// Create a bridge; EEXIST ([`super::is_exists`]) if the name is taken.
    pub fn create_bridge(&mut self, spec: &BridgeSpec) -> Result<()> {
        check_ifname(&spec.name)?;
        let mut msg = LinkMessage::default();
        common_attrs(&mut msg, &spec.name, spec.mtu, spec.mac);
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create(msg, format_args!("create bridge {}", spec.name))
    }

    pub fn create_macvlan(&mut self, spec: &MacvlanSpec) -> Result<()> {
        check_ifname(&spec.name)?;
        let msg = macvlan_msg(spec);
        self.create(msg, format_args!("create macvlan {}", spec.name))
    }

    /// Create an 802.1Q link; kernels built without 802.1Q refuse it with
    /// EOPNOTSUPP ("Unknown device type").
    pub fn create_vlan(&mut self, spec: &VlanSpec) -> Result<()> {
        check_ifname(&spec.name)?;
        let msg = vlan_msg(spec)?;
        self.create(msg, format_args!("create vlan {}", spec.name))
    }

    pub fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<()> {
        check_ifname(&spec.name)?;
        let msg = vxlan_msg(spec)?;
        self.create(msg, format_args!("create vxlan {}", spec.name))
    }

    fn create(&mut self, msg: LinkMessage, what: std::fmt::Arguments) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )?;
        Ok(())
    }
}

/// A link dump request the kernel answers with the ports of `master` only,
/// without statistics (the largest part of each reply).
fn master_filter(master: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::Controller(master));
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    msg
}

fn link_msg(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

fn common_attrs(msg: &mut LinkMessage, name: &str, mtu: Option<u32>, mac: Option<Mac>) {
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mtu) = mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
}

pub(super) fn veth_msg(spec: &VethSpec) -> LinkMessage {
    let mut peer = LinkMessage::default();
    common_attrs(&mut peer, &spec.peer_name, spec.peer_mtu, spec.peer_mac);
    if let Some(ns) = spec.peer_netns {
        peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    let mut msg = LinkMessage::default();
    common_attrs(&mut msg, &spec.name, spec.mtu, spec.mac);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    msg
}

pub(super) fn macvlan_msg(spec: &MacvlanSpec) -> LinkMessage {
    let mode = match spec.mode {
        MacvlanMode::Bridge => NlMacVlanMode::Bridge,
        MacvlanMode::Private => NlMacVlanMode::Private,
        MacvlanMode::Vepa => NlMacVlanMode::Vepa,
        MacvlanMode::Passthru => NlMacVlanMode::Passthrough,
    };
    let mut data = vec![InfoMacVlan::Mode(mode)];
    if let Some(len) = spec.bc_queue_len {
        data.push(InfoMacVlan::BcQueueLen(len));
    }
    let mut msg = LinkMessage::default();
    common_attrs(&mut msg, &spec.name, spec.mtu, spec.mac);
    msg.attributes.push(LinkAttribute::Link(spec.parent));
    if let Some(ns) = spec.netns {
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::MacVlan),
        LinkInfo::Data(InfoData::MacVlan(data)),
    ]));
    msg
}

pub(super) fn vlan_msg(spec: &VlanSpec) -> Result<LinkMessage> {
    if spec.id == 0 || spec.id > 4094 {
        return Err(Error::invalid_config(format!(
            "vlan {}: id {} out of range 1-4094",
            spec.name, spec.id
        )));
    }
    let mut msg = LinkMessage::default();
    common_attrs(&mut msg, &spec.name, spec.mtu, None);
    msg.attributes.push(LinkAttribute::Link(spec.parent));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vlan),
        LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(spec.id)])),
    ]));
    Ok(msg)
}

pub(super) fn vxlan_msg(spec: &VxlanSpec) -> Result<LinkMessage> {
    if spec.vni == 0 || spec.vni >= 1 << 24 {
        return Err(Error::invalid_config(format!(
            "vxlan {}: VNI {} out of range 1-16777215",
            spec.name, spec.vni
        )));
    }
    let mut data = vec![InfoVxlan::Id(spec.vni)];
    if let Some(port) = spec.port {
        data.push(InfoVxlan::Port(port));
    }
    match spec.local {
        Some(IpAddr::V4(a)) => data.push(InfoVxlan::Local(a)),
        Some(IpAddr::V6(a)) => data.push(InfoVxlan::Local6(a)),
        None => {}
    }
    if let Some(dev) = spec.underlay {
        data.push(InfoVxlan::Link(dev));
    }
    data.push(InfoVxlan::Learning(spec.learning));
    if spec.proxy {
        data.push(InfoVxlan::Proxy(true));
    }
    if let Some(ttl) = spec.ttl {
        data.push(InfoVxlan::Ttl(ttl));
    }
    let mut msg = LinkMessage::default();
    common_attrs(&mut msg, &spec.name, spec.mtu, spec.mac);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(data)),
    ]));
    Ok(msg)
}

pub(super) fn parse_link(msg: LinkMessage) -> Link {
    let flags = msg.header.flags;
    let mut link = Link {
        index: msg.header.index,
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        lower_up: flags.contains(LinkFlags::LowerUp),
        promisc: flags.contains(LinkFlags::Promisc),
        ..Link::default()
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Mtu(m) => link.mtu = m,
            LinkAttribute::Address(a) => link.mac = <Mac>::try_from(a.as_slice()).ok(),
            LinkAttribute::OperState(s) => link.oper_state = oper_state(s),
            LinkAttribute::Controller(m) if m != 0 => link.master = Some(m),
            LinkAttribute::Link(l) if l != 0 => link.link = Some(l),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
            LinkAttribute::LinkInfo(infos) => parse_link_info(&mut link, infos),
            _ => {}
        }
    }
    link
}

fn parse_link_info(link: &mut Link, infos: Vec<LinkInfo>) {
    for info in infos {
        match info {
            LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
            LinkInfo::Data(InfoData::MacVlan(attrs)) => {
                for a in attrs {
                    if let InfoMacVlan::Mode(m) = a {
                        link.macvlan_mode = match m {
                            NlMacVlanMode::Bridge => Some(MacvlanMode::Bridge),
                            NlMacVlanMode::Private => Some(MacvlanMode::Private),
                            NlMacVlanMode::Vepa => Some(MacvlanMode::Vepa),
                            NlMacVlanMode::Passthrough => Some(MacvlanMode::Passthru),
                            _ => None,
                        };
                    }
                }
            }
            LinkInfo::Data(InfoData::Vlan(attrs)) => {
                for a in attrs {
                    if let InfoVlan::Id(id) = a {
                        link.vlan_id = Some(id);
                    }
                }
            }
            LinkInfo::Data(InfoData::Vxlan(attrs)) => {
                let mut vx = VxlanInfo::default();
                for a in attrs {
                    match a {
                        InfoVxlan::Id(id) => link.vxlan_id = Some(id),
                        InfoVxlan::Port(p) => vx.port = Some(p),
                        InfoVxlan::Local(a) => vx.local = Some(IpAddr::V4(a)),
                        InfoVxlan::Local6(a) => vx.local = Some(IpAddr::V6(a)),
                        InfoVxlan::Link(l) if l != 0 => vx.underlay = Some(l),
                        InfoVxlan::Learning(on) => vx.learning = on,
                        InfoVxlan::Proxy(on) => vx.proxy = on,
                        _ => {}
                    }
                }
                link.vxlan = Some(vx);
            }
            _ => {}
        }
    }
}

fn oper_state(s: State) -> OperState {
    match s {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}
