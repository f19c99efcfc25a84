//! A cache of one kind of object: the JSON the lookup API answers with,
//! keyed by `namespace/name`, whether the cache is in step with the API
//! server, and a change counter lookups can wait on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use tokio::sync::watch;

/// One cached object, ready to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `metadata.uid`.
    pub uid: String,
    /// Whether the object is a static pod's mirror pod (its UID differs
    /// from the runtime's; the plugin accepts it as the API would).
    pub static_pod: bool,
    /// The object as JSON, trimmed to what the plugin reads.
    pub body: Bytes,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// In the cache, which is in step with the API server.
    Found(Arc<Entry>),
    /// Not in the cache, which is in step with the API server.
    Missing,
    /// The cache cannot vouch for anything (first list not done, watch
    /// broken).
    NotSynced,
}

#[derive(Debug, Default)]
struct State {
    objects: HashMap<String, Arc<Entry>>,
    synced: bool,
}

/// The cache of one kind.
#[derive(Debug)]
pub struct Store {
    state: RwLock<State>,
    changes: watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            changes: watch::Sender::new(0),
        }
    }
}

/// The key of an object.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Store {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Looks up `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Lookup {
        let state = self.read();
        if !state.synced {
            return Lookup::NotSynced;
        }
        match state.objects.get(&key(namespace, name)) {
            Some(entry) => Lookup::Found(Arc::clone(entry)),
            None => Lookup::Missing,
        }
    }

    /// Replaces the whole content with a fresh list; the cache is in step.
    pub fn replace(&self, objects: HashMap<String, Arc<Entry>>) {
        {
            let mut state = self.write();
            state.objects = objects;
            state.synced = true;
        }
        self.changed();
    }

    /// Adds or replaces one object.
    pub fn insert(&self, key: String, entry: Entry) {
        self.write().objects.insert(key, Arc::new(entry));
        self.changed();
    }

    /// Removes one object.
    pub fn remove(&self, key: &str) {
        self.write().objects.remove(key);
        self.changed();
    }

    /// Marks the cache in step (watch established) or not.
    pub fn set_synced(&self, synced: bool) {
        let was = std::mem::replace(&mut self.write().synced, synced);
        if was != synced {
            self.changed();
        }
    }

    /// Whether the cache is in step with the API server.
    pub fn is_synced(&self) -> bool {
        self.read().synced
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every cached object (a snapshot).
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.read().objects.values().cloned().collect()
    }

    /// Every cached object with its key (a snapshot).
    pub fn snapshot(&self) -> Vec<(String, Arc<Entry>)> {
        self.read()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: &str) -> Entry {
        Entry {
            uid: uid.into(),
            static_pod: false,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn not_synced_until_listed() {
        let store = Store::default();
        assert_eq!(store.get("a", "b"), Lookup::NotSynced);
        store.replace(HashMap::from([(key("a", "b"), Arc::new(entry("u1")))]));
        assert!(matches!(store.get("a", "b"), Lookup::Found(e) if e.uid == "u1"));
        assert_eq!(store.get("a", "c"), Lookup::Missing);
        store.set_synced(false);
        assert_eq!(store.get("a", "b"), Lookup::NotSynced);
    }

    #[test]
    fn insert_remove_and_changes() {
        let store = Store::default();
        let mut changes = store.subscribe();
        store.replace(HashMap::new());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        store.insert(key("n", "p"), entry("u2"));
        assert!(changes.has_changed().unwrap());
        assert_eq!(store.len(), 1);
        store.remove(&key("n", "p"));
        assert_eq!(store.get("n", "p"), Lookup::Missing);
        assert!(store.is_empty());
    }
}
