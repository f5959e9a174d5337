//! `disableTxChecksumOffload`: `ethtool -K <vxlan> tx off` without ethtool.
//!
//! Some kernels compute the inner checksum wrongly when a VXLAN device
//! offloads it: TCP handshakes then stall for about a minute (flannel and
//! Calico hit it; their workaround is `ethtool -K flannel.1
//! tx-checksum-ip-generic off`). The legacy ETHTOOL_STXCSUM command clears
//! every tx checksum feature of the device at once; ETHTOOL_GTXCSUM reads
//! back whether any is still on. Both go through the SIOCETHTOOL ioctl on
//! any socket of the namespace the device lives in (the calling thread's).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket as socket_of, AddressFamily, SockFlag, SockType};

use cni_spec::{Error, Result};

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Whether any tx checksum offload is on for `dev`.
pub fn tx_checksum(dev: &str) -> Result<bool> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ethtool(dev, &mut v, "read tx checksum offload")?;
    Ok(v.data != 0)
}

/// Switch tx checksum offload of `dev` on or off.
pub fn set_tx_checksum(dev: &str, on: bool) -> Result<()> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(on),
    };
    ethtool(dev, &mut v, "set tx checksum offload")
}

fn ethtool(dev: &str, v: &mut EthtoolValue, what: &str) -> Result<()> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = dev.as_bytes();
    if name.is_empty() || name.len() >= ifr.ifr_name.len() || name.contains(&0) {
        return Err(Error::invalid_config(format!(
            "invalid interface name {dev:?}"
        )));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (v as *mut EthtoolValue).cast();
    let sock = socket()?;
    // SAFETY: SIOCETHTOOL reads ifr (name and a pointer to `v`, both alive
    // for the call) and writes only into `v`.
    unsafe { siocethtool(sock.as_raw_fd(), &mut ifr) }
        .map_err(|e| Error::io(format!("{what} of {dev}: {}", e.desc())))?;
    Ok(())
}

// SIOCETHTOOL with a `struct ifreq` (nix has the ioctl call, but no ifreq
// type: that and its fields come from libc).
nix::ioctl_readwrite_bad!(siocethtool, libc::SIOCETHTOOL, libc::ifreq);

/// A datagram socket for the ioctl; IPv4 may be disabled, so fall back to a
/// Unix socket (the kernel routes SIOCETHTOOL to the device layer for both).
fn socket() -> Result<OwnedFd> {
    let open = |family| socket_of(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None);
    open(AddressFamily::Inet)
        .or_else(|_| open(AddressFamily::Unix))
        .map_err(|e| Error::io(format!("socket for ethtool ioctl: {}", e.desc())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_the_ioctl() {
        assert_eq!(tx_checksum("").unwrap_err().code, 7);
        assert_eq!(tx_checksum("sixteen-bytes-xx").unwrap_err().code, 7);
        // A name no device has: the kernel answers ENODEV, not a crash.
        assert_eq!(tx_checksum("nosuchdev0x").unwrap_err().code, 5);
    }
}
