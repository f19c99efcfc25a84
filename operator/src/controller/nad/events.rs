//! The Event a NAD gets when its verdict changes.

use multus_config::text::truncate_with_marker;

use super::reasons::{
    REASON_CONFIG_FILE_MISSING, REASON_CONFIG_VALID, REASON_INVALID_CONFIG, REASON_PLUGIN_MISSING,
    REASON_RESOURCE_NOT_ADVERTISED,
};
use super::verdict::Verdict;
use crate::controller::conditions::{NAMES_SHOWN, name_list};

/// An Event for a NAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NadEvent {
    /// Warning for problems, Normal when valid again.
    pub warning: bool,
    /// Reason.
    pub reason: &'static str,
    /// Human message.
    pub note: String,
}

/// The Event for a NAD whose verdict went from `previous` to `next`:
/// none when nothing changed, and none for a NAD that was never seen
/// invalid.
pub fn event_for(previous: Option<&Verdict>, next: &Verdict) -> Option<NadEvent> {
    if previous == Some(next) {
        return None;
    }
    match next {
        Verdict::InvalidConfig(why) => Some(NadEvent {
            warning: true,
            reason: REASON_INVALID_CONFIG,
            note: format!("{why}. Pods that request this network fail to start; fix spec.config."),
        }),
        Verdict::PluginMissing(missing) => {
            let parts: Vec<String> = missing
                .iter()
                .map(|(plugin, nodes)| {
                    format!("{plugin:?} is missing on {}", name_list(nodes, NAMES_SHOWN))
                })
                .collect();
            Some(NadEvent {
                warning: true,
                reason: REASON_PLUGIN_MISSING,
                note: format!(
                    "CNI plugin {}. Pods on those nodes that request this network fail to start; \
                     install the plugin into the CNI bin dir of those nodes (a plugin kept only \
                     in additionalBinDir is not seen by this check).",
                    parts.join("; ")
                ),
            })
        }
        Verdict::ConfigFileMissing { network, nodes } => Some(NadEvent {
            warning: true,
            reason: REASON_CONFIG_FILE_MISSING,
            note: format!(
                "spec.config is empty, and no CNI config named {network:?} is in the Multus conf \
                 dir (multusConfDir) of {}. Pods on those nodes that request this network fail \
                 to start; add a *.conf, *.conflist or *.json file with \"name\": {network:?} \
                 to the Multus conf dir of those nodes, or set spec.config.",
                name_list(nodes, NAMES_SHOWN)
            ),
        }),
        Verdict::ResourceNotAdvertised { resource } => Some(NadEvent {
            warning: true,
            reason: REASON_RESOURCE_NOT_ADVERTISED,
            note: format!(
                "no node advertises {resource} in its allocatable resources: pods attaching this \
                 network fail ADD until its device plugin runs (see docs/devices.md)."
            ),
        }),
        Verdict::FileReference { network, nodes } if previous.is_some_and(Verdict::is_invalid) => {
            Some(NadEvent {
                warning: false,
                reason: REASON_CONFIG_VALID,
                note: format!(
                    "spec.config is empty and a CNI config named {network:?} is in the Multus \
                     conf dir of all {nodes} reporting nodes."
                ),
            })
        }
        Verdict::Valid { plugins, nodes } if previous.is_some_and(Verdict::is_invalid) => {
            Some(NadEvent {
                warning: false,
                reason: REASON_CONFIG_VALID,
                note: format!(
                    "spec.config is valid and its plugins ({}) are present on all {nodes} \
                     reporting nodes.",
                    plugins.join(", ")
                ),
            })
        }
        _ => None,
    }
}

/// Events notes are limited to 1 kB.
pub fn truncate_note(note: &str) -> String {
    truncate_with_marker(note, 1024, "...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[test]
    fn events_only_on_change_and_normal_when_fixed() {
        let bad = Verdict::InvalidConfig("x".into());
        let ok = Verdict::Valid {
            plugins: vec!["bridge".into()],
            nodes: 2,
        };
        assert_eq!(event_for(None, &ok), None);
        let e = event_for(None, &bad).unwrap();
        assert!(e.warning && e.reason == "InvalidConfig");
        assert!(e.note.contains("fix spec.config"));
        assert_eq!(event_for(Some(&bad), &bad), None);
        let fixed = event_for(Some(&bad), &ok).unwrap();
        assert!(!fixed.warning);
        assert_eq!(fixed.reason, "ConfigValid");
        assert!(fixed.note.contains("present on all 2 reporting nodes"));
        let missing = Verdict::PluginMissing(BTreeMap::from([(
            "macvlan".to_owned(),
            Arc::from(vec!["n1".to_owned(), "n2".to_owned()]),
        )]));
        let e = event_for(Some(&ok), &missing).unwrap();
        assert_eq!(e.reason, "PluginMissing");
        assert!(
            e.note
                .starts_with("CNI plugin \"macvlan\" is missing on n1, n2."),
            "{}",
            e.note
        );
    }

    #[test]
    fn notes_are_bounded() {
        let long = "é".repeat(1000);
        let t = truncate_note(&long);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
