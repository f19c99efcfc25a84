//! Leader election: replicas keep their caches warm, only the holder of
//! the Lease reconciles and validates NADs. A replica that loses the Lease
//! stops (and exits, so that a restart rejoins as a follower); on shutdown
//! the leader releases the Lease so that another replica takes over at
//! once.

use std::future::Future;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::FIELD_MANAGER;

/// Seconds a leader's lease stays valid without renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Seconds before expiry at which the leader renews.
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// How this replica leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// Always (`--no-leader-election`).
    Disabled,
    /// While holding the Lease `lease` in `namespace`, as `identity`.
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        lease: String,
        /// This replica's name in it.
        identity: String,
    },
}

/// Leading, until [`Leadership::lost`].
#[derive(Debug)]
pub struct Leadership {
    /// Whether this replica (still) leads.
    rx: watch::Receiver<bool>,
    /// The task that renews the Lease.
    task: Option<JoinHandle<Result<LeaseManager, LeaseManagerError>>>,
    /// Without election: the sender of an always-true `rx`, kept as long
    /// as the leadership is.
    _always: Option<watch::Sender<bool>>,
}

/// Resolves when `rx` holds `value` (or its sender is gone).
pub fn watch_for<T: PartialEq + Send + Sync + 'static>(
    rx: &watch::Receiver<T>,
    value: T,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|v| *v == value).await;
    }
}

/// Waits until this replica leads; `Ok(None)` when `stop` resolves first.
pub async fn acquire(
    client: &Client,
    election: &Election,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Option<Leadership>> {
    let Election::Lease {
        namespace,
        lease,
        identity,
    } = election
    else {
        let (tx, rx) = watch::channel(true);
        return Ok(Some(Leadership {
            rx,
            task: None,
            _always: Some(tx),
        }));
    };
    let manager = LeaseManagerBuilder::new(client.clone(), lease)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .with_field_manager(FIELD_MANAGER)
        .build()
        .await
        .with_context(|| format!("cannot use Lease {namespace}/{lease}"))?;
    let (rx, task) = manager.watch().await;
    tracing::info!(%lease, %identity, "waiting for the leader Lease");
    tokio::select! {
        () = watch_for(&rx, true) => {}
        () = stop => return Ok(None),
    }
    if !*rx.borrow() {
        anyhow::bail!("leader election stopped before this replica became the leader");
    }
    Ok(Some(Leadership {
        rx,
        task: Some(task),
        _always: None,
    }))
}

impl Leadership {
    /// Resolves when this replica no longer leads (or the election stopped).
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        watch_for(&self.rx, false)
    }

    /// Gives the Lease up: the lease task releases it once the last
    /// receiver is gone; the returned [`Release`] waits for that.
    pub fn release(self) -> Release {
        drop(self.rx);
        Release {
            task: self.task,
            _always: self._always,
        }
    }
}

/// A Lease being released (see [`Leadership::release`]).
#[derive(Debug)]
pub struct Release {
    task: Option<JoinHandle<Result<LeaseManager, LeaseManagerError>>>,
    _always: Option<watch::Sender<bool>>,
}

impl Release {
    /// Waits until the lease task released the Lease, and says how it went.
    pub async fn finish(mut self) {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(_)) => tracing::info!("released the leader Lease"),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the leader Lease"),
                Err(e) => tracing::warn!(error = %e, "the lease task failed"),
            }
        }
    }
}
