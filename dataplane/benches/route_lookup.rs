//! Longest-prefix match in one network's [`NetworkTable`]: the cost of a lookup with 10k,
//! 100k and 1M random IPv4 prefixes in sealed tables (`v4/*`, the compiled range index), with
//! 1M in an unsealed table (`v4_trie/1M`, the trie alone, for comparison), and with 100k
//! random IPv6 prefixes; the time to build a table of 1M IPv4 prefixes, and to seal it.
//!
//! Prefixes are distinct, drawn from a fixed-seed xorshift generator: IPv4 lengths uniform in
//! 8..=32 at uniformly random addresses; IPv6 lengths uniform in 16..=128 (`v6/100k`) or
//! 16..=64 (`v6/100k_upto_64`, closer to real tables of /48 to /64 subnets: the trie has no
//! path compression, so a long sparse prefix costs a node per 5 bits). IPv4 lookups are of
//! uniformly random addresses (nearly all of which match some prefix once the table is
//! large); IPv6 lookups are of random addresses inside random stored prefixes, since uniformly
//! random 128-bit addresses would miss at the first levels of the trie. The addresses are
//! precomputed and cycled through, so the generator costs nothing in the measurement.
//!
//! Each lookup reads the value and the prefix length, as the forwarder uses them, and hands
//! only a `u32` of them to the harness; the position in the address list goes through
//! `black_box` so the lookups cannot be hoisted. (Passing the 17-byte `IpAddr` and the
//! answer through `black_box` instead, as this benchmark first did, cost up to 13 ns an
//! iteration of store-forwarding stalls on the stack, which hid the lookup's own cost: a
//! sealed 10k table measured 22 ns instead of 9.) Consecutive lookups are independent,
//! so the figures are of lookups back to back, as in a burst of packets.
//!
//! Under `cargo test --benches` (no `--bench` argument) each benchmark runs once and the 1M
//! tables are scaled down to keep the debug build quick.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use weft_dataplane::routing::NetworkTable;

/// Addresses looked up, cycled through (a power of two).
const ADDRESSES: usize = 1 << 16;

/// xorshift64*: small, fast, deterministic; good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `low..=high` (the bias of the modulo is irrelevant here).
    fn range(&mut self, low: u8, high: u8) -> u8 {
        let span = u64::from(high - low) + 1;
        low + u8::try_from(self.next() % span).expect("span fits in u8")
    }

    fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

/// Whether criterion measures (`cargo bench`) rather than runs each benchmark once
/// (`cargo test --benches`).
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `n` distinct random IPv4 prefixes, in the order drawn, and the table of them.
fn v4_prefixes(n: usize, rng: &mut Rng) -> (Vec<IpNet>, NetworkTable<u32>) {
    let mut table = NetworkTable::new();
    let mut prefixes = Vec::with_capacity(n);
    while prefixes.len() < n {
        let len = rng.range(8, 32);
        let address = Ipv4Addr::from(rng.next() as u32);
        let prefix = IpNet::V4(Ipv4Net::new(address, len).expect("length <= 32").trunc());
        let value = u32::try_from(prefixes.len()).expect("fewer than 2^32 prefixes");
        if table.get(&prefix).is_none() {
            table.insert(prefix, value);
            prefixes.push(prefix);
        }
    }
    (prefixes, table)
}

/// `n` distinct random IPv6 prefixes of lengths 16..=`longest`, in the order drawn, and the
/// table of them.
fn v6_prefixes(n: usize, longest: u8, rng: &mut Rng) -> (Vec<IpNet>, NetworkTable<u32>) {
    let mut table = NetworkTable::new();
    let mut prefixes = Vec::with_capacity(n);
    while prefixes.len() < n {
        let len = rng.range(16, longest);
        let address = Ipv6Addr::from(rng.u128());
        let prefix = IpNet::V6(Ipv6Net::new(address, len).expect("length <= 128").trunc());
        let value = u32::try_from(prefixes.len()).expect("fewer than 2^32 prefixes");
        if table.get(&prefix).is_none() {
            table.insert(prefix, value);
            prefixes.push(prefix);
        }
    }
    (prefixes, table)
}

/// Uniformly random IPv4 addresses.
fn v4_addresses(rng: &mut Rng) -> Vec<IpAddr> {
    (0..ADDRESSES)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.next() as u32)))
        .collect()
}

/// Random addresses inside random prefixes of `prefixes`.
fn addresses_inside(prefixes: &[IpNet], rng: &mut Rng) -> Vec<IpAddr> {
    (0..ADDRESSES)
        .map(|_| {
            let len = u64::try_from(prefixes.len()).expect("usize fits in u64");
            let index = usize::try_from(rng.next() % len).expect("index fits in usize");
            match prefixes[index] {
                IpNet::V4(p) => {
                    let host = (rng.next() as u32) & u32::from(p.hostmask());
                    IpAddr::V4(Ipv4Addr::from(u32::from(p.network()) | host))
                }
                IpNet::V6(p) => {
                    let host = rng.u128() & u128::from(p.hostmask());
                    IpAddr::V6(Ipv6Addr::from(u128::from(p.network()) | host))
                }
            }
        })
        .collect()
}

/// Benchmarks lookups of `addresses` (cycled through) in `table`.
fn bench_lookups(
    c: &mut Criterion,
    family: &str,
    label: &str,
    table: &NetworkTable<u32>,
    addresses: &[IpAddr],
) {
    let matched = addresses
        .iter()
        .filter(|a| table.lookup(**a).is_some())
        .count();
    let index = table
        .sealed_index_bytes()
        .map_or("not sealed".to_owned(), |bytes| {
            format!("sealed, index {:.1} MiB", bytes as f64 / f64::from(1 << 20))
        });
    eprintln!(
        "route_lookup/{family}/{label}: {} prefixes ({index}), {:.1}% of the looked-up \
         addresses match",
        table.len(),
        100.0 * matched as f64 / addresses.len() as f64,
    );
    let mut group = c.benchmark_group(format!("route_lookup/{family}"));
    group.throughput(Throughput::Elements(1));
    group.bench_with_input(BenchmarkId::from_parameter(label), table, |b, table| {
        let mut i = 0usize;
        b.iter(|| {
            let address = addresses[black_box(i) & (ADDRESSES - 1)];
            i = i.wrapping_add(1);
            table
                .lookup(address)
                .map_or(0, |(p, v)| u32::from(p.prefix_len()) ^ *v)
        });
    });
    group.finish();
}

fn route_lookup(c: &mut Criterion) {
    let full = measuring();
    let mut rng = Rng::new(0x5eed_f00d_cafe_0001);
    let addresses = v4_addresses(&mut rng);
    for (label, n) in [
        ("10k", 10_000),
        ("100k", 100_000),
        ("1M", if full { 1_000_000 } else { 100_000 }),
    ] {
        let (_, mut table) = v4_prefixes(n, &mut rng);
        if label == "1M" {
            bench_lookups(c, "v4_trie", label, &table, &addresses);
        }
        table.seal();
        bench_lookups(c, "v4", label, &table, &addresses);
    }
    for (label, longest) in [("100k", 128), ("100k_upto_64", 64)] {
        let (prefixes, table) = v6_prefixes(100_000, longest, &mut rng);
        let addresses = addresses_inside(&prefixes, &mut rng);
        bench_lookups(c, "v6", label, &table, &addresses);
    }
}

fn table_build(c: &mut Criterion) {
    let n = if measuring() { 1_000_000 } else { 10_000 };
    let mut rng = Rng::new(0x5eed_f00d_cafe_0002);
    let (prefixes, _) = v4_prefixes(n, &mut rng);
    let mut group = c.benchmark_group("table_build/v4");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("1M", |b| {
        b.iter_with_large_drop(|| {
            prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| (*p, i as u32))
                .collect::<NetworkTable<u32>>()
        });
    });
    group.finish();
}

fn table_seal(c: &mut Criterion) {
    let n = if measuring() { 1_000_000 } else { 10_000 };
    let mut rng = Rng::new(0x5eed_f00d_cafe_0003);
    let (_, table) = v4_prefixes(n, &mut rng);
    let mut group = c.benchmark_group("table_seal/v4");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("1M", |b| {
        b.iter_batched_ref(
            || table.clone(),
            NetworkTable::seal,
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, route_lookup, table_build, table_seal);
criterion_main!(benches);
