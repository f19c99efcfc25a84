//! The latest verdict of every NAD, and what the MultusConfigs' conditions
//! read from it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use kube::ResourceExt;
use multus_config::npwg::nad::NetworkAttachmentDefinition;

use super::verdict::Verdict;
use crate::controller::conditions::InvalidNad;

/// The latest verdict of every NAD (`namespace/name`).
#[derive(Debug, Default)]
pub struct NadRegistry {
    verdicts: Mutex<BTreeMap<String, Verdict>>,
}

impl NadRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Verdict>> {
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a verdict; returns the previous one.
    pub fn set(&self, key: &str, verdict: Verdict) -> Option<Verdict> {
        self.lock().insert(key.to_owned(), verdict)
    }

    /// Forgets a deleted NAD; returns its last verdict.
    pub fn remove(&self, key: &str) -> Option<Verdict> {
        self.lock().remove(key)
    }

    /// Forgets every NAD not in `keep`; returns whether any was invalid.
    pub fn retain(&self, keep: &HashSet<String>) -> bool {
        let mut verdicts = self.lock();
        let mut dropped_invalid = false;
        verdicts.retain(|k, v| {
            let kept = keep.contains(k);
            dropped_invalid |= !kept && v.is_invalid();
            kept
        });
        dropped_invalid
    }

    /// How many NADs are invalid in total.
    pub fn invalid_count(&self) -> usize {
        self.lock().values().filter(|v| v.is_invalid()).count()
    }

    /// The invalid NADs whose problem affects any of `nodes`.
    pub fn invalid_for(&self, nodes: &BTreeSet<String>) -> Vec<InvalidNad> {
        let mut memo = HashMap::new();
        self.lock()
            .iter()
            .filter(|(_, v)| v.affects_memo(nodes, &mut memo))
            .filter_map(|(k, v)| {
                Some(InvalidNad {
                    key: k.clone(),
                    reason: v.reason()?.to_owned(),
                })
            })
            .collect()
    }
}

/// `namespace/name` of a NAD.
pub fn key_of(nad: &NetworkAttachmentDefinition) -> String {
    format!("{}/{}", nad.namespace().unwrap_or_default(), nad.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn registry_counts_per_node_set() {
        let r = NadRegistry::default();
        r.set("a/bad", Verdict::InvalidConfig("x".into()));
        r.set(
            "b/missing",
            Verdict::PluginMissing(BTreeMap::from([(
                "x".to_owned(),
                Arc::from(vec!["n2".to_owned()]),
            )])),
        );
        r.set(
            "c/ok",
            Verdict::Valid {
                plugins: vec![],
                nodes: 1,
            },
        );
        assert_eq!(r.invalid_count(), 2);
        let pool1: BTreeSet<String> = ["n1".to_owned()].into();
        let pool2: BTreeSet<String> = ["n2".to_owned()].into();
        assert_eq!(r.invalid_for(&pool1).len(), 1);
        let both = r.invalid_for(&pool2);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].reason, "PluginMissing");
        assert!(r.retain(&HashSet::from(["c/ok".to_owned(), "b/missing".to_owned()])));
        assert_eq!(r.invalid_count(), 1);
        assert_eq!(r.remove("b/missing").map(|v| v.is_invalid()), Some(true));
    }
}
