//! The resolver: [`zone`] holds what each network answers, [`answer`] turns
//! a query into a reply or a decision to forward (pure, fuzzed), and
//! [`upstream`] forwards everything else to the host's resolvers.

pub mod answer;
pub mod upstream;
pub mod zone;
