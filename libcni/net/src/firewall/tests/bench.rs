//! Timings (ignored by default; run as root with
//! `cargo test -p libcni --release firewall::tests::bench -- --ignored --nocapture`).

use std::process::Command;
use std::time::{Duration, Instant};

use super::super::*;
use super::root::{in_fresh_netns, net, run};

const N: usize = 50;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn report(what: &str, v: Vec<Duration>) {
    let max = v.iter().max().copied().unwrap_or_default();
    println!("{what:<44} median {:>9.3?}  max {:>9.3?}", median(v), max);
}

#[test]
#[ignore]
fn root_bench_firewall() {
    in_fresh_netns(|| {
        let fw = net("blue", "br-blue", &["10.10.0.0/16", "fd00:10::/64"]);
        // A second network, so removing blue deletes rules, not the table.
        ensure_network(&net("red", "br-red", &["10.11.0.0/16"])).unwrap();
        let (mut absent, mut present, mut remove) = (vec![], vec![], vec![]);
        let (mut remove_last, mut absent_first) = (vec![], vec![]);
        for _ in 0..N {
            absent.push(time(|| ensure_network(&fw).unwrap()));
            present.push(time(|| ensure_network(&fw).unwrap()));
            remove.push(time(|| remove_network("blue").unwrap()));
        }
        remove_network("red").unwrap();
        for _ in 0..N {
            absent_first.push(time(|| ensure_network(&fw).unwrap()));
            remove_last.push(time(|| remove_network("blue").unwrap()));
        }
        report("ensure_network, absent (table exists)", absent);
        report("ensure_network, absent (creates table)", absent_first);
        report("ensure_network, present", present);
        report("remove_network (delete 4 rules)", remove);
        report("remove_network (delete table)", remove_last);

        let (mut add, mut del, mut del_none, mut check) = (vec![], vec![], vec![], vec![]);
        add_spoofcheck("blue", "keep", "eth0", "vkeep", &[2, 0, 0, 0, 0, 9]).unwrap();
        for i in 0..N {
            let id = format!("c{i}");
            add.push(time(|| {
                add_spoofcheck("blue", &id, "eth0", "veth1", &[2, 0, 0, 0, 0, 1]).unwrap()
            }));
            del.push(time(|| del_container("blue", &id, "eth0").unwrap()));
            del_none.push(time(|| del_container("blue", &id, "eth0").unwrap()));
        }
        ensure_network(&fw).unwrap();
        for _ in 0..N {
            check.push(time(|| check_network(&fw).unwrap()));
        }
        report("add_spoofcheck (2 elements)", add);
        report("del_container (2 elements)", del);
        report("del_container (nothing there)", del_none);
        report("check_network", check);

        run("nft", &["add", "table", "inet", "scratch"]);
        run("nft", &["add", "chain", "inet", "scratch", "c"]);
        let path = std::env::temp_dir().join(format!("fwbench-{}.nft", std::process::id()));
        std::fs::write(
            &path,
            "add rule inet scratch c ip saddr 10.0.0.0/8 counter\n",
        )
        .unwrap();
        let mut exec = vec![];
        for _ in 0..N {
            exec.push(time(|| {
                let st = Command::new("nft").arg("-f").arg(&path).status().unwrap();
                assert!(st.success());
            }));
        }
        let _ = std::fs::remove_file(&path);
        report("exec `nft -f` (add one rule)", exec);
    });
}
