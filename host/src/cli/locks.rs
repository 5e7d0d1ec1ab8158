//! `lockstep locks …` (operators).

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::{Cli, CliError};
use crate::locks::{format_ms, local_now_ms, Owner};
use crate::visible::line;
use crate::workspace::project_id;
use crate::Container;

/// `locks` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// List held leases; expired ones are marked stale.
    List {
        /// Only stale (expired) leases.
        #[arg(long)]
        stale: bool,
    },
    /// Release a lease whoever holds it; the old holder is fenced out.
    Release {
        /// The resource, e.g. `plan:0123abcd4567`.
        resource: String,
        /// Required: this takes the lock away from a possibly live session.
        #[arg(long)]
        force: bool,
    },
    /// Hold a lease, as another session would, until the time passes or
    /// SIGINT/SIGTERM (renewing it meanwhile); it is released on exit. To
    /// see how a plugin or a plan reacts to a conflict.
    Hold {
        /// A plugin lease name (`R` holds `project:<id>/res:R` of --project)
        /// or a full resource (`plan:<id>`, `project:<id>`, …).
        resource: String,
        /// How long to hold it (e.g. 60s, 5m).
        #[arg(long = "for", value_parser = humantime::parse_duration, default_value = "60s")]
        duration: Duration,
        /// Recorded as the lease's operation: what `locks list` and the
        /// conflict message show.
        #[arg(long, default_value = "held by `lockstep locks hold`")]
        reason: String,
    },
}

/// The resource `locks hold` takes: a full name as given, a bare name as
/// the plugin lease of the project at `project`.
fn hold_resource(resource: &str, project: &Path) -> String {
    if resource.contains(':') {
        return resource.to_string();
    }
    let root = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
    format!("project:{}/res:{resource}", project_id(&root))
}

/// `locks hold`: take the lease, print it, keep it until the time passes
/// or a signal, release it.
async fn hold(
    cli: &Cli,
    container: &Container,
    resource: &str,
    duration: Duration,
    reason: &str,
) -> Result<(), CliError> {
    let resource = hold_resource(resource, &cli.project);
    let owner = Owner::new_session();
    let ttl = Duration::from_secs(30).min(duration.max(Duration::from_secs(5)));
    let guard = container
        .locks()
        .lock(&resource, &owner, reason, ttl, Duration::ZERO)
        .await?;
    let until = format_ms(local_now_ms() + duration.as_millis() as i64);
    if cli.json {
        println!(
            "{}",
            crate::visible::json(&json!({
                "resource": resource, "owner": owner.id, "token": guard.token(), "until": until,
            }))
        );
    } else {
        println!(
            "holding `{}` as {} (token {}) until {until}; Ctrl-C releases it",
            line(&resource),
            line(&owner.id),
            guard.token()
        );
    }
    let lost = guard.lost();
    let outcome = tokio::select! {
        _ = tokio::time::sleep(duration) => Ok(()),
        _ = super::plan::wait_for_signal() => Ok(()),
        _ = lost.cancelled() => Err(guard.expired_error()),
    };
    let released = guard.release().await;
    outcome?;
    released?;
    if !cli.json {
        println!("released `{}`", line(&resource));
    }
    Ok(())
}

/// `locks list`: every lease (or only the stale ones), expired ones marked.
async fn list(cli: &Cli, container: &Container, stale: bool) -> Result<(), CliError> {
    let locks: Vec<_> = container
        .locks()
        .list()
        .await?
        .into_iter()
        .filter(|l| !stale || l.stale)
        .collect();
    if cli.json {
        println!("{}", crate::visible::json(&locks));
    } else if locks.is_empty() {
        println!("no locks held");
    } else {
        for l in locks {
            println!(
                "{}{}\n  owner {} ({}) token {} holds {}\n  {} since {} until {}",
                line(&l.resource),
                if l.stale { "  [stale]" } else { "" },
                line(&l.owner),
                line(&l.holder.to_string()),
                l.token,
                l.holds,
                line(&l.operation),
                format_ms(l.acquired_at),
                format_ms(l.expires_at)
            );
        }
    }
    Ok(())
}

/// Run a `locks` subcommand.
pub async fn run(cli: &Cli, container: &Container, cmd: &LocksCommand) -> Result<(), CliError> {
    match cmd {
        LocksCommand::List { stale } => list(cli, container, *stale).await?,
        LocksCommand::Hold {
            resource,
            duration,
            reason,
        } => hold(cli, container, resource, *duration, reason).await?,
        LocksCommand::Release { resource, force } => {
            if !force {
                return Err(CliError::ForceRequired {
                    resource: resource.clone(),
                });
            }
            let removed = container.locks().force_release(resource).await?;
            if cli.json {
                println!(
                    "{}",
                    crate::visible::json(
                        &json!({ "resource": resource, "released": removed.as_ref().map(|(o, t)| json!({"owner": o, "token": t})) })
                    )
                );
            } else {
                match removed {
                    Some((owner, token)) => {
                        println!("released `{resource}` (was held by {owner}, token {token})")
                    }
                    None => println!("`{resource}` was not locked"),
                }
            }
        }
    }
    Ok(())
}
