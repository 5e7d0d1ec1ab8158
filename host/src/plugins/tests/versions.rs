//! Plugins built against each supported `lockstep:plugin` version (`noop` is
//! kept on 0.1.0, the other examples are on 0.2.0), and components of
//! versions this host does not know.

use std::fmt::Write as _;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::lifecycle::progress::{Progress, ProgressFn};
use crate::plugins::bindings::{ExecutionIndices, StrategyIndices};

/// The `noop` component (built against 0.1.0) with every `@0.1.0` in it,
/// its `lockstep:plugin` import and export names among them, replaced by
/// `@{version}`: a component claiming a version this host may not know.
fn noop_claiming(version: &str) -> Vec<u8> {
    let (from, to) = (b"@0.1.0".as_slice(), format!("@{version}"));
    assert_eq!(from.len(), to.len(), "the patch keeps every length");
    let mut bytes = std::fs::read(dist().join("noop.wasm")).unwrap();
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to.as_bytes());
            i += from.len();
        } else {
            i += 1;
        }
    }
    bytes
}

/// A plugin directory holding `noop_claiming(version)` as `name`, with a
/// manifest declaring `api`.
fn claiming(dir: &Path, name: &str, version: &str, api: &str) {
    std::fs::write(dir.join(format!("{name}.wasm")), noop_claiming(version)).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nkind = \"plugin\"\napi = \"{api}\"\n"),
    )
    .unwrap();
}

/// Progress events collected by a callback.
fn collector() -> (ProgressFn, Arc<Mutex<Vec<Progress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let events = seen.clone();
    let callback: ProgressFn = Arc::new(move |p: &Progress| events.lock().unwrap().push(p.clone()));
    (callback, seen)
}

/// Plugin log events (level and fields), captured on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        if event.metadata().target() == LOG_TARGET {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            let level = *event.metadata().level();
            self.0.lock().unwrap().push((level, fields.0));
        }
    }
}

/// A global subscriber that is interested in every callsite but enables
/// nothing (events go to the thread's own subscriber, if any).
///
/// `tracing` caches each callsite's interest process-wide. While only one
/// dispatcher exists, a callsite first hit on *another* thread has its
/// interest computed from that thread's default (none: "never"), and a
/// scoped subscriber on the test's thread would then never see it. With this
/// global dispatcher always registered, no callsite is ever cached as
/// "never", so a scoped subscriber sees every event on its thread whatever
/// the other tests running in parallel do.
struct Undecided;

impl tracing::Subscriber for Undecided {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Captured {
    /// Capture this thread's plugin log events until the guard is dropped.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            // Fails only if another global subscriber exists, which is as good.
            let _ = tracing::subscriber::set_global_default(Undecided);
        });
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()));
        // Callsites registered before the global dispatcher existed.
        tracing::callsite::rebuild_interest_cache();
        guard
    }
}

#[tokio::test]
async fn a_plugin_built_against_0_1_0_runs_through_its_own_bindings() {
    let fx = Fixture::new().await;
    let engine = engine();
    let info = engine.inspect(Path::new("noop")).unwrap();
    assert_eq!(info.api.as_deref(), Some("0.1.0"));
    assert_eq!(info.world, "lockstep:plugin/plugin@0.1.0");
    assert!(info.problems.is_empty(), "{:?}", info.problems);

    let noop = engine.plugin("noop", Role::Executor).unwrap();
    assert!(matches!(
        (&noop.loaded.strategy, &noop.loaded.execution),
        (
            Some(StrategyIndices::V0_1(_)),
            Some(ExecutionIndices::V0_1(_))
        )
    ));
    let slow = engine.plugin("slow", Role::Executor).unwrap();
    assert!(matches!(
        slow.loaded.execution,
        Some(ExecutionIndices::V0_2(_))
    ));

    let proposal = engine
        .strategist("noop")
        .unwrap()
        .strategize(&fx.ctx(), &action(&[]))
        .await
        .unwrap();
    assert_eq!(proposal.steps.len(), 1);
    let (outcome, _) = execute(&engine, "noop", &fx.ctx(), &[]).await;
    assert_eq!(outcome.unwrap().summary, "noop");
}

#[tokio::test]
async fn progress_reports_reach_the_callback_and_the_log() {
    let fx = Fixture::new().await;
    let engine = engine();
    let (callback, seen) = collector();
    let ctx = PluginContext {
        progress: Some(callback),
        ..fx.ctx()
    };
    let captured = Captured::default();
    let _guard = captured.install();

    let (result, report) = execute(&engine, "slow", &ctx, &[("ms", "40")]).await;
    assert_eq!(result.unwrap().summary, "slept 40 ms");

    let seen = seen.lock().unwrap().clone();
    let expected: Vec<Progress> = [10, 20, 30, 40]
        .into_iter()
        .map(|done| Progress::PluginProgress {
            plugin: "slow".into(),
            done,
            total: 40,
            message: format!("step s: slept {done} of 40 ms"),
        })
        .collect();
    assert_eq!(seen, expected);
    // One `log` line and four reports.
    assert_eq!(report.log.emitted, 5);

    let events = captured.0.lock().unwrap().clone();
    let progress: Vec<_> = events
        .iter()
        .filter(|(_, fields)| fields.contains("stream=\"progress\""))
        .collect();
    assert_eq!(progress.len(), 4, "{events:?}");
    let (level, fields) = progress[0];
    assert_eq!(*level, tracing::Level::INFO);
    for tag in [
        "plugin=slow",
        "plan=plan-1",
        "message=progress 10/40: step s: slept 10 of 40 ms",
    ] {
        assert!(fields.contains(tag), "{fields}");
    }
}

#[tokio::test]
async fn progress_reports_share_the_log_budget() {
    let fx = Fixture::new().await;
    let mut policy = LimitsPolicy::default();
    policy.max.log_lines = 2;
    let engine = engine_with(policy);
    let (callback, seen) = collector();
    let ctx = PluginContext {
        progress: Some(callback),
        ..fx.ctx()
    };
    let (result, report) = execute(&engine, "slow", &ctx, &[("ms", "0")]).await;
    assert!(result.is_ok(), "{result:?}");
    // The `log` line and the first report fit; the other three are dropped.
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!((report.log.emitted, report.log.dropped), (2, 3));
}

#[tokio::test]
async fn an_unknown_major_is_refused_naming_both_versions() {
    let fx = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    claiming(dir.path(), "future", "1.0.0", "1.0.0");
    claiming(dir.path(), "disguised", "1.0.0", "0.1.0");
    let engine = PluginEngine::with_options(
        vec![dir.path().to_path_buf(), dist()],
        PluginsConfig::default(),
    )
    .unwrap();

    // The manifest says so: refused before the component is compiled.
    let Err(PluginError::Load(m)) = engine.executor("future") else {
        panic!("a 1.0.0 plugin loaded")
    };
    assert!(
        m.starts_with("plugin `future` declares api = \"1.0.0\" in ")
            && m.ends_with(
                "which is newer than this host: it supports lockstep:plugin 0.1.x and 0.2.x. \
                 Upgrade lockstep, or build the plugin against lockstep:plugin@0.2.0"
            ),
        "{m}"
    );

    // The manifest claims 0.1.0; the component's own names say otherwise.
    let Err(PluginError::Load(m)) = engine.executor("disguised") else {
        panic!("a 1.0.0 component loaded")
    };
    assert_eq!(
        m,
        "`disguised.wasm` was built against lockstep:plugin@1.0.0 (it exports \
         lockstep:plugin/strategy@1.0.0), which is newer than this host: it supports \
         lockstep:plugin 0.1.x and 0.2.x. Upgrade lockstep, or build the plugin against \
         lockstep:plugin@0.2.0"
    );
    let info = engine.inspect(&dir.path().join("future.wasm")).unwrap();
    assert_eq!(info.api.as_deref(), Some("1.0.0"));
    assert!(
        info.problems
            .iter()
            .any(|p| p.starts_with("`future.wasm` was built against lockstep:plugin@1.0.0")),
        "{:?}",
        info.problems
    );
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn an_unreleased_minor_is_refused_as_newer_than_the_host() {
    let fx = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    claiming(dir.path(), "next-minor", "0.3.0", "0.3.0");
    claiming(dir.path(), "next-minor-component", "0.3.0", "0.2.0");
    let engine = PluginEngine::with_options(
        vec![dir.path().to_path_buf(), dist()],
        PluginsConfig::default(),
    )
    .unwrap();

    let Err(PluginError::Load(m)) = engine.strategist("next-minor") else {
        panic!("a 0.3.0 plugin loaded")
    };
    assert!(
        m.contains("declares api = \"0.3.0\"")
            && m.contains(
                "which is newer than this host: it supports lockstep:plugin 0.1.x and 0.2.x"
            ),
        "{m}"
    );
    let Err(PluginError::Load(m)) = engine.strategist("next-minor-component") else {
        panic!("a 0.3.0 component loaded")
    };
    assert!(
        m.starts_with(
            "`next-minor-component.wasm` was built against lockstep:plugin@0.3.0 \
             (it exports lockstep:plugin/strategy@0.3.0), which is newer than this host"
        ),
        "{m}"
    );
    let listed = engine.list();
    let next = listed.iter().find(|p| p.name == "next-minor").unwrap();
    assert!(
        next.problem
            .as_deref()
            .is_some_and(|p| p.contains("which is newer than this host")),
        "{next:?}"
    );
    assert_still_works(&engine, &fx).await;
}
