#![allow(dead_code)] // shared by two targets, each using part of it
//! Two gateways' dataplanes with a WireGuard session between them, shared by the targets.
//!
//! Gateway A (100.64.0.1) and B (100.64.0.2) both carry networks 1001 and 1002 with the same
//! prefixes: A has 10.10.1.0/24 and fd10:10:0:1::/64, B has 10.10.2.0/24 and fd10:10:0:2::/64.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use boringtun::x25519::{PublicKey, StaticSecret};
use weft_dataplane::core::{Dataplane, Transmit};
use weft_dataplane::{
    DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute, WorkloadPeerConfig,
};

pub const A: &str = "192.0.2.1:51820";
pub const B: &str = "192.0.2.2:51820";
pub const WORKLOAD: &str = "198.51.100.7:40000";
pub const WORKLOAD_KEY: [u8; 32] = [9; 32];

pub fn public(private: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(private)).to_bytes()
}

fn config(me: u8) -> DataplaneConfig {
    let other = 3 - me;
    let (mine, theirs, their_addr) = if me == 1 { (1, 2, B) } else { (2, 1, A) };
    DataplaneConfig {
        private_key: [me; 32],
        infra_address: Ipv4Addr::new(100, 64, 0, me),
        networks: [1001u32, 1002]
            .iter()
            .map(|&label| NetworkConfig {
                name: format!("n{label}"),
                label,
                mtu: 1376,
                local_prefixes: vec![
                    format!("10.10.{mine}.0/24").parse().unwrap(),
                    format!("fd10:10:0:{mine}::/64").parse().unwrap(),
                ],
                remote_routes: [
                    format!("10.10.{theirs}.0/24"),
                    format!("fd10:10:0:{theirs}::/64"),
                ]
                .iter()
                .map(|p| RemoteRoute {
                    prefix: p.parse().unwrap(),
                    peer: public([other; 32]),
                })
                .collect(),
            })
            .collect(),
        gateway_peers: vec![GatewayPeerConfig {
            public_key: public([other; 32]),
            endpoint: Some(their_addr.parse().unwrap()),
            infra_address: Ipv4Addr::new(100, 64, 0, other),
            persistent_keepalive: None,
        }],
        workload_peers: if me == 2 {
            vec![WorkloadPeerConfig {
                public_key: public(WORKLOAD_KEY),
                network: 1002,
                addresses: vec!["10.10.2.77/32".parse().unwrap()],
                endpoint: None,
            }]
        } else {
            vec![]
        },
    }
}

/// Two dataplanes after their handshake.
pub struct Pair {
    pub a: Dataplane,
    pub b: Dataplane,
}

impl Pair {
    pub fn new() -> Self {
        let now = Instant::now();
        let mut pair = Pair {
            a: Dataplane::new(&config(1), now),
            b: Dataplane::new(&config(2), now),
        };
        pair.pump();
        pair
    }

    /// Moves datagrams between the two until both are quiet (bounded).
    pub fn pump(&mut self) {
        let (a, b): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
        let now = Instant::now();
        for _ in 0..32 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                if let Transmit::Udp {
                    destination,
                    payload,
                } = t
                    && destination == b
                {
                    self.b.handle_datagram(a, &payload, now);
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                if let Transmit::Udp {
                    destination,
                    payload,
                } = t
                    && destination == a
                {
                    self.a.handle_datagram(b, &payload, now);
                }
            }
            if !moved {
                break;
            }
        }
    }
}
