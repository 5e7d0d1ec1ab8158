//! Host bindings for every supported version of the `lockstep:plugin` WIT
//! package, and the choice between them.
//!
//! Released WIT versions are frozen (`wit/README.md`), and each one the host
//! supports has a `bindgen!` module of its own here, generated from its
//! folder in `wit/`: [`v0_1_0`] and [`v0_2_0`]. The rest of the runtime works
//! with the [`latest`] bindings only. An older version implements its imports
//! on the same capability types (`host/`) by delegating to the latest
//! implementation and converts its types on the way (`v0_1_0.rs`, after
//! zed's `wasm_host/wit/since_v0_0_4.rs`).
//!
//! Each version links its imports one interface at a time, each through an
//! accessor that hands the capability's `Host` implementation only its own
//! state ([`v0_2_0::add_to_linker`], [`v0_1_0::add_to_linker`]).
//!
//! Every version's imports live in the one linker: their names carry the
//! version (`lockstep:plugin/log@0.1.0`, `lockstep:plugin/log@0.2.0`), so they
//! do not collide. A component's exports are looked up through the bindings
//! of the version its export names carry, which is read from its type before
//! it is instantiated ([`StrategyIndices::new`], [`ExecutionIndices::new`]).

pub mod v0_1_0;
pub mod v0_2_0;

pub use v0_2_0 as latest;

use wasmtime::component::{Instance, InstancePre, Linker};
use wasmtime::AsContextMut;

use super::host::PluginState;
use super::manifest::{ApiVersion, Role};
use super::world::Shape;
use latest::lockstep::plugin::types as wit;

/// A released minor of `lockstep:plugin` this host serves. While the major
/// is 0 every minor is a line of its own (`0.1.x`, `0.2.x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `lockstep:plugin@0.1.x`: `types`, `workspace`, `locks`, `log`.
    V0_1,
    /// `lockstep:plugin@0.2.x`: 0.1 plus `progress`.
    V0_2,
}

impl Api {
    /// Every supported version, oldest first.
    pub const ALL: [Api; 2] = [Api::V0_1, Api::V0_2];
    /// The newest version; the runtime works with its types.
    pub const LATEST: Api = Api::V0_2;

    /// The released version of this line.
    pub const fn version(self) -> ApiVersion {
        let minor = match self {
            Api::V0_1 => 1,
            Api::V0_2 => 2,
        };
        ApiVersion {
            major: 0,
            minor,
            patch: 0,
        }
    }

    /// The interfaces of the package at this version that a plugin may
    /// import.
    pub fn interfaces(self) -> &'static [&'static str] {
        match self {
            Api::V0_1 => &["types", "workspace", "locks", "log"],
            Api::V0_2 => &["types", "workspace", "locks", "log", "progress"],
        }
    }

    /// The supported line `version` belongs to, if any.
    pub fn of(version: &ApiVersion) -> Option<Api> {
        Api::ALL
            .into_iter()
            .find(|api| version.is_compatible_with(&api.version()))
    }
}

/// Add every supported version's imports to `linker`.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    v0_1_0::add_to_linker(linker)?;
    v0_2_0::add_to_linker(linker)
}

/// The `strategy` export of a linked component, through the bindings of
/// its version.
#[derive(Clone)]
pub enum StrategyIndices {
    /// Built against 0.1.
    V0_1(v0_1_0::exports::lockstep::plugin::strategy::GuestIndices),
    /// Built against 0.2.
    V0_2(v0_2_0::exports::lockstep::plugin::strategy::GuestIndices),
}

/// The `strategy` export of one instance.
pub enum Strategy {
    /// Built against 0.1.
    V0_1(v0_1_0::exports::lockstep::plugin::strategy::Guest),
    /// Built against 0.2.
    V0_2(v0_2_0::exports::lockstep::plugin::strategy::Guest),
}

impl StrategyIndices {
    /// The `strategy` export of `pre`, looked up at the version `shape` (the
    /// same component's type) says it exports; `None` if it exports no
    /// version this host supports.
    pub fn new(shape: &Shape, pre: &InstancePre<PluginState>) -> Option<Self> {
        Some(match shape.role_api(Role::Strategist)? {
            Api::V0_1 => Self::V0_1(
                v0_1_0::exports::lockstep::plugin::strategy::GuestIndices::new(pre).ok()?,
            ),
            Api::V0_2 => Self::V0_2(
                v0_2_0::exports::lockstep::plugin::strategy::GuestIndices::new(pre).ok()?,
            ),
        })
    }

    /// The export of `instance`.
    pub fn load(
        &self,
        store: impl AsContextMut,
        instance: &Instance,
    ) -> wasmtime::Result<Strategy> {
        Ok(match self {
            Self::V0_1(indices) => Strategy::V0_1(indices.load(store, instance)?),
            Self::V0_2(indices) => Strategy::V0_2(indices.load(store, instance)?),
        })
    }
}

impl Strategy {
    /// Call `strategize`, in the latest version's types.
    pub async fn call_strategize<S: AsContextMut>(
        &self,
        store: S,
        plan_id: &str,
        action: &wit::Action,
    ) -> wasmtime::Result<Result<wit::PlanProposal, wit::PluginError>>
    where
        S::Data: Send,
    {
        Ok(match self {
            Self::V0_1(guest) => guest
                .call_strategize(store, plan_id, &action.clone().into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
            Self::V0_2(guest) => guest.call_strategize(store, plan_id, action).await?,
        })
    }
}

/// The `execution` export of a linked component, through the bindings of
/// its version.
#[derive(Clone)]
pub enum ExecutionIndices {
    /// Built against 0.1.
    V0_1(v0_1_0::exports::lockstep::plugin::execution::GuestIndices),
    /// Built against 0.2.
    V0_2(v0_2_0::exports::lockstep::plugin::execution::GuestIndices),
}

/// The `execution` export of one instance.
pub enum Execution {
    /// Built against 0.1.
    V0_1(v0_1_0::exports::lockstep::plugin::execution::Guest),
    /// Built against 0.2.
    V0_2(v0_2_0::exports::lockstep::plugin::execution::Guest),
}

impl ExecutionIndices {
    /// The `execution` export of `pre`, looked up at the version `shape`
    /// says it exports; `None` if it exports no version this host supports.
    pub fn new(shape: &Shape, pre: &InstancePre<PluginState>) -> Option<Self> {
        Some(match shape.role_api(Role::Executor)? {
            Api::V0_1 => Self::V0_1(
                v0_1_0::exports::lockstep::plugin::execution::GuestIndices::new(pre).ok()?,
            ),
            Api::V0_2 => Self::V0_2(
                v0_2_0::exports::lockstep::plugin::execution::GuestIndices::new(pre).ok()?,
            ),
        })
    }

    /// The export of `instance`.
    pub fn load(
        &self,
        store: impl AsContextMut,
        instance: &Instance,
    ) -> wasmtime::Result<Execution> {
        Ok(match self {
            Self::V0_1(indices) => Execution::V0_1(indices.load(store, instance)?),
            Self::V0_2(indices) => Execution::V0_2(indices.load(store, instance)?),
        })
    }
}

impl Execution {
    /// Call `execute`, in the latest version's types.
    pub async fn call_execute<S: AsContextMut>(
        &self,
        store: S,
        plan_id: &str,
        step: &wit::Step,
    ) -> wasmtime::Result<Result<wit::StepOutcome, wit::PluginError>>
    where
        S::Data: Send,
    {
        Ok(match self {
            Self::V0_1(guest) => guest
                .call_execute(store, plan_id, &step.clone().into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
            Self::V0_2(guest) => guest.call_execute(store, plan_id, step).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ApiVersion {
        ApiVersion::parse(s).unwrap()
    }

    #[test]
    fn versions_map_to_their_line() {
        assert_eq!(Api::of(&v("0.1.0")), Some(Api::V0_1));
        assert_eq!(Api::of(&v("0.1.7")), Some(Api::V0_1));
        assert_eq!(Api::of(&v("0.2.0")), Some(Api::V0_2));
        assert_eq!(Api::of(&v("0.3.0")), None);
        assert_eq!(Api::of(&v("0.0.9")), None);
        assert_eq!(Api::of(&v("1.0.0")), None);
        assert_eq!(Api::LATEST, *Api::ALL.last().unwrap());
        for api in Api::ALL {
            assert_eq!(Api::of(&api.version()), Some(api));
            assert!(api.interfaces().contains(&"types"));
        }
    }
}
