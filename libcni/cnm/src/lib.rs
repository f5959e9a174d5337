//! Docker's network model (CNM) over CNI: networks become conflists,
//! sandboxes are named network namespaces, endpoints are cached
//! attachments. `cli` is the `cnitool network|sandbox` face of it.

pub mod cli;
pub mod cluster;
pub mod drivers;
pub mod endpoints;
pub mod model;
pub mod pools;
pub mod registry;
pub mod remote;
pub mod resolv;
pub mod services;
