//! Commands and the one pure function that decides every transition
//! (DESIGN §2).

use std::fmt;

use crate::model::{Phase, State, Status};

/// A command that changes a plan's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Create a plan (`plan new`).
    New,
    /// Run Strategize.
    Strategize,
    /// Run Execute.
    Execute,
    /// Run Apply.
    Apply,
    /// Run the phase of an errored plan again (strategize, execute or apply).
    Retry,
    /// Discard the changeset and go back to strategize/queued.
    Revert,
    /// Give up on the plan.
    Cancel,
    /// Mark a plan whose processing session died as errored.
    Recover,
}

/// Every command.
pub const COMMANDS: [Command; 8] = [
    Command::New,
    Command::Strategize,
    Command::Execute,
    Command::Apply,
    Command::Retry,
    Command::Revert,
    Command::Cancel,
    Command::Recover,
];

/// A command that is not allowed from the plan's current status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command} a plan in {from}: {command} is allowed only from {allowed}")]
pub struct InvalidTransition {
    /// Where the plan is.
    pub from: String,
    /// The status the command would lead to (or the command's name).
    pub to: String,
    /// The command.
    pub command: Command,
    /// Where the command is allowed from, for the message.
    pub allowed: &'static str,
}

/// The result of a valid command: the status it starts in (for the
/// long-running phases, `*/processing`) and where it ends on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Status written when the command starts.
    pub start: Status,
    /// Status written when it succeeds.
    pub success: Status,
    /// Status written when it fails.
    pub failure: Option<Status>,
}

/// Decide a command from a status: the single source of truth for DESIGN §2.
/// `from` is `None` for a plan that does not exist yet.
pub fn transition(from: Option<Status>, command: Command) -> Result<Transition, InvalidTransition> {
    use Phase::*;
    use State::*;
    let s = Status::new;
    let allowed = |ok: bool, allowed: &'static str, t: Transition| {
        if ok {
            Ok(t)
        } else {
            Err(InvalidTransition {
                from: from
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "(new)".into()),
                to: t.success.to_string(),
                command,
                allowed,
            })
        }
    };
    let phase_run = |phase: Phase, done: State| Transition {
        start: s(phase, Processing),
        success: s(phase, done),
        failure: Some(s(phase, Errored)),
    };
    let Some(f) = from else {
        return allowed(
            command == Command::New,
            "(new)",
            Transition {
                start: s(Strategize, Queued),
                success: s(Strategize, Queued),
                failure: None,
            },
        );
    };
    let (p, st) = (f.phase, f.state);
    match command {
        Command::New => allowed(
            false,
            "(new)",
            Transition {
                start: f,
                success: s(Strategize, Queued),
                failure: None,
            },
        ),
        Command::Strategize => allowed(
            p == Strategize && matches!(st, Queued | Errored),
            "strategize/queued or strategize/errored",
            phase_run(Strategize, Complete),
        ),
        Command::Execute => allowed(
            (p == Strategize && st == Complete) || (p == Execute && st == Errored),
            "strategize/complete or execute/errored",
            phase_run(Execute, Complete),
        ),
        Command::Apply => allowed(
            (p == Execute && st == Complete) || (p == Apply && st == Errored),
            "execute/complete or apply/errored",
            phase_run(Apply, Applied),
        ),
        Command::Retry => allowed(
            st == Errored,
            "strategize/errored, execute/errored or apply/errored",
            phase_run(
                p,
                match p {
                    Apply => Applied,
                    Strategize | Execute => Complete,
                },
            ),
        ),
        Command::Revert => allowed(
            (p == Execute && !matches!(st, Applied | Cancelled)) || (p == Apply && st == Errored),
            "execute/* or apply/errored",
            Transition {
                start: s(Strategize, Queued),
                success: s(Strategize, Queued),
                failure: None,
            },
        ),
        Command::Cancel => allowed(
            !f.is_terminal(),
            "any status but applied or cancelled",
            Transition {
                start: s(p, Cancelled),
                success: s(p, Cancelled),
                failure: None,
            },
        ),
        Command::Recover => allowed(
            st == Processing,
            "*/processing",
            Transition {
                start: s(p, Errored),
                success: s(p, Errored),
                failure: None,
            },
        ),
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::New => "new",
            Command::Strategize => "strategize",
            Command::Execute => "execute",
            Command::Apply => "apply",
            Command::Retry => "retry",
            Command::Revert => "revert",
            Command::Cancel => "cancel",
            Command::Recover => "recover",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PHASES, STATES};

    /// The transition table of DESIGN §2, written out independently of
    /// `transition` so the test checks one against the other.
    fn expected(from: Status, command: Command) -> Option<Status> {
        use Phase::*;
        use State::*;
        let (p, s) = (from.phase, from.state);
        match command {
            Command::New => None,
            Command::Strategize if p == Strategize && (s == Queued || s == Errored) => {
                Some(Status::new(Strategize, Processing))
            }
            Command::Execute
                if (p, s) == (Strategize, Complete) || (p, s) == (Execute, Errored) =>
            {
                Some(Status::new(Execute, Processing))
            }
            Command::Apply if (p, s) == (Execute, Complete) || (p, s) == (Apply, Errored) => {
                Some(Status::new(Apply, Processing))
            }
            Command::Retry
                if [(Strategize, Errored), (Execute, Errored), (Apply, Errored)]
                    .contains(&(p, s)) =>
            {
                Some(Status::new(p, Processing))
            }
            Command::Revert
                if (p == Execute && [Queued, Processing, Complete, Errored].contains(&s))
                    || (p, s) == (Apply, Errored) =>
            {
                Some(Status::new(Strategize, Queued))
            }
            Command::Cancel if s != Applied && s != Cancelled => Some(Status::new(p, Cancelled)),
            Command::Recover if s == Processing => Some(Status::new(p, Errored)),
            _ => None,
        }
    }

    #[test]
    fn walks_the_whole_table() {
        let mut allowed = 0;
        for phase in PHASES {
            for state in STATES {
                let from = Status::new(phase, state);
                for command in COMMANDS {
                    match (transition(Some(from), command), expected(from, command)) {
                        (Ok(t), Some(start)) => {
                            assert_eq!(t.start, start, "{from} {command}");
                            allowed += 1;
                        }
                        (Err(e), None) => {
                            assert_eq!(e.from, from.to_string());
                            assert!(!e.to.is_empty());
                            assert!(e.to_string().contains(&from.to_string()), "{e}");
                        }
                        (got, want) => panic!("{from} {command}: got {got:?}, want {want:?}"),
                    }
                }
            }
        }
        // strategize 2 + execute 2 + apply 2 + retry 3 + revert 5 + cancel 12 + recover 3
        assert_eq!(allowed, 29);
        assert!(transition(None, Command::New).is_ok());
        for command in COMMANDS.into_iter().filter(|c| *c != Command::New) {
            assert_eq!(transition(None, command).unwrap_err().from, "(new)");
        }
    }

    #[test]
    fn retry_runs_the_errored_phase_and_names_itself_when_refused() {
        for (phase, done) in [
            (Phase::Strategize, State::Complete),
            (Phase::Execute, State::Complete),
            (Phase::Apply, State::Applied),
        ] {
            let t = transition(Some(Status::new(phase, State::Errored)), Command::Retry).unwrap();
            assert_eq!(t.start, Status::new(phase, State::Processing));
            assert_eq!(t.success, Status::new(phase, done));
            assert_eq!(t.failure, Some(Status::new(phase, State::Errored)));
        }
        let e = transition(
            Some(Status::new(Phase::Execute, State::Complete)),
            Command::Retry,
        )
        .unwrap_err();
        assert_eq!(e.command, Command::Retry);
        assert!(
            e.to_string()
                .starts_with("cannot retry a plan in execute/complete"),
            "{e}"
        );
    }

    #[test]
    fn success_and_failure_targets() {
        let t = transition(
            Some(Status::new(Phase::Execute, State::Complete)),
            Command::Apply,
        )
        .unwrap();
        assert_eq!(t.success, Status::new(Phase::Apply, State::Applied));
        assert_eq!(t.failure, Some(Status::new(Phase::Apply, State::Errored)));
        let e = transition(
            Some(Status::new(Phase::Apply, State::Applied)),
            Command::Execute,
        )
        .unwrap_err();
        assert_eq!(e.from, "apply/applied");
        assert_eq!(e.to, "execute/complete");
    }
}
