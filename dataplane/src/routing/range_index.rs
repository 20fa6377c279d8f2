//! The compiled IPv4 index of a sealed [`NetworkTable`](super::NetworkTable): a read-only
//! range table after DXR ("direct-indexed range table", Zec, Rizzo and Mikuc, 2012).
//!
//! The trie answers a lookup by walking one node per few bits of the address, and with a
//! million prefixes nearly every step of that walk misses the cache and the TLB. This index
//! trades that walk for three reads that depend on each other (first stage, run, value):
//!
//! 1. The prefixes are flattened into the sorted list of disjoint address ranges that cover
//!    the whole IPv4 space, each tagged with its longest covering prefix (or none); adjacent
//!    ranges with the same answer are merged. `n` prefixes give at most `2n + 1` ranges.
//! 2. A first stage of `u32`s, indexed by the top `w` bits of the address, holds for each
//!    block of 2^(32 - w) addresses (a "chunk") either its answer (one range covers it all:
//!    the common case for short prefixes and empty space) or where its run of ranges starts.
//!    `w` grows with the table, about one entry per prefix (see [`first_stage_bits`]), so
//!    that runs stay a few ranges long while the first stage costs at most 8 bytes a prefix
//!    past its floor: from 2^16 entries (256 KiB; fewer bits would not let a start fit 16
//!    bits) to 2^20 (4 MiB, from half a million prefixes on). With a million random
//!    prefixes, 16 bits made lookups of about 45 ns and 20 bits of about 30 ns, for 4.6 MB more.
//! 3. A run is one block of `u16`s: the ranges' starts (their low bits; the chunk is
//!    known), sorted, then the answers of the ranges, each split in two `u16`s. The lookup
//!    binary-searches the starts and reads the answer from the same block, usually the same
//!    cache line.
//!
//! An answer packs the matching prefix's length with the index of its value in one `Vec`
//! holding each value once, in the trie's order. The prefix is the looked-up address cut to
//! that length, so the lookup reads nothing else: the value is the only read left, and only
//! for a caller that uses it.
//!
//! The first stage has a floor of 256 KiB, which is why a table is only compiled from a size
//! where the trie itself costs about as much (see
//! [`NetworkTable::seal`](super::NetworkTable::seal)).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The fewest address bits the first stage is indexed by: with fewer, a range's start within
/// its chunk would not fit a `u16`.
const MIN_FIRST_STAGE_BITS: u32 = 16;

/// The most address bits the first stage is indexed by (a first stage of 4 MiB): with a
/// million random prefixes, runs are then about three ranges long, so more bits would buy
/// little for their memory.
const MAX_FIRST_STAGE_BITS: u32 = 20;

/// The first-stage flag saying that the rest of the entry is the offset of a run, not an
/// answer.
const RUN_FLAG: u32 = 1 << 31;

/// The bits of an answer that index the values; the prefix length sits above them (6 bits,
/// below `RUN_FLAG`).
const VALUE_INDEX_BITS: u32 = 25;

/// The value index of "no route": past every real value, so that it finds none.
const NO_ROUTE: u32 = (1 << VALUE_INDEX_BITS) - 1;

/// The largest number of routes the index can hold: their indices must stay below
/// [`NO_ROUTE`]. Far beyond any table that fits a gateway's memory (the trie of that many
/// prefixes alone would take gigabytes).
pub(super) const MAX_ROUTES: usize = NO_ROUTE as usize;

/// A compiled, read-only longest-prefix-match index of IPv4 routes.
#[derive(Clone)]
pub(super) struct Ipv4RangeIndex<T> {
    /// The number of low address bits within a chunk: 32 less those indexing the first stage.
    chunk_bits: u32,
    /// Per chunk: an answer (`RUN_FLAG` clear) or `RUN_FLAG |` the offset of its run in
    /// `runs`.
    first_stage: Box<[u32]>,
    /// The runs, one after the other. A run of `k + 1` ranges is `k`, the starts of its
    /// ranges but the first (which starts the chunk), then the `k + 1` answers, low half first.
    runs: Box<[u16]>,
    /// The value of each route, in the order of the table they were compiled from.
    values: Box<[T]>,
}

/// The number of address bits that index the first stage of a table of `routes` routes:
/// about one entry per route, rounded up to a power of two, within the bounds.
pub(super) fn first_stage_bits(routes: usize) -> u32 {
    routes
        .next_power_of_two()
        .trailing_zeros()
        .clamp(MIN_FIRST_STAGE_BITS, MAX_FIRST_STAGE_BITS)
}

impl<T: Clone> Ipv4RangeIndex<T> {
    /// Compiles `routes`, at most [`MAX_ROUTES`] of them, which must be in the trie's
    /// lexicographic order: by network address, then shorter prefix first (so that a prefix
    /// comes before those it contains), with a first stage indexed by `first_stage_bits`
    /// address bits (16 to 20; see [`first_stage_bits`]).
    pub(super) fn build<'a>(
        routes: impl Iterator<Item = (Ipv4Net, &'a T)>,
        first_stage_bits: u32,
    ) -> Self
    where
        T: 'a,
    {
        assert!(
            (MIN_FIRST_STAGE_BITS..=MAX_FIRST_STAGE_BITS).contains(&first_stage_bits),
            "first stage of {first_stage_bits} bits"
        );
        let (prefixes, values): (Vec<Ipv4Net>, Vec<T>) = routes
            .map(|(prefix, value)| (prefix, value.clone()))
            .unzip();
        assert!(prefixes.len() <= MAX_ROUTES, "too many routes to index");
        debug_assert!(
            prefixes
                .windows(2)
                .all(|w| (w[0].network(), w[0].prefix_len()) < (w[1].network(), w[1].prefix_len())),
            "routes must come sorted"
        );
        let answer = |route: Option<u32>| match route {
            Some(index) => {
                u32::from(prefixes[index as usize].prefix_len()) << VALUE_INDEX_BITS | index
            }
            None => NO_ROUTE,
        };
        let ranges = disjoint_ranges(&prefixes);

        let chunk_bits = 32 - first_stage_bits;
        let chunk_span = 1u64 << chunk_bits;
        let low_mask = (1 << chunk_bits) - 1;
        let mut first_stage = vec![0; 1 << first_stage_bits].into_boxed_slice();
        let mut runs: Vec<u16> = Vec::with_capacity(3 * ranges.len());
        // The index of the first range that starts after the current chunk's first address.
        let mut next = 0;
        for (chunk, entry) in (0u32..).zip(first_stage.iter_mut()) {
            let base = chunk << chunk_bits;
            while next < ranges.len() && ranges[next].start <= base {
                next += 1;
            }
            // The first range starts at 0, so `next` is at least 1 here.
            let covering = answer(ranges[next - 1].route);
            let chunk_end = u64::from(base) + chunk_span;
            let inside = &ranges[next..];
            let inside = &inside[..inside.partition_point(|r| u64::from(r.start) < chunk_end)];
            if inside.is_empty() {
                *entry = covering;
                continue;
            }
            *entry = RUN_FLAG | u32::try_from(runs.len()).expect("runs fit in 31 bits");
            runs.push(
                u16::try_from(inside.len()).expect("fewer than 2^16 ranges start inside a chunk"),
            );
            // Only the low bits: the chunk is known from the first stage.
            runs.extend(inside.iter().map(|r| (r.start & low_mask) as u16));
            for answer in std::iter::once(covering).chain(inside.iter().map(|r| answer(r.route))) {
                runs.extend([answer as u16, (answer >> 16) as u16]);
            }
            next += inside.len();
        }
        Ipv4RangeIndex {
            chunk_bits,
            first_stage,
            runs: runs.into_boxed_slice(),
            values: values.into_boxed_slice(),
        }
    }
}

impl<T> Ipv4RangeIndex<T> {
    /// The longest prefix containing `address`, and its value.
    pub(super) fn lookup(&self, address: Ipv4Addr) -> Option<(Ipv4Net, &T)> {
        let bits = u32::from(address);
        let entry = self.first_stage[(bits >> self.chunk_bits) as usize];
        let answer = if entry & RUN_FLAG == 0 {
            entry
        } else {
            let run = &self.runs[(entry & !RUN_FLAG) as usize..];
            let following = usize::from(run[0]);
            // The chunk's low bits, at most 16 of them.
            let low = (bits & ((1 << self.chunk_bits) - 1)) as u16;
            let range = run[1..=following].partition_point(|&start| start <= low);
            let at = 1 + following + 2 * range;
            u32::from(run[at]) | u32::from(run[at + 1]) << 16
        };
        let value = self.values.get((answer & NO_ROUTE) as usize)?;
        let len = (answer >> VALUE_INDEX_BITS) as u8;
        let network = bits & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Some((Ipv4Net::new_assert(network.into(), len), value))
    }

    /// The bytes this index holds on the heap, its values' own allocations excepted.
    pub(super) fn heap_bytes(&self) -> usize {
        size_of_val(&*self.first_stage) + size_of_val(&*self.runs) + size_of_val(&*self.values)
    }
}

impl<T> fmt::Debug for Ipv4RangeIndex<T> {
    /// A summary: the routes are the table's, and listing the first-stage entries helps
    /// nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ipv4RangeIndex")
            .field("routes", &self.values.len())
            .field("first_stage_len", &self.first_stage.len())
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

/// Addresses from `start` up to the next range's start, and the index of their longest
/// covering prefix (`None`: no prefix covers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u32,
    route: Option<u32>,
}

/// The disjoint ranges covering all of IPv4, in order, the first starting at 0, no two
/// neighbours with the same route; `prefixes` sorted as [`Ipv4RangeIndex::build`] requires,
/// fewer than 2^32 of them.
///
/// One sweep over the prefixes with a stack of those that contain the current address
/// (prefixes nest or are disjoint, never partly overlap, so the innermost is on top).
fn disjoint_ranges(prefixes: &[Ipv4Net]) -> Vec<Range> {
    let mut ranges: Vec<Range> = Vec::with_capacity(2 * prefixes.len() + 1);
    let mut emit = |start: u64, route: Option<u32>| {
        if ranges.last().is_none_or(|last| last.route != route) {
            let start = u32::try_from(start).expect("a range starts inside IPv4");
            ranges.push(Range { start, route });
        }
    };
    // The prefixes containing `cursor`, innermost last: (end, exclusive; route).
    let mut enclosing: Vec<(u64, u32)> = Vec::with_capacity(33);
    // The first address not yet given a range.
    let mut cursor = 0u64;
    for (route, prefix) in (0u32..).zip(prefixes) {
        let start = u64::from(u32::from(prefix.network()));
        let end = start + (1u64 << (32 - prefix.prefix_len()));
        while let Some(&(enclosing_end, enclosing_route)) = enclosing.last()
            && enclosing_end <= start
        {
            if cursor < enclosing_end {
                emit(cursor, Some(enclosing_route));
                cursor = enclosing_end;
            }
            enclosing.pop();
        }
        if cursor < start {
            emit(cursor, enclosing.last().map(|&(_, route)| route));
            cursor = start;
        }
        enclosing.push((end, route));
    }
    while let Some((enclosing_end, enclosing_route)) = enclosing.pop() {
        if cursor < enclosing_end {
            emit(cursor, Some(enclosing_route));
            cursor = enclosing_end;
        }
    }
    if cursor < 1 << 32 {
        emit(cursor, None);
    }
    ranges
}
