//! The `lockstep` CLI with the Rust test fixtures as its plugins, for
//! multi-process tests of the lifecycle and the lock service.

fn main() -> std::process::ExitCode {
    lockstep::cli::main_with(Some(std::sync::Arc::new(lockstep_tests::TestPlugins)))
}
