//! The kernel toolkit: network namespaces ([`netns`]), a synchronous
//! netlink layer for links, addresses, routes, neighbours and sysctls
//! ([`netlink`]), nftables rules in tables of our own ([`firewall`]),
//! RFC 5227 ARP probes ([`arp`]) and an interface's addresses and routes
//! from a CNI result ([`ifconfig`]), the sockets bound on a namespace's
//! ports ([`listeners`]). No CNI plugin logic lives here.
//! [`netlink`] and [`firewall`] share one netlink transport (`transport`):
//! one receive loop, sequence scheme and timeout for both protocols.

pub mod arp;
pub mod firewall;
pub mod ifconfig;
pub mod listeners;
pub mod netlink;
pub mod netns;
#[cfg(test)]
mod testing;
mod transport;
