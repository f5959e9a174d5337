//! STATUS and GC.

use cni_plugin::ipam;
use cni_plugin::skel::Request;
use cni_spec::error::{ErrorList, Result};

use super::{exclusive_lock, BridgeNetwork};

/// Can an ADD succeed: the network's own conditions, then IPAM's.
pub fn status<N: BridgeNetwork>(net: &N, req: &Request) -> Result<()> {
    net.status()?;
    if ipam::wanted(req) {
        ipam::status(req)?;
    }
    Ok(())
}

/// IPAM's GC, then the network's under the exclusive lock: with no valid
/// attachment left it removes the network's state, and the lock keeps a
/// racing ADD's intact.
pub fn gc<N: BridgeNetwork>(net: &N, req: &Request) -> Result<()> {
    let mut errs = ErrorList::new();
    if ipam::wanted(req) {
        errs.check(ipam::gc(req));
    }
    if let Some(valid) = errs.check(req.config.valid_attachments()).flatten() {
        let _lock = errs.check(exclusive_lock(net));
        errs.check(net.collect(&valid));
    }
    errs.into_result()
}
