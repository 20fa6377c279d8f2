//! One network's routing table: longest-prefix match over IPv4 and IPv6 prefixes.
//!
//! Each network (VRF) has its own table, which is what lets two networks use the same
//! subnets: the forwarder first knows the network (from the TUN, label or workload peer a
//! packet came with) and only then looks the destination up in that network's table. The
//! value type is the caller's (local delivery, a gateway peer, ...), so this module knows
//! nothing of what a route leads to.
//!
//! Backed by two prefix-trie [`PrefixMap`]s (tree bitmaps), one per address family, so a
//! lookup neither allocates nor scans. The tries are the source of truth: every insert,
//! removal, exact get and listing goes to them.
//!
//! A large table's IPv4 lookups are too slow on the trie alone: with a million prefixes its
//! walk misses the cache and the TLB at nearly every level (70 to 80 ns a lookup). So once a
//! table is built, [`NetworkTable::seal`] compiles its IPv4 routes into a read-only range
//! index (`range_index`: a direct-indexed first stage on the top 16 to 20 bits of the
//! address, then a binary search in a short sorted run of address ranges), which answers
//! IPv4 lookups until the next change drops it. Only tables of at least [`SEAL_THRESHOLD`]
//! IPv4 prefixes are compiled: the index's first stage is at least 256 KiB, which would dwarf
//! a small table (a gateway has up to a thousand networks, most with a handful of prefixes),
//! and a small trie is fast anyway. IPv6 stays on the trie.

mod range_index;

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use range_index::{Ipv4RangeIndex, MAX_ROUTES, first_stage_bits};

/// The number of IPv4 prefixes from which [`NetworkTable::seal`] compiles the range index.
///
/// Where the index, whose first stage alone is 256 KiB, costs about what the trie does: with
/// 4,096 random prefixes the trie takes about 240 KB and the index 320 KB (lookups go from
/// 29 to 7 ns); with 1,024 the index would be four times the trie. Tables below this are
/// never compiled, so the thousand small networks of a gateway cost nothing more.
pub const SEAL_THRESHOLD: usize = 4096;

/// A routing table of one network: prefixes of both families mapped to `T`.
///
/// Prefixes are stored truncated to their network address: `10.1.2.3/16` is `10.1.0.0/16`.
/// Two tables are equal when they hold the same routes, sealed or not.
#[derive(Clone, Debug)]
pub struct NetworkTable<T> {
    v4: PrefixMap<Ipv4Net, T>,
    v6: PrefixMap<Ipv6Net, T>,
    /// The compiled IPv4 routes, present from [`NetworkTable::seal`] until the next change.
    v4_index: Option<Ipv4RangeIndex<T>>,
}

impl<T> Default for NetworkTable<T> {
    fn default() -> Self {
        NetworkTable {
            v4: PrefixMap::default(),
            v6: PrefixMap::default(),
            v4_index: None,
        }
    }
}

impl<T: PartialEq> PartialEq for NetworkTable<T> {
    fn eq(&self, other: &Self) -> bool {
        self.v4 == other.v4 && self.v6 == other.v6
    }
}

impl<T: Eq> Eq for NetworkTable<T> {}

impl<T> NetworkTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value for `prefix` (truncated to its network address), returning the value
    /// it replaces. Unseals the table.
    pub fn insert(&mut self, prefix: IpNet, value: T) -> Option<T> {
        self.v4_index = None;
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.insert(p, value),
            IpNet::V6(p) => self.v6.insert(p, value),
        }
    }

    /// Removes `prefix` (truncated to its network address), returning its value. Unseals the
    /// table.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<T> {
        self.v4_index = None;
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
            IpAddr::V4(a) => match &self.v4_index {
                Some(index) => index.lookup(a),
                None => self.v4.get_lpm(&Ipv4Net::from(a)),
            }
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

    /// The heap bytes of the compiled IPv4 index (with its copy of the IPv4 values), or
    /// `None` when the table is not sealed: what sealing costs in memory, for benchmarks and
    /// capacity planning.
    pub fn sealed_index_bytes(&self) -> Option<usize> {
        self.v4_index.as_ref().map(Ipv4RangeIndex::heap_bytes)
    }
}

impl<T: Clone> NetworkTable<T> {
    /// Compiles the IPv4 routes into a read-only index that answers [`lookup`] in a few
    /// memory reads however large the table, if it has at least [`SEAL_THRESHOLD`] IPv4
    /// prefixes (below that the trie is fast and the index would cost more memory than the
    /// table; above 2^25 - 1, far beyond a gateway's memory, the index cannot number them).
    /// Call it once the table is built; the next [`insert`] or [`remove`] drops the index and
    /// lookups go back to the trie. Copies the IPv4 values into the index.
    ///
    /// [`lookup`]: NetworkTable::lookup
    /// [`insert`]: NetworkTable::insert
    /// [`remove`]: NetworkTable::remove
    pub fn seal(&mut self) {
        if (SEAL_THRESHOLD..=MAX_ROUTES).contains(&self.v4.len()) {
            self.compile_v4();
        }
    }

    /// Builds the IPv4 index whatever the table's size (unless already built).
    fn compile_v4(&mut self) {
        if self.v4_index.is_none() {
            let bits = first_stage_bits(self.v4.len());
            self.v4_index = Some(Ipv4RangeIndex::build(self.v4.iter(), bits));
        }
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

    /// A table of `n` distinct /32s from 10.0.0.0 up, valued by their position.
    fn hosts(n: u32) -> NetworkTable<u32> {
        (0..n)
            .map(|i| (IpNet::V4(Ipv4Net::from(Ipv4Addr::from(0x0a00_0000 + i))), i))
            .collect()
    }

    #[test]
    fn seal_compiles_from_the_threshold_on() {
        let below = u32::try_from(SEAL_THRESHOLD).unwrap() - 1;
        let mut t = hosts(below);
        t.insert(net("2001:db8::/32"), 7);
        t.seal();
        assert_eq!(t.sealed_index_bytes(), None, "IPv6 prefixes do not count");
        t.insert(net("192.0.2.0/24"), below);
        t.seal();
        let bytes = t.sealed_index_bytes().expect("sealed at the threshold");
        assert!(bytes >= 4 << 16, "at least the first stage: {bytes}");
        assert_eq!(t.lookup(addr("10.0.0.5")), Some((net("10.0.0.5/32"), &5)));
        assert_eq!(
            t.lookup(addr("192.0.2.9")),
            Some((net("192.0.2.0/24"), &below))
        );
        assert_eq!(t.lookup(addr("10.0.255.255")), None);
        assert_eq!(
            t.lookup(addr("2001:db8::1")),
            Some((net("2001:db8::/32"), &7))
        );
        // Sealing again keeps the index; sealing is invisible to equality.
        t.seal();
        assert_eq!(t.sealed_index_bytes(), Some(bytes));
        let mut unsealed = t.clone();
        unsealed.v4_index = None;
        assert_eq!(t, unsealed);
    }

    #[test]
    fn changes_unseal() {
        let mut t = hosts(u32::try_from(SEAL_THRESHOLD).unwrap());
        t.seal();
        assert!(t.sealed_index_bytes().is_some());
        t.insert(net("10.0.0.0/8"), 100);
        assert_eq!(t.sealed_index_bytes(), None);
        assert_eq!(t.lookup(addr("10.9.9.9")), Some((net("10.0.0.0/8"), &100)));
        t.seal();
        assert_eq!(t.lookup(addr("10.9.9.9")), Some((net("10.0.0.0/8"), &100)));
        assert_eq!(t.remove(&net("10.0.0.0/8")), Some(100));
        assert_eq!(t.sealed_index_bytes(), None);
        assert_eq!(t.lookup(addr("10.9.9.9")), None);
        t.seal();
        assert_eq!(t.lookup(addr("10.9.9.9")), None);
        // A new value for a present prefix unseals too.
        t.insert(net("10.0.0.3/32"), 33);
        assert_eq!(t.sealed_index_bytes(), None);
        t.seal();
        assert_eq!(t.lookup(addr("10.0.0.3")), Some((net("10.0.0.3/32"), &33)));
    }

    #[test]
    fn compiled_extremes() {
        let mut t = NetworkTable::new();
        t.insert(net("0.0.0.0/0"), 0);
        t.insert(net("0.0.0.0/32"), 1);
        t.insert(net("255.255.255.255/32"), 2);
        t.insert(net("128.0.0.0/1"), 3);
        t.insert(net("127.255.255.255/32"), 4);
        t.compile_v4();
        assert_eq!(t.lookup(addr("0.0.0.0")), Some((net("0.0.0.0/32"), &1)));
        assert_eq!(t.lookup(addr("0.0.0.1")), Some((net("0.0.0.0/0"), &0)));
        assert_eq!(
            t.lookup(addr("127.255.255.254")),
            Some((net("0.0.0.0/0"), &0))
        );
        assert_eq!(
            t.lookup(addr("127.255.255.255")),
            Some((net("127.255.255.255/32"), &4))
        );
        assert_eq!(t.lookup(addr("128.0.0.0")), Some((net("128.0.0.0/1"), &3)));
        assert_eq!(
            t.lookup(addr("255.255.255.254")),
            Some((net("128.0.0.0/1"), &3))
        );
        assert_eq!(
            t.lookup(addr("255.255.255.255")),
            Some((net("255.255.255.255/32"), &2))
        );
        assert_eq!(t.lookup(addr("::")), None);

        let mut empty: NetworkTable<u8> = NetworkTable::new();
        empty.compile_v4();
        assert_eq!(empty.lookup(addr("10.0.0.1")), None);
        assert_eq!(empty.lookup(addr("255.255.255.255")), None);
    }

    #[test]
    fn first_stage_grows_with_the_table() {
        assert_eq!(first_stage_bits(0), 16);
        assert_eq!(first_stage_bits(SEAL_THRESHOLD), 16);
        assert_eq!(first_stage_bits(1 << 16), 16);
        assert_eq!(first_stage_bits((1 << 16) + 1), 17);
        assert_eq!(first_stage_bits(100_000), 17);
        assert_eq!(first_stage_bits(1_000_000), 20);
        assert_eq!(first_stage_bits(MAX_ROUTES), 20);
    }

    /// Every address of one /16 its own route, in a first stage of /16 chunks: the longest
    /// run there can be.
    #[test]
    fn compiled_full_run() {
        let mut t = hosts(1 << 16);
        t.insert(net("10.0.0.0/8"), u32::MAX);
        t.v4_index = Some(Ipv4RangeIndex::build(t.v4.iter(), 16));
        for i in 0..1 << 16 {
            let a = Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(
                t.lookup(IpAddr::V4(a)),
                Some((IpNet::V4(Ipv4Net::from(a)), &i))
            );
        }
        assert_eq!(
            t.lookup(addr("10.1.0.0")),
            Some((net("10.0.0.0/8"), &u32::MAX))
        );
        assert_eq!(t.lookup(addr("9.255.255.255")), None);
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
        /// Compiles the IPv4 index whatever the table's size.
        Seal,
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
                2 => Just(Op::Seal),
            ];
            proptest::collection::vec(op, 1..200)
        })
    }

    /// Random IPv4 prefix sets built to stress the compiled index: prefixes around a few
    /// seeds (so they nest), each possibly with its neighbours of the same length (adjacent
    /// ranges) or its two halves, lengths over 0..=32 (so /0 and /32 occur), sometimes the
    /// default route; and addresses near the seeds or anywhere.
    fn v4_prefixes_and_addresses() -> impl Strategy<Value = (Vec<Ipv4Net>, Vec<Ipv4Addr>)> {
        proptest::collection::vec(any::<u32>(), 1..4).prop_flat_map(|seeds| {
            let prefix = (
                prop::sample::select(seeds.clone()),
                any::<u32>(),
                any::<bool>(),
                0u8..=32,
                0u8..4,
            );
            let address = (prop::sample::select(seeds), any::<u32>(), 0u32..=32).prop_map(
                |(seed, bits, keep)| {
                    let mask = u32::MAX.checked_shr(keep).unwrap_or(0);
                    Ipv4Addr::from((seed & !mask) | (bits & mask))
                },
            );
            (
                proptest::collection::vec(prefix, 0..48),
                any::<bool>(),
                proptest::collection::vec(address, 0..64),
            )
                .prop_map(|(drawn, default_route, addresses)| {
                    let mut prefixes = Vec::new();
                    if default_route {
                        prefixes.push(Ipv4Net::default());
                    }
                    for (seed, bits, random, len, shape) in drawn {
                        let base = if random { bits } else { seed };
                        let p = Ipv4Net::new(base.into(), len).unwrap().trunc();
                        prefixes.push(p);
                        let size = 1u64 << (32 - len);
                        let network = u64::from(u32::from(p.network()));
                        let neighbours = match shape {
                            1 => vec![network + size],
                            2 => vec![network.wrapping_sub(size)],
                            _ => vec![],
                        };
                        for n in neighbours {
                            if let Ok(n) = u32::try_from(n) {
                                prefixes.push(Ipv4Net::new(n.into(), len).unwrap());
                            }
                        }
                        if shape == 3 {
                            prefixes.extend(p.subnets(len.saturating_add(1).min(32)).unwrap());
                        }
                    }
                    (prefixes, addresses)
                })
        })
    }

    /// Where the answer of a lookup may change: the first and last addresses of each prefix,
    /// those of the first-stage chunks (/16 to /20) they fall in, and their neighbours.
    fn boundaries(prefixes: &[Ipv4Net]) -> impl Iterator<Item = Ipv4Addr> + '_ {
        prefixes.iter().flat_map(|p| {
            let first = u32::from(p.network());
            let last = u32::from(p.broadcast());
            let chunk_edges = (12..=16).flat_map(move |chunk_bits| {
                let low = (1u32 << chunk_bits) - 1;
                [first & !low, last | low]
            });
            [first, last]
                .into_iter()
                .chain(chunk_edges)
                .flat_map(|a| [a.wrapping_sub(1), a, a.wrapping_add(1)])
                .map(Ipv4Addr::from)
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
                    Op::Seal => {
                        table.compile_v4();
                        prop_assert!(table.v4_index.is_some());
                    }
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

        #[test]
        fn compiled_index_agrees_with_trie_and_linear_scan(
            (prefixes, addresses) in v4_prefixes_and_addresses(),
            first_stage_bits in 16u32..=20,
        ) {
            let mut naive = Naive::default();
            let mut trie = NetworkTable::new();
            for (value, prefix) in (0u32..).zip(&prefixes) {
                naive.insert(IpNet::V4(*prefix), value);
                trie.insert(IpNet::V4(*prefix), value);
            }
            let mut sealed = trie.clone();
            sealed.v4_index = Some(Ipv4RangeIndex::build(sealed.v4.iter(), first_stage_bits));
            prop_assert!(trie.v4_index.is_none());
            prop_assert_eq!(&sealed, &trie);
            for address in boundaries(&prefixes).chain(addresses) {
                let address = IpAddr::V4(address);
                let expected = naive.lookup(address);
                prop_assert_eq!(trie.lookup(address), expected, "trie, {}", address);
                prop_assert_eq!(sealed.lookup(address), expected, "sealed, {}", address);
            }
        }
    }
}
