//! host-local: hands out addresses from configured ranges and records
//! them under `dataDir/<network>`, in the reference plugin's format.

use cni_plugin::fault;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::CniResult;
use cni_spec::{Error, Result};

use host_local::config::{self, IpamConfig};
use host_local::store::disk::DiskStore;
use host_local::store::{Owner, Store};

const ABOUT: About = About {
    name: "host-local",
    description: "IPAM plugin that allocates addresses from local ranges, stored on disk",
};

struct HostLocal;

fn owner(req: &Request) -> Owner {
    Owner {
        id: req.container_id.clone(),
        ifname: req.ifname.clone(),
    }
}

/// Run `f` on the locked store of the request's network, then bring the
/// store's index up to date whatever `f` returned.
fn with_store<T>(
    req: &Request,
    data_dir: &std::path::Path,
    f: impl FnOnce(&mut DiskStore) -> Result<T>,
) -> Result<T> {
    let mut store = DiskStore::open(data_dir, &req.config.name)?;
    let res = f(&mut store);
    let committed = store.commit();
    let out = res?;
    committed?;
    Ok(out)
}

impl Plugin for HostLocal {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = IpamConfig::load(&req.config, &req.args)?;
        let dns = conf.dns()?;
        let ips = with_store(req, &conf.data_dir, |store| {
            let ips = host_local::allocator::allocate(
                store,
                &conf.range_sets,
                &owner(req),
                &conf.requested,
            );
            fault::point("host-local.add.before-commit");
            ips
        })?;
        fault::point("host-local.add.after-commit");
        Ok(CniResult {
            ips,
            routes: conf.routes.clone(),
            dns,
            ..Default::default()
        })
    }

    /// Releases by (container, ifname) across the whole network, so it
    /// works even when the config's ranges have changed since ADD.
    fn del(&self, req: &Request) -> Result<()> {
        let data_dir = config::data_dir(&req.config)?;
        with_store(req, &data_dir, |store| {
            let released = store.release_by_id(&owner(req)).map(|_| ());
            fault::point("host-local.del.before-commit");
            released
        })
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = IpamConfig::load(&req.config, &req.args)?;
        let prev = req.config.prev_result()?;
        with_store(req, &conf.data_dir, |store| {
            host_local::allocator::check(store, &conf.range_sets, &owner(req), prev.as_ref())
        })
    }

    fn status(&self, req: &Request) -> Result<()> {
        let conf = IpamConfig::load(&req.config, &req.args)?;
        let mut store = DiskStore::open(&conf.data_dir, &req.config.name)
            .map_err(|e| Error::not_available(format!("store unusable: {}", e.msg)))?;
        host_local::allocator::status(&mut store, &conf.range_sets)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let Some(valid) = req.config.valid_attachments()? else {
            return Err(Error::invalid_config(
                "GC needs cni.dev/valid-attachments (an empty list releases everything)",
            ));
        };
        let data_dir = config::data_dir(&req.config)?;
        with_store(req, &data_dir, |store| {
            let res = host_local::allocator::gc(store, &valid);
            fault::point("host-local.gc.before-commit");
            res
        })
    }
}

fn main() {
    skel::run(&ABOUT, &HostLocal)
}
