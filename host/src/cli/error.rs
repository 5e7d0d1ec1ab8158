//! [`CliError`]: why a command failed, typed, so that
//! [`print_error`](super::output::print_error) and
//! [`exit_code`](super::output::exit_code) can say what happened and what
//! to do next by matching, not by guessing from text.

use std::io;
use std::path::PathBuf;

use super::output::Reported;
use crate::authoring::HarnessError;
use crate::container::ContainerError;
use crate::fleet::FleetError;
use crate::lifecycle::{ActionError, LifecycleError, PluginError, PluginLockError};
use crate::locks::{LockConflict, LockError};
use crate::plugins::{PolicyError, TrustError};

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A lifecycle command failed. `plan` is the plan it worked on, when
    /// known, so that the hints printed with the error can name it.
    #[error("{source}")]
    Lifecycle {
        /// The plan's id.
        plan: Option<String>,
        /// What failed.
        #[source]
        source: LifecycleError,
    },
    /// An operator's lock command failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The database or the plugin engine could not be set up.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// A queue or worker command failed (a lifecycle error is
    /// [`CliError::Lifecycle`]).
    #[error(transparent)]
    Fleet(FleetError),
    /// The operator's policy file is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The user's trust records could not be read or written.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// An outcome the command has already printed in full.
    #[error(transparent)]
    Reported(#[from] Reported),
    /// `plan run` (or `plan retry --continue`) reached Apply with nobody
    /// to confirm it and no `--yes`.
    #[error("not applying without confirmation; plan {plan} is ready: `lockstep plan apply {plan}` applies it, or run again with --yes")]
    NotConfirmed {
        /// The plan.
        plan: String,
    },
    /// `locks release` without `--force`.
    #[error("refusing to release `{resource}` without --force: its holder may still be running")]
    ForceRequired {
        /// The lock's resource.
        resource: String,
    },
    /// A file or directory the command needs could not be written.
    #[error("cannot create `{}`: {source}", .path.display())]
    Create {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The terminal (the confirmation prompt) could not be used.
    #[error("cannot ask for confirmation: {0}")]
    Prompt(#[source] io::Error),
    /// A JSON document could not be written.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading the policy on the blocking pool did not finish.
    #[error("reading the policy did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// `plugin test` failed (the harness's own error; a lifecycle error it
    /// carries is found by the JSON kind and the trap summary).
    #[error(transparent)]
    Harness(HarnessError),
    /// A service request or a token/project command failed.
    #[error(transparent)]
    Service(#[from] crate::service::ApiError),
    /// The server could not listen on (or serve) an address.
    #[error("cannot serve on {0}: {1}")]
    Serve(String, #[source] io::Error),
    /// The plugin authoring and inspection commands (`plugins …`), whose
    /// errors are their own.
    #[error(transparent)]
    Plugins(Box<dyn std::error::Error + Send + Sync>),
}

impl From<LifecycleError> for CliError {
    fn from(source: LifecycleError) -> Self {
        CliError::Lifecycle { plan: None, source }
    }
}

/// A fleet error that is a lifecycle error is reported as one (its exit
/// code, its hints).
impl From<FleetError> for CliError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::Lifecycle(source) => source.into(),
            other => CliError::Fleet(other),
        }
    }
}

/// An action file that cannot be used is reported as the lifecycle
/// reports it (`invalid action: …`).
impl From<ActionError> for CliError {
    fn from(e: ActionError) -> Self {
        LifecycleError::InvalidAction(e).into()
    }
}

/// The plugin commands (`cli/plugin.rs`, `cli/plugins.rs`) report through
/// `anyhow`; what they carry that this module knows (a lifecycle error, a
/// lock error, a harness error, an outcome already printed) is taken back
/// out, so that it is
/// shown and exits as it would from any other command.
impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        let e = match e.downcast::<Reported>() {
            Ok(r) => return CliError::Reported(r),
            Err(e) => e,
        };
        let e = match e.downcast::<LifecycleError>() {
            Ok(source) => return source.into(),
            Err(e) => e,
        };
        let e = match e.downcast::<LockError>() {
            Ok(l) => return CliError::Lock(l),
            Err(e) => e,
        };
        match e.downcast::<HarnessError>() {
            Ok(h) => CliError::Harness(h),
            Err(e) => CliError::Plugins(e.into()),
        }
    }
}

impl CliError {
    /// The error with `plan` as the plan it worked on, unless it names one.
    pub fn in_plan(self, plan: &str) -> Self {
        match self {
            CliError::Lifecycle { plan: None, source } => CliError::Lifecycle {
                plan: Some(plan.to_string()),
                source,
            },
            other => other,
        }
    }

    /// The lifecycle error, if this is one.
    pub fn lifecycle(&self) -> Option<&LifecycleError> {
        match self {
            CliError::Lifecycle { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The plan the command worked on, if known.
    pub fn plan(&self) -> Option<&str> {
        match self {
            CliError::Lifecycle { plan, .. } => plan.as_deref(),
            _ => None,
        }
    }

    /// The lock conflict behind the error, if there is one: a lock the
    /// command needed, or a plugin lease a plugin could not get.
    pub fn conflict(&self) -> Option<&LockConflict> {
        match self {
            CliError::Lifecycle { source, .. } => match source {
                LifecycleError::LockConflict(c) => Some(c),
                LifecycleError::Plugin {
                    source: PluginError::Lock(PluginLockError::Conflict(c)),
                    ..
                } => Some(c),
                _ => None,
            },
            CliError::Lock(l) => l.conflict(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::output::{exit_code, message, EXIT_INVALID_TRANSITION};
    use crate::lifecycle::{transition, Command};

    #[test]
    fn what_the_plugin_commands_carry_is_taken_back_out_of_anyhow() {
        let refused = transition(None, Command::Apply).unwrap_err();
        let e = CliError::from(anyhow::Error::new(LifecycleError::from(refused)));
        assert!(matches!(
            e.lifecycle(),
            Some(LifecycleError::InvalidTransition(_))
        ));
        assert_eq!(exit_code(&e), EXIT_INVALID_TRANSITION);
        let e = CliError::from(anyhow::Error::new(Reported {
            message: "done".into(),
            code: 7,
        }));
        assert_eq!(exit_code(&e), 7);
        let e = CliError::from(anyhow::anyhow!("disk full").context("compiling `x`"));
        assert!(matches!(e, CliError::Plugins(_)));
        assert_eq!(
            message(&e),
            "compiling `x`: disk full",
            "the causes are kept"
        );
    }

    #[test]
    fn the_plan_is_named_once_and_not_part_of_the_message() {
        let refused = transition(None, Command::Apply).unwrap_err();
        let e = CliError::from(LifecycleError::from(refused))
            .in_plan("p1")
            .in_plan("p2");
        assert_eq!(e.plan(), Some("p1"));
        assert!(!message(&e).contains("p1"), "{}", message(&e));
    }
}
