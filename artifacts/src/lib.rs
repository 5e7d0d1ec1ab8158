//! The guest programs the tests run, built by this crate's build script
//! (wasmtime's `crates/test-programs/artifacts` pattern): every Rust example
//! and fixture plugin in `plugins/rust`, compiled to a WebAssembly component
//! in `plugins/dist` next to its manifest. Depend on this crate (as a
//! dev-dependency) and `cargo test` builds them first; no manual step.
//!
//! The Python and JavaScript examples live in the same folder but are built
//! by `just plugins` (they need componentize-py and componentize-js); tests
//! that use them check for them with [`has`].

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The folder of built plugins (`NAME.wasm` and `NAME.toml` for each): a
/// plugin directory for the engine.
pub const DIST: &str = env!("LOCKSTEP_PLUGINS_DIST");

/// [`DIST`] as a path.
pub fn dist() -> PathBuf {
    PathBuf::from(DIST)
}

/// A folder the tests use as the user's cache and config directories (in
/// this crate's build output, so shared by every test of one build and
/// never the real `~/.cache` or `~/.config`).
pub fn user_dir() -> PathBuf {
    PathBuf::from(env!("LOCKSTEP_TESTS_USER_DIR"))
}

/// The component of plugin `name` in [`DIST`].
pub fn component(name: &str) -> PathBuf {
    dist().join(format!("{name}.wasm"))
}

/// Whether plugin `name` was built into [`DIST`] with its manifest (always
/// true for [`RUST_PLUGINS`]; for the Python and JavaScript examples, only
/// after `just plugins`).
pub fn has(name: &str) -> bool {
    let dist = Path::new(DIST);
    dist.join(format!("{name}.wasm")).is_file() && dist.join(format!("{name}.toml")).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rust_plugin_is_built_with_its_manifest() {
        assert!(RUST_PLUGINS.contains(&"noop") && RUST_PLUGINS.contains(&"hostile"));
        for name in RUST_PLUGINS {
            assert!(has(name), "{name} is missing from {DIST}");
        }
        assert_eq!(Path::new(NOOP), component("noop"));
    }
}
