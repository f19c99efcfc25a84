//! [`Dirty`]: what changed since the last reconcile pass, as a small set of
//! flags. The watcher ([`super::watch`]) and the event loop
//! ([`super::run_with`]) raise them; the reconcile pass (`reconcile.rs`)
//! decides what each one makes the agent redo.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of "something changed" flags.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Dirty(u8);

impl Dirty {
    /// Nothing changed.
    pub const NONE: Self = Self(0);
    /// Something in the CNI conf dir (or the readiness file's dir) changed.
    pub const CONF: Self = Self(1);
    /// The `--config` file (or its directory) changed.
    pub const CONFIG: Self = Self(1 << 1);
    /// The service-account directory (token, CA) changed.
    pub const TOKEN: Self = Self(1 << 2);
    /// Something in the Multus conf dir (configs of NADs without
    /// `spec.config`) changed.
    pub const MULTUS_CONF: Self = Self(1 << 3);
    /// Everything.
    pub const ALL: Self = Self(Self::CONF.0 | Self::CONFIG.0 | Self::TOKEN.0 | Self::MULTUS_CONF.0);

    const NAMES: [(Self, &'static str); 4] = [
        (Self::CONF, "CONF"),
        (Self::CONFIG, "CONFIG"),
        (Self::TOKEN, "TOKEN"),
        (Self::MULTUS_CONF, "MULTUS_CONF"),
    ];

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// The raw bits (to keep the set in an atomic).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set of `bits`; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }
}

impl BitOr for Dirty {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOrAssign for Dirty {
    fn bitor_assign(&mut self, other: Self) {
        self.insert(other);
    }
}

impl fmt::Debug for Dirty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect();
        if names.is_empty() {
            f.write_str("Dirty(NONE)")
        } else {
            write!(f, "Dirty({})", names.join(" | "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_combine_and_are_tested_by_inclusion() {
        let mut dirty = Dirty::NONE;
        assert!(dirty.is_empty());
        dirty.insert(Dirty::CONF);
        dirty |= Dirty::TOKEN;
        assert!(dirty.contains(Dirty::CONF) && dirty.contains(Dirty::TOKEN));
        assert!(!dirty.contains(Dirty::CONFIG));
        assert!(!dirty.contains(Dirty::CONF | Dirty::CONFIG));
        assert!(Dirty::ALL.contains(dirty | Dirty::CONFIG | Dirty::MULTUS_CONF));
        assert_eq!(Dirty::from_bits_truncate(dirty.bits() | 0x80), dirty);
        assert_eq!(format!("{dirty:?}"), "Dirty(CONF | TOKEN)");
        assert_eq!(format!("{:?}", Dirty::NONE), "Dirty(NONE)");
    }
}
