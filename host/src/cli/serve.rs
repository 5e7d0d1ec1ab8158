//! `lockstep serve` (the HTTP API, with in-process workers), `lockstep
//! tokens create|list|revoke` and `lockstep projects add|list`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::{Cli, CliError};
use crate::fleet::{self, Worker};
use crate::locks::format_ms;
use crate::service::{self, projects, tokens, Scope, ServiceConfig};
use crate::visible::line;
use crate::Container;

/// Where the service keeps its database when no URL is given.
#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// The service's data directory: its SQLite database when no
    /// --database-url is given [default: $XDG_DATA_HOME/lockstep, else
    /// ~/.local/share/lockstep]
    #[arg(long, env = "LOCKSTEP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `lockstep serve` options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the first line printed
    /// names it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// In-process workers (0: plans are run by separate `lockstep worker`
    /// processes on the same PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Directories under which projects may be registered and planned on
    /// (repeatable) [default: --project].
    #[arg(long = "projects-root")]
    pub projects_roots: Vec<PathBuf>,
    /// How the in-process workers claim and run plans.
    #[command(flatten)]
    pub worker: super::fleet::WorkerTuning,
    /// Mark the session cookie `Secure` (when clients reach the service
    /// over HTTPS, e.g. through a TLS-terminating proxy).
    #[arg(long)]
    pub secure_cookies: bool,
    /// Authenticate requests by this header, set by a single sign-on proxy
    /// to the user's name. The proxy MUST strip it from every client
    /// request; never use it on a port clients reach directly.
    #[arg(long, value_name = "NAME")]
    pub trusted_user_header: Option<String>,
    /// The scope of users authenticated by --trusted-user-header (the
    /// least they get; see --trusted-group-scope).
    #[arg(long, default_value = "read", value_parser = parse_scope)]
    pub trusted_user_scope: Scope,
    /// A header the single sign-on proxy sets to the user's groups
    /// (comma-separated), for --trusted-group-scope. The proxy MUST strip
    /// it from every client request too.
    #[arg(long, value_name = "NAME", requires = "trusted_user_header")]
    pub trusted_groups_header: Option<String>,
    /// Give proxied users in GROUP (named by --trusted-groups-header) the
    /// scope SCOPE (repeatable); a user gets the highest scope of their
    /// groups, never less than --trusted-user-scope.
    #[arg(long = "trusted-group-scope", value_name = "GROUP=SCOPE",
          value_parser = parse_group_scope, requires = "trusted_groups_header")]
    pub trusted_group_scopes: Vec<(String, Scope)>,
    /// How long a dashboard session lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "12h")]
    pub session_ttl: Duration,
    /// Longest time a request may take (event streams excepted).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Largest page a list returns.
    #[arg(long, default_value_t = 200)]
    pub max_page_size: usize,
    /// Where the database lives without --database-url.
    #[command(flatten)]
    pub data: DataDirArg,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
}

fn parse_group_scope(s: &str) -> Result<(String, Scope), String> {
    let (group, scope) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not GROUP=SCOPE"))?;
    let group = group.trim();
    if group.is_empty() || group.contains(',') {
        return Err(format!(
            "`{s}`: a group name, without commas, comes before `=`"
        ));
    }
    Ok((group.to_string(), scope.trim().parse()?))
}

/// `lockstep tokens …`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token; it is printed once and stored only hashed.
    Create {
        /// What it may do: read, operate or admin.
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// A name to know it by (who or what uses it).
        #[arg(long)]
        name: String,
        /// Where the database lives without --database-url.
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Every token (never the secrets).
    List {
        /// Where the database lives without --database-url.
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Revoke a token and end the sessions it opened.
    Revoke {
        /// The token's id (from `tokens list`).
        id: String,
        /// Where the database lives without --database-url.
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// `lockstep projects …`
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Register a project directory: plans submitted over HTTP may name it.
    Add {
        /// The project directory.
        path: PathBuf,
        /// Where the database lives without --database-url.
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Registered projects.
    List {
        /// Where the database lives without --database-url.
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// The service's data directory.
fn data_dir(arg: &DataDirArg) -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    arg.data_dir.clone().unwrap_or_else(|| {
        env("XDG_DATA_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("lockstep")
    })
}

/// The service's container: the given database, else SQLite in the data
/// directory; the operator's plugins only (a queue has nobody to trust a
/// project's own).
async fn container(
    cli: &Cli,
    data: &DataDirArg,
    ttl: Option<Duration>,
) -> Result<Container, CliError> {
    let mut config = super::config(cli, &cli.project);
    if config.database_url.is_none() {
        let dir = data_dir(data);
        std::fs::create_dir_all(&dir).map_err(|source| CliError::Create {
            path: dir.clone(),
            source,
        })?;
        config.database_url = Some(format!("sqlite://{}", dir.join("lockstep.db").display()));
    }
    if let Some(ttl) = ttl {
        config.lifecycle.lock_ttl = crate::locks::clamp_ttl(ttl);
    }
    config.project_plugins = false;
    Ok(Container::build(config).await?)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    println!("{}", crate::visible::json(&serde_json::to_value(value)?));
    Ok(())
}

/// `lockstep tokens …`
pub async fn tokens(cli: &Cli, cmd: &TokensCommand) -> Result<(), CliError> {
    match cmd {
        TokensCommand::Create { scope, name, data } => {
            let c = container(cli, data, None).await?;
            let t = tokens::create(&c, name, *scope).await?;
            if cli.json {
                return print_json(&t);
            }
            eprintln!(
                "token {} ({}) created; it is shown only now:",
                t.id, t.scope
            );
            println!("{}", t.token);
        }
        TokensCommand::List { data } => {
            let c = container(cli, data, None).await?;
            let all = tokens::list(&c).await?;
            if cli.json {
                return print_json(&all);
            }
            for t in all {
                let state = t.revoked_at.map_or("live".to_string(), |at| {
                    format!("revoked {}", format_ms(at))
                });
                println!(
                    "{}  {:<8} {}  created {}  {state}",
                    t.id,
                    t.scope,
                    line(&t.name),
                    format_ms(t.created_at)
                );
            }
        }
        TokensCommand::Revoke { id, data } => {
            let c = container(cli, data, None).await?;
            if !tokens::revoke(&c, id).await? {
                return Err(service::ApiError::NotFound(format!("no live token `{id}`")).into());
            }
            if cli.json {
                return print_json(&serde_json::json!({ "id": id, "revoked": true }));
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// `lockstep projects …`
pub async fn projects(cli: &Cli, cmd: &ProjectsCommand) -> Result<(), CliError> {
    let (ProjectsCommand::Add { data, .. } | ProjectsCommand::List { data }) = cmd;
    let c = container(cli, data, None).await?;
    match cmd {
        ProjectsCommand::Add { path, .. } => {
            let who = format!("cli:{}", std::env::var("USER").unwrap_or_default());
            let p = projects::register(&c, path, &who, None).await?;
            if cli.json {
                return print_json(&p);
            }
            println!("{}  {}", p.id, line(&p.path));
        }
        ProjectsCommand::List { .. } => {
            let all = projects::list(&c).await?;
            if cli.json {
                return print_json(&all);
            }
            for p in all {
                println!("{}  {}", p.id, line(&p.path));
            }
        }
    }
    Ok(())
}

/// `lockstep serve`: the API and the in-process workers until SIGTERM or
/// SIGINT; then requests in flight finish, event streams end, workers stop
/// (within --grace) and release their leases.
pub async fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), CliError> {
    let container = Arc::new(container(cli, &args.data, Some(args.worker.ttl)).await?);
    let roots = if args.projects_roots.is_empty() {
        vec![cli.project.clone()]
    } else {
        args.projects_roots.clone()
    };
    let shutdown = CancellationToken::new();
    let config = ServiceConfig {
        projects_roots: roots.clone(),
        secure_cookies: args.secure_cookies,
        trusted_user_header: args.trusted_user_header.clone(),
        trusted_user_scope: args.trusted_user_scope,
        trusted_groups_header: args.trusted_groups_header.clone(),
        trusted_group_scopes: args.trusted_group_scopes.clone(),
        session_ttl: args.session_ttl,
        body_limit: args.body_limit,
        max_page_size: args.max_page_size.max(1),
        request_timeout: args.request_timeout,
        shutdown: shutdown.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| CliError::Serve(args.listen.to_string(), source))?;
    let addr = listener
        .local_addr()
        .map_err(|source| CliError::Serve(args.listen.to_string(), source))?;
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let workers = start_workers(&container, args, roots, &shutdown);
    let signal = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            super::plan::wait_for_signal().await;
            shutdown.cancel();
        })
    };
    let app = service::router_with(container.clone(), config, service::dashboard::routes());
    let served = service::serve(listener, app, shutdown.clone()).await;
    shutdown.cancel();
    signal.abort();
    for w in workers {
        match w.await {
            Ok(Err(e)) => eprintln!("error: worker: {e}"),
            Err(e) => eprintln!("error: worker task: {e}"),
            Ok(Ok(_)) => {}
        }
    }
    container.store().db().close().await;
    served.map_err(|source| CliError::Serve(addr.to_string(), source))?;
    eprintln!("stopped");
    Ok(())
}

type WorkerTask = tokio::task::JoinHandle<Result<fleet::WorkerSummary, fleet::FleetError>>;

fn start_workers(
    container: &Arc<Container>,
    args: &ServeArgs,
    roots: Vec<PathBuf>,
    shutdown: &CancellationToken,
) -> Vec<WorkerTask> {
    (0..args.workers)
        .map(|_| {
            let options = args.worker.options(roots.clone());
            let worker = Worker::new(container.clone(), options);
            let stop = shutdown.clone();
            tokio::spawn(async move { worker.run(stop).await })
        })
        .collect()
}
