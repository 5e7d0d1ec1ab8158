//! The command-line interface (presentation only).

/// Run the CLI.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
