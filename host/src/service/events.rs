//! Plan events as a live stream (server-sent events), resumable with
//! `Last-Event-ID`.
//!
//! One [`Hub`] per server reads new rows of `plan_events` (every 200 ms,
//! while anyone listens) and broadcasts them; each stream first replays
//! what its client missed from the database, then follows the broadcast,
//! and replays again if it fell behind. On PostgreSQL an event id can
//! commit after a higher one; the hub therefore re-reads a window of
//! recent ids and every stream drops ids it already sent, so an event that
//! commits late is still delivered.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::store::EventEntry;
use crate::Container;

/// How often the hub looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// How many ids below the newest the hub and the streams look at again.
const WINDOW: i64 = 256;
/// Events read from the database at a time.
const BATCH: usize = 500;

/// An event as the streams send it: encoded once, shared by every stream.
struct Encoded {
    id: i64,
    plan_id: String,
    json: String,
}

impl Encoded {
    fn new(e: &EventEntry) -> Arc<Self> {
        Arc::new(Encoded {
            id: e.id,
            plan_id: e.plan_id.clone(),
            json: serde_json::to_string(e).unwrap_or_else(|_| "null".into()),
        })
    }
}

/// Reads new events and broadcasts them to the streams.
pub(super) struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    container: Arc<Container>,
    shutdown: CancellationToken,
    tx: broadcast::Sender<Arc<Encoded>>,
    running: AtomicBool,
}

impl Hub {
    pub(super) fn new(container: Arc<Container>, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Hub {
            inner: Arc::new(HubInner {
                container,
                shutdown,
                tx,
                running: AtomicBool::new(false),
            }),
        }
    }

    /// Follow new events (starting the reader if nobody listened).
    fn subscribe(&self) -> broadcast::Receiver<Arc<Encoded>> {
        let rx = self.inner.tx.subscribe();
        if !self.inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(read_loop(self.inner.clone()));
        }
        rx
    }
}

async fn read_loop(hub: Arc<HubInner>) {
    let store = hub.container.store();
    let mut seen = Seen::new(store.last_event_id().await.unwrap_or(0));
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        if hub.tx.receiver_count() == 0 {
            hub.running.store(false, Ordering::SeqCst);
            // A stream that subscribed just now saw `running` still true.
            if hub.tx.receiver_count() == 0 || hub.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        match store.events_after(None, seen.floor(), BATCH).await {
            Ok(events) => {
                for e in events {
                    if seen.insert(e.id) {
                        let _ = hub.tx.send(Encoded::new(&e));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "event stream: reading events failed"),
        }
    }
    hub.running.store(false, Ordering::SeqCst);
}

/// The ids sent lately: above `start`, and within [`WINDOW`] of the newest.
struct Seen {
    start: i64,
    ids: BTreeSet<i64>,
}

impl Seen {
    fn new(start: i64) -> Self {
        Seen {
            start,
            ids: BTreeSet::new(),
        }
    }

    /// Look again from here.
    fn floor(&self) -> i64 {
        let newest = self.ids.last().copied().unwrap_or(self.start);
        self.start.max(newest - WINDOW)
    }

    /// `true` if `id` is new (then remembered).
    fn insert(&mut self, id: i64) -> bool {
        if id <= self.floor() || !self.ids.insert(id) {
            return false;
        }
        // Ids at or below the floor are refused before the set is looked
        // at, so forgetting them can wait until there are many.
        if self.ids.len() > 2 * WINDOW as usize {
            let floor = self.floor();
            self.ids = self.ids.split_off(&(floor + 1));
        }
        true
    }
}

struct Follow {
    state: AppState,
    plan: Option<String>,
    rx: broadcast::Receiver<Arc<Encoded>>,
    seen: Seen,
    backlog: std::collections::VecDeque<Arc<Encoded>>,
    replay: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Arc<Encoded>> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if self.seen.insert(e.id) {
                    return Some(e);
                }
                continue;
            }
            if self.replay {
                let store = self.state.container().store();
                let got = store
                    .events_after(self.plan.as_deref(), self.seen.floor(), BATCH)
                    .await
                    .ok()?;
                self.replay = got.len() == BATCH;
                self.backlog.extend(got.iter().map(Encoded::new));
                continue;
            }
            let shutdown = self.state.config().shutdown.clone();
            let got = tokio::select! {
                _ = shutdown.cancelled() => return None,
                got = self.rx.recv() => got,
            };
            match got {
                Ok(e) if self.plan.as_deref().is_none_or(|p| p == e.plan_id) => {
                    self.backlog.push_back(e)
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => self.replay = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The events of one plan (or of every plan) after event `after`, then
/// live ones as they happen, until the client leaves or the server stops.
/// Each SSE message has `id:` (the event id), `event: plan-event` and the
/// [`EventEntry`] as JSON.
pub fn event_stream(
    state: &AppState,
    plan: Option<String>,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let follow = Follow {
        rx: state.hub().subscribe(),
        state: state.clone(),
        plan,
        seen: Seen::new(after),
        backlog: Default::default(),
        replay: true,
    };
    futures::stream::unfold(follow, |mut f| async move {
        let e = f.next().await?;
        let event = Event::default()
            .id(e.id.to_string())
            .event("plan-event")
            .data(&e.json);
        Some((Ok(event), f))
    })
}

/// [`event_stream`] as an SSE response with keep-alive comments.
pub(super) fn sse(
    state: &AppState,
    plan: Option<String>,
    after: i64,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    Sse::new(event_stream(state, plan, after)).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::{Seen, WINDOW};

    #[test]
    fn an_event_is_sent_once_even_when_it_commits_late() {
        let mut seen = Seen::new(10);
        assert!(!seen.insert(10), "at or below the start: the client has it");
        assert!(seen.insert(12));
        assert!(seen.insert(11), "a lower id that committed later");
        assert!(!seen.insert(12) && !seen.insert(11), "never twice");
        assert_eq!(seen.floor(), 10);
        let far = 12 + WINDOW + 5;
        assert!(seen.insert(far));
        assert_eq!(seen.floor(), far - WINDOW);
        assert!(!seen.insert(far - WINDOW), "out of the window");
        assert!(seen.insert(far - 1));
    }
}
