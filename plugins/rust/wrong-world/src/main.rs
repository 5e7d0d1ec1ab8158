//! `wrong-world`: not a lockstep plugin.
//!
//! A plain `wasm32-wasip2` program, so it builds to a `wasi:cli/command`
//! component that exports neither `strategy` nor `execution`. It exists to
//! check that the host refuses it with a clear load error, even though its
//! `plugin.toml` claims `kind = "plugin"`.

/// Prints a greeting; the host never gets this far.
fn main() {
    println!("hello from a component that is not a lockstep plugin");
}
