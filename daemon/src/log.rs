//! One line per event on stderr (a log file in the state folder when the
//! plugin started us, the journal under systemd). `CNI_LOG_LEVEL=info` or
//! `debug` for more than errors.

use std::io::Write;
use std::sync::OnceLock;

static VERBOSE: OnceLock<bool> = OnceLock::new();

fn verbose() -> bool {
    *VERBOSE.get_or_init(|| {
        matches!(
            std::env::var("CNI_LOG_LEVEL").as_deref(),
            Ok("info" | "INFO" | "debug" | "DEBUG")
        )
    })
}

fn line(tag: &str, msg: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "cni-rs-daemon[{}] {tag}: {msg}",
        std::process::id()
    );
}

pub fn error(msg: &str) {
    line("error", msg);
}

pub fn info(msg: &str) {
    if verbose() {
        line("info", msg);
    }
}
