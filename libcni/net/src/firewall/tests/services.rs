//! Root tests of service rules in a fresh namespace: what `nft` shows after
//! apply, updates and removal, and that removal leaves nothing.

use std::net::Ipv4Addr;

use super::super::portmap::{Proto, TABLE as NAT};
use super::super::services::{self, ServicePort, ServiceRules};
use super::root::{in_fresh_netns, run};

fn nat_listing() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "inet", NAT])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn root_service_rules_follow_tasks_and_leave_nothing() {
    in_fresh_netns(|| {
        let b: Vec<Ipv4Addr> = (3..6).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
        let ports = [ServicePort {
            proto: Proto::Tcp,
            published: 8080,
            target: 80,
        }];
        fn svc<'a>(backends: &'a [Ipv4Addr], ports: &'a [ServicePort]) -> ServiceRules<'a> {
            ServiceRules {
                id: "s1",
                name: "web",
                vip: Some(Ipv4Addr::new(10, 9, 0, 2)),
                backends,
                ports,
                mesh: None,
            }
        }
        services::apply(&svc(&b, &ports)).unwrap();
        let l = nat_listing();
        assert!(l.contains("dnat ip to numgen inc mod 3 map @svc_s1"), "{l}");
        assert!(l.contains("ct original ip daddr 10.9.0.2"), "{l}");
        assert!(
            l.contains("tcp dport 8080")
                && l.contains("@svc_s1:80")
                && l.contains("type mark : ipv4_addr"),
            "{l}"
        );
        assert!(l.contains("2 : 10.9.0.5"), "{l}");
        assert!(
            l.contains("ip saddr 127.0.0.1 ct status dnat counter packets 0 bytes 0 masquerade"),
            "{l}"
        );
        // Idempotent, then scaled down in one transaction.
        services::apply(&svc(&b, &ports)).unwrap();
        assert_eq!(l, nat_listing());
        services::apply(&svc(&b[..1], &ports)).unwrap();
        let l = nat_listing();
        assert!(l.contains("mod 1 map @svc_s1"), "{l}");
        assert!(!l.contains("10.9.0.4") && !l.contains("mod 3"), "{l}");
        // Another service cannot take the port.
        let other = ServiceRules {
            id: "s2",
            name: "api",
            vip: None,
            backends: &b,
            ports: &ports,
            mesh: None,
        };
        let e = services::apply(&other).unwrap_err();
        assert!(e.msg.contains("8080"), "{e}");
        services::remove("s1").unwrap();
        services::remove("s1").unwrap();
        let all = run("nft", &["list", "ruleset"]);
        assert!(!all.contains(NAT), "{all}");
    });
}
