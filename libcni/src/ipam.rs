//! Delegation to the IPAM plugin named by `ipam.type`: the same config and
//! variables, the IPAM verb, and a guard that releases the address again
//! if the rest of ADD fails (spec: a plugin whose delegate succeeded must
//! undo it before failing).

use crate::error::{Error, Result};
use crate::invoke::{self, Env};
use crate::log;
use crate::skel::{Command, Request};
use crate::spec::CniResult;

fn env_of(req: &Request) -> Env {
    Env {
        container_id: req.container_id.clone(),
        netns: req.netns.clone(),
        ifname: req.ifname.clone(),
        args: std::env::var("CNI_ARGS").unwrap_or_default(),
        path: req.path.clone(),
    }
}

fn ipam_type(req: &Request) -> Result<&str> {
    req.config
        .ipam_type
        .as_deref()
        .ok_or_else(|| Error::invalid_config("ipam.type is missing"))
}

fn call(req: &Request, command: Command) -> Result<Vec<u8>> {
    let name = ipam_type(req)?;
    let binary = invoke::find_plugin(name, &req.path)?;
    invoke::exec(&binary, command, &env_of(req), &req.config.to_vec())
}

/// Whether the config asks for an IPAM plugin at all (`"ipam": {}` means
/// an L2-only attachment).
pub fn wanted(req: &Request) -> bool {
    req.config.ipam_type.is_some()
}

/// IPAM ADD. The returned guard runs IPAM DEL on drop unless committed.
pub fn add(req: &Request) -> Result<(CniResult, Lease<'_>)> {
    let name = ipam_type(req)?;
    let out = call(req, Command::Add)?;
    let lease = Lease {
        req,
        committed: false,
    };
    let result = CniResult::from_slice(&out)
        .map_err(|e| e.context(format!("IPAM plugin {name} returned")))?;
    Ok((result, lease))
}

pub fn del(req: &Request) -> Result<()> {
    call(req, Command::Del).map(|_| ())
}

pub fn check(req: &Request) -> Result<()> {
    call(req, Command::Check).map(|_| ())
}

pub fn status(req: &Request) -> Result<()> {
    call(req, Command::Status).map(|_| ())
}

pub fn gc(req: &Request) -> Result<()> {
    call(req, Command::Gc).map(|_| ())
}

/// An address obtained from IPAM that is given back unless the ADD that
/// asked for it completes.
pub struct Lease<'a> {
    req: &'a Request,
    committed: bool,
}

impl Lease<'_> {
    /// ADD succeeded: keep the address.
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = del(self.req) {
                log::error(&format!("rollback: IPAM DEL failed: {e}"));
            }
        }
    }
}
