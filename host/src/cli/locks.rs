//! `lockstep locks …` (operators).

use clap::Subcommand;
use serde_json::json;

use super::Cli;
use crate::locks::format_ms;
use crate::visible::line;
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
}

/// Run a `locks` subcommand.
pub async fn run(cli: &Cli, container: &Container, cmd: &LocksCommand) -> anyhow::Result<()> {
    match cmd {
        LocksCommand::List { stale } => {
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
        }
        LocksCommand::Release { resource, force } => {
            if !force {
                anyhow::bail!("refusing to release `{resource}` without --force: its holder may still be running");
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
