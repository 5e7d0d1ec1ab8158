//! lockstep: a host runtime for plans carried out by sandboxed WebAssembly
//! component plugins, with a lease-based lock service so that no two
//! sessions ever execute or apply the same plan at once.
//!
//! A plan takes an [`Action`](lifecycle::Action) through Strategize →
//! Execute → Apply. Build a [`Container`] from a [`Config`], then get one
//! [`PlanLifecycleService`](lifecycle::PlanLifecycleService) per session:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use lockstep::{Config, Container};
//! let container = Container::build(Config::for_project(".")).await?;
//! let session = container.lifecycle();
//! let action = lockstep::lifecycle::parse_action(&std::fs::read_to_string("action.toml")?)
//!     .map_err(anyhow::Error::msg)?;
//! let plan = session.new_plan(action, ".".as_ref()).await?;
//! session.strategize_plan(&plan.id).await?;
//! session.execute_plan(&plan.id).await?;
//! session.apply_plan(&plan.id).await?;
//! # Ok(()) }
//! ```

pub mod authoring;
pub mod cli;
pub mod config;
pub mod container;
pub mod db;
pub mod fleet;
pub mod lifecycle;
pub mod locks;
pub mod model;
pub mod plugins;
pub mod service;
pub mod store;
pub mod visible;
pub mod workspace;

pub use config::Config;
pub use container::Container;
pub use lifecycle::{LifecycleError, PlanLifecycleService};
pub use locks::{LockConflict, LockError, LockService};
