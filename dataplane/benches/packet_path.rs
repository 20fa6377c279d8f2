//! The forwarder's per-packet cost on an established session between two gateways wired
//! back to back in memory (as in `tests/core_pair.rs`), at 64 and 1400-byte IPv4/UDP
//! packets:
//!
//! - `encap_encrypt`: gateway A's `handle_tun_packet` of a tenant packet up to the UDP
//!   datagram out of A's `poll_transmit` (lookup, label, WireGuard encryption, output queue),
//!   including handing its buffer back with `recycle`, as the shell does after sending it;
//! - `decrypt_decap`: gateway B's `handle_datagram` of such a datagram up to the tenant
//!   packet out of B's `poll_transmit` (WireGuard decryption, label check, anti-spoofing,
//!   lookup). Datagrams are made by A ahead of the measurement, in chunks, and fed in the
//!   order made so their WireGuard counters keep increasing;
//! - `wireguard_only`: boringtun's `Tunn::encapsulate` / `decapsulate` of the same labelled
//!   packet into a reused buffer: the floor the two above cannot go below with boringtun.
//!
//! Throughput counts the tenant IP packet's bytes.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use ipnet::IpNet;
use weft_dataplane::core::{Dataplane, Transmit};
use weft_dataplane::label_codec::{self, LABEL_OVERHEAD};
use weft_dataplane::{DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute};

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "192.0.2.2:51820";
const LABEL: u32 = 1001;
const MTU: u16 = 1420;
/// Tenant packet sizes: IPv4 header + UDP header + payload.
const SIZES: [usize; 2] = [64, 1400];
/// Datagrams made ahead of one timed stretch of `decrypt_decap`.
const CHUNK: u64 = 4096;

fn public(private: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(private)).to_bytes()
}

fn infra(me: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, me)
}

/// Gateway `me` (1 or 2) has 10.10.`me`.0/24 and routes the other's /24 to it.
fn config(me: u8) -> DataplaneConfig {
    let (other, mine, theirs, their_addr) = if me == 1 {
        (2, "10.10.1.0/24", "10.10.2.0/24", B_ADDR)
    } else {
        (1, "10.10.2.0/24", "10.10.1.0/24", A_ADDR)
    };
    let net = |s: &str| s.parse::<IpNet>().expect("a prefix");
    DataplaneConfig {
        private_key: [me; 32],
        infra_address: infra(me),
        networks: vec![NetworkConfig {
            name: "bench".into(),
            label: LABEL,
            mtu: MTU,
            local_prefixes: vec![net(mine)],
            remote_routes: vec![RemoteRoute {
                prefix: net(theirs),
                peer: public([other; 32]),
            }],
        }],
        gateway_peers: vec![GatewayPeerConfig {
            public_key: public([other; 32]),
            endpoint: Some(their_addr.parse().expect("an address")),
            infra_address: infra(other),
            persistent_keepalive: None,
        }],
        workload_peers: vec![],
    }
}

/// Two gateways with an established WireGuard session.
struct Pair {
    a: Dataplane,
    b: Dataplane,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
}

impl Pair {
    fn new() -> Self {
        let now = Instant::now();
        let mut pair = Pair {
            a: Dataplane::new(&config(1), now),
            b: Dataplane::new(&config(2), now),
            a_addr: A_ADDR.parse().expect("an address"),
            b_addr: B_ADDR.parse().expect("an address"),
            now,
        };
        // Both start a handshake; deliver datagrams until both are quiet.
        for _ in 0..100 {
            let mut moved = false;
            while let Some(t) = pair.a.poll_transmit() {
                moved = true;
                if let Transmit::Udp { payload, .. } = t {
                    pair.b.handle_datagram(pair.a_addr, &payload, now);
                }
            }
            while let Some(t) = pair.b.poll_transmit() {
                moved = true;
                if let Transmit::Udp { payload, .. } = t {
                    pair.a.handle_datagram(pair.b_addr, &payload, now);
                }
            }
            if !moved {
                break;
            }
        }
        // Check the path end to end once.
        let packet = udp_packet(64);
        let datagram = pair.encrypt(&packet);
        pair.b.handle_datagram(pair.a_addr, &datagram, now);
        assert_eq!(
            pair.b.poll_transmit(),
            Some(Transmit::Tun {
                network: LABEL,
                packet
            }),
            "B delivers what A sent"
        );
        assert!(pair.b.poll_transmit().is_none());
        pair
    }

    /// A's datagram for a tenant packet.
    fn encrypt(&mut self, packet: &[u8]) -> Vec<u8> {
        self.a.handle_tun_packet(LABEL, packet, self.now);
        match self.a.poll_transmit() {
            Some(Transmit::Udp {
                destination,
                payload,
            }) if destination == self.b_addr => payload,
            other => panic!("A sent {other:?} instead of a datagram to B"),
        }
    }

    /// Asserts that neither gateway dropped anything.
    fn assert_no_drops(&self) {
        for (name, dp) in [("A", &self.a), ("B", &self.b)] {
            let drops = dp.status().drops;
            assert_eq!(drops.total(), 0, "{name} dropped: {drops:?}");
        }
    }
}

/// An IPv4/UDP packet of `len` bytes from A's site to B's.
fn udp_packet(len: usize) -> Vec<u8> {
    let builder = PacketBuilder::ipv4([10, 10, 1, 10], [10, 10, 2, 10], 64).udp(4000, 5000);
    let payload = vec![0xa5; len - 28];
    let mut out = Vec::with_capacity(len);
    builder.write(&mut out, &payload).expect("writes to a Vec");
    assert_eq!(out.len(), len);
    out
}

fn throughput(len: usize) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: 1,
        bytes: len as u64,
    }
}

fn encap_encrypt(c: &mut Criterion) {
    let mut pair = Pair::new();
    let mut group = c.benchmark_group("packet_path/encap_encrypt");
    for len in SIZES {
        let packet = udp_packet(len);
        group.throughput(throughput(len));
        group.bench_with_input(BenchmarkId::from_parameter(len), &packet, |b, packet| {
            b.iter(|| {
                pair.a.handle_tun_packet(LABEL, black_box(packet), pair.now);
                let datagram = pair.a.poll_transmit().expect("a datagram");
                // Written: the buffer goes back, as the daemon's shell does.
                pair.a.recycle(black_box(datagram));
            });
        });
    }
    group.finish();
    pair.assert_no_drops();
}

fn decrypt_decap(c: &mut Criterion) {
    let mut pair = Pair::new();
    let mut group = c.benchmark_group("packet_path/decrypt_decap");
    for len in SIZES {
        let packet = udp_packet(len);
        group.throughput(throughput(len));
        group.bench_with_input(BenchmarkId::from_parameter(len), &packet, |b, packet| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let datagrams: Vec<Vec<u8>> = (0..n).map(|_| pair.encrypt(packet)).collect();
                    let start = Instant::now();
                    for datagram in &datagrams {
                        pair.b
                            .handle_datagram(pair.a_addr, black_box(datagram), pair.now);
                        let packet = pair.b.poll_transmit().expect("a packet");
                        pair.b.recycle(black_box(packet));
                    }
                    elapsed += start.elapsed();
                    left -= n;
                }
                elapsed
            });
        });
    }
    group.finish();
    pair.assert_no_drops();
}

/// Two boringtun sessions with a completed handshake, 1 → 2.
fn tunn_pair() -> (Tunn, Tunn) {
    let (one, two) = ([1u8; 32], [2u8; 32]);
    let mut t1 = Tunn::new(
        StaticSecret::from(one),
        PublicKey::from(public(two)),
        None,
        None,
        1,
        None,
    );
    let mut t2 = Tunn::new(
        StaticSecret::from(two),
        PublicKey::from(public(one)),
        None,
        None,
        2,
        None,
    );
    let mut buf = vec![0u8; 2048];
    let TunnResult::WriteToNetwork(init) = t1.format_handshake_initiation(&mut buf, false) else {
        panic!("no handshake initiation")
    };
    let init = init.to_vec();
    let TunnResult::WriteToNetwork(response) = t2.decapsulate(None, &init, &mut buf) else {
        panic!("no handshake response")
    };
    let response = response.to_vec();
    if let TunnResult::WriteToNetwork(keepalive) = t1.decapsulate(None, &response, &mut buf) {
        let keepalive = keepalive.to_vec();
        let _ = t2.decapsulate(None, &keepalive, &mut buf);
    }
    (t1, t2)
}

/// The labelled packet A hands to WireGuard for a tenant packet of `len` bytes.
fn labelled_packet(len: usize) -> Vec<u8> {
    let inner = udp_packet(len);
    let mut out = vec![0; len + LABEL_OVERHEAD];
    let written =
        label_codec::encode(infra(1), infra(2), LABEL, &inner, &mut out).expect("encodes");
    assert_eq!(written, out.len());
    out
}

fn wireguard_only(c: &mut Criterion) {
    let (mut t1, mut t2) = tunn_pair();
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];
    let mut group = c.benchmark_group("packet_path/wireguard_only");
    for len in SIZES {
        let labelled = labelled_packet(len);
        group.throughput(throughput(len));
        group.bench_with_input(
            BenchmarkId::new("encrypt", len),
            &labelled,
            |b, labelled| {
                b.iter(|| match t1.encapsulate(black_box(labelled), &mut buf) {
                    TunnResult::WriteToNetwork(d) => d.len(),
                    _ => panic!("no datagram"),
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decrypt", len),
            &labelled,
            |b, labelled| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(CHUNK);
                        let datagrams: Vec<Vec<u8>> = (0..n)
                            .map(|_| match t1.encapsulate(labelled, &mut buf) {
                                TunnResult::WriteToNetwork(d) => d.to_vec(),
                                _ => panic!("no datagram"),
                            })
                            .collect();
                        let start = Instant::now();
                        for datagram in &datagrams {
                            match t2.decapsulate(None, black_box(datagram), &mut out) {
                                TunnResult::WriteToTunnelV4(p, _) => {
                                    black_box(p.len());
                                }
                                _ => panic!("not decrypted"),
                            }
                        }
                        elapsed += start.elapsed();
                        left -= n;
                    }
                    elapsed
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, encap_encrypt, decrypt_decap, wireguard_only);
criterion_main!(benches);
