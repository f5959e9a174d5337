//! A whole invocation through the plugin skeleton (environment + stdin),
//! with handlers that read the config, capability args (runtimeConfig),
//! `args` and CNI_ARGS exactly as host-local and bridge do.
//! Input: CNI_COMMAND \0 CNI_CONTAINERID \0 CNI_IFNAME \0 CNI_ARGS \0 stdin.
#![no_main]
use cni_fuzz::{bridge_config, fields, host_local};
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::CniResult;
use cni_spec::Result;
use libfuzzer_sys::fuzz_target;

struct Readers;

impl Readers {
    fn read(&self, req: &Request) -> Result<()> {
        let _ = bridge_config::Conf::load(req);
        if req.config.ipam_type.is_some() {
            let _ = host_local::IpamConfig::load(&req.config, &req.args);
        }
        let _ = req.config.prev_result();
        let _ = req.config.valid_attachments();
        Ok(())
    }
}

impl Plugin for Readers {
    fn add(&self, req: &Request) -> Result<CniResult> {
        self.read(req)?;
        skel::prev_result_or(req, || Ok(CniResult::default()))
    }
    fn del(&self, req: &Request) -> Result<()> {
        self.read(req)
    }
    fn check(&self, req: &Request) -> Result<()> {
        self.read(req)
    }
    fn gc(&self, req: &Request) -> Result<()> {
        self.read(req)
    }
}

const ABOUT: About = About {
    name: "fuzz",
    description: "config readers",
};

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 5);
    if f.len() < 5 {
        return;
    }
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (command, id, ifname, args) = (s(f[0]), s(f[1]), s(f[2]), s(f[3]));
    let mut stdin = f[4];
    let env = move |k: &str| -> Option<String> {
        match k {
            "CNI_COMMAND" => Some(command.clone()),
            "CNI_CONTAINERID" => Some(id.clone()),
            "CNI_IFNAME" => Some(ifname.clone()),
            "CNI_ARGS" => Some(args.clone()),
            "CNI_PATH" => Some("/nonexistent".into()),
            // No namespace is ever opened: ADD and CHECK stop at the
            // missing CNI_NETNS unless overridden, so take DEL/GC paths.
            _ => None,
        }
    };
    let out = skel::dispatch(&ABOUT, &Readers, &env, &mut stdin);
    if out.exit_code != 0 {
        let text = out.stdout.expect("an error prints its JSON");
        let v: serde_json::Value = serde_json::from_str(&text).expect("error JSON parses");
        assert!(v["code"].is_u64() && v["msg"].is_string(), "{text}");
    }
});
