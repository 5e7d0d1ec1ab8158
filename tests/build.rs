//! Builds the example and fixture plugins (plugins/rust, target
//! wasm32-wasip2) into plugins/dist before the tests compile, so `cargo
//! test` needs no manual step. The tests find them through the
//! `LOCKSTEP_PLUGINS_DIST` compile-time variable.

use std::path::PathBuf;
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
}
