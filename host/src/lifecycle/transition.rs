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
#[error("cannot {command} a plan in {}: {command} is allowed only from {allowed}", shown(*.from))]
pub struct InvalidTransition {
    /// Where the plan is; `None` for a plan that does not exist yet.
    pub from: Option<Status>,
    /// The status the command would have led to.
    pub to: Status,
    /// The command.
    pub command: Command,
    /// Where the command is allowed from, for the message.
    pub allowed: &'static str,
}

/// A status for a message: `phase/state`, or `(new)` for no plan yet.
fn shown(status: Option<Status>) -> String {
    status.map_or_else(|| "(new)".to_string(), |s| s.to_string())
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

/// The statuses a command may start from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Exactly these (phase, state) pairs.
    Only(&'static [(Phase, State)]),
    /// These states, in any phase.
    AnyPhase(&'static [State]),
}

/// Where a command leads.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Run a phase (the plan's own phase if `None`): `*/processing`, then
    /// the phase's finished state, or `*/errored` on failure.
    Run(Option<Phase>),
    /// Straight to this status.
    Goto(Phase, State),
    /// Straight to this state, the phase kept.
    Keep(State),
}

/// One row of the table of DESIGN §2: where `command` may start from (and
/// how the message says it), and where it leads.
#[derive(Debug, Clone, Copy)]
struct Rule {
    from: Origin,
    allowed: &'static str,
    to: Target,
}

/// The table of DESIGN §2, one row per command.
const fn rule(command: Command) -> Rule {
    use Phase::*;
    use State::*;
    let (from, allowed, to) = match command {
        Command::New => (Origin::Only(&[]), "(new)", Target::Goto(Strategize, Queued)),
        Command::Strategize => (
            Origin::Only(&[(Strategize, Queued), (Strategize, Errored)]),
            "strategize/queued or strategize/errored",
            Target::Run(Some(Strategize)),
        ),
        Command::Execute => (
            Origin::Only(&[(Strategize, Complete), (Execute, Errored)]),
            "strategize/complete or execute/errored",
            Target::Run(Some(Execute)),
        ),
        Command::Apply => (
            Origin::Only(&[(Execute, Complete), (Apply, Errored)]),
            "execute/complete or apply/errored",
            Target::Run(Some(Apply)),
        ),
        Command::Retry => (
            Origin::AnyPhase(&[Errored]),
            "strategize/errored, execute/errored or apply/errored",
            Target::Run(None),
        ),
        Command::Revert => (
            Origin::Only(&[
                (Execute, Queued),
                (Execute, Processing),
                (Execute, Complete),
                (Execute, Errored),
                (Apply, Errored),
            ]),
            "execute/* or apply/errored",
            Target::Goto(Strategize, Queued),
        ),
        Command::Cancel => (
            Origin::AnyPhase(&[Queued, Processing, Complete, Errored]),
            "any status but applied or cancelled",
            Target::Keep(Cancelled),
        ),
        Command::Recover => (
            Origin::AnyPhase(&[Processing]),
            "*/processing",
            Target::Keep(Errored),
        ),
    };
    Rule { from, allowed, to }
}

/// The state a phase ends in when it succeeds.
pub(crate) fn finished(phase: Phase) -> State {
    match phase {
        Phase::Apply => State::Applied,
        Phase::Strategize | Phase::Execute => State::Complete,
    }
}

impl Rule {
    fn allows(&self, from: Status) -> bool {
        match self.from {
            Origin::Only(pairs) => pairs.contains(&(from.phase, from.state)),
            Origin::AnyPhase(states) => states.contains(&from.state),
        }
    }

    /// Where the command leads from a plan in `phase`.
    fn transition(&self, phase: Phase) -> Transition {
        let fixed = |to| Transition {
            start: to,
            success: to,
            failure: None,
        };
        match self.to {
            Target::Run(run) => {
                let run = run.unwrap_or(phase);
                Transition {
                    start: Status::new(run, State::Processing),
                    success: Status::new(run, finished(run)),
                    failure: Some(Status::new(run, State::Errored)),
                }
            }
            Target::Goto(phase, state) => fixed(Status::new(phase, state)),
            Target::Keep(state) => fixed(Status::new(phase, state)),
        }
    }
}

/// Decide a command from a status: the single source of truth for DESIGN §2.
/// `from` is `None` for a plan that does not exist yet; only
/// [`Command::New`] is allowed from there.
pub fn transition(from: Option<Status>, command: Command) -> Result<Transition, InvalidTransition> {
    let rule = rule(command);
    let (allowed, t) = match from {
        None => (command == Command::New, rule.transition(Phase::Strategize)),
        Some(f) => (rule.allows(f), rule.transition(f.phase)),
    };
    if allowed {
        return Ok(t);
    }
    Err(InvalidTransition {
        from,
        to: t.success,
        command,
        allowed: if from.is_none() {
            "(new)"
        } else {
            rule.allowed
        },
    })
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
                            assert_eq!(e.from, Some(from));
                            assert!(e.to_string().contains(&command.to_string()), "{e}");
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
            let e = transition(None, command).unwrap_err();
            assert_eq!(e.from, None);
            assert!(e.to_string().contains("a plan in (new)"), "{e}");
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
        assert_eq!(e.from, Some(Status::new(Phase::Apply, State::Applied)));
        assert_eq!(e.to, Status::new(Phase::Execute, State::Complete));
    }
}
