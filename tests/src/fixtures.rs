//! Strategists and executors written in plain Rust, for lifecycle tests
//! that are about the host (locks, store, apply) rather than the sandbox.
//!
//! Strategists: `files` (one step per path in `params.files`, after
//! sleeping `params.strategize_ms` if given), `slow`
//! (`params.steps` steps). Executors: `files` (write/append/delete per
//! `params.mode`, reading through the workspace overlay, after sleeping
//! `params.delay_ms` if given), `slow` (sleeps
//! `params.ms` per step), `panic`, `fail` (retryable error), `escape`
//! (writes `params.escape_to`, default `../escaped.txt`, outside the project).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lockstep::lifecycle::{Executor, PluginContext, PluginError, PluginProvider, Strategist};
use lockstep::model::{Action, FileChange, PlanProposal, Step, StepOutcome};

/// The provider of every fixture.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestPlugins;

struct FilesStrategy;
struct SlowStrategy;
struct FilesExecutor;
struct SlowExecutor;
struct PanicExecutor;
struct FailExecutor;
struct EscapeExecutor;

fn step(id: String, title: String, params: BTreeMap<String, String>) -> Step {
    Step {
        id,
        title,
        targets: params.get("path").cloned().into_iter().collect(),
        params,
    }
}

#[async_trait]
impl Strategist for FilesStrategy {
    async fn strategize(
        &self,
        _ctx: &PluginContext,
        action: &Action,
    ) -> Result<PlanProposal, PluginError> {
        if let Some(ms) = action
            .params
            .get("strategize_ms")
            .and_then(|s| s.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let files = action
            .params
            .get("files")
            .ok_or_else(|| PluginError::InvalidInput("missing param `files`".into()))?;
        let steps = files
            .split(',')
            .filter(|f| !f.is_empty())
            .enumerate()
            .map(|(i, path)| {
                let mut params = action.params.clone();
                params.insert("path".into(), path.to_string());
                step(format!("s{i}"), format!("change {path}"), params)
            })
            .collect();
        Ok(PlanProposal {
            summary: format!("change {files}"),
            steps,
        })
    }
}

#[async_trait]
impl Strategist for SlowStrategy {
    async fn strategize(
        &self,
        _ctx: &PluginContext,
        action: &Action,
    ) -> Result<PlanProposal, PluginError> {
        let n: usize = action
            .params
            .get("steps")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let steps = (0..n)
            .map(|i| {
                step(
                    format!("s{i}"),
                    format!("slow step {i}"),
                    action.params.clone(),
                )
            })
            .collect();
        Ok(PlanProposal {
            summary: format!("{n} slow steps"),
            steps,
        })
    }
}

#[async_trait]
impl Executor for FilesExecutor {
    async fn execute(&self, ctx: &PluginContext, step: &Step) -> Result<StepOutcome, PluginError> {
        if let Some(ms) = step.params.get("delay_ms").and_then(|s| s.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let path = step.params["path"].clone();
        let content = step.params.get("content").cloned().unwrap_or_default();
        let change = match step
            .params
            .get("mode")
            .map(String::as_str)
            .unwrap_or("write")
        {
            "append" => {
                let mut old = ctx.project.read(&path).unwrap_or_default();
                old.extend_from_slice(content.as_bytes());
                FileChange::Write {
                    path,
                    contents: old,
                }
            }
            "delete" => FileChange::Delete { path },
            _ => FileChange::Write {
                path,
                contents: content.into_bytes(),
            },
        };
        Ok(StepOutcome {
            changes: vec![change],
            summary: format!("step {}", step.id),
        })
    }
}

#[async_trait]
impl Executor for SlowExecutor {
    async fn execute(&self, _ctx: &PluginContext, step: &Step) -> Result<StepOutcome, PluginError> {
        let ms: u64 = step
            .params
            .get("ms")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(StepOutcome {
            changes: vec![FileChange::Write {
                path: format!("slow/{}.txt", step.id),
                contents: b"done\n".to_vec(),
            }],
            summary: format!("slept {ms} ms"),
        })
    }
}

#[async_trait]
impl Executor for PanicExecutor {
    async fn execute(
        &self,
        _ctx: &PluginContext,
        _step: &Step,
    ) -> Result<StepOutcome, PluginError> {
        panic!("executor fixture panicked on purpose")
    }
}

#[async_trait]
impl Executor for FailExecutor {
    async fn execute(
        &self,
        _ctx: &PluginContext,
        _step: &Step,
    ) -> Result<StepOutcome, PluginError> {
        Err(PluginError::Retryable("the fixture always fails".into()))
    }
}

#[async_trait]
impl Executor for EscapeExecutor {
    async fn execute(&self, _ctx: &PluginContext, step: &Step) -> Result<StepOutcome, PluginError> {
        let path = step
            .params
            .get("escape_to")
            .cloned()
            .unwrap_or_else(|| "../escaped.txt".into());
        Ok(StepOutcome {
            changes: vec![FileChange::Write {
                path,
                contents: b"x".to_vec(),
            }],
            summary: "escape".into(),
        })
    }
}

impl PluginProvider for TestPlugins {
    fn strategist(&self, name: &str) -> Result<Arc<dyn Strategist>, PluginError> {
        match name {
            "files" => Ok(Arc::new(FilesStrategy)),
            "slow" => Ok(Arc::new(SlowStrategy)),
            other => Err(PluginError::Load(format!("no test strategist `{other}`"))),
        }
    }

    fn executor(&self, name: &str) -> Result<Arc<dyn Executor>, PluginError> {
        match name {
            "files" => Ok(Arc::new(FilesExecutor)),
            "slow" => Ok(Arc::new(SlowExecutor)),
            "panic" => Ok(Arc::new(PanicExecutor)),
            "fail" => Ok(Arc::new(FailExecutor)),
            "escape" => Ok(Arc::new(EscapeExecutor)),
            other => Err(PluginError::Load(format!("no test executor `{other}`"))),
        }
    }
}

/// An action for the fixtures.
pub fn action(strategy: &str, executor: &str, params: &[(&str, &str)]) -> Action {
    Action {
        name: format!("{strategy}-{executor}"),
        strategy: strategy.into(),
        executor: executor.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Create a plan for `action` on `project` and run Strategize.
pub async fn strategized(
    session: &lockstep::PlanLifecycleService,
    action: Action,
    project: &Path,
) -> lockstep::model::PlanRecord {
    let plan = session.new_plan(action, project).await.unwrap();
    session.strategize_plan(&plan.id).await.unwrap()
}
