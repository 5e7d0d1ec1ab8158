//! Host bindings for `lockstep:plugin@0.2.0` (`wit/v0.2.0/` at the repository
//! root), generated for the `plugin` world. This is the latest version: the
//! host's imports (`host.rs`), conversions (`convert.rs`) and calls
//! (`call.rs`) are written against its types, and older versions are
//! converted to them (`v0_1_0.rs`).
//!
//! A component may implement only the `strategist` or only the `executor`
//! world: exports are looked up one interface at a time
//! (`exports::lockstep::plugin::strategy::GuestIndices` and
//! `…::execution::GuestIndices`), never through the world as a whole.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit/v0.2.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "lockstep:plugin/locks.lease": crate::plugins::host::LeaseSlot,
    },
});
