//! Delegation to the IPAM plugin named by `ipam.type`: the same config and
//! variables, the IPAM verb, and a guard that releases the address again
//! if the rest of ADD fails (spec: a plugin whose delegate succeeded must
//! undo it before failing).

use crate::invoke::{self, Env};
use crate::log;
use crate::rollback::Undo;
use crate::skel::{Command, Request};
use cni_spec::error::{Error, Result};
use cni_spec::CniResult;

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

/// Find the IPAM plugin on CNI_PATH without running it: a plugin that
/// does link work beside IPAM calls this first, so a bad CNI_PATH (or a
/// missing IPAM binary) is refused before anything on the host changes.
pub fn locate(req: &Request) -> Result<std::path::PathBuf> {
    invoke::find_plugin(ipam_type(req)?, &req.path)
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
    let lease = Lease::boxed(move || {
        if let Err(e) = del(req) {
            log::error(&format!("rollback: IPAM DEL failed: {e}"));
        }
    });
    let result = CniResult::from_slice(&out)
        .map_err(|e| e.context(format!("IPAM plugin {name} returned")))?;
    Ok((result, lease))
}

/// Run `side` (if any) on a thread of its own while `main` runs on this
/// one, and return both results; a panicking side becomes an error. The
/// side thread never enters a namespace, so a process it starts (IPAM)
/// runs in the plugin's own.
pub fn alongside<A, B: Send>(
    side: Option<impl FnOnce() -> Result<B> + Send>,
    main: impl FnOnce() -> A,
) -> (A, Option<Result<B>>) {
    std::thread::scope(|s| {
        let handle = side.map(|f| s.spawn(f));
        let a = main();
        let b = handle.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::internal("the IPAM call panicked")))
        });
        (a, b)
    })
}

/// IPAM ADD (when `wanted`) while `work` builds the links: the IPAM plugin
/// is a process of its own, and its start-up is the slowest step of an
/// ADD. The plugin is located first, so a bad CNI_PATH fails before
/// anything is built. Whichever side fails, the other is undone by its
/// guard (the lease releases the address, `work`'s result its links).
#[allow(clippy::type_complexity)]
pub fn add_alongside<'r, T>(
    req: &'r Request,
    wanted: bool,
    work: impl FnOnce() -> Result<T>,
) -> Result<(T, Option<(CniResult, Lease<'r>)>)> {
    if wanted {
        locate(req)?;
    }
    let ipam = wanted.then_some(|| {
        let r = add(req);
        crate::fault::point("ipam.add.returned");
        r
    });
    let (work, lease) = alongside(ipam, work);
    let lease = lease.transpose();
    let work = work?;
    Ok((work, lease?))
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

/// An address obtained from IPAM that is given back (IPAM DEL) unless the
/// ADD that asked for it completes and commits it.
pub type Lease<'a> = Undo<'a>;
