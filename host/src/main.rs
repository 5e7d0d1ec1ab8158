//! The `lockstep` command-line interface.

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    lockstep::cli::main()
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`lockstep … | head`)
/// would panic; a command-line tool should simply stop, as others do.
#[cfg(unix)]
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: called once at start-up, before any other thread exists;
    // setting the default disposition of SIGPIPE has no other effect on
    // this process's state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}
