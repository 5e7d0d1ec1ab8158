//! [`LockGuard`]: a held lease that renews itself and is released on every
//! path — explicitly with [`LockGuard::release`], or on drop (error, panic,
//! a dropped future) by a release task spawned on the runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Grant, LockError, LockService, Owner};

/// A held lease. See the module docs.
#[derive(Debug)]
pub struct LockGuard {
    service: LockService,
    owner: Owner,
    resource: String,
    token: i64,
    lost: CancellationToken,
    released: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl LockGuard {
    pub(super) fn start(service: LockService, owner: Owner, grant: Grant, ttl: Duration) -> Self {
        let lost = CancellationToken::new();
        let released = Arc::new(AtomicBool::new(false));
        let valid_until = tokio::time::Instant::from_std(grant.sent_at) + ttl;
        let heartbeat = tokio::spawn(heartbeat(
            service.clone(),
            owner.clone(),
            grant.resource.clone(),
            grant.token,
            ttl,
            valid_until,
            lost.clone(),
        ));
        LockGuard {
            service,
            owner,
            resource: grant.resource,
            token: grant.token,
            lost,
            released,
            heartbeat: Some(heartbeat),
        }
    }

    /// The locked resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The fencing token of this lease.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The owner holding the lease.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The fence for writes made under this lease.
    pub fn fence(&self) -> super::Fence {
        super::Fence::new(self.resource.as_str(), self.owner.id.as_str(), self.token)
    }

    /// Cancelled when the heartbeat finds the lease lost. Race the phase
    /// against it and abort with [`LockError::Expired`] when it fires.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// The error to report when [`LockGuard::lost`] fired.
    pub fn expired_error(&self) -> LockError {
        LockError::Expired {
            resource: self.resource.clone(),
            token: self.token,
        }
    }

    /// The lease was released by a write that carried its release (a
    /// phase's outcome, see `StateWrite::release`): stop renewing it, and
    /// make [`LockGuard::release`] and the drop do nothing.
    pub fn released_by_write(&self) {
        if let Some(h) = &self.heartbeat {
            h.abort();
        }
        self.released.store(true, Ordering::SeqCst);
    }

    /// Release the lease now (the normal path).
    pub async fn release(mut self) -> Result<(), LockError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.released.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.service
            .release(&self.resource, &self.owner, self.token)
            .await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        let service = self.service.clone();
        let owner = self.owner.clone();
        let resource = std::mem::take(&mut self.resource);
        let token = self.token;
        let release = async move {
            if let Err(e) = service.release(&resource, &owner, token).await {
                tracing::warn!("could not release `{resource}` on drop: {e}; it will expire");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(release);
            }
            Err(_) => tracing::warn!("lock guard dropped outside a runtime; the lease will expire"),
        }
    }
}

/// Renew every `ttl / 3`. A renewal the database refuses means the lease is
/// gone: signal `lost`. A renewal that fails for another reason (database
/// unreachable) is retried until the lease would have expired by our own
/// count, and then we assume it lost: never hold a lease the database may
/// not agree on.
async fn heartbeat(
    service: LockService,
    owner: Owner,
    resource: String,
    token: i64,
    ttl: Duration,
    mut valid_until: tokio::time::Instant,
    lost: CancellationToken,
) {
    let period = ttl / 3;
    loop {
        let now = tokio::time::Instant::now();
        let next = if now + period > valid_until {
            now + Duration::from_millis(200)
        } else {
            now + period
        };
        tokio::time::sleep_until(next).await;
        let sent = tokio::time::Instant::now();
        // A renewal stuck on a dead connection must not outlive the lease:
        // give up on it when the lease would have run out by our own clock.
        let renewal = tokio::time::timeout_at(
            valid_until.max(sent + Duration::from_millis(200)),
            service.renew(&resource, &owner, token, ttl),
        );
        match renewal.await {
            Ok(Ok(_)) => valid_until = sent + ttl,
            Ok(Err(LockError::Expired { .. })) => {
                tracing::warn!("lease on `{resource}` (token {token}) was lost");
                lost.cancel();
                return;
            }
            Ok(Err(e)) => tracing::warn!("renewing `{resource}` failed: {e}"),
            Err(_) => tracing::warn!("renewing `{resource}` timed out"),
        }
        if tokio::time::Instant::now() >= valid_until {
            tracing::warn!(
                "lease on `{resource}` (token {token}) could not be renewed before it ran out"
            );
            lost.cancel();
            return;
        }
    }
}
