//! Keeps a [`Store`] in step with the API server: a paged LIST, then a
//! WATCH from its resourceVersion (with bookmarks), resumed from the last
//! version seen when the server ends it, listed again when the version is
//! too old (410). The store is marked out of step from the moment a watch
//! cannot be resumed until a new one is established, so the lookup API
//! never answers from a cache that may have missed changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};

use super::store::Store;
use super::trim::{Cached, entry, key_of};

/// Objects per LIST page: bounds the memory of a list of 10,000 NADs.
pub const PAGE_SIZE: u32 = 250;
/// How long the server keeps one watch open (it ends it then; we resume).
const WATCH_TIMEOUT_SECS: u32 = 290;
/// First pause after a failed list or watch; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A field selector (the node's pods: `spec.nodeName=<node>`).
    pub fields: Option<String>,
}

/// Why a watch ended.
enum WatchEnd {
    /// The server closed it: resume from the last version.
    Closed,
    /// The version is too old: list again.
    Expired,
    /// It failed: pause, then resume.
    Failed(String),
}

/// Lists every object into the store; returns the list's version.
async fn list<K: Cached>(
    api: &Api<K>,
    selection: &Selection,
    store: &Store,
) -> Result<String, kube::Error> {
    let mut params = ListParams::default().limit(PAGE_SIZE);
    if let Some(fields) = &selection.fields {
        params = params.fields(fields);
    }
    let mut objects = HashMap::new();
    loop {
        let page = api.list(&params).await?;
        for object in page.items {
            if let Some((key, entry)) = entry(object) {
                objects.insert(key, Arc::new(entry));
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => {
                store.replace(objects);
                return Ok(page.metadata.resource_version.unwrap_or_default());
            }
        }
    }
}

/// One watch from `version`, applying its events; updates `version`.
async fn watch<K: Cached>(
    api: &Api<K>,
    selection: &Selection,
    store: &Store,
    version: &mut String,
) -> WatchEnd {
    let mut params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    params.bookmarks = true;
    if let Some(fields) = &selection.fields {
        params = params.fields(fields);
    }
    let stream = match api.watch(&params, version).await {
        Ok(stream) => stream,
        Err(kube::Error::Api(status)) if status.code == 410 => return WatchEnd::Expired,
        Err(e) => return WatchEnd::Failed(e.to_string()),
    };
    // Established: every change after `version` reaches us in order.
    store.set_synced(true);
    let mut stream = stream.boxed();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return WatchEnd::Closed,
            Err(e) => return WatchEnd::Failed(e.to_string()),
        };
        match event {
            WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                if let Some(v) = object.meta().resource_version.clone() {
                    *version = v;
                }
                if let Some((key, entry)) = entry(object) {
                    store.insert(key, entry);
                }
            }
            WatchEvent::Deleted(object) => {
                if let Some(v) = object.meta().resource_version.clone() {
                    *version = v;
                }
                if let Some(key) = key_of(&object) {
                    store.remove(&key);
                }
            }
            WatchEvent::Bookmark(bookmark) => {
                *version = bookmark.metadata.resource_version;
            }
            WatchEvent::Error(status) if status.code == 410 => return WatchEnd::Expired,
            WatchEvent::Error(status) => return WatchEnd::Failed(status.message),
        }
    }
}

/// Keeps `store` in step with the objects of `api` matching `selection`,
/// forever (abort the task to stop).
pub async fn reflect<K: Cached>(api: Api<K>, selection: Selection, store: Arc<Store>) {
    let mut backoff = MIN_BACKOFF;
    'list: loop {
        store.set_synced(false);
        let mut version = match list(&api, &selection, &store).await {
            Ok(version) => {
                tracing::info!(kind = K::KIND, objects = store.len(), "cache listed");
                version
            }
            Err(e) => {
                tracing::warn!(kind = K::KIND, error = %e, retry_in = ?backoff, "cannot list; lookups go to the API server");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue 'list;
            }
        };
        loop {
            match watch(&api, &selection, &store, &mut version).await {
                WatchEnd::Closed => {
                    backoff = MIN_BACKOFF;
                    tracing::debug!(kind = K::KIND, "watch ended by the server; resuming");
                }
                WatchEnd::Expired => {
                    tracing::info!(kind = K::KIND, "watch version too old; listing again");
                    continue 'list;
                }
                WatchEnd::Failed(error) => {
                    store.set_synced(false);
                    tracing::warn!(kind = K::KIND, %error, retry_in = ?backoff, "watch failed; lookups go to the API server until it is back");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
