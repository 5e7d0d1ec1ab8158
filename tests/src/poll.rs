//! Waiting for a condition with a deadline, instead of sleeping for a fixed
//! time and hoping it holds by then.

use std::future::Future;
use std::time::Duration;

/// How often [`until`] checks.
pub const INTERVAL: Duration = Duration::from_millis(25);

/// Check `condition` every [`INTERVAL`] until it is true; panic naming
/// `what` if it is still false after `deadline`.
pub async fn until<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{what}: still not true after {deadline:?}"
        );
        tokio::time::sleep(INTERVAL).await;
    }
}
