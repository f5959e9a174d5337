//! Logging for one-shot plugins: stderr only (stdout is the protocol), one
//! line per event, quiet unless `CNI_LOG_LEVEL` asks for more.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Info,
    Debug,
}

struct Logger {
    name: &'static str,
    level: Level,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Read `CNI_LOG_LEVEL` (error, info, debug; default error) once.
pub fn init(name: &'static str) {
    let level = match std::env::var("CNI_LOG_LEVEL").as_deref() {
        Ok("debug") | Ok("DEBUG") => Level::Debug,
        Ok("info") | Ok("INFO") => Level::Info,
        _ => Level::Error,
    };
    let _ = LOGGER.set(Logger { name, level });
}

fn log(level: Level, msg: &str) {
    let (name, max) = match LOGGER.get() {
        Some(l) => (l.name, l.level),
        None => ("cni", Level::Error),
    };
    if level <= max {
        let tag = match level {
            Level::Error => "error",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{name}[{}] {tag}: {msg}",
            std::process::id()
        );
    }
}

pub fn error(msg: &str) {
    log(Level::Error, msg);
}

pub fn info(msg: &str) {
    log(Level::Info, msg);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// Whether debug lines are printed (to skip building costly messages).
pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.level >= Level::Debug)
}
