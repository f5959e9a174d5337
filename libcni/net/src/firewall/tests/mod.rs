//! Tests of the firewall layer: encoding without privileges (unit), and as
//! root in throw-away namespaces (root, traffic, bench).

mod bench;
mod root;
mod services;
mod traffic;
mod unit;
