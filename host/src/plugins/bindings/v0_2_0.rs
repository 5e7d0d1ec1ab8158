//! Host bindings for `lockstep:plugin@0.2.0` (`wit/v0.2.0/` at the repository
//! root), generated for the `plugin` world. This is the latest version: the
//! host's imports (`host/`), conversions (`convert.rs`) and calls
//! (`call.rs`) are written against its types, and older versions are
//! converted to them (`v0_1_0.rs`).
//!
//! A component may implement only the `strategist` or only the `executor`
//! world: exports are looked up one interface at a time
//! (`exports::lockstep::plugin::strategy::GuestIndices` and
//! `…::execution::GuestIndices`), never through the world as a whole.

use wasmtime::component::{HasSelf, Linker};

use crate::plugins::host::{HasLocks, LogCtx, PluginState, ProgressSink, Types, WorkspaceCtx};

#[allow(missing_docs, clippy::all)]
mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/v0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "lockstep:plugin/locks.lease": crate::plugins::host::LeaseSlot,
        },
    });
}

pub use generated::*;

/// Add this version's imports to `linker`, each capability through its
/// accessor on [`PluginState`].
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use generated::lockstep::plugin::{locks, log, progress, types, workspace};
    types::add_to_linker::<_, Types>(linker, |_| Types)?;
    workspace::add_to_linker::<_, HasSelf<WorkspaceCtx>>(linker, PluginState::workspace)?;
    locks::add_to_linker::<_, HasLocks>(linker, PluginState::locks)?;
    log::add_to_linker::<_, HasSelf<LogCtx>>(linker, PluginState::log)?;
    progress::add_to_linker::<_, HasSelf<ProgressSink>>(linker, PluginState::progress)
}
