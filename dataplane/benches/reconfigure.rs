//! What a reconfiguration costs forwarding: a gateway with one network of 1,000,000
//! remote IPv4 prefixes (distinct /24s behind one peer) re-applies its configuration.
//!
//! - `apply_whole`: [`Dataplane::apply`], all of it under whatever lock the shell holds:
//!   what forwarding waited for before the work was split;
//! - `held_sync_and_install`: the two steps the shell still runs holding the dataplane,
//!   [`Dataplane::sync_peers`] and [`Dataplane::install_tables`] (tables built beforehand,
//!   untimed; the replaced tables are freed after, as the daemon does): how long forwarding
//!   now waits;
//! - `build_tables`: the step that runs beside forwarding.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use boringtun::x25519::{PublicKey, StaticSecret};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};
use weft_dataplane::core::Dataplane;
use weft_dataplane::{DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute};

const PREFIXES: u32 = 1_000_000;

fn config() -> DataplaneConfig {
    let peer = PublicKey::from(&StaticSecret::from([2; 32])).to_bytes();
    let remote_routes = (0..PREFIXES)
        .map(|i| RemoteRoute {
            // 1.0.0.0/24, 1.0.1.0/24, ...: a million distinct /24s from 1.0.0.0 on.
            prefix: IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from((1 << 24) + (i << 8)), 24).expect("a /24"),
            ),
            peer,
        })
        .collect();
    DataplaneConfig {
        private_key: [1; 32],
        infra_address: Ipv4Addr::new(100, 64, 0, 1),
        networks: vec![NetworkConfig {
            name: "big".into(),
            label: 1001,
            mtu: 1420,
            local_prefixes: vec!["10.10.1.0/24".parse().expect("a prefix")],
            remote_routes,
        }],
        gateway_peers: vec![GatewayPeerConfig {
            public_key: peer,
            endpoint: Some("192.0.2.2:51820".parse().expect("an address")),
            infra_address: Ipv4Addr::new(100, 64, 0, 2),
            persistent_keepalive: None,
        }],
        workload_peers: vec![],
    }
}

fn reconfigure(c: &mut Criterion) {
    let config = config();
    let mut dataplane = Dataplane::new(&config, Instant::now());
    while dataplane.poll_transmit().is_some() {}
    let mut group = c.benchmark_group("reconfigure_1M_prefixes");
    group.sample_size(10);
    group.bench_function("apply_whole", |b| {
        b.iter(|| black_box(dataplane.apply(&config, Instant::now())))
    });
    group.bench_function("build_tables", |b| {
        b.iter_batched(
            || dataplane.sync_peers(&config),
            |synced| black_box(synced.build_tables(&config)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("held_sync_and_install", |b| {
        b.iter_custom(|iterations| {
            let mut held = Duration::ZERO;
            for _ in 0..iterations {
                let start = Instant::now();
                let synced = dataplane.sync_peers(&config);
                held += start.elapsed();
                let tables = synced.build_tables(&config);
                let start = Instant::now();
                let (report, retired) = dataplane.install_tables(tables, Instant::now());
                held += start.elapsed();
                black_box(report);
                drop(retired);
            }
            held
        })
    });
    group.finish();
}

criterion_group!(benches, reconfigure);
criterion_main!(benches);
