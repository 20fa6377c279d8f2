//! The forwarder: a sans-IO state machine that takes packets from TUNs and datagrams from
//! the network, and says what to write where.
//!
//! TUN(network) → lookup → label → encrypt → UDP; UDP → decrypt → peer → network (by label,
//! or by the workload peer's binding) → anti-spoofing → policy → lookup → TUN or a peer.
//! Time is passed in; nothing here touches a socket, a device or the clock.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{DataplaneConfig, PeerKey};
use crate::counters::{DropReason, Drops, Traffic};
use crate::fragment::fragment_ipv4;
use crate::label_codec::{self, LABEL_OVERHEAD};
use crate::mtu::{clamp_mss, mss_for_mtu, needs_too_big, too_big_reply};
use crate::outputs::Outputs;
use crate::packet::IpPacket;
use crate::peers::{PeerChanges, PeerId, PeerSet, PeerSpec, Role};
use crate::policy::{AllowAll, Policy};
use crate::routing::NetworkTable;

/// How often peers' WireGuard timers are consulted.
const TICK: Duration = Duration::from_millis(250);

/// The source of ICMPv6 errors weft itself sends: the infra address inside
/// `fd77:6566:7400::/96` ("weft" in ASCII hex). A gateway has no IPv6 address of its own in
/// a tenant network, and an IPv4-mapped source would be dropped by the receiving host.
fn icmpv6_source(infra: std::net::Ipv4Addr) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from(
        0xfd77_6566_7400_0000_0000_0000_0000_0000_u128 | u128::from(u32::from(infra)),
    )
}

/// Something the shell must write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// A datagram for the UDP socket.
    Udp {
        /// Where to send it.
        destination: SocketAddr,
        /// The WireGuard message.
        payload: Vec<u8>,
    },
    /// A packet for a network's TUN device.
    Tun {
        /// The network's label.
        network: u32,
        /// The IP packet.
        packet: Vec<u8>,
    },
}

/// Where a route leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Out of this network's TUN, to the site.
    Local,
    /// To another gateway, labelled.
    Gateway(PeerId),
    /// To a workload peer, plain.
    Workload(PeerId),
}

/// Where a packet came from, for anti-spoofing and loop prevention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ingress {
    Tun,
    Gateway(PeerId),
    Workload(PeerId),
}

struct Network {
    name: String,
    mtu: u16,
    table: NetworkTable<Route>,
    received: Traffic,
    sent: Traffic,
    drops: Drops,
}

/// What changed when a new configuration was applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Networks that appeared.
    pub networks_added: usize,
    /// Networks that went away.
    pub networks_removed: usize,
    /// Peers that appeared (they start a handshake).
    pub peers_added: usize,
    /// Peers that went away.
    pub peers_removed: usize,
    /// Peers that stayed, with their sessions.
    pub peers_kept: usize,
}

/// The peers of a configuration as the dataplane numbered them, between
/// [`Dataplane::sync_peers`] and [`Dataplane::install_tables`].
pub struct SyncedPeers {
    ids: HashMap<PeerKey, PeerId>,
    report: ApplyReport,
}

impl SyncedPeers {
    /// Builds every network's routing table: the slow step of a reconfiguration (a
    /// million prefixes take a fraction of a second), done without the dataplane so that
    /// forwarding goes on meanwhile with the old tables.
    pub fn build_tables(self, config: &DataplaneConfig) -> StagedTables {
        let networks = config
            .networks
            .iter()
            .map(|n| {
                let mut table = NetworkTable::new();
                for prefix in &n.local_prefixes {
                    table.insert(*prefix, Route::Local);
                }
                for r in &n.remote_routes {
                    if let Some(&id) = self.ids.get(&r.peer) {
                        table.insert(r.prefix, Route::Gateway(id));
                    }
                }
                for w in config
                    .workload_peers
                    .iter()
                    .filter(|w| w.network == n.label)
                {
                    if let Some(&id) = self.ids.get(&w.public_key) {
                        for address in &w.addresses {
                            table.insert(*address, Route::Workload(id));
                        }
                    }
                }
                // Large tables get their compiled IPv4 index here, beside forwarding.
                table.seal();
                StagedNetwork {
                    label: n.label,
                    name: n.name.clone(),
                    mtu: n.mtu,
                    table,
                }
            })
            .collect();
        StagedTables {
            networks,
            report: self.report,
        }
    }
}

/// Routing tables built by [`SyncedPeers::build_tables`], ready for
/// [`Dataplane::install_tables`].
pub struct StagedTables {
    networks: Vec<StagedNetwork>,
    report: ApplyReport,
}

/// Routing tables [`Dataplane::install_tables`] replaced, freed when this is dropped.
pub struct RetiredTables {
    /// Held only to be freed where the caller chooses.
    _tables: Vec<NetworkTable<Route>>,
}

struct StagedNetwork {
    label: u32,
    name: String,
    mtu: u16,
    table: NetworkTable<Route>,
}

/// The forwarder of one gateway.
pub struct Dataplane {
    infra_address: std::net::Ipv4Addr,
    networks: BTreeMap<u32, Network>,
    peers: PeerSet,
    policy: Box<dyn Policy>,
    outputs: Outputs,
    drops: Drops,
    next_tick: Instant,
    scratch: Vec<u8>,
    /// The last decrypted packet; kept to reuse its allocation.
    decrypted: Vec<u8>,
}

impl Dataplane {
    /// A dataplane in the state `config` describes; peers with known endpoints start their
    /// handshakes (see [`Dataplane::poll_transmit`]).
    pub fn new(config: &DataplaneConfig, now: Instant) -> Self {
        let mut dataplane = Self {
            infra_address: config.infra_address,
            networks: BTreeMap::new(),
            peers: PeerSet::new(config.private_key),
            policy: Box::new(AllowAll),
            outputs: Outputs::default(),
            drops: Drops::default(),
            next_tick: now,
            scratch: Vec::with_capacity(65_536),
            decrypted: Vec::with_capacity(65_536),
        };
        dataplane.apply(config, now);
        dataplane
    }

    /// Replaces the policy stage.
    pub fn set_policy(&mut self, policy: Box<dyn Policy>) {
        self.policy = policy;
    }

    /// Moves to the state `config` describes, changing only what differs: peers whose key
    /// stays keep their sessions, networks whose label stays keep their counters.
    ///
    /// The same as [`Dataplane::sync_peers`], [`SyncedPeers::build_tables`] and
    /// [`Dataplane::install_tables`] in a row; a shell that forwards while it reconfigures
    /// calls them itself and builds the tables without holding the dataplane.
    pub fn apply(&mut self, config: &DataplaneConfig, now: Instant) -> ApplyReport {
        let tables = self.sync_peers(config).build_tables(config);
        self.install_tables(tables, now).0
    }

    /// The first step of [`Dataplane::apply`], quick: makes the peers match `config` (new
    /// ones start their handshakes, removed ones are forgotten, kept ones keep their
    /// sessions) and returns what the tables need to know of them. Until
    /// [`Dataplane::install_tables`], packets keep following the old tables; those routed
    /// to a removed peer are dropped as sent to an unknown peer.
    pub fn sync_peers(&mut self, config: &DataplaneConfig) -> SyncedPeers {
        let mut report = ApplyReport::default();
        if !self.peers.has_private_key(&config.private_key) {
            report.peers_removed = self.peers.iter().count();
            self.peers = self.peers.rekeyed(config.private_key);
        }
        self.infra_address = config.infra_address;
        let specs: Vec<PeerSpec> = config
            .gateway_peers
            .iter()
            .map(|p| PeerSpec {
                public_key: p.public_key,
                role: Role::Gateway {
                    infra_address: p.infra_address,
                },
                endpoint: p.endpoint,
                keepalive: p.persistent_keepalive,
            })
            .chain(config.workload_peers.iter().map(|w| PeerSpec {
                public_key: w.public_key,
                role: Role::Workload { network: w.network },
                endpoint: w.endpoint,
                keepalive: None,
            }))
            .collect();
        let PeerChanges {
            added,
            removed,
            kept,
        } = self.peers.sync(&specs, &mut self.outputs);
        report.peers_added += added;
        report.peers_removed += removed;
        report.peers_kept += kept;
        let ids = specs
            .iter()
            .filter_map(|s| Some((s.public_key, self.peers.id_of(&s.public_key)?)))
            .collect();
        SyncedPeers { ids, report }
    }

    /// The last step of [`Dataplane::apply`], quick: puts the tables built for the peers
    /// of [`Dataplane::sync_peers`] in place, keeping the counters of networks that stay.
    /// The tables it replaces come back to be freed after the caller lets go of the
    /// dataplane: freeing a million-prefix table and its index takes longer than the swap.
    pub fn install_tables(
        &mut self,
        tables: StagedTables,
        now: Instant,
    ) -> (ApplyReport, RetiredTables) {
        let mut report = tables.report;
        let mut retired = Vec::new();
        let mut old = std::mem::take(&mut self.networks);
        for staged in tables.networks {
            let network = match old.remove(&staged.label) {
                Some(mut kept) => {
                    kept.name = staged.name;
                    kept.mtu = staged.mtu;
                    retired.push(std::mem::replace(&mut kept.table, staged.table));
                    kept
                }
                None => {
                    report.networks_added += 1;
                    Network {
                        name: staged.name,
                        mtu: staged.mtu,
                        table: staged.table,
                        received: Traffic::default(),
                        sent: Traffic::default(),
                        drops: Drops::default(),
                    }
                }
            };
            self.networks.insert(staged.label, network);
        }
        report.networks_removed = old.len();
        retired.extend(old.into_values().map(|n| n.table));
        self.next_tick = self.next_tick.min(now);
        (report, RetiredTables { _tables: retired })
    }

    /// A packet the network's TUN device gave us.
    pub fn handle_tun_packet(&mut self, network: u32, packet: &[u8], _now: Instant) {
        let Some(net) = self.networks.get_mut(&network) else {
            self.drops.count(DropReason::UnknownNetwork);
            return;
        };
        net.received.count(packet.len());
        self.forward(network, Ingress::Tun, packet);
    }

    /// A datagram the UDP socket received from `from`.
    pub fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], _now: Instant) {
        let mut packet = std::mem::take(&mut self.decrypted);
        if let Some(peer_id) = self.peers.decapsulate(
            from,
            datagram,
            &mut packet,
            &mut self.outputs,
            &mut self.drops,
        ) {
            self.forward_decrypted(peer_id, &packet);
        }
        self.decrypted = packet;
    }

    /// A packet decrypted from `peer_id`: which network it belongs to, then on.
    fn forward_decrypted(&mut self, peer_id: PeerId, packet: &[u8]) {
        let Some(role) = self.peers.get(peer_id).map(|p| p.role) else {
            return;
        };
        match role {
            Role::Gateway { infra_address } => {
                let labelled = match label_codec::decode(packet) {
                    Ok(l) => l,
                    Err(_) => return self.drops.count(DropReason::BadLabelHeader),
                };
                if labelled.source != infra_address || labelled.destination != self.infra_address {
                    return self.drops.count(DropReason::SpoofedInfraAddress);
                }
                let Some(net) = self.networks.get_mut(&labelled.label) else {
                    return self.drops.count(DropReason::UnknownNetwork);
                };
                net.received.count(labelled.inner.len());
                self.forward(labelled.label, Ingress::Gateway(peer_id), labelled.inner);
            }
            Role::Workload { network } => {
                let Some(net) = self.networks.get_mut(&network) else {
                    return self.drops.count(DropReason::UnknownNetwork);
                };
                net.received.count(packet.len());
                self.forward(network, Ingress::Workload(peer_id), packet);
            }
        }
    }

    /// Runs timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.peers.tick(now, &mut self.outputs);
            self.next_tick = now + TICK;
        }
    }

    /// When [`Dataplane::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// The next thing to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outputs.pop()
    }

    /// Counts `n` packets the shell lost in I/O (a read it could not split, a send the
    /// kernel refused), in network `network`'s counters too when it is known.
    pub fn count_io_drops(&mut self, network: Option<u32>, reason: DropReason, n: u64) {
        self.drops.count_many(reason, n);
        if let Some(net) = network.and_then(|label| self.networks.get_mut(&label)) {
            net.drops.count_many(reason, n);
        }
    }

    /// Takes back the buffer of a written transmit, so that the next packet reuses it
    /// instead of allocating (optional: a transmit that is dropped is simply freed).
    pub fn recycle(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Udp { payload, .. } => self.outputs.recycle(payload),
            Transmit::Tun { packet, .. } => self.outputs.recycle(packet),
        }
    }

    /// The common path once the network of a packet is known.
    fn forward(&mut self, label: u32, ingress: Ingress, packet: &[u8]) {
        let net = self
            .networks
            .get_mut(&label)
            .expect("callers checked the network");
        let parsed = match IpPacket::parse(packet) {
            Ok(p) => p,
            Err(_) => {
                net.drops.count(DropReason::MalformedPacket);
                return self.drops.count(DropReason::MalformedPacket);
            }
        };
        // Anti-spoofing: what arrives through a peer must come from an address routed to
        // that same peer in this network.
        let allowed_source = match ingress {
            Ingress::Tun => true,
            Ingress::Gateway(id) => {
                net.table.lookup(parsed.source()).map(|(_, r)| *r) == Some(Route::Gateway(id))
            }
            Ingress::Workload(id) => {
                net.table.lookup(parsed.source()).map(|(_, r)| *r) == Some(Route::Workload(id))
            }
        };
        if !allowed_source {
            net.drops.count(DropReason::SpoofedSource);
            return self.drops.count(DropReason::SpoofedSource);
        }
        let Some(route) = net.table.lookup(parsed.destination()).map(|(_, r)| *r) else {
            net.drops.count(DropReason::NoRoute);
            return self.drops.count(DropReason::NoRoute);
        };
        if !self.policy.allows(label, &parsed) {
            net.drops.count(DropReason::PolicyDenied);
            return self.drops.count(DropReason::PolicyDenied);
        }
        let looped = match (ingress, route) {
            (Ingress::Tun, Route::Local) => true,
            (Ingress::Gateway(_), Route::Gateway(_)) => true,
            (Ingress::Workload(a), Route::Workload(b)) => a == b,
            _ => false,
        };
        if looped {
            net.drops.count(DropReason::Loop);
            return self.drops.count(DropReason::Loop);
        }
        let leaves_by_peer = !matches!(route, Route::Local);
        if leaves_by_peer && needs_too_big(&parsed, net.mtu) {
            net.drops.count(DropReason::TooBig);
            self.drops.count(DropReason::TooBig);
            let from = match parsed.source() {
                IpAddr::V4(_) => IpAddr::V4(self.infra_address),
                IpAddr::V6(_) => IpAddr::V6(icmpv6_source(self.infra_address)),
            };
            let mut reply = Vec::new();
            if too_big_reply(&parsed, net.mtu, from, &mut reply) {
                self.send_back(label, ingress, reply);
            }
            return;
        }
        let mtu = net.mtu;
        let mss = mss_for_mtu(mtu, parsed.destination().is_ipv6());
        let len = parsed.len();
        if !leaves_by_peer || len <= usize::from(mtu) {
            net.sent.count(len);
            return self.send(label, route, &packet[..len], Some(mss));
        }
        // Too big but allowed to be split (IPv4 without DF): split like any router would.
        let mut whole = packet[..len].to_vec();
        clamp_mss(&mut whole, mss);
        let mut pieces = Vec::new();
        let split = IpPacket::parse(&whole)
            .ok()
            .is_some_and(|p| fragment_ipv4(&p, mtu, &mut pieces).is_ok());
        if !split {
            net.drops.count(DropReason::TooBig);
            return self.drops.count(DropReason::TooBig);
        }
        for piece in &pieces {
            net.sent.count(piece.len());
        }
        for piece in &pieces {
            self.send(label, route, piece, None);
        }
    }

    /// Sends one packet of network `label` along `route`, clamping a TCP SYN's MSS to `mss`
    /// on the way. The packet is copied once, into the buffer it is encrypted (or written)
    /// from; a gateway's label header goes in front of it there.
    fn send(&mut self, label: u32, route: Route, packet: &[u8], mss: Option<u16>) {
        match route {
            Route::Local => {
                let out = self.outputs.tun(label, packet);
                if let Some(mss) = mss {
                    clamp_mss(out, mss);
                }
            }
            Route::Workload(id) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(packet);
                if let Some(mss) = mss {
                    clamp_mss(&mut self.scratch, mss);
                }
                self.peers
                    .encapsulate(id, &self.scratch, &mut self.outputs, &mut self.drops);
            }
            Route::Gateway(id) => {
                let Some(Role::Gateway { infra_address }) = self.peers.get(id).map(|p| p.role)
                else {
                    return self.drops.count(DropReason::UnknownPeer);
                };
                self.scratch.clear();
                self.scratch.resize(LABEL_OVERHEAD, 0);
                self.scratch.extend_from_slice(packet);
                if let Some(mss) = mss {
                    clamp_mss(&mut self.scratch[LABEL_OVERHEAD..], mss);
                }
                match label_codec::encode_in_place(
                    self.infra_address,
                    infra_address,
                    label,
                    &mut self.scratch,
                ) {
                    Ok(len) => self.peers.encapsulate(
                        id,
                        &self.scratch[..len],
                        &mut self.outputs,
                        &mut self.drops,
                    ),
                    Err(_) => self.drops.count(DropReason::MalformedPacket),
                }
            }
        }
    }

    /// Sends an ICMP error back the way the offending packet came.
    fn send_back(&mut self, label: u32, ingress: Ingress, reply: Vec<u8>) {
        let route = match ingress {
            Ingress::Tun => Route::Local,
            Ingress::Workload(id) => Route::Workload(id),
            Ingress::Gateway(id) => Route::Gateway(id),
        };
        self.send(label, route, &reply, None);
    }

    /// The labels of the configured networks, in order; the shell keeps one TUN per label.
    pub fn network_labels(&self) -> Vec<u32> {
        self.networks.keys().copied().collect()
    }

    /// A snapshot of counters, peers and routes, for `weft status` and `wg show`.
    pub fn status(&self) -> Status {
        let peer_name = |id: PeerId| self.peers.get(id).map(|p| p.public_key);
        Status {
            networks: self
                .networks
                .iter()
                .map(|(label, n)| NetworkStatus {
                    label: *label,
                    name: n.name.clone(),
                    mtu: n.mtu,
                    received: n.received,
                    sent: n.sent,
                    drops: n.drops.clone(),
                    routes: n
                        .table
                        .iter()
                        .map(|(prefix, route)| RouteStatus {
                            prefix: prefix.to_string(),
                            via: match route {
                                Route::Local => Via::Local,
                                Route::Gateway(id) => {
                                    peer_name(*id).map_or(Via::Local, Via::Gateway)
                                }
                                Route::Workload(id) => {
                                    peer_name(*id).map_or(Via::Local, Via::Workload)
                                }
                            },
                        })
                        .collect(),
                })
                .collect(),
            peers: self
                .peers
                .iter()
                .map(|p| {
                    let (since, tx, rx) = p.wireguard_stats();
                    PeerStatus {
                        public_key: PublicKeyText(p.public_key),
                        role: match p.role {
                            Role::Gateway { .. } => "gateway",
                            Role::Workload { .. } => "workload",
                        },
                        endpoint: p.endpoint,
                        persistent_keepalive: p.keepalive,
                        since_last_handshake: since,
                        wireguard_tx_bytes: tx as u64,
                        wireguard_rx_bytes: rx as u64,
                        received: p.received,
                        sent: p.sent,
                    }
                })
                .collect(),
            drops: self.drops.clone(),
        }
    }
}

/// A public key printed in base64, as `wg` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKeyText(pub PeerKey);

impl Serialize for PublicKeyText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

/// What the dataplane is doing.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Per network.
    pub networks: Vec<NetworkStatus>,
    /// Per peer.
    pub peers: Vec<PeerStatus>,
    /// All drops, by reason.
    pub drops: Drops,
}

/// One network's counters and routes.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkStatus {
    /// Its label.
    pub label: u32,
    /// Its name.
    pub name: String,
    /// Its MTU.
    pub mtu: u16,
    /// Inner packets that entered it here.
    pub received: Traffic,
    /// Inner packets it sent on.
    pub sent: Traffic,
    /// Its drops by reason.
    pub drops: Drops,
    /// Its routing table.
    pub routes: Vec<RouteStatus>,
}

/// One route of a network.
#[derive(Clone, Debug, Serialize)]
pub struct RouteStatus {
    /// The destination.
    pub prefix: String,
    /// Where it leads.
    pub via: Via,
}

/// Where a route leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "peer", rename_all = "snake_case")]
pub enum Via {
    /// The site, through the network's TUN.
    Local,
    /// Another gateway.
    Gateway(#[serde(serialize_with = "key_text")] PeerKey),
    /// A workload peer.
    Workload(#[serde(serialize_with = "key_text")] PeerKey),
}

fn key_text<S: serde::Serializer>(key: &PeerKey, s: S) -> Result<S::Ok, S::Error> {
    PublicKeyText(*key).serialize(s)
}

/// One peer's state.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Its public key.
    pub public_key: PublicKeyText,
    /// `gateway` or `workload`.
    pub role: &'static str,
    /// Where it is.
    pub endpoint: Option<SocketAddr>,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// Time since the last completed handshake.
    pub since_last_handshake: Option<Duration>,
    /// Payload bytes WireGuard sent to it.
    pub wireguard_tx_bytes: u64,
    /// Payload bytes WireGuard received from it.
    pub wireguard_rx_bytes: u64,
    /// Datagrams received from it.
    pub received: Traffic,
    /// Datagrams sent to it.
    pub sent: Traffic,
}
