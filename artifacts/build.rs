//! Builds the Rust example and fixture plugins (plugins/rust, target
//! wasm32-wasip2) into plugins/dist with `plugins/build.sh`, before any test
//! that needs them compiles, so `cargo test` works from a fresh clone with
//! no manual step. The Python and JavaScript examples are built into the
//! same folder by `just plugins`; this script leaves them alone.
//!
//! It writes `$OUT_DIR/plugins.rs`: one path constant per plugin found in
//! plugins/rust/*/plugin.toml (included by `src/lib.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    let dist = plugins.join("dist");
    // Watch the sources, not plugins/rust/target (which every build touches).
    for entry in std::fs::read_dir(plugins.join("rust"))
        .expect("plugins/rust")
        .flatten()
    {
        if entry.file_name() != "target" {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("build.sh").display()
    );
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    // The SDK the Rust plugins build on.
    println!("cargo:rerun-if-changed={}", root.join("sdk/rust").display());
    println!("cargo:rustc-env=LOCKSTEP_PLUGINS_DIST={}", dist.display());
    // The tests' own user directories (compiled-component cache, config),
    // so that no test reads or writes the real ~/.cache or ~/.config.
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!(
        "cargo:rustc-env=LOCKSTEP_TESTS_USER_DIR={}",
        out.join("user").display()
    );

    let mut cmd = Command::new("bash");
    cmd.arg(plugins.join("build.sh"))
        .arg(&dist)
        .current_dir(&root);
    // The outer cargo's settings must not leak into the guest build.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUSTC").env_remove("RUSTDOC");
    let status = cmd.status().expect("run plugins/build.sh");
    assert!(
        status.success(),
        "building the plugins failed: run `bash plugins/build.sh` to see why"
    );

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("plugins.rs");
    std::fs::write(&out, constants(&plugins.join("rust"), &dist)).expect("write plugins.rs");
}

/// One documented constant per plugin crate (the path of its component),
/// and the list of every name.
fn constants(workspace: &Path, dist: &Path) -> String {
    let mut names: Vec<(String, String)> = std::fs::read_dir(workspace)
        .expect("plugins/rust")
        .flatten()
        .filter_map(|entry| {
            let manifest = std::fs::read_to_string(entry.path().join("plugin.toml")).ok()?;
            let name = manifest_name(&manifest)?;
            Some((entry.file_name().to_string_lossy().into_owned(), name))
        })
        .collect();
    names.sort();
    let mut code = String::new();
    for (krate, name) in &names {
        let wasm = dist.join(format!("{name}.wasm"));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        writeln!(
            code,
            "/// The `{name}` component, built from `plugins/rust/{krate}`.\n\
             pub const {}: &str = {:?};",
            name.to_uppercase().replace('-', "_"),
            wasm.display().to_string()
        )
        .unwrap();
    }
    writeln!(
        code,
        "/// The name of every plugin built from `plugins/rust`.\npub const RUST_PLUGINS: &[&str] = &{:?};",
        names.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>()
    )
    .unwrap();
    code
}

/// The `name = "..."` of a plugin.toml (its first top-level `name`).
fn manifest_name(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let value = line.trim().strip_prefix("name")?.trim_start();
        let value = value.strip_prefix('=')?.trim();
        Some(value.strip_prefix('"')?.split('"').next()?.to_string())
    })
}
