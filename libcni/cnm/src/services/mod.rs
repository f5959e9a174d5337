//! Docker's services on one host: a name, a virtual IP (or DNS round
//! robin) and published ports in front of N tasks, each task a sandbox on
//! the service's network. `ops` orders the work; `store` keeps services
//! beside the networks; `vip`, `tasks`, `names` and the firewall's
//! `services` rules are the parts. A cluster extends this by handing
//! `ops` tasks that live on other hosts (their addresses on the overlay)
//! and by applying the same rules on every host of the network.

pub mod cli;
pub mod cluster;
pub mod model;
pub mod names;
pub mod ops;
pub mod store;
pub mod tasks;
pub mod vip;
