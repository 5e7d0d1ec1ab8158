//! The WebAssembly plugin runtime.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::lifecycle::{Executor, PluginError, PluginProvider, Strategist};

/// Finds and runs plugin components.
#[derive(Debug)]
pub struct PluginEngine {
    dirs: Vec<std::path::PathBuf>,
}

impl PluginEngine {
    /// An engine searching `config.plugin_dirs`.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(PluginEngine {
            dirs: config.plugin_dirs.clone(),
        })
    }
}

impl PluginProvider for PluginEngine {
    fn strategist(
        &self,
        name: &str,
        _project_root: &Path,
    ) -> Result<Arc<dyn Strategist>, PluginError> {
        Err(PluginError::Load(format!(
            "no plugin named `{name}` in {:?}",
            self.dirs
        )))
    }
    fn executor(&self, name: &str, _project_root: &Path) -> Result<Arc<dyn Executor>, PluginError> {
        Err(PluginError::Load(format!(
            "no plugin named `{name}` in {:?}",
            self.dirs
        )))
    }
}
