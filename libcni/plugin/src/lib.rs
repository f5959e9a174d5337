//! The plugin side of CNI. [`skel`] turns a process's environment and stdin
//! into a validated [`skel::Request`] for a [`skel::Plugin`] and prints its
//! result or error the way the spec says; [`invoke`] runs other plugins (the
//! IPAM plugin of a main plugin, the chain of a runtime); [`ipam`] is the
//! delegation to the IPAM plugin with a lease that is released unless
//! committed; [`rollback`] is the undo-unless-committed guard of every step
//! that ADD may have to take back; [`log`] writes to stderr only.

pub mod fault;
pub mod invoke;
pub mod ipam;
pub mod log;
pub mod rollback;
pub mod skel;
