//! Release builds embed `web/` into the binary: `rust-embed` writes one
//! `include_bytes!` per file present at compile time, so cargo notices an
//! embedded file changing but not a new one appearing, such as `web/vendor/`
//! written by `scripts/vendor-web.sh` after the first build. Watching the
//! whole directory closes that gap. Debug builds read `web/` from disk at run
//! time and are not rebuilt for web edits.

fn main() {
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rerun-if-changed=../../web");
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
