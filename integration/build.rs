//! Tells the harness which target triple the plugins are built for, so it
//! finds them under target/<triple>/release.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=BUILD_TARGET={target}");
}
