//! `lockstep trust` and `lockstep untrust`: the user's consent to run a
//! project's own plugins (`.lockstep/plugins`). Presentation only; the
//! records are kept by [`crate::plugins::TrustStore`].

use std::path::Path;

use super::CliError;
use crate::plugins::{project_plugin_dir, TrustStore, TrustedProject};

/// `trust [DIR]`: record the project and the hashes of its plugin files.
pub(crate) fn trust(store: &TrustStore, project: &Path, json: bool) -> Result<(), CliError> {
    let record = store.trust(project)?;
    if json {
        println!("{}", serde_json::to_string(&record)?);
        return Ok(());
    }
    let file = store
        .file()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    if record.files.is_empty() {
        println!(
            "trusted {} (no plugin files in {} yet; plugins added later must be trusted again), recorded in {file}",
            record.path.display(),
            project_plugin_dir(&record.path).display()
        );
    } else {
        println!(
            "trusted {} with these plugin files, recorded in {file}:",
            record.path.display()
        );
        for (name, hash) in &record.files {
            println!("  {hash}  {name}");
        }
        println!(
            "A plugin added or changed there later is refused until you trust the project again."
        );
    }
    Ok(())
}

/// `untrust [DIR]`: forget the project.
pub(crate) fn untrust(store: &TrustStore, project: &Path, json: bool) -> Result<(), CliError> {
    let removed = store.untrust(project)?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "project": project, "removed": removed })
        );
    } else if let Some(record) = removed {
        println!(
            "no longer trusted: {} (its own plugins will be refused)",
            record.path.display()
        );
    } else {
        println!("{} was not trusted", project.display());
    }
    Ok(())
}

/// `trust --list`: every trusted project.
pub(crate) fn list(store: &TrustStore, json: bool) -> Result<(), CliError> {
    let records: Vec<TrustedProject> = store.list()?;
    if json {
        println!("{}", serde_json::to_string(&records)?);
        return Ok(());
    }
    if records.is_empty() {
        println!("no trusted projects");
    }
    for r in &records {
        println!(
            "{}  (trusted {}, {} plugin file{})",
            r.path.display(),
            r.trusted_at,
            r.files.len(),
            if r.files.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The `.gitignore` `lockstep init` writes in `.lockstep/`: everything
/// there is local state (the database and its WAL files, journals, an old
/// cache) except the project's own plugins and this file.
pub(crate) const GITIGNORE: &str = "\
# Written by `lockstep init`: everything here is local state (the database,
# its WAL and journal files) except the project's own plugins.
*
!/.gitignore
!/plugins/
!/plugins/**
";
