//! Leases on project sub-resources, as the `locks` WIT import offers them to
//! plugins: names are scoped under `project:<id>/res:` and held by the
//! session running the plugin.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{LockError, LockService, Owner};

/// Lock access for one plugin call: scoped to a project, held by a session.
#[derive(Debug, Clone)]
pub struct ScopedLocks {
    service: LockService,
    owner: Owner,
    project_id: String,
    operation: String,
}

impl ScopedLocks {
    /// Locks under `project:<project_id>/res:` held by `owner`.
    pub fn new(service: LockService, owner: Owner, project_id: &str, operation: &str) -> Self {
        ScopedLocks {
            service,
            owner,
            project_id: project_id.to_string(),
            operation: operation.to_string(),
        }
    }

    /// The full resource name for a plugin-chosen `name`.
    pub fn resource_for(&self, name: &str) -> String {
        format!("project:{}/res:{name}", self.project_id)
    }

    /// The session owning these leases.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Take a lease on `name`, failing fast on conflict.
    pub async fn acquire(&self, name: &str, ttl: Duration) -> Result<Lease, LockError> {
        let resource = self.resource_for(name);
        let grant = self
            .service
            .try_acquire(&resource, &self.owner, &self.operation, ttl)
            .await?;
        Ok(Lease {
            service: self.service.clone(),
            owner: self.owner.clone(),
            resource,
            token: grant.token,
            released: Arc::new(Mutex::new(false)),
        })
    }
}

/// A lease held on behalf of a plugin. Released by [`Lease::release`]; the
/// plugin host releases any lease still held when the call ends or traps.
#[derive(Debug, Clone)]
pub struct Lease {
    service: LockService,
    owner: Owner,
    resource: String,
    token: i64,
    released: Arc<Mutex<bool>>,
}

impl Lease {
    /// The full resource name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The fencing token.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Whether the lease was already released through this handle.
    pub fn is_released(&self) -> bool {
        *self.released.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Extend the lease by `ttl` from now.
    pub async fn renew(&self, ttl: Duration) -> Result<(), LockError> {
        if self.is_released() {
            return Err(LockError::Expired {
                resource: self.resource.clone(),
                token: self.token,
            });
        }
        self.service
            .renew(&self.resource, &self.owner, self.token, ttl)
            .await
            .map(|_| ())
    }

    /// Release the lease; a second call is a no-op returning `Ok(false)`.
    pub async fn release(&self) -> Result<bool, LockError> {
        {
            let mut released = self.released.lock().unwrap_or_else(|e| e.into_inner());
            if *released {
                return Ok(false);
            }
            *released = true;
        }
        self.service
            .release(&self.resource, &self.owner, self.token)
            .await
            .map(|_| true)
    }
}
