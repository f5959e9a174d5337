//! Cluster scope on etcd, end to end: fake hosts on one underlay, etcd in
//! one of them (never on the machine's network), cnitool joining the
//! others, one `network create -d overlay` seen everywhere, containers on
//! every host getting addresses of one subnet with no `--ip-range` and
//! reaching each other through forwarding entries programmed from the
//! store. Each host ([`Site`]) has its own config, cache, daemon state
//! folder and cluster file (CNI_CLUSTER_CONF). All tests need root.

use std::collections::BTreeSet;
use std::time::Duration;

use integration::cluster::{first_ip, ip_of, mac_of, wait_until, Cluster, Overlay};
use integration::etcd::EtcdCluster;
use integration::state::ping;
use integration::underlay::host_ip;
use integration::{Invocation, Netns};

const SUBNET: &str = "10.88.0.0/24";

/// Forget the ARP entries that pings taught these containers. The kernel's
/// ARP table is one for every namespace of the machine (gc_thresh3, 1024
/// entries by default; a root sysctl we leave alone): 60 containers each
/// knowing 40 others would overflow it and ARP would fail for reasons
/// that are not ours.
fn forget<'a>(ctrs: impl IntoIterator<Item = &'a Netns>) {
    for c in ctrs {
        c.ip_ok(&["neigh", "flush", "all"]);
    }
}

/// Keys of ours in the store that mention `host` (as key part or value).
fn keys_of(etcd: &EtcdCluster, host: &str) -> Vec<(String, String)> {
    etcd.get_prefix("/cni-rs/")
        .into_iter()
        .filter(|(k, v)| {
            k.ends_with(&format!("/{host}"))
                || v == host
                || v.contains(&format!("\"host\":\"{host}\""))
        })
        .collect()
}

#[test]
fn root_cluster_overlay_spans_hosts_with_one_subnet_and_leaves_nothing() {
    // etcd on host 0, members on hosts 1 and 2.
    let c = Cluster::build("cl").start();
    let etcd = &c.etcd;
    let sites = c.joined(1..3);
    let (a, b) = (&sites[0], &sites[1]);

    let ls = a.ok(&["cluster", "ls"]);
    for s in [a, b] {
        let row = ls
            .lines()
            .find(|l| l.starts_with(&s.name))
            .unwrap_or_else(|| panic!("{} missing from cluster ls:\n{ls}", s.name));
        assert!(row.contains(&s.ip) && row.contains("ready"), "{row}");
    }

    // One create, on host a; no -o vni, no --ip-range.
    let Overlay { net, .. } = Overlay::create(&sites, "clnet", SUBNET);
    let list = b.conflist(&net).unwrap();
    // The same conflist on both hosts, but for each host's own underlay
    // address (the daemon writes it in).
    let mut list_a = a.conflist(&net).unwrap();
    wait_until(
        "a's conflist with its address",
        Duration::from_secs(3),
        || {
            list_a = a.conflist(&net).unwrap();
            list_a["plugins"][0]["localIP"] == a.ip.as_str()
        },
    );
    assert_eq!(list["plugins"][0]["localIP"], b.ip.as_str());
    let mut same = list_a.clone();
    same["plugins"][0]["localIP"] = list["plugins"][0]["localIP"].clone();
    assert_eq!(list, same, "both hosts hold the same conflist");
    let plugin = &list["plugins"][0];
    assert_eq!(plugin["ipam"]["type"], "cluster-ipam");
    let vni = plugin["vni"].as_u64().expect("the cluster assigned a VNI");
    assert!(vni >= 4096, "VNI {vni}");
    let stored = etcd.get_prefix(&format!("/cni-rs/networks/{net}"));
    assert_eq!(stored.len(), 1, "the network is in etcd");
    let ls_b = b.ok(&["network", "ls"]);
    let row = ls_b
        .lines()
        .find(|l| l.contains(&net))
        .expect("network ls on b");
    assert!(row.contains("overlay") && row.contains("swarm"), "{row}");

    // Three containers per host, addresses of one subnet, all distinct.
    let ctrs_a: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("ca{i}"))).collect();
    let ctrs_b: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("cb{i}"))).collect();
    let ips_a: Vec<String> = ctrs_a.iter().map(|c| a.add(&net, c)).collect();
    let ips_b: Vec<String> = ctrs_b.iter().map(|c| b.add(&net, c)).collect();
    let all: BTreeSet<&String> = ips_a.iter().chain(&ips_b).collect();
    assert_eq!(all.len(), 6, "addresses are unique: {ips_a:?} {ips_b:?}");
    for ip in &all {
        let last: u8 = ip
            .strip_prefix("10.88.0.")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        assert!(
            (1..255).contains(&last),
            "{ip} outside {SUBNET} or not a host address"
        );
    }
    let blocks = etcd.get_prefix(&format!("/cni-rs/blocks/{net}/"));
    let owners: BTreeSet<&str> = blocks.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        owners,
        BTreeSet::from(["h1", "h2"]),
        "one block per host: {blocks:?}"
    );

    // Static entries for every remote container, flooding to the other host.
    wait_until("forwarding entries on a", Duration::from_secs(1), || {
        let fdb = a.fdb(vni);
        ctrs_b
            .iter()
            .all(|c| fdb.contains(&(mac_of(c), b.ip.clone())))
            && fdb.contains(&("00:00:00:00:00:00".into(), b.ip.clone()))
    });
    // Neighbour entries for the device's ARP proxy: ARP never floods.
    wait_until("neighbour entries on a", Duration::from_secs(1), || {
        let n = a.neighbours(vni);
        ctrs_b
            .iter()
            .zip(&ips_b)
            .all(|(c, ip)| n.contains(&(ip.clone(), mac_of(c))))
    });
    let proxy = a
        .host
        .ip_ok(&["-d", "link", "show", &format!("vxlan{vni}")]);
    assert!(
        proxy.contains("proxy"),
        "the VXLAN device answers ARP: {proxy}"
    );
    wait_until("forwarding entries on b", Duration::from_secs(1), || {
        let fdb = b.fdb(vni);
        ctrs_a
            .iter()
            .all(|c| fdb.contains(&(mac_of(c), a.ip.clone())))
    });
    for (ca, ipa) in ctrs_a.iter().zip(&ips_a) {
        for (cb, ipb) in ctrs_b.iter().zip(&ips_b) {
            assert!(ping(ca, ipb), "{ipa} on a cannot reach {ipb} on b");
            assert!(ping(cb, ipa), "{ipb} on b cannot reach {ipa} on a");
        }
    }

    // A second create of the same name anywhere is refused.
    let again = b.cnitool(&["network", "create", "-d", "overlay", &net]);
    assert!(!again.status.success());

    // DEL on b: its endpoints leave the store and a's forwarding entries.
    let macs_b: Vec<String> = ctrs_b.iter().map(mac_of).collect();
    for c in &ctrs_b {
        b.del(&net, c);
    }
    let eps = etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/"));
    assert!(
        eps.iter().all(|(_, v)| !v.contains("\"host\":\"h2\"")),
        "{eps:?}"
    );
    wait_until("b's entries gone from a", Duration::from_secs(1), || {
        let fdb = a.fdb(vni);
        macs_b.iter().all(|mac| !fdb.iter().any(|(m, _)| m == mac))
            && !a.neighbours(vni).iter().any(|(_, m)| macs_b.contains(m))
    });

    // rm refused while a has endpoints; b leaves and nothing of it stays.
    assert!(!b.cnitool(&["network", "rm", &net]).status.success());
    b.ok(&["cluster", "leave"]);
    assert_eq!(keys_of(etcd, "h2"), vec![], "etcd holds nothing of h2");
    assert!(
        b.conflist(&net).is_none(),
        "b's materialized conflist is gone"
    );
    assert!(!b.dir.join("cluster.json").exists());
    let ls = a.ok(&["cluster", "ls"]);
    assert!(!ls.lines().any(|l| l.starts_with("h2")), "{ls}");

    for c in &ctrs_a {
        a.del(&net, c);
    }
    a.ok(&["network", "rm", &net]);
    assert!(a.conflist(&net).is_none());
    a.ok(&["cluster", "leave"]);
    assert_eq!(
        c.store_left(),
        vec![],
        "the store holds nothing but the cluster marker"
    );
}

#[test]
fn root_cluster_add_fails_with_code_11_when_the_store_is_gone_and_no_block_has_room() {
    let c = Cluster::build("cu").hosts(2).start();
    let sites = c.joined([1]);
    let a = &sites[0];
    let Overlay { net, .. } = Overlay::create(&sites, "clnet", "10.89.0.0/24");
    assert!(a.conflist(&net).is_some());
    c.etcd.kill(0);

    let ctr = Netns::new("cu");
    let out = a.plugin("ADD", &net, "c1", &ctr);
    out.expect_error(11);
    // Nothing half-made: no veth in the container, no lease on disk.
    let links = ctr.exec_ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    assert_eq!(a.lease_files(&net), 0);
    // Leaving needs the store; the test folders go with the site.
    let _ = a.cnitool(&["cluster", "leave", "--force"]);
}

#[test]
fn root_cluster_three_hosts_parallel_adds_survive_one_etcd_member_and_a_fourth_host_joins() {
    const PER_HOST: usize = 20;
    // A 3-member etcd on the first three hosts, which are also members.
    let c = Cluster::build("c3").hosts(4).members(3).start();
    let etcd = &c.etcd;
    let sites = c.joined(0..3);
    let Overlay { net, vni } =
        Overlay::create_on(&sites, 1, "c3net", &["--subnet", "10.90.0.0/22"]);

    // Every host adds its containers at once.
    let ctrs: Vec<Vec<Netns>> = (0..3)
        .map(|h| {
            (0..PER_HOST)
                .map(|i| Netns::new(&format!("c{h}x{i}")))
                .collect()
        })
        .collect();
    let ips: Vec<Vec<String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = sites
            .iter()
            .zip(&ctrs)
            .flat_map(|(s, cs)| cs.iter().map(move |c| (s, c)))
            .map(|(s, c)| sc.spawn(|| s.add(&net, c)))
            .collect();
        let flat: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        flat.chunks(PER_HOST).map(|c| c.to_vec()).collect()
    });
    let unique: BTreeSet<&String> = ips.iter().flatten().collect();
    assert_eq!(unique.len(), 3 * PER_HOST, "duplicate addresses: {ips:?}");
    // The gateway `network inspect` shows is Docker's reserved address:
    // the block holding it hands out the others.
    let gateway = "10.90.0.1".to_string();
    assert_eq!(
        sites[0].conflist(&net).unwrap()["plugins"][0]["ipam"]["reserved"],
        serde_json::json!([gateway])
    );
    assert!(!unique.contains(&gateway), "the gateway was handed out");
    assert!(unique.contains(&"10.90.0.2".to_string()), "{ips:?}");
    // Every host holds a static entry for each remote container within a
    // second of the last ADD...
    for s in &sites {
        wait_until(
            "forwarding entries for every remote container",
            Duration::from_secs(1),
            || {
                // At least: the bridges' own MACs may be learned too.
                s.neighbours(vni).len() == 2 * PER_HOST
                    && s.fdb(vni)
                        .iter()
                        .filter(|(m, dst)| m != "00:00:00:00:00:00" && *dst != s.ip)
                        .count()
                        >= 2 * PER_HOST
            },
        );
    }
    // ...and every pair across hosts pings (once each way round is
    // enough: a reply crosses back).
    for h in 0..3 {
        for o in (h + 1)..3 {
            for (c, ip_c) in ctrs[h].iter().zip(&ips[h]) {
                for ip in &ips[o] {
                    assert!(
                        ping(c, ip),
                        "{ip_c} on host {h} cannot reach {ip} on host {o}"
                    );
                }
                forget(std::iter::once(c).chain(&ctrs[o]));
            }
        }
    }

    // One etcd member dies: nothing changes for ADD or reachability.
    etcd.kill(0);
    let late: Vec<Netns> = (0..3).map(|h| Netns::new(&format!("c{h}late"))).collect();
    let late_ips: Vec<String> = sites
        .iter()
        .zip(&late)
        .map(|(s, c)| s.add(&net, c))
        .collect();
    let unique: BTreeSet<&String> = ips.iter().flatten().chain(&late_ips).collect();
    assert_eq!(unique.len(), 3 * PER_HOST + 3);
    for (h, from) in late.iter().enumerate() {
        for o in (0..3).filter(|o| *o != h) {
            // The late ones promptly (a watch on the dead member moved to
            // another; one ping may spend a second on ARP retries).
            wait_until("a late container reachable", Duration::from_secs(2), || {
                ping(from, &late_ips[o])
            });
            for ip in &ips[o] {
                assert!(ping(from, ip), "host {h} cannot reach {ip} on host {o}");
            }
            forget(std::iter::once(from).chain(&ctrs[o]));
        }
    }

    // A fourth host joins with nothing changed on the others.
    let d = c.sites([3]).remove(0);
    c.join(&d, false);
    wait_until(
        "the conflist on the new host",
        Duration::from_secs(3),
        || d.conflist(&net).is_some(),
    );
    let newc = Netns::new("c3new");
    let new_ip = d.add(&net, &newc);
    assert!(!unique.contains(&new_ip));
    for (h, c) in late.iter().enumerate() {
        assert!(ping(&newc, &late_ips[h]), "new host cannot reach host {h}");
        // The others learn of it through the store, a few ms after the
        // ADD (which answers before etcd has it).
        wait_until("the new host reachable", Duration::from_secs(2), || {
            ping(c, &new_ip)
        });
    }

    d.del(&net, &newc);
    d.ok(&["cluster", "leave"]);
    for (s, cs) in sites.iter().zip(&ctrs) {
        for c in cs {
            s.del(&net, c);
        }
    }
    for (s, c) in sites.iter().zip(&late) {
        s.del(&net, c);
    }
    assert_eq!(
        etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/")),
        vec![]
    );
    sites[0].ok(&["network", "rm", &net]);
    for s in &sites {
        s.ok(&["cluster", "leave"]);
    }
    assert_eq!(c.store_left(), vec![]);
}

#[test]
fn root_cluster_a_dead_host_is_released_after_the_grace_period() {
    let c = Cluster::build("cd").lease_ttl(2).grace_period(2).start();
    let etcd = &c.etcd;
    let sites = c.joined(1..3);
    let (a, b) = (&sites[0], &sites[1]);
    let Overlay { net, vni } = Overlay::create(&sites, "cdnet", "10.94.0.0/24");
    let ca = Netns::new("cda");
    let cb = Netns::new("cdb");
    a.add(&net, &ca);
    let ip_b = b.add(&net, &cb);
    let mac_b = mac_of(&cb);
    wait_until("b's entries on a", Duration::from_secs(1), || {
        a.fdb(vni).contains(&(mac_b.clone(), b.ip.clone()))
    });
    // A live host is not removed without --force.
    assert!(!a.cnitool(&["cluster", "rm", "h2"]).status.success());

    // Host b dies: its daemon is killed and its underlay link is gone.
    b.kill_daemon();
    b.host.ip_ok(&["link", "del", "eth0"]);

    // Lease (2 s) + grace (2 s): a drops every entry to b, the store every
    // key of b's.
    wait_until("b released", Duration::from_secs(12), || {
        !a.fdb(vni).iter().any(|(_, dst)| *dst == b.ip) && keys_of(etcd, "h2").is_empty()
    });
    assert!(
        !etcd
            .get_prefix(&format!("/cni-rs/endpoints/{net}/{ip_b}"))
            .iter()
            .any(|_| true),
        "b's endpoint is gone"
    );
    let ls = a.ok(&["cluster", "ls"]);
    assert!(!ls.contains("h2"), "{ls}");

    a.del(&net, &ca);
    a.ok(&["network", "rm", &net]);
    a.ok(&["cluster", "leave"]);
}

#[test]
fn root_cluster_a_partitioned_host_refuses_addresses_and_reports_reclaimed_ones() {
    let c = Cluster::build("cp").lease_ttl(2).grace_period(2).start();
    let (etcd, u) = (&c.etcd, &c.u);
    let sites = c.joined(1..3);
    let (a, b) = (&sites[0], &sites[1]);
    // A /28 is one block: whoever holds it holds every address.
    let Overlay { net, .. } = Overlay::create(&sites, "cpnet", "10.95.0.0/28");
    let c1 = Netns::new("cp1");
    let ip1 = a.add(&net, &c1);
    a.ok(&["check", &net, &c1.path_str()]);

    // Cut a off from etcd, both ways (the underlay to b stays).
    let etcd_ip = host_ip(0);
    a.host
        .ip_ok(&["route", "add", "blackhole", &format!("{etcd_ip}/32")]);
    u.hosts[0].ip_ok(&["route", "add", "blackhole", &format!("{}/32", a.ip)]);
    // At once the host may not know yet (ADD does not wait for etcd): an
    // ADD then succeeds with its endpoint on disk, queued for the store.
    let c0 = Netns::new("cp0");
    let early = a.plugin("ADD", &net, "c0", &c0);
    let ip0 = early.success().then(|| first_ip(&early.json()));
    // Once its next write or lease renewal failed, STATUS says so and ADD
    // fails with 11, nothing half-made.
    wait_until("STATUS reports the cut", Duration::from_secs(10), || {
        !a.cnitool(&["status", &net]).status.success()
    });
    let c2 = Netns::new("cp2");
    a.plugin("ADD", &net, "c2", &c2).expect_error(11);
    let links = c2.exec_ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth0"), "nothing half-made: {links}");
    eprintln!("early ADD during the cut: {ip0:?}");
    let early_files = usize::from(ip0.is_some());
    assert_eq!(
        a.lease_files(&net),
        1 + early_files,
        "only c1's (and c0's) lease, its endpoint record inside"
    );

    // b releases a after lease + grace, takes the block and hands out
    // what a had given c1.
    wait_until("a released by b", Duration::from_secs(12), || {
        keys_of(etcd, "h1").is_empty()
    });
    let c3 = Netns::new("cp3");
    let ip3 = b.add(&net, &c3);
    assert_eq!(ip3, ip1, "the reclaimed block is handed out again");
    // Still cut off: refused with code 11 at the IPAM step now.
    a.plugin("ADD", &net, "c2", &c2).expect_error(11);

    // Healed: a comes back, and CHECK and STATUS report c1's address.
    a.host
        .ip_ok(&["route", "del", "blackhole", &format!("{etcd_ip}/32")]);
    u.hosts[0].ip_ok(&["route", "del", "blackhole", &format!("{}/32", a.ip)]);
    wait_until(
        "CHECK reports the reclaimed address",
        Duration::from_secs(10),
        || {
            let out = a.cnitool(&["check", &net, &c1.path_str()]);
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("reclaimed")
        },
    );
    let status = a.cnitool(&["status", &net]);
    assert!(!status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains(&ip1),
        "{status:?}"
    );
    // a is a member again, and never republished c1.
    wait_until("a alive again", Duration::from_secs(5), || {
        a.ok(&["cluster", "ls"])
            .lines()
            .any(|l| l.starts_with("h1") && l.contains("ready"))
    });
    let eps = etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/{ip1}"));
    assert_eq!(eps.len(), 1);
    assert!(eps[0].1.contains("\"host\":\"h2\""), "{eps:?}");
    // c0's queued record never landed: its block is b's now.
    if let Some(ip0) = &ip0 {
        let eps = etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/{ip0}"));
        assert!(
            !eps.iter().any(|(_, v)| v.contains("\"host\":\"h1\"")),
            "{eps:?}"
        );
        a.plugin("DEL", &net, "c0", &c0).expect_ok();
    }

    a.del(&net, &c1);
    b.del(&net, &c3);
    let eps = etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/"));
    assert_eq!(
        eps,
        vec![],
        "a's DEL of the reclaimed address left b's alone until b's DEL"
    );
    a.ok(&["network", "rm", &net]);
    a.ok(&["cluster", "leave"]);
    b.ok(&["cluster", "leave"]);
}

#[test]
fn root_cluster_three_member_etcd_survives_one_loss_and_fails_add_with_11_after_two() {
    let c = Cluster::build("cq").members(3).start();
    let etcd = &c.etcd;
    let sites = c.joined([1]);
    let a = &sites[0];
    let Overlay { net, .. } = Overlay::create(&sites, "cqnet", "10.96.0.0/24");
    let c1 = Netns::new("cq1");
    a.add(&net, &c1);
    etcd.kill(0);
    let c2 = Netns::new("cq2");
    a.add(&net, &c2);
    // Two of three gone: no quorum. ADD does not wait for etcd, so the
    // host learns it at its next write or lease renewal (a third of the
    // lease); STATUS says so, and from then on ADD fails cleanly with 11,
    // nothing half-made.
    etcd.kill(1);
    wait_until(
        "STATUS reports the store gone",
        Duration::from_secs(20),
        || !a.cnitool(&["status", &net]).status.success(),
    );
    let c3 = Netns::new("cq3");
    a.plugin("ADD", &net, "c3", &c3).expect_error(11);
    let links = c3.exec_ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    // c1 and c2: a lease each (its endpoint record inside), nothing of c3.
    assert_eq!(a.lease_files(&net), 2);
}

#[test]
fn root_cluster_a_daemon_killed_right_after_add_publishes_the_endpoint_when_restarted() {
    let c = Cluster::build("ck").start();
    let etcd = &c.etcd;
    let sites = c.joined(1..3);
    let (a, b) = (&sites[0], &sites[1]);
    let Overlay { net, vni } = Overlay::create(&sites, "cknet", "10.93.0.0/24");
    let ca = Netns::new("cka");
    let cb = Netns::new("ckb");
    a.add(&net, &ca);
    let ip_b = b.add(&net, &cb);
    let mac_b = mac_of(&cb);

    // ADD was answered once b's daemon had the endpoint on disk; kill it
    // at once, and take the key out of etcd in case the push got out
    // first: the store is now as if the daemon died before pushing.
    let pid = b.kill_daemon();
    wait_until("b's daemon gone", Duration::from_secs(2), || {
        b.daemon_pid() != Some(pid)
    });
    let k = format!("/cni-rs/endpoints/{net}/{ip_b}");
    etcd.del(&k);
    wait_until("a forgot b's container", Duration::from_secs(2), || {
        !a.neighbours(vni).contains(&(ip_b.clone(), mac_b.clone()))
    });
    assert!(!ping(&ca, &ip_b), "reachable without its entries");
    forget([&ca]);

    // Any request starts b's daemon again; its first read of the store
    // publishes every endpoint it recorded and etcd lacks.
    b.ok(&["cluster", "ls"]);
    wait_until("the endpoint back in etcd", Duration::from_secs(5), || {
        etcd.get_prefix(&k)
            .iter()
            .any(|(_, v)| v.contains("\"host\":\"h2\"") && v.contains(&mac_b))
    });
    wait_until("a reaches b's container", Duration::from_secs(3), || {
        ping(&ca, &ip_b)
    });

    // DEL unpublishes it for good.
    b.del(&net, &cb);
    assert_eq!(etcd.get_prefix(&k), vec![]);
    wait_until("b's entries gone from a", Duration::from_secs(2), || {
        !a.neighbours(vni).iter().any(|(_, m)| *m == mac_b)
    });
    // That was b's last container: its devices went. The next one gets
    // new devices, which get every remote entry at once.
    let ip_a = etcd
        .get_prefix(&format!("/cni-rs/endpoints/{net}/"))
        .iter()
        .find(|(_, v)| v.contains("\"host\":\"h1\""))
        .map(|(k, _)| k.rsplit('/').next().unwrap().to_string())
        .expect("a's endpoint");
    let cb2 = Netns::new("ckb2");
    b.add(&net, &cb2);
    assert!(
        b.neighbours(vni).contains(&(ip_a.clone(), mac_of(&ca))),
        "b's new device has a's entries"
    );
    // (cb2 may have cb's old address: a's container forgets cb's MAC.)
    forget([&ca]);
    wait_until(
        "b's new container reaches a",
        Duration::from_secs(3),
        || ping(&cb2, &ip_a),
    );
    b.del(&net, &cb2);
    a.del(&net, &ca);
    a.ok(&["network", "rm", &net]);
    a.ok(&["cluster", "leave"]);
    b.ok(&["cluster", "leave"]);
    assert_eq!(keys_of(etcd, "h2"), vec![]);
}

#[test]
fn root_cluster_dual_stack_overlay_cuts_its_ipv6_subnet_into_blocks_too() {
    let c = Cluster::build("c6").start();
    let etcd = &c.etcd;
    let sites = c.joined(1..3);
    let (a, b) = (&sites[0], &sites[1]);
    let (v4, v6) = ("10.92.0.0/24", "fd00:92::/64");
    let Overlay { net, .. } = Overlay::create_on(
        &sites,
        0,
        "c6net",
        &["--ipv6", "--subnet", v4, "--subnet", v6],
    );
    let plugin = b.conflist(&net).unwrap()["plugins"][0].clone();
    assert_eq!(plugin["ipam"]["subnets"], serde_json::json!([v4, v6]));
    let vni = plugin["vni"].as_u64().unwrap();

    let ips_of = |v: serde_json::Value| -> Vec<String> {
        let n = v["ips"].as_array().unwrap().len();
        (0..n).map(|i| ip_of(&v, i)).collect()
    };
    let ca = Netns::new("c6a");
    let cb = Netns::new("c6b");
    let ia = ips_of(a.plugin("ADD", &net, "c6a", &ca).expect_ok_json());
    let ib = ips_of(b.plugin("ADD", &net, "c6b", &cb).expect_ok_json());
    for ips in [&ia, &ib] {
        assert_eq!(ips.len(), 2, "one address of each family: {ips:?}");
        assert!(ips[0].starts_with("10.92.0."), "{ips:?}");
        assert!(ips[1].starts_with("fd00:92::"), "{ips:?}");
    }
    assert_ne!(ia, ib);
    // Each host holds a /26 of the IPv4 subnet and a /122 of the IPv6 one.
    let blocks = etcd.get_prefix(&format!("/cni-rs/blocks/{net}/"));
    let v6_owners: BTreeSet<&str> = blocks
        .iter()
        .filter(|(k, _)| k.ends_with("_122"))
        .map(|(_, h)| h.as_str())
        .collect();
    assert_eq!(v6_owners, BTreeSet::from(["h1", "h2"]), "{blocks:?}");
    assert_eq!(blocks.len(), 4, "{blocks:?}");

    // Both addresses are endpoints, with neighbour entries on the other
    // host, and both families cross.
    let mac_b = mac_of(&cb);
    wait_until(
        "b's two neighbour entries on a",
        Duration::from_secs(2),
        || {
            let n = a.neighbours(vni);
            ib.iter().all(|ip| n.contains(&(ip.clone(), mac_b.clone())))
        },
    );
    for ip in &ib {
        wait_until("a reaches b", Duration::from_secs(3), || ping(&ca, ip));
    }
    assert!(ping(&cb, &ia[1]), "b cannot reach {} on a", ia[1]);

    a.plugin("DEL", &net, "c6a", &ca).expect_ok();
    b.plugin("DEL", &net, "c6b", &cb).expect_ok();
    assert_eq!(
        etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/")),
        vec![]
    );
    assert_eq!(a.lease_files(&net) + b.lease_files(&net), 0);
    a.ok(&["network", "rm", &net]);
    a.ok(&["cluster", "leave"]);
    b.ok(&["cluster", "leave"]);
    assert_eq!(c.store_left(), vec![]);
}

/// What the resolver in `from` answers for `name` (A records).
fn resolve(from: &Netns, name: &str) -> Vec<String> {
    let out = from.exec(&["dig", "@127.0.0.11", "+short", "+time=1", "+tries=1", name]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

#[test]
fn root_cluster_names_resolve_across_hosts_and_go_with_del() {
    let c = Cluster::build("cn").start();
    let etcd = &c.etcd;
    let sites = c.joined(1..3);
    let (a, b) = (&sites[0], &sites[1]);
    let Overlay { net, .. } = Overlay::create(&sites, "cnnet", "10.97.0.0/24");
    let ca = Netns::new("cna");
    let cb = Netns::new("cnb");
    let ip_a = a.add_named(&net, &ca, "web");
    let ip_b = b.add_named(&net, &cb, "db");
    wait_until("db resolves on a", Duration::from_secs(2), || {
        resolve(&ca, "db.dns.podman") == vec![ip_b.clone()]
    });
    wait_until("web resolves on b", Duration::from_secs(2), || {
        resolve(&cb, "web.dns.podman") == vec![ip_a.clone()]
    });
    assert!(ping(&ca, &ip_b));
    assert_eq!(etcd.get_prefix(&format!("/cni-rs/names/{net}/")).len(), 2);

    b.del(&net, &cb);
    wait_until("db gone on a", Duration::from_secs(2), || {
        resolve(&ca, "db.dns.podman").is_empty()
    });
    assert_eq!(etcd.get_prefix(&format!("/cni-rs/names/{net}/")).len(), 1);
    a.del(&net, &ca);
    assert_eq!(etcd.get_prefix(&format!("/cni-rs/names/{net}/")), vec![]);
    a.ok(&["network", "rm", &net]);
    a.ok(&["cluster", "leave"]);
    b.ok(&["cluster", "leave"]);
}

#[test]
fn root_cluster_gc_releases_addresses_of_attachments_the_runtime_forgot() {
    let c = Cluster::build("cg").hosts(2).start();
    let etcd = &c.etcd;
    let sites = c.joined([1]);
    let a = &sites[0];
    let Overlay { net, .. } = Overlay::create(&sites, "cgnet", "10.98.0.0/24");
    let keep = Netns::new("cgk");
    let lost = Netns::new("cgl");
    a.plugin("ADD", &net, "keep", &keep).expect_ok();
    let lost_ip = first_ip(&a.plugin("ADD", &net, "lost", &lost).json());
    assert_eq!(a.lease_files(&net), 2);

    // GC with only `keep` valid: `lost`'s address and endpoint go.
    let list = a.conflist(&net).unwrap();
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    conf["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "keep", "ifname": "eth0"}]);
    let gc = a.with_env(
        Invocation::ours("vxlan-overlay")
            .command("GC")
            .cni_path(&integration::paths::default_cni_path())
            .stdin_json(&conf)
            .in_host(a.host),
    );
    gc.run().expect_ok();
    assert_eq!(a.lease_files(&net), 1, "only keep's lease");
    let mut eps = Vec::new();
    wait_until(
        "keep's endpoint alone in etcd",
        Duration::from_secs(2),
        || {
            eps = etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/"));
            eps.len() == 1
        },
    );
    assert!(!eps[0].0.ends_with(&lost_ip), "{eps:?}");

    a.plugin("DEL", &net, "keep", &keep).expect_ok();
    a.plugin("DEL", &net, "lost", &lost).expect_ok();
    assert_eq!(
        etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/")),
        vec![]
    );
    a.ok(&["network", "rm", &net]);
    a.ok(&["cluster", "leave"]);
}

#[test]
fn root_cluster_over_tls_with_client_certificates() {
    let c = Cluster::build("ct").tls().start();
    let etcd = &c.etcd;
    let sites = c.sites(1..3);
    let (a, b) = (&sites[0], &sites[1]);
    let t = etcd.tls().unwrap();
    let ca = t.file("ca.pem");
    // Without a client certificate etcd refuses the host: nothing joins.
    let out = b.cnitool(&[
        "cluster",
        "init",
        "--store",
        &etcd.store_url(),
        "--advertise",
        "eth0",
        "--name",
        "h2",
        "--cacert",
        &ca,
    ]);
    assert!(!out.status.success(), "joined without a client certificate");
    assert!(!b.dir.join("cluster.json").exists());
    // Without --cacert an etcds:// store is refused before anything is written.
    assert!(!b
        .cnitool(&[
            "cluster",
            "init",
            "--store",
            &etcd.store_url(),
            "--advertise",
            "eth0"
        ])
        .status
        .success());

    // With them (the cluster's join flags: CA, client certificate and
    // key) both join.
    c.join(a, true);
    c.join(b, false);
    let Overlay { net, .. } = Overlay::create(&sites, "ctnet", "10.99.0.0/24");
    let ca_ns = Netns::new("cta");
    let cb_ns = Netns::new("ctb");
    a.add(&net, &ca_ns);
    let ip_b = b.add(&net, &cb_ns);
    wait_until("b reachable from a", Duration::from_secs(2), || {
        ping(&ca_ns, &ip_b)
    });
    wait_until("both endpoints in etcd", Duration::from_secs(2), || {
        etcd.get_prefix(&format!("/cni-rs/endpoints/{net}/")).len() == 2
    });

    a.del(&net, &ca_ns);
    b.del(&net, &cb_ns);
    a.ok(&["network", "rm", &net]);
    b.ok(&["cluster", "leave"]);
    a.ok(&["cluster", "leave"]);
    assert_eq!(c.store_left(), vec![]);
}
