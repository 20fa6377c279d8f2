//! One network's routing table: longest-prefix match over IPv4 and IPv6 prefixes.
//!
//! Each network (VRF) has its own table, which is what lets two networks use the same
//! subnets: the forwarder first knows the network (from the TUN, label or workload peer a
//! packet came with) and only then looks the destination up in that network's table. The
//! value type is the caller's (local delivery, a gateway peer, ...), so this module knows
//! nothing of what a route leads to.
//!
//! Backed by two prefix-trie [`PrefixMap`]s (tree bitmaps), one per address family, so a
//! lookup neither allocates nor scans.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// A routing table of one network: prefixes of both families mapped to `T`.
///
/// Prefixes are stored truncated to their network address: `10.1.2.3/16` is `10.1.0.0/16`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkTable<T> {
    v4: PrefixMap<Ipv4Net, T>,
    v6: PrefixMap<Ipv6Net, T>,
}

impl<T> Default for NetworkTable<T> {
    fn default() -> Self {
        NetworkTable {
            v4: PrefixMap::default(),
            v6: PrefixMap::default(),
        }
    }
}

impl<T> NetworkTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value for `prefix` (truncated to its network address), returning the value
    /// it replaces.
    pub fn insert(&mut self, prefix: IpNet, value: T) -> Option<T> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.insert(p, value),
            IpNet::V6(p) => self.v6.insert(p, value),
        }
    }

    /// Removes `prefix` (truncated to its network address), returning its value.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<T> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.remove(&p),
            IpNet::V6(p) => self.v6.remove(&p),
        }
    }

    /// The value for exactly `prefix` (truncated to its network address), if present.
    pub fn get(&self, prefix: &IpNet) -> Option<&T> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.get(&p),
            IpNet::V6(p) => self.v6.get(&p),
        }
    }

    /// The longest prefix containing `address`, and its value.
    pub fn lookup(&self, address: IpAddr) -> Option<(IpNet, &T)> {
        match address {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(p, v)| (IpNet::V4(p), v)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(p, v)| (IpNet::V6(p), v)),
        }
    }

    /// The number of prefixes of both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the table holds no prefix.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// All prefixes and their values: IPv4 first, then IPv6, each in trie (lexicographic)
    /// order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &T)> + '_ {
        let v4 = self.v4.iter().map(|(p, v)| (IpNet::V4(p), v));
        let v6 = self.v6.iter().map(|(p, v)| (IpNet::V6(p), v));
        v4.chain(v6)
    }
}

impl<T> FromIterator<(IpNet, T)> for NetworkTable<T> {
    /// A table of the given routes; a later duplicate prefix replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (IpNet, T)>>(iter: I) -> Self {
        let mut table = NetworkTable::new();
        for (prefix, value) in iter {
            table.insert(prefix, value);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty() {
        let t: NetworkTable<u8> = NetworkTable::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(t.lookup(addr("10.0.0.1")), None);
        assert_eq!(t.lookup(addr("::1")), None);
        assert_eq!(t.iter().count(), 0);
        assert_eq!(t, NetworkTable::default());
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = NetworkTable::new();
        assert_eq!(t.insert(net("10.0.0.0/8"), 'a'), None);
        assert_eq!(t.insert(net("10.1.0.0/16"), 'b'), None);
        assert_eq!(t.insert(net("10.1.2.0/24"), 'c'), None);
        assert_eq!(t.insert(net("0.0.0.0/0"), 'd'), None);
        assert_eq!(t.insert(net("10.1.2.3/32"), 'e'), None);
        assert_eq!(t.lookup(addr("10.1.2.3")), Some((net("10.1.2.3/32"), &'e')));
        assert_eq!(t.lookup(addr("10.1.2.4")), Some((net("10.1.2.0/24"), &'c')));
        assert_eq!(t.lookup(addr("10.1.3.4")), Some((net("10.1.0.0/16"), &'b')));
        assert_eq!(t.lookup(addr("10.2.3.4")), Some((net("10.0.0.0/8"), &'a')));
        assert_eq!(t.lookup(addr("192.0.2.1")), Some((net("0.0.0.0/0"), &'d')));
        // The IPv4 default route does not answer for IPv6.
        assert_eq!(t.lookup(addr("2001:db8::1")), None);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn ipv6_longest_prefix_wins() {
        let mut t = NetworkTable::new();
        t.insert(net("2001:db8::/32"), 1);
        t.insert(net("2001:db8:1::/48"), 2);
        t.insert(net("::/0"), 3);
        t.insert(net("2001:db8:1::7/128"), 4);
        assert_eq!(
            t.lookup(addr("2001:db8:1::7")),
            Some((net("2001:db8:1::7/128"), &4))
        );
        assert_eq!(
            t.lookup(addr("2001:db8:1::8")),
            Some((net("2001:db8:1::/48"), &2))
        );
        assert_eq!(
            t.lookup(addr("2001:db8:2::8")),
            Some((net("2001:db8::/32"), &1))
        );
        assert_eq!(t.lookup(addr("fd00::1")), Some((net("::/0"), &3)));
        assert_eq!(t.lookup(addr("10.0.0.1")), None);
    }

    #[test]
    fn prefixes_are_truncated() {
        let mut t = NetworkTable::new();
        assert_eq!(t.insert(net("10.1.2.3/16"), 1), None);
        assert_eq!(t.get(&net("10.1.0.0/16")), Some(&1));
        assert_eq!(t.get(&net("10.1.255.255/16")), Some(&1));
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(net("10.1.0.0/16"), &1)]);
        assert_eq!(t.lookup(addr("10.1.9.9")), Some((net("10.1.0.0/16"), &1)));
        // The same network, spelt differently, replaces the value.
        assert_eq!(t.insert(net("10.1.7.7/16"), 2), Some(1));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(&net("10.1.200.1/16")), Some(2));
        assert!(t.is_empty());

        assert_eq!(t.insert(net("2001:db8::1/64"), 3), None);
        assert_eq!(t.get(&net("2001:db8::/64")), Some(&3));
    }

    #[test]
    fn insert_get_remove() {
        let mut t = NetworkTable::new();
        assert_eq!(t.insert(net("192.0.2.0/24"), "x"), None);
        assert_eq!(t.insert(net("192.0.2.0/24"), "y"), Some("x"));
        assert_eq!(t.insert(net("2001:db8::/64"), "z"), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&net("192.0.2.0/24")), Some(&"y"));
        assert_eq!(t.get(&net("192.0.2.0/25")), None);
        assert_eq!(t.get(&net("192.0.0.0/16")), None);
        assert_eq!(t.remove(&net("192.0.2.0/25")), None);
        assert_eq!(t.remove(&net("192.0.2.0/24")), Some("y"));
        assert_eq!(t.remove(&net("192.0.2.0/24")), None);
        assert_eq!(t.lookup(addr("192.0.2.1")), None);
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
        let clone = t.clone();
        assert_eq!(t.remove(&net("2001:db8::/64")), Some("z"));
        assert!(t.is_empty());
        assert_eq!(clone.len(), 1);
    }

    #[test]
    fn iter_lists_both_families() {
        let t: NetworkTable<u32> = [
            (net("2001:db8::/32"), 1),
            (net("10.0.0.0/8"), 2),
            (net("10.0.0.0/8"), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![(net("10.0.0.0/8"), &3), (net("2001:db8::/32"), &1)]
        );
    }

    /// The obviously correct table: a list scanned from end to end.
    #[derive(Default)]
    struct Naive(Vec<(IpNet, u32)>);

    impl Naive {
        fn insert(&mut self, prefix: IpNet, value: u32) -> Option<u32> {
            let prefix = prefix.trunc();
            match self.0.iter_mut().find(|(p, _)| *p == prefix) {
                Some((_, v)) => Some(std::mem::replace(v, value)),
                None => {
                    self.0.push((prefix, value));
                    None
                }
            }
        }

        fn remove(&mut self, prefix: &IpNet) -> Option<u32> {
            let prefix = prefix.trunc();
            let i = self.0.iter().position(|(p, _)| *p == prefix)?;
            Some(self.0.remove(i).1)
        }

        fn get(&self, prefix: &IpNet) -> Option<&u32> {
            let prefix = prefix.trunc();
            self.0.iter().find(|(p, _)| *p == prefix).map(|(_, v)| v)
        }

        fn lookup(&self, address: IpAddr) -> Option<(IpNet, &u32)> {
            self.0
                .iter()
                .filter(|(p, _)| p.contains(&address))
                .max_by_key(|(p, _)| p.prefix_len())
                .map(|(p, v)| (*p, v))
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(IpNet, u32),
        Remove(IpNet),
        Lookup(IpAddr),
        Get(IpNet),
    }

    /// Prefixes drawn around a few seed addresses, so that they nest and overlap, plus some
    /// anywhere; lengths over the whole range.
    fn prefix(seeds: Vec<IpAddr>) -> impl Strategy<Value = IpNet> {
        (
            prop::sample::select(seeds),
            any::<bool>(),
            any::<u128>(),
            0u8..=128,
        )
            .prop_map(|(seed, random, bits, len)| {
                let address = match (seed, random) {
                    (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
                    (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::from(bits)),
                    (seed, false) => seed,
                };
                let len = match address {
                    IpAddr::V4(_) => len % 33,
                    IpAddr::V6(_) => len,
                };
                IpNet::new(address, len).unwrap()
            })
    }

    /// Addresses near the seeds (differing in a few low bits) or anywhere.
    fn address(seeds: Vec<IpAddr>) -> impl Strategy<Value = IpAddr> {
        (prop::sample::select(seeds), any::<u128>(), 0u32..=128).prop_map(|(seed, bits, keep)| {
            match seed {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shr(keep).unwrap_or(0);
                    IpAddr::V4(Ipv4Addr::from(
                        (u32::from(a) & !mask) | (bits as u32 & mask),
                    ))
                }
                IpAddr::V6(a) => {
                    let mask = u128::MAX.checked_shr(keep).unwrap_or(0);
                    IpAddr::V6(Ipv6Addr::from((u128::from(a) & !mask) | (bits & mask)))
                }
            }
        })
    }

    fn seeds() -> impl Strategy<Value = Vec<IpAddr>> {
        (
            proptest::collection::vec(any::<u32>(), 1..4),
            proptest::collection::vec(any::<u128>(), 1..4),
        )
            .prop_map(|(v4, v6)| {
                v4.into_iter()
                    .map(|a| IpAddr::V4(a.into()))
                    .chain(v6.into_iter().map(|a| IpAddr::V6(a.into())))
                    .collect()
            })
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        seeds().prop_flat_map(|seeds| {
            let op = prop_oneof![
                4 => (prefix(seeds.clone()), any::<u32>()).prop_map(|(p, v)| Op::Insert(p, v)),
                1 => prefix(seeds.clone()).prop_map(Op::Remove),
                4 => address(seeds.clone()).prop_map(Op::Lookup),
                1 => prefix(seeds).prop_map(Op::Get),
            ];
            proptest::collection::vec(op, 1..200)
        })
    }

    proptest! {
        #[test]
        fn agrees_with_linear_scan(ops in ops()) {
            let mut table = NetworkTable::new();
            let mut naive = Naive::default();
            for op in ops {
                match op {
                    Op::Insert(p, v) => prop_assert_eq!(table.insert(p, v), naive.insert(p, v)),
                    Op::Remove(p) => prop_assert_eq!(table.remove(&p), naive.remove(&p)),
                    Op::Lookup(a) => prop_assert_eq!(table.lookup(a), naive.lookup(a)),
                    Op::Get(p) => prop_assert_eq!(table.get(&p), naive.get(&p)),
                }
                prop_assert_eq!(table.len(), naive.0.len());
                prop_assert_eq!(table.is_empty(), naive.0.is_empty());
            }
            let mut listed: Vec<_> = table.iter().map(|(p, v)| (p, *v)).collect();
            let mut expected = naive.0.clone();
            listed.sort();
            expected.sort();
            prop_assert_eq!(listed, expected);
        }

        #[test]
        fn every_address_of_a_lone_prefix_matches_it(p in prefix(vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)]), bits in any::<u128>()) {
            let mut table = NetworkTable::new();
            table.insert(p, ());
            let inside = match p {
                IpNet::V4(n) => {
                    let host = u32::from(n.hostmask()) & bits as u32;
                    IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
                }
                IpNet::V6(n) => {
                    let host = u128::from(n.hostmask()) & bits;
                    IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
                }
            };
            prop_assert_eq!(table.lookup(inside), Some((p.trunc(), &())));
        }
    }
}
