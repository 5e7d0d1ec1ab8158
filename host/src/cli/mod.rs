//! The command-line interface. Presentation only: it parses arguments,
//! builds a [`Container`](crate::Container), calls the lifecycle and prints.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage, 3 lock conflict, 4 invalid
//! transition, 5 apply drift.

mod conflict;
mod error;
mod fleet;
mod locks;
mod output;
mod plan;
mod plugin;
mod plugins;
mod serve;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::lifecycle::PluginProvider;
use crate::plugins::Policy;
use crate::{Config, Container};

pub use error::CliError;
pub use output::{
    exit_code, EXIT_APPLY_DRIFT, EXIT_FAILURE, EXIT_INVALID_TRANSITION, EXIT_LOCK_CONFLICT,
    EXIT_USAGE,
};

/// `lockstep` — plans carried out by sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "lockstep", version, about, propagate_version = true)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
    /// [default: <project>/.lockstep/lockstep.db]
    #[arg(long, global = true, env = "LOCKSTEP_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The project directory (default database and plugin directory).
    #[arg(long, global = true, env = "LOCKSTEP_PROJECT", default_value = ".")]
    pub project: PathBuf,
    /// Extra plugin directories (repeatable; also LOCKSTEP_PLUGIN_PATH).
    #[arg(long = "plugin-dir", global = true)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show the raw details of a failure: a plugin's trap and its wasm
    /// backtrace.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// Lease length of plan and project locks (renewed every third).
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "5m")]
    pub lock_ttl: Duration,
    /// The operator's policy file (plugin limit ceilings, allow-list,
    /// changeset caps) [default: lockstep.toml in $LOCKSTEP_CONFIG_DIR,
    /// else $XDG_CONFIG_HOME/lockstep, else ~/.config/lockstep, if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The policy read from `--policy` or the default file (filled by
    /// [`run`]).
    #[arg(skip)]
    pub loaded_policy: Option<Policy>,
    /// The command.
    #[command(subcommand)]
    pub command: Commands,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Create `.lockstep/` (database, plugin directory, .gitignore) in a project.
    Init {
        /// The project directory.
        dir: Option<PathBuf>,
    },
    /// Trust a project's own plugins (DIR/.lockstep/plugins) as they are now.
    Trust {
        /// The project directory [default: --project].
        dir: Option<PathBuf>,
        /// List the trusted projects instead.
        #[arg(long, conflicts_with = "dir")]
        list: bool,
    },
    /// Stop trusting a project's own plugins.
    Untrust {
        /// The project directory [default: --project].
        dir: Option<PathBuf>,
    },
    /// Create and drive plans.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Run a worker: claim submitted plans and carry them out until SIGTERM.
    Worker(fleet::WorkerArgs),
    /// Inspect the fleet's workers.
    #[command(subcommand)]
    Workers(fleet::WorkersCommand),
    /// Inspect and release locks (operators).
    #[command(subcommand)]
    Locks(locks::LocksCommand),
    /// Serve the HTTP API (docs/api.md), with in-process workers.
    Serve(serve::ServeArgs),
    /// Create, list and revoke the service's API tokens.
    #[command(subcommand)]
    Tokens(serve::TokensCommand),
    /// Register and list the projects the service may plan on.
    #[command(subcommand)]
    Projects(serve::ProjectsCommand),
    /// Find and inspect plugin components; write and test plugins.
    #[command(subcommand, visible_alias = "plugin")]
    Plugins(PluginsCommand),
}

/// `plugins` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every plugin found in the plugin directories, with its problems.
    List,
    /// Compile every plugin found into the compiled-component cache.
    Precompile,
    /// A component's world, imports, exports and API version.
    Inspect {
        /// A `.wasm` file, or the name of a plugin in the plugin directories.
        file: PathBuf,
    },
    /// Create a plugin project (Rust, Python or JavaScript) that builds and
    /// tests as is.
    New(plugin::NewArgs),
    /// Run a plugin against a copy of a fixture project (--project) and show
    /// its proposal and diff; with --expect, compare the result.
    Test(plugin::TestArgs),
}

/// Run the CLI with the WebAssembly plugin engine.
pub fn main() -> ExitCode {
    main_with(None)
}

/// Run the CLI, optionally with another plugin source (embedders, tests).
pub fn main_with(plugins: Option<Arc<dyn PluginProvider>>) -> ExitCode {
    let cli = Cli::parse();
    // Authors testing a plugin want to see what it logs.
    init_tracing(match &cli.command {
        Commands::Plugins(PluginsCommand::Test(_)) => "warn,lockstep::plugin=info",
        _ => "warn",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let (json, verbose) = (cli.json, cli.verbose);
    match runtime.block_on(run(cli, plugins)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e, json, verbose);
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Log lines go to stderr with every field made visible
/// ([`crate::visible::line`]): a plugin's log message is plugin text, and a
/// carriage return or escape sequence in it must not rewrite the screen.
/// Whether log lines (on stderr) are coloured.
fn log_colour(stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && std::env::var_os("NO_COLOR").is_none()
}

fn init_tracing(default: &str) {
    use tracing_subscriber::field::MakeExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fields = tracing_subscriber::fmt::format::debug_fn(
        |w: &mut tracing_subscriber::fmt::format::Writer<'_>,
         field: &tracing::field::Field,
         value: &dyn std::fmt::Debug| {
            let text = format!("{value:?}");
            if field.name() == "message" {
                write!(w, "{}", crate::visible::line(&text))
            } else {
                write!(w, "{}={}", field.name(), crate::visible::line(&text))
            }
        },
    )
    .delimited(" ");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(fields)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: not in a file, a pipe or
        // a CI log, and not with NO_COLOR.
        .with_ansi(log_colour(std::io::IsTerminal::is_terminal(
            &std::io::stderr(),
        )))
        .try_init();
}

/// The policy named by `--policy`, else the one in the user's config
/// directory, if there is one. A file named explicitly must exist.
fn read_policy(path: Option<&std::path::Path>) -> Result<Option<Policy>, CliError> {
    Ok(match path {
        Some(path) => Some(Policy::read(path)?),
        None => Policy::read_default()?,
    })
}

/// Run one parsed command.
pub async fn run(mut cli: Cli, plugins: Option<Arc<dyn PluginProvider>>) -> Result<(), CliError> {
    if cli.loaded_policy.is_none() {
        let path = cli.policy.clone();
        cli.loaded_policy =
            tokio::task::spawn_blocking(move || read_policy(path.as_deref())).await??;
    }
    let cli = &cli;
    let project = cli.project.as_path();
    match &cli.command {
        Commands::Init { dir } => init(cli, dir.as_deref().unwrap_or(project), plugins).await,
        Commands::Trust { list: true, .. } => trust::list(&user_trust_store(), cli.json),
        Commands::Trust { dir, .. } => trust::trust(
            &user_trust_store(),
            dir.as_deref().unwrap_or(project),
            cli.json,
        ),
        Commands::Untrust { dir } => trust::untrust(
            &user_trust_store(),
            dir.as_deref().unwrap_or(project),
            cli.json,
        ),
        Commands::Plugins(cmd) => Ok(plugins_command(cli, cmd).await?),
        Commands::Plan(cmd) => {
            let container = build_container(cli, project, plugins).await?;
            plan::run(cli, &container, cmd).await
        }
        Commands::Locks(cmd) => {
            let container = build_container(cli, project, plugins).await?;
            locks::run(cli, &container, cmd).await
        }
        Commands::Worker(args) => fleet::worker(cli, args).await,
        Commands::Serve(args) => serve::serve(cli, args).await,
        Commands::Tokens(cmd) => serve::tokens(cli, cmd).await,
        Commands::Projects(cmd) => serve::projects(cli, cmd).await,
        Commands::Workers(cmd) => {
            let container = build_container(cli, project, plugins).await?;
            fleet::workers(cli, &container, cmd).await
        }
    }
}

/// Run a `plugins` subcommand (they report through `anyhow`).
async fn plugins_command(cli: &Cli, cmd: &PluginsCommand) -> anyhow::Result<()> {
    let engine = || config(cli, &cli.project).plugin_engine();
    match cmd {
        PluginsCommand::New(args) => plugin::new(args, cli.json),
        PluginsCommand::Test(args) => plugin::test(cli, args).await,
        PluginsCommand::List => plugins::list(&engine()?, cli.json),
        PluginsCommand::Precompile => plugins::precompile(&engine()?, cli.json),
        PluginsCommand::Inspect { file } => plugins::inspect(&engine()?, file, cli.json),
    }
}

async fn build_container(
    cli: &Cli,
    project: &std::path::Path,
    plugins: Option<Arc<dyn PluginProvider>>,
) -> Result<Container, CliError> {
    let config = config(cli, project);
    Ok(match plugins {
        Some(p) => Container::build_with_plugins(config, p).await?,
        None => Container::build(config).await?,
    })
}

/// The user's trust records (`$LOCKSTEP_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/lockstep`, else `~/.config/lockstep`).
fn user_trust_store() -> crate::plugins::TrustStore {
    crate::plugins::TrustStore::new(crate::plugins::userdir::user_config_dir())
}

pub(crate) fn config(cli: &Cli, project: &std::path::Path) -> Config {
    let mut config = Config::for_project(project);
    config.database_url = cli.database_url.clone();
    config.plugin_dirs.extend(cli.plugin_dirs.iter().cloned());
    config.lifecycle.lock_ttl = crate::locks::clamp_ttl(cli.lock_ttl);
    if let Some(policy) = &cli.loaded_policy {
        config.apply_policy(policy);
    }
    config.plugins.on_compile = plugins::compile_progress(
        cli.json,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    config
}

async fn init(
    cli: &Cli,
    dir: &std::path::Path,
    plugins: Option<Arc<dyn PluginProvider>>,
) -> Result<(), CliError> {
    let state = dir.join(".lockstep");
    let plugin_dir = state.join("plugins");
    std::fs::create_dir_all(&plugin_dir).map_err(|source| CliError::Create {
        path: plugin_dir,
        source,
    })?;
    // The database and its WAL files must not be committed by accident; a
    // .gitignore the user already has is left as it is.
    let gitignore = state.join(".gitignore");
    let written = match std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&gitignore)
    {
        Ok(mut file) => std::io::Write::write_all(&mut file, trust::GITIGNORE.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    };
    written.map_err(|source| CliError::Create {
        path: gitignore,
        source,
    })?;
    let container = build_container(cli, dir, plugins).await?;
    let url = crate::db::redact(&container.config().database_url());
    if cli.json {
        println!(
            "{}",
            crate::visible::json(&serde_json::json!({ "project": dir, "database_url": url }))
        );
    } else {
        println!("initialised {} (database {url})", dir.display());
    }
    Ok(())
}
