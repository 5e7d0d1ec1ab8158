//! The `lockstep` command-line interface.

fn main() -> std::process::ExitCode {
    lockstep::cli::main()
}
