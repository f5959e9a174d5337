//! Helpers of this crate's root tests. A root test fails loudly when not
//! run as root (it would otherwise pass without testing anything); its
//! name starts with `root_` so `cargo test -- --skip root_` leaves it out.

use nix::sched::{unshare, CloneFlags};

/// Fail with a clear message when the test cannot do its work.
pub(crate) fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates network namespaces and needs root; run it as root, \
         or skip root tests with `cargo test -- --skip root_`"
    );
}

/// Run `f` in a new network namespace on a new thread (so the machine's
/// own namespace is never touched); the namespace goes with the thread.
pub(crate) fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    require_root();
    let h = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    });
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}
