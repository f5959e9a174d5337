//! The overlay's network, as a library: its config, the underlay it runs
//! on and its devices on one host (bridge, VXLAN device). The plugin's
//! binary (`main.rs`) attaches containers to them; the per-host daemon's
//! routing mesh holds them on hosts without a container (`mesh_claim`).

pub mod config;
pub mod mesh_claim;
pub mod offload;
pub mod subnet;
pub mod tunnel;
pub mod underlay;
