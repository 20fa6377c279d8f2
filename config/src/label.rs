//! MPLS labels that name a network between gateways.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::intent::NetworkId;

/// An MPLS label value naming one network on the wire. Values 0 to 15 are reserved by
/// RFC 3032, so labels run from 16 to 2^20 - 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Label(u32);

impl Label {
    /// The smallest label a network may use.
    pub const MIN: u32 = 16;
    /// The largest label (20 bits).
    pub const MAX: u32 = (1 << 20) - 1;

    /// A label from its value, if it is in range.
    pub fn new(value: u32) -> Option<Self> {
        (Self::MIN..=Self::MAX)
            .contains(&value)
            .then_some(Self(value))
    }

    /// The label a network gets when the configuration names none: a hash of its id, so it
    /// never changes when other networks come or go.
    pub fn derived(id: &NetworkId) -> Self {
        let digest = Sha256::digest(format!("weft network label\0{id}").as_bytes());
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        Self(Self::MIN + n % (Self::MAX - Self::MIN + 1))
    }

    /// The numeric value.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NetworkId {
        s.parse().unwrap()
    }

    /// The derived label of `shop/prod`, computed independently (16 + the first four bytes of SHA-256("weft network label\0shop/prod"), big-endian, modulo 2^20 - 16).
    const PINNED_SHOP_PROD: u32 = 7366;

    #[test]
    fn derived_labels_are_stable_and_in_range() {
        let a = Label::derived(&id("shop/prod"));
        assert_eq!(a, Label::derived(&id("shop/prod")));
        assert_ne!(a, Label::derived(&id("shop/staging")));
        // Pinned so that a change of the derivation (which would re-label every network of
        // every running overlay) cannot go unnoticed.
        assert_eq!(a.value(), PINNED_SHOP_PROD);
        for i in 0..1000 {
            let l = Label::derived(&id(&format!("t{i}/n{i}")));
            assert!((Label::MIN..=Label::MAX).contains(&l.value()));
        }
    }

    #[test]
    fn range() {
        assert!(Label::new(15).is_none());
        assert!(Label::new(16).is_some());
        assert!(Label::new(1 << 20).is_none());
    }
}
