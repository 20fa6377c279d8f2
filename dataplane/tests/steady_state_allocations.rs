//! Forwarding on an established session allocates nothing: the shell hands every written
//! buffer back with `recycle`, and the core reuses it for the next packet. An allocation per
//! packet costs about as much as the label codec's whole work, at millions of packets per
//! second.
//!
//! This test binary counts allocations (allocation-counter replaces the global allocator
//! here only), so it holds this one test.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use boringtun::x25519::{PublicKey, StaticSecret};
use etherparse::PacketBuilder;
use weft_dataplane::core::{Dataplane, Transmit};
use weft_dataplane::{DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute};

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "192.0.2.2:51820";

fn config(me: u8) -> DataplaneConfig {
    let (other, mine, theirs, their_addr) = if me == 1 {
        (2, "10.10.1.0/24", "10.10.2.0/24", B_ADDR)
    } else {
        (1, "10.10.2.0/24", "10.10.1.0/24", A_ADDR)
    };
    let public = |k: u8| PublicKey::from(&StaticSecret::from([k; 32])).to_bytes();
    DataplaneConfig {
        private_key: [me; 32],
        infra_address: Ipv4Addr::new(100, 64, 0, me),
        networks: vec![NetworkConfig {
            name: "prod".into(),
            label: 1001,
            mtu: 1420,
            local_prefixes: vec![mine.parse().unwrap()],
            remote_routes: vec![RemoteRoute {
                prefix: theirs.parse().unwrap(),
                peer: public(other),
            }],
        }],
        gateway_peers: vec![GatewayPeerConfig {
            public_key: public(other),
            endpoint: Some(their_addr.parse().unwrap()),
            infra_address: Ipv4Addr::new(100, 64, 0, other),
            persistent_keepalive: None,
        }],
        workload_peers: vec![],
    }
}

/// Moves everything each side has to send to the other, recycling every buffer, and
/// counts the tenant packets written to a TUN.
fn pump(a: &mut Dataplane, b: &mut Dataplane, delivered: &mut usize) {
    let (a_addr, b_addr): (SocketAddr, SocketAddr) =
        (A_ADDR.parse().unwrap(), B_ADDR.parse().unwrap());
    loop {
        let moved = deliver(a, b, a_addr, delivered) | deliver(b, a, b_addr, delivered);
        if !moved {
            return;
        }
    }
}

/// Hands what `from` has to send to `to`; whether there was anything.
fn deliver(
    from: &mut Dataplane,
    to: &mut Dataplane,
    from_addr: SocketAddr,
    delivered: &mut usize,
) -> bool {
    let mut moved = false;
    while let Some(transmit) = from.poll_transmit() {
        moved = true;
        match &transmit {
            Transmit::Udp { payload, .. } => to.handle_datagram(from_addr, payload, Instant::now()),
            Transmit::Tun { .. } => *delivered += 1,
        }
        from.recycle(transmit);
    }
    moved
}

#[test]
fn forwarding_on_an_established_session_allocates_nothing() {
    let now = Instant::now();
    let mut a = Dataplane::new(&config(1), now);
    let mut b = Dataplane::new(&config(2), now);
    let mut delivered = 0;
    pump(&mut a, &mut b, &mut delivered);
    let mut packet = Vec::new();
    PacketBuilder::ipv4([10, 10, 1, 10], [10, 10, 2, 10], 64)
        .udp(4000, 5000)
        .write(&mut packet, &[0x5a; 1372])
        .unwrap();
    // Warm up: the handshake's queued packet, buffers for a batch in flight.
    for _ in 0..64 {
        a.handle_tun_packet(1001, &packet, now);
    }
    pump(&mut a, &mut b, &mut delivered);
    let warm = delivered;
    let counted = allocation_counter::measure(|| {
        for _ in 0..1_000 {
            for _ in 0..8 {
                a.handle_tun_packet(1001, &packet, now);
            }
            pump(&mut a, &mut b, &mut delivered);
        }
    });
    assert_eq!(delivered - warm, 8_000, "every packet crossed");
    assert_eq!(
        counted.count_total, 0,
        "8,000 packets encrypted, sent, decrypted and delivered allocated {} times",
        counted.count_total
    );
}
