//! The plugin engine's own errors: starting the engine, compiling and
//! caching components, inspecting one. Each keeps its cause.

use std::fmt;
use std::path::PathBuf;

/// An error from wasmtime, with the causes it carries.
///
/// wasmtime reports through its own error type, which is not a
/// [`std::error::Error`]; this wrapper is one, showing wasmtime's message
/// and handing out its causes through [`source`](std::error::Error::source).
pub struct WasmError(wasmtime::Error);

impl WasmError {
    /// The message followed by every cause, `: `-separated, as one line.
    pub fn with_causes(&self) -> String {
        format!("{:#}", self.0)
    }
}

impl From<wasmtime::Error> for WasmError {
    fn from(e: wasmtime::Error) -> Self {
        WasmError(e)
    }
}

impl fmt::Debug for WasmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for WasmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for WasmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The plugin engine could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the engine's configuration or the host's imports.
    #[error("the WebAssembly engine could not be set up: {0}")]
    Wasm(#[from] WasmError),
    /// The thread that advances plugin deadlines could not be started.
    #[error("the plugin deadline thread could not be started: {0}")]
    Ticker(#[source] std::io::Error),
}

/// A component could not be compiled, or its compiled form stored.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The `.wasm` file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The component file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's bytes are not the ones the caller checked (it changed
    /// between the trust check and the load).
    #[error("`{}` changed while it was being loaded (its SHA-256 is now {now}, {checked} was checked); try again", path.display())]
    Changed {
        /// The component file.
        path: PathBuf,
        /// The SHA-256 of what was read.
        now: String,
        /// The SHA-256 the caller had checked.
        checked: String,
    },
    /// wasmtime could not compile (or serialise) the component.
    #[error(transparent)]
    Wasm(#[from] WasmError),
    /// The compiled form could not be written to the cache.
    #[error("cannot write the compiled component: {0}")]
    Write(#[source] std::io::Error),
}

impl CompileError {
    /// The message with every cause, as one line.
    pub fn with_causes(&self) -> String {
        match self {
            CompileError::Wasm(e) => e.with_causes(),
            other => other.to_string(),
        }
    }
}

/// `lockstep plugins inspect` could not look at a component.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The path is neither a file nor a plugin's name.
    #[error("`{}` is neither a file nor the name of a plugin in {dirs:?}", path.display())]
    NotFound {
        /// What was asked for.
        path: PathBuf,
        /// The directories searched.
        dirs: Vec<PathBuf>,
    },
    /// The component could not be loaded.
    #[error(transparent)]
    Load(#[from] crate::lifecycle::PluginError),
}
