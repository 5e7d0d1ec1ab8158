//! Host configuration: where the database is, where plugins are, and the
//! tunables of the lifecycle.

use std::path::{Path, PathBuf};

use crate::db::default_sqlite_url;
use crate::lifecycle::LifecycleOptions;
use crate::plugins::{PluginEngine, PluginsConfig, Policy};

pub use crate::plugins::PLUGIN_PATH_ENV;

pub use crate::plugins::userdir::{user_cache_dir, user_config_dir, CONFIG_DIR_ENV};

/// The WebAssembly plugin engine could not be started.
pub use crate::plugins::EngineError as PluginEngineError;

/// What [`Container::build`](crate::Container::build) needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project directory (used for the default database and plugin dir).
    pub project: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default `<project>/.lockstep/lockstep.db`.
    pub database_url: Option<String>,
    /// Plugin directories the operator chose, searched in order (after the
    /// project's own, see `project_plugins`); default: those of
    /// `LOCKSTEP_PLUGIN_PATH`. Plugins here are trusted as they are.
    pub plugin_dirs: Vec<PathBuf>,
    /// Also search `<project>/.lockstep/plugins` first, for plugins the user
    /// has trusted with `lockstep trust` (default `true`). A checkout's own
    /// plugins are never run without that consent.
    pub project_plugins: bool,
    /// Lock and changeset tunables.
    pub lifecycle: LifecycleOptions,
    /// Plugin limits policy and allow-list, compiled-component cache,
    /// instance allocation. The CLI fills the policy from `lockstep.toml`
    /// ([`crate::plugins::Policy`]); embedders set it here.
    pub plugins: PluginsConfig,
}

impl Config {
    /// Defaults for the project at `project`.
    pub fn for_project(project: impl AsRef<Path>) -> Self {
        let project = project.as_ref().to_path_buf();
        Config {
            plugin_dirs: operator_plugin_dirs(),
            project_plugins: true,
            plugins: PluginsConfig::for_project(&project),
            project,
            database_url: None,
            lifecycle: LifecycleOptions::default(),
        }
    }

    /// The plugin engine this configuration describes: it searches
    /// `<project>/.lockstep/plugins` (when [`Config::project_plugins`], for
    /// plugins the user trusted) and then [`Config::plugin_dirs`], with
    /// [`Config::plugins`].
    pub fn plugin_engine(&self) -> Result<PluginEngine, PluginEngineError> {
        let engine = PluginEngine::with_options(self.plugin_dirs.clone(), self.plugins.clone())?;
        Ok(if self.project_plugins {
            engine.with_project_plugins(&self.project)
        } else {
            engine
        })
    }

    /// Put an operator's policy into this configuration: its limits and
    /// allow-list replace the plugin settings, its changeset caps lower the
    /// lifecycle's.
    pub fn apply_policy(&mut self, policy: &Policy) {
        policy.apply(&mut self.plugins, &mut self.lifecycle.change_limits);
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| default_sqlite_url(&self.project))
    }
}

/// The entries of `LOCKSTEP_PLUGIN_PATH`: plugin directories the operator
/// names, trusted as they are. (A project's own `.lockstep/plugins` is
/// searched first, subject to the user's trust: see
/// [`Config::project_plugins`].)
pub fn operator_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(extra) = std::env::var(PLUGIN_PATH_ENV) {
        dirs.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    dirs
}
