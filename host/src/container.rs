//! The container: builds the singletons once — the lock service, the store,
//! the plugin engine — and hands out one [`PlanLifecycleService`] per
//! session. A lifecycle service can only be made here, so there is no
//! unlocked mode to fall into.

use std::sync::Arc;

use crate::config::{Config, PluginEngineError};
use crate::db::{Db, DbError};
use crate::lifecycle::{PlanLifecycleService, PluginProvider};
use crate::locks::LockService;
use crate::store::Store;

/// Why the container could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The WebAssembly plugin engine could not be started.
    #[error(transparent)]
    PluginEngine(#[from] PluginEngineError),
}

/// The wired singletons. Cheap to share behind an `Arc`.
pub struct Container {
    config: Config,
    locks: LockService,
    store: Store,
    plugins: Arc<dyn PluginProvider>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("config", &self.config)
            .field("locks", &self.locks)
            .finish()
    }
}

impl Container {
    /// Connect to the configured database, run migrations, and build the
    /// lock service, the store and the WebAssembly plugin engine.
    pub async fn build(config: Config) -> Result<Container, ContainerError> {
        let plugins = Arc::new(config.plugin_engine()?);
        Self::build_with_plugins(config, plugins).await
    }

    /// Like [`Container::build`], with another source of strategists and
    /// executors (for embedding or testing without WebAssembly).
    pub async fn build_with_plugins(
        config: Config,
        plugins: Arc<dyn PluginProvider>,
    ) -> Result<Container, ContainerError> {
        let db = Db::connect(&config.database_url()).await?;
        let locks = LockService::new(db.clone());
        let store = Store::new(db);
        Ok(Container {
            config,
            locks,
            store,
            plugins,
        })
    }

    /// A new session: its own lock owner, sharing everything else.
    pub fn lifecycle(&self) -> PlanLifecycleService {
        PlanLifecycleService::new(
            self.store.clone(),
            self.locks.clone(),
            self.plugins.clone(),
            self.config.lifecycle.clone(),
        )
    }

    /// The shared lock service (for operators: list, force-release).
    pub fn locks(&self) -> &LockService {
        &self.locks
    }

    /// The shared store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The plugin source.
    pub fn plugins(&self) -> &Arc<dyn PluginProvider> {
        &self.plugins
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
