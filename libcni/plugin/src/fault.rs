//! Fault injection, for tests only: makes a process die by SIGKILL at a
//! named step, the way a runtime's timeout or the OOM killer would stop a
//! plugin, so the reliability tests can show that whatever a killed
//! plugin leaves behind is cleaned up by DEL (or GC) and never blocks the
//! next ADD.
//!
//! `CNI_RS_FAULT_AFTER=<point>` kills the process when it reaches the
//! point of that name (e.g. `bridge.add.after-veth`); a number `N` kills
//! it at the N-th point it reaches, whatever its name. Points are named
//! `<plugin>.<verb>.<step>`; `CNI_RS_FAULT_LOG=1` makes every point
//! reached print `fault-point <name>` on stderr, so a test can list them.
//!
//! The variable is inherited by delegated plugins (IPAM), so one name can
//! stop the IPAM plugin that the bridge plugin runs. Never set it outside
//! tests. When it is unset, a point costs one relaxed atomic load after
//! the first call (the environment is read once).
//!
//! All of this exists only with the cargo feature `fault`, which the
//! release build leaves off: there every point is an empty inline function,
//! so no environment variable can make a production plugin kill itself.
//! `just build-fault` builds the plugins with it for the reliability tests.

/// A step boundary named `name`: nothing, in a build without the `fault`
/// feature.
#[cfg(not(feature = "fault"))]
#[inline(always)]
pub fn point(_name: &str) {}

#[cfg(feature = "fault")]
pub use armed::point;

#[cfg(feature = "fault")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    const VAR: &str = "CNI_RS_FAULT_AFTER";
    const LOG_VAR: &str = "CNI_RS_FAULT_LOG";

    enum Target {
        Off,
        Named(String),
        Nth(u64),
    }

    struct Config {
        target: Target,
        log: bool,
    }

    static CONFIG: OnceLock<Config> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);

    fn config() -> &'static Config {
        CONFIG.get_or_init(|| {
            let target = match std::env::var(VAR) {
                Ok(v) if v.is_empty() => Target::Off,
                Ok(v) => match v.parse::<u64>() {
                    Ok(n) => Target::Nth(n),
                    Err(_) => Target::Named(v),
                },
                Err(_) => Target::Off,
            };
            let log = std::env::var_os(LOG_VAR).is_some_and(|v| v == "1");
            Config { target, log }
        })
    }

    /// A step boundary named `name`: dies here (SIGKILL, no unwinding, no
    /// guards run) when the test asked for it.
    pub fn point(name: &str) {
        let c = config();
        if let Target::Off = c.target {
            if !c.log {
                return;
            }
        }
        if c.log {
            eprintln!("fault-point {name}");
        }
        let n = REACHED.fetch_add(1, Ordering::Relaxed) + 1;
        let hit = match &c.target {
            Target::Off => false,
            Target::Named(t) => t == name,
            Target::Nth(k) => *k == n,
        };
        if hit {
            eprintln!("fault injected: SIGKILL at {name}");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            // Not reached; abort in case the signal were somehow blocked.
            std::process::abort();
        }
    }
}
