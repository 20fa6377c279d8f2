//! Two gateways' forwarders wired back to back in memory: handshakes, labels, isolation of
//! networks with identical prefixes, anti-spoofing, MTU and MSS, hitless reconfiguration,
//! workload peers. No sockets, no devices: the core is sans-IO.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};
use ipnet::IpNet;
use weft_dataplane::core::{Dataplane, Transmit};
use weft_dataplane::counters::DropReason;
use weft_dataplane::{
    DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute, WorkloadPeerConfig,
};

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "192.0.2.2:51820";

fn public(private: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(private)).to_bytes()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Gateway A has 10.10.1.0/24 and B 10.10.2.0/24 in each of the given networks: identical
/// prefixes in every network.
fn config(me: u8, labels: &[u32], mtu: u16) -> DataplaneConfig {
    let (other, my_prefix, their_prefix, their_addr) = if me == 1 {
        (2, "10.10.1.0/24", "10.10.2.0/24", B_ADDR)
    } else {
        (1, "10.10.2.0/24", "10.10.1.0/24", A_ADDR)
    };
    DataplaneConfig {
        private_key: [me; 32],
        infra_address: Ipv4Addr::new(100, 64, 0, me),
        networks: labels
            .iter()
            .map(|&label| NetworkConfig {
                name: format!("net{label}"),
                label,
                mtu,
                local_prefixes: vec![net(my_prefix)],
                remote_routes: vec![RemoteRoute {
                    prefix: net(their_prefix),
                    peer: public([other; 32]),
                }],
            })
            .collect(),
        gateway_peers: vec![GatewayPeerConfig {
            public_key: public([other; 32]),
            endpoint: Some(their_addr.parse().unwrap()),
            infra_address: Ipv4Addr::new(100, 64, 0, other),
            persistent_keepalive: Some(25),
        }],
        workload_peers: vec![],
    }
}

/// Two dataplanes and the packets they wrote to their TUNs.
struct Pair {
    a: Dataplane,
    b: Dataplane,
    a_tun: Vec<(u32, Vec<u8>)>,
    b_tun: Vec<(u32, Vec<u8>)>,
    /// Datagrams addressed to neither gateway (e.g. workload peers).
    elsewhere: Vec<(SocketAddr, Vec<u8>)>,
    datagrams: usize,
}

impl Pair {
    fn new(labels: &[u32], mtu: u16) -> Self {
        let now = Instant::now();
        let mut pair = Pair {
            a: Dataplane::new(&config(1, labels, mtu), now),
            b: Dataplane::new(&config(2, labels, mtu), now),
            a_tun: vec![],
            b_tun: vec![],
            elsewhere: vec![],
            datagrams: 0,
        };
        pair.pump();
        pair
    }

    /// Delivers every pending output until both are quiet.
    fn pump(&mut self) {
        let (a_addr, b_addr): (SocketAddr, SocketAddr) =
            (A_ADDR.parse().unwrap(), B_ADDR.parse().unwrap());
        for _ in 0..100 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Udp {
                        destination,
                        payload,
                    } if destination == b_addr => {
                        self.datagrams += 1;
                        self.b.handle_datagram(a_addr, &payload, Instant::now());
                    }
                    Transmit::Udp {
                        destination,
                        payload,
                    } => self.elsewhere.push((destination, payload)),
                    Transmit::Tun { network, packet } => self.a_tun.push((network, packet)),
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Udp {
                        destination,
                        payload,
                    } if destination == a_addr => {
                        self.datagrams += 1;
                        self.a.handle_datagram(b_addr, &payload, Instant::now());
                    }
                    Transmit::Udp {
                        destination,
                        payload,
                    } => self.elsewhere.push((destination, payload)),
                    Transmit::Tun { network, packet } => self.b_tun.push((network, packet)),
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the two dataplanes never went quiet");
    }
}

fn udp(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4(src, dst, 64).udp(4000, 5000);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

#[test]
fn packets_cross_with_their_network_and_arrive_unchanged() {
    let mut p = Pair::new(&[1001, 1002], 1400);
    let packet = udp([10, 10, 1, 10], [10, 10, 2, 10], b"hello prod");
    p.a.handle_tun_packet(1001, &packet, Instant::now());
    p.pump();
    assert_eq!(p.b_tun, vec![(1001, packet.clone())]);
    // The same addresses in the other network arrive in the other network only.
    let staging = udp([10, 10, 1, 10], [10, 10, 2, 10], b"hello staging");
    p.a.handle_tun_packet(1002, &staging, Instant::now());
    p.pump();
    assert_eq!(p.b_tun[1], (1002, staging));
    // And back.
    let reply = udp([10, 10, 2, 10], [10, 10, 1, 10], b"reply");
    p.b.handle_tun_packet(1001, &reply, Instant::now());
    p.pump();
    assert_eq!(p.a_tun, vec![(1001, reply)]);
    let status = p.a.status();
    assert_eq!(status.drops.total(), 0, "{:?}", status.drops);
    assert!(
        status.peers[0].since_last_handshake.is_some(),
        "a handshake completed"
    );
}

#[test]
fn a_source_the_peer_may_not_use_is_dropped() {
    let mut p = Pair::new(&[1001], 1400);
    // 10.10.9.9 is nobody's prefix: A forwards it (its TUN is trusted), B refuses it.
    p.a.handle_tun_packet(
        1001,
        &udp([10, 10, 9, 9], [10, 10, 2, 10], b"spoof"),
        Instant::now(),
    );
    // A packet from B's own prefix, coming from A, is just as false.
    p.a.handle_tun_packet(
        1001,
        &udp([10, 10, 2, 99], [10, 10, 2, 10], b"spoof"),
        Instant::now(),
    );
    p.pump();
    assert!(p.b_tun.is_empty());
    assert_eq!(p.b.status().drops.get(DropReason::SpoofedSource), 2);
}

#[test]
fn a_network_the_receiver_lacks_is_dropped_and_counted() {
    let now = Instant::now();
    let mut p = Pair::new(&[1001], 1400);
    p.a.apply(&config(1, &[1001, 1003], 1400), now);
    p.pump();
    p.a.handle_tun_packet(1003, &udp([10, 10, 1, 10], [10, 10, 2, 10], b"x"), now);
    p.pump();
    assert!(p.b_tun.is_empty());
    assert_eq!(p.b.status().drops.get(DropReason::UnknownNetwork), 1);
}

#[test]
fn a_gateway_using_another_infra_address_is_refused() {
    let now = Instant::now();
    let mut p = Pair::new(&[1001], 1400);
    let mut lying = config(1, &[1001], 1400);
    lying.infra_address = Ipv4Addr::new(100, 64, 0, 77);
    p.a.apply(&lying, now);
    p.a.handle_tun_packet(1001, &udp([10, 10, 1, 10], [10, 10, 2, 10], b"x"), now);
    p.pump();
    assert!(p.b_tun.is_empty());
    assert_eq!(p.b.status().drops.get(DropReason::SpoofedInfraAddress), 1);
}

#[test]
fn oversized_df_packets_get_fragmentation_needed_with_the_network_mtu() {
    let mut p = Pair::new(&[1001], 1300);
    let big = udp([10, 10, 1, 10], [10, 10, 2, 10], &[0u8; 1400]);
    p.a.handle_tun_packet(1001, &big, Instant::now());
    p.pump();
    assert!(p.b_tun.is_empty());
    assert_eq!(
        p.a_tun.len(),
        1,
        "the ICMP error goes back into the TUN it came from"
    );
    let (network, icmp) = &p.a_tun[0];
    assert_eq!(*network, 1001);
    let sliced = SlicedPacket::from_ip(icmp).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = sliced.transport else {
        panic!("not ICMPv4")
    };
    assert_eq!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1300 }
        )
    );
    assert_eq!(p.a.status().drops.get(DropReason::TooBig), 1);
}

#[test]
fn tcp_syn_mss_is_clamped_to_the_network_mtu() {
    let mut p = Pair::new(&[1001], 1300);
    let builder = PacketBuilder::ipv4([10, 10, 1, 10], [10, 10, 2, 10], 64)
        .tcp(40000, 80, 1, 65535)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap();
    let mut syn = Vec::new();
    builder.write(&mut syn, &[]).unwrap();
    p.a.handle_tun_packet(1001, &syn, Instant::now());
    p.pump();
    let (_, arrived) = &p.b_tun[0];
    let sliced = SlicedPacket::from_ip(arrived).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
        panic!("not TCP")
    };
    let mss: Vec<u16> = tcp
        .options_iterator()
        .filter_map(|o| match o {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(mss, [1260]);
}

#[test]
fn adding_a_network_keeps_the_sessions() {
    let now = Instant::now();
    let mut p = Pair::new(&[1001], 1400);
    p.a.handle_tun_packet(1001, &udp([10, 10, 1, 10], [10, 10, 2, 10], b"x"), now);
    p.pump();
    let before = p.a.status().peers[0].clone();
    let report_a = p.a.apply(&config(1, &[1001, 1002], 1400), now);
    let report_b = p.b.apply(&config(2, &[1001, 1002], 1400), now);
    assert_eq!(
        (
            report_a.peers_kept,
            report_a.peers_added,
            report_a.networks_added
        ),
        (1, 0, 1)
    );
    assert_eq!(report_b.peers_kept, 1);
    let datagrams = p.datagrams;
    p.a.handle_tun_packet(1002, &udp([10, 10, 1, 10], [10, 10, 2, 10], b"y"), now);
    p.pump();
    assert_eq!(
        p.datagrams,
        datagrams + 1,
        "one data message, no new handshake"
    );
    let after = p.a.status().peers[0].clone();
    assert!(after.wireguard_tx_bytes > before.wireguard_tx_bytes);
    assert!(after.since_last_handshake >= before.since_last_handshake);
    assert_eq!(p.b_tun.last().unwrap().0, 1002);
}

#[test]
fn workload_peers_send_plain_packets_into_their_network_only() {
    let now = Instant::now();
    let workload_private = [9u8; 32];
    let workload_addr: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let mut cfg = config(2, &[1001, 1002], 1400);
    cfg.workload_peers.push(WorkloadPeerConfig {
        public_key: public(workload_private),
        network: 1002,
        addresses: vec![net("10.10.2.77/32")],
        endpoint: None,
    });
    let mut b = Dataplane::new(&cfg, now);
    // The workload is a plain WireGuard client whose peer is gateway B.
    let mut client = Tunn::new(
        StaticSecret::from(workload_private),
        PublicKey::from(public([2; 32])),
        None,
        None,
        1,
        None,
    );
    let mut buf = vec![0u8; 2048];
    let mut to_b: VecDeque<Vec<u8>> = VecDeque::new();
    let packet = udp([10, 10, 2, 77], [10, 10, 2, 10], b"from a container");
    if let TunnResult::WriteToNetwork(init) = client.encapsulate(&packet, &mut buf) {
        to_b.push_back(init.to_vec());
    }
    let mut delivered = vec![];
    for _ in 0..10 {
        while let Some(d) = to_b.pop_front() {
            b.handle_datagram(workload_addr, &d, now);
        }
        while let Some(t) = b.poll_transmit() {
            match t {
                Transmit::Udp {
                    destination,
                    payload,
                } if destination == workload_addr => {
                    let mut out = vec![0u8; 2048];
                    let mut result =
                        client.decapsulate(Some(workload_addr.ip()), &payload, &mut out);
                    while let TunnResult::WriteToNetwork(d) = result {
                        to_b.push_back(d.to_vec());
                        result = client.decapsulate(None, &[], &mut out);
                    }
                }
                Transmit::Tun { network, packet } => delivered.push((network, packet)),
                Transmit::Udp { .. } => {}
            }
        }
    }
    assert_eq!(
        delivered,
        vec![(1002, packet)],
        "into its own network, and no other"
    );
    // A source address it was not given is refused.
    let spoofed = udp([10, 10, 2, 78], [10, 10, 2, 10], b"spoof");
    if let TunnResult::WriteToNetwork(d) = client.encapsulate(&spoofed, &mut buf) {
        b.handle_datagram(workload_addr, d, now);
    }
    assert_eq!(b.status().drops.get(DropReason::SpoofedSource), 1);
}

#[test]
fn oversized_packets_without_df_arrive_as_fragments() {
    let mut p = Pair::new(&[1001], 1300);
    let mut big = udp([10, 10, 1, 10], [10, 10, 2, 10], &[7u8; 3000]);
    big[6] &= !0x40; // clear Don't Fragment
    big[10..12].copy_from_slice(&[0, 0]);
    let header = etherparse::Ipv4HeaderSlice::from_slice(&big)
        .unwrap()
        .to_header();
    big[10..12].copy_from_slice(&header.calc_header_checksum().to_be_bytes());
    p.a.handle_tun_packet(1001, &big, Instant::now());
    p.pump();
    assert_eq!(p.b_tun.len(), 3, "3,028 bytes through an MTU of 1,300");
    let mut payload = Vec::new();
    for (network, fragment) in &p.b_tun {
        assert_eq!(*network, 1001);
        assert!(fragment.len() <= 1300);
        payload.extend_from_slice(&fragment[20..]);
    }
    assert_eq!(
        payload,
        big[20..],
        "the fragments carry the whole packet, in order"
    );
    assert_eq!(p.a.status().drops.total(), 0);
}

#[test]
fn packets_follow_the_old_tables_until_the_new_ones_are_installed() {
    let now = Instant::now();
    let mut p = Pair::new(&[1001], 1400);
    let to_b = |payload: &[u8]| udp([10, 10, 1, 10], [10, 10, 2, 10], payload);
    // Network 1002 appears; B has it already.
    p.b.apply(&config(2, &[1001, 1002], 1400), now);
    let synced = p.a.sync_peers(&config(1, &[1001, 1002], 1400));
    let tables = synced.build_tables(&config(1, &[1001, 1002], 1400));
    // Built but not installed: 1001 forwards as before, 1002 does not exist yet.
    p.a.handle_tun_packet(1001, &to_b(b"old tables"), now);
    p.a.handle_tun_packet(1002, &to_b(b"too early"), now);
    p.pump();
    assert_eq!(p.b_tun, vec![(1001, to_b(b"old tables"))]);
    assert_eq!(p.a.status().drops.get(DropReason::UnknownNetwork), 1);
    let (report, _retired) = p.a.install_tables(tables, now);
    assert_eq!(
        (
            report.peers_kept,
            report.networks_added,
            report.networks_removed
        ),
        (1, 1, 0)
    );
    p.a.handle_tun_packet(1002, &to_b(b"new tables"), now);
    p.pump();
    assert_eq!(p.b_tun.last(), Some(&(1002, to_b(b"new tables"))));
}

#[test]
fn a_new_private_key_never_lets_old_tables_reach_a_new_peer() {
    let now = Instant::now();
    let mut p = Pair::new(&[1001], 1400);
    // A gets a new key and, in the same step, B's key changes too: B is a new peer. The
    // tables still in place name the old B, which is gone: its packets are dropped, never
    // sent to whoever the new set numbers first.
    let mut rekeyed = config(1, &[1001], 1400);
    rekeyed.private_key = [7; 32];
    rekeyed.gateway_peers[0].public_key = public([9; 32]);
    rekeyed.networks[0].remote_routes[0].peer = public([9; 32]);
    let synced = p.a.sync_peers(&rekeyed);
    p.a.handle_tun_packet(1001, &udp([10, 10, 1, 10], [10, 10, 2, 10], b"x"), now);
    assert_eq!(p.a.status().drops.get(DropReason::UnknownPeer), 1);
    let tables = synced.build_tables(&rekeyed);
    let (report, _retired) = p.a.install_tables(tables, now);
    assert_eq!((report.peers_removed, report.peers_added), (1, 1));
}

#[test]
fn packets_the_shell_loses_are_counted_with_the_cores_drops() {
    let mut p = Pair::new(&[1001], 1400);
    p.a.count_io_drops(Some(1001), DropReason::UnreadableTunRead, 1);
    p.a.count_io_drops(None, DropReason::SendFailed, 3);
    p.a.count_io_drops(Some(4242), DropReason::SendFailed, 0);
    let status = p.a.status();
    assert_eq!(status.drops.get(DropReason::SendFailed), 3);
    assert_eq!(status.drops.get(DropReason::UnreadableTunRead), 1);
    assert_eq!(status.drops.total(), 4);
    let network = &status.networks[0];
    assert_eq!(network.drops.get(DropReason::UnreadableTunRead), 1);
    assert_eq!(network.drops.get(DropReason::SendFailed), 0);
}
