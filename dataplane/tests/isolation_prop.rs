//! For random overlays and random packets, the forwarder never delivers a packet into a
//! network other than the one it entered, however the networks' prefixes overlap; and no
//! datagram, however malformed, makes it panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use boringtun::x25519::{PublicKey, StaticSecret};
use etherparse::PacketBuilder;
use ipnet::IpNet;
use proptest::prelude::*;
use weft_dataplane::core::{Dataplane, Transmit};
use weft_dataplane::{DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute};

fn public(private: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(private)).to_bytes()
}

/// A network: its label and the /24 (third octet) each of the two gateways has in it.
#[derive(Clone, Debug)]
struct Net {
    label: u32,
    a: u8,
    b: u8,
}

fn nets() -> impl Strategy<Value = Vec<Net>> {
    prop::collection::btree_map(16u32..2000, (0u8..6, 0u8..6), 1..6).prop_map(|m| {
        m.into_iter()
            .filter(|(_, (a, b))| a != b)
            .map(|(label, (a, b))| Net { label, a, b })
            .collect()
    })
}

fn config(me: u8, nets: &[Net]) -> DataplaneConfig {
    let other = 3 - me;
    let prefix = |octet: u8| -> IpNet { format!("10.10.{octet}.0/24").parse().unwrap() };
    DataplaneConfig {
        private_key: [me; 32],
        infra_address: Ipv4Addr::new(100, 64, 0, me),
        networks: nets
            .iter()
            .map(|n| {
                let (mine, theirs) = if me == 1 { (n.a, n.b) } else { (n.b, n.a) };
                NetworkConfig {
                    name: format!("n{}", n.label),
                    label: n.label,
                    mtu: 1400,
                    local_prefixes: vec![prefix(mine)],
                    remote_routes: vec![RemoteRoute {
                        prefix: prefix(theirs),
                        peer: public([other; 32]),
                    }],
                }
            })
            .collect(),
        gateway_peers: vec![GatewayPeerConfig {
            public_key: public([other; 32]),
            endpoint: Some(SocketAddr::from(([192, 0, 2, other], 51820))),
            infra_address: Ipv4Addr::new(100, 64, 0, other),
            persistent_keepalive: None,
        }],
        workload_peers: vec![],
    }
}

/// Runs both dataplanes until quiet; returns what B wrote to its TUNs.
fn pump(a: &mut Dataplane, b: &mut Dataplane) -> Vec<(u32, Vec<u8>)> {
    let mut delivered = Vec::new();
    let now = Instant::now();
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            if let Transmit::Udp { payload, .. } = t {
                b.handle_datagram(SocketAddr::from(([192, 0, 2, 1], 51820)), &payload, now);
            }
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            match t {
                Transmit::Udp { payload, .. } => {
                    a.handle_datagram(SocketAddr::from(([192, 0, 2, 2], 51820)), &payload, now)
                }
                Transmit::Tun { network, packet } => delivered.push((network, packet)),
            }
        }
        if !moved {
            break;
        }
    }
    delivered
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn packets_stay_in_their_network(
        nets in nets(),
        packets in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6, 0u8..6, 1u8..255, 1u8..255), 1..40),
    ) {
        prop_assume!(!nets.is_empty());
        let now = Instant::now();
        let mut a = Dataplane::new(&config(1, &nets), now);
        let mut b = Dataplane::new(&config(2, &nets), now);
        pump(&mut a, &mut b);
        for (i, (which, src, dst, src_host, dst_host)) in packets.iter().enumerate() {
            let n = which.get(&nets);
            let mut packet = Vec::new();
            PacketBuilder::ipv4([10, 10, *src, *src_host], [10, 10, *dst, *dst_host], 64)
                .udp(1000, 2000)
                .write(&mut packet, &[(i % 256) as u8, n.label as u8, (n.label >> 8) as u8])
                .unwrap();
            a.handle_tun_packet(n.label, &packet, now);
        }
        for (network, packet) in pump(&mut a, &mut b) {
            let payload = &packet[packet.len() - 3..];
            let sent_in = u32::from(payload[1]) | (u32::from(payload[2]) << 8);
            prop_assert_eq!(network, sent_in, "a packet sent in network {} came out in {}", sent_in, network);
        }
    }

    #[test]
    fn arbitrary_datagrams_never_panic(datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let now = Instant::now();
        let nets = [Net { label: 100, a: 1, b: 2 }];
        let mut b = Dataplane::new(&config(2, &nets), now);
        for d in &datagrams {
            b.handle_datagram(SocketAddr::from(([192, 0, 2, 1], 51820)), d, now);
            b.handle_tun_packet(100, d, now);
        }
        let status = b.status();
        prop_assert!(status.drops.total() as usize <= 2 * datagrams.len());
    }
}
