//! Bridge VLAN filtering: the bridge-wide switch and per-port VLAN
//! membership (`bridge vlan add/del ... master`). Kept apart from `link.rs`
//! because only the bridge plugin's `vlan`/`vlanTrunk` options need it, and
//! kernels built without CONFIG_BRIDGE_VLAN_FILTERING refuse all of it with
//! EOPNOTSUPP, which callers turn into a clear message.

use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind,
    LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use cni_spec::error::{Error, Result};

/// One VLAN on a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    /// 1-4094.
    pub vid: u16,
    /// Untagged frames entering the port are put on this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

impl Netlink {
    /// Turn VLAN filtering of bridge `index` on or off.
    pub fn set_bridge_vlan_filtering(&mut self, index: u32, on: bool) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            0,
            format_args!("set vlan_filtering {} on bridge #{index}", u8::from(on)),
        )?;
        Ok(())
    }

    /// Add a VLAN to the bridge port `index` (`bridge vlan add ... master`).
    pub fn bridge_vlan_add(&mut self, index: u32, vlan: PortVlan) -> Result<()> {
        let msg = port_vlan_msg(index, vlan)?;
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            0,
            format_args!("add vlan {} to bridge port #{index}", vlan.vid),
        )?;
        Ok(())
    }

    /// Remove a VLAN from the bridge port `index`.
    pub fn bridge_vlan_del(&mut self, index: u32, vlan: PortVlan) -> Result<()> {
        let msg = port_vlan_msg(index, vlan)?;
        self.request(
            RouteNetlinkMessage::DelLink(msg),
            0,
            format_args!("delete vlan {} from bridge port #{index}", vlan.vid),
        )?;
        Ok(())
    }
}

fn port_vlan_msg(index: u32, vlan: PortVlan) -> Result<LinkMessage> {
    if vlan.vid == 0 || vlan.vid > 4094 {
        return Err(Error::invalid_config(format!(
            "vlan id {} out of range 1-4094",
            vlan.vid
        )));
    }
    let mut flags = BridgeVlanInfoFlags::empty();
    if vlan.pvid {
        flags |= BridgeVlanInfoFlags::Pvid;
    }
    if vlan.untagged {
        flags |= BridgeVlanInfoFlags::Untagged;
    }
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::AfSpecBridge(vec![
        AfSpecBridge::Flags(BridgeFlag::Controller),
        AfSpecBridge::VlanInfo(BridgeVlanInfo {
            flags,
            vid: vlan.vid,
        }),
    ]));
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_ids_are_range_checked() {
        let v = |vid| PortVlan {
            vid,
            pvid: false,
            untagged: false,
        };
        assert_eq!(port_vlan_msg(3, v(0)).unwrap_err().code, 7);
        assert_eq!(port_vlan_msg(3, v(4095)).unwrap_err().code, 7);
        let msg = port_vlan_msg(3, v(4094)).unwrap();
        assert_eq!(msg.header.interface_family, AddressFamily::Bridge);
    }
}
