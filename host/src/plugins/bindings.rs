//! Host bindings for the `lockstep:plugin@0.1` WIT package (`wit/v0.1.0/` at the
//! repository root), generated for the `plugin` world.
//!
//! A component may implement only the `strategist` or only the `executor`
//! world: exports are looked up one interface at a time
//! (`exports::lockstep::plugin::strategy::GuestIndices` and
//! `…::execution::GuestIndices`), never through the world as a whole.
//!
//! Released WIT versions are frozen. When a later minor adds items, this
//! module keeps serving the 0.1 line and a sibling module binds the new one.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit/v0.1.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "lockstep:plugin/locks.lease": super::host::LeaseSlot,
    },
});
