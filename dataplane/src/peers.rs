//! The WireGuard peers of a gateway: one boringtun session state per peer, the demultiplexing
//! of incoming datagrams to them, their timers and their endpoints.
//!
//! boringtun's `Tunn` keeps its own clock for rekeying and keepalives; this module decides
//! when to consult it (`tick`), from the time the caller passes in.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};

use crate::config::PeerKey;
use crate::counters::{DropReason, Drops, Traffic};
use crate::outputs::Outputs;

/// Handshakes a gateway answers per second before it asks for cookies (WireGuard's DoS
/// protection), as boringtun's own device uses.
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// Largest datagram: a 64 KiB inner packet plus WireGuard's 32 bytes.
const BUFFER_SIZE: usize = 65_536 + 64;

/// A peer's number for the life of the process; never reused, so a stale session index from
/// a removed peer can never reach a new one. boringtun keeps it in the top 24 bits of the
/// session index.
pub(crate) type PeerId = u32;

/// What a peer is to this gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Another gateway: carries labelled packets between its and our infra address.
    Gateway {
        /// Its infra address.
        infra_address: Ipv4Addr,
    },
    /// A workload bound to one network: carries plain IP packets of that network.
    Workload {
        /// The network's label.
        network: u32,
    },
}

/// What the set of peers should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerSpec {
    pub public_key: PeerKey,
    pub role: Role,
    pub endpoint: Option<SocketAddr>,
    pub keepalive: Option<u16>,
}

pub(crate) struct Peer {
    pub id: PeerId,
    pub public_key: PeerKey,
    pub role: Role,
    pub endpoint: Option<SocketAddr>,
    pub keepalive: Option<u16>,
    /// Datagrams received from it.
    pub received: Traffic,
    /// Datagrams sent to it.
    pub sent: Traffic,
    configured_endpoint: Option<SocketAddr>,
    tunn: Tunn,
}

impl Peer {
    /// Time since the last completed handshake, WireGuard-sent and -received payload bytes.
    pub fn wireguard_stats(&self) -> (Option<Duration>, usize, usize) {
        let (since, tx, rx, _, _) = self.tunn.stats();
        (since, tx, rx)
    }
}

/// How `sync` changed the set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerChanges {
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
}

pub(crate) struct PeerSet {
    private: StaticSecret,
    public: PublicKey,
    rate_limiter: Arc<RateLimiter>,
    peers: HashMap<PeerId, Peer>,
    by_key: HashMap<PeerKey, PeerId>,
    next_id: PeerId,
    last_rate_reset: Option<Instant>,
    buf: Vec<u8>,
}

impl PeerSet {
    pub fn new(private_key: [u8; 32]) -> Self {
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        Self {
            rate_limiter: Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT)),
            private,
            public,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            next_id: 1,
            last_rate_reset: None,
            buf: vec![0; BUFFER_SIZE],
        }
    }

    /// An empty set for a new private key whose peers are numbered after this set's, so
    /// that a number never names two peers (tables built for the old set may still be in
    /// use while the new one fills).
    pub fn rekeyed(&self, private_key: [u8; 32]) -> Self {
        Self {
            next_id: self.next_id,
            ..Self::new(private_key)
        }
    }

    /// Whether this set was made for `private_key`.
    pub fn has_private_key(&self, private_key: &[u8; 32]) -> bool {
        self.private.to_bytes() == *private_key
    }

    pub fn get(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    pub fn id_of(&self, key: &PeerKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// Makes the set match `wanted`. Peers whose key stays keep their session and counters;
    /// a new peer with a known endpoint starts its handshake at once.
    pub fn sync(&mut self, wanted: &[PeerSpec], out: &mut Outputs) -> PeerChanges {
        let mut changes = PeerChanges::default();
        let keep: HashMap<PeerKey, &PeerSpec> = wanted.iter().map(|s| (s.public_key, s)).collect();
        let gone: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| !keep.contains_key(&p.public_key))
            .map(|p| p.id)
            .collect();
        for id in gone {
            if let Some(peer) = self.peers.remove(&id) {
                self.by_key.remove(&peer.public_key);
                changes.removed += 1;
            }
        }
        for spec in wanted {
            if let Some(&id) = self.by_key.get(&spec.public_key) {
                let renewed = self
                    .peers
                    .get(&id)
                    .filter(|p| p.keepalive != spec.keepalive)
                    // boringtun fixes the keepalive at construction: a new session it is.
                    .map(|_| self.new_tunn(id, &spec.public_key, spec.keepalive));
                let peer = self.peers.get_mut(&id).expect("by_key and peers agree");
                if let Some(tunn) = renewed {
                    peer.tunn = tunn;
                    peer.keepalive = spec.keepalive;
                }
                peer.role = spec.role;
                if peer.configured_endpoint != spec.endpoint {
                    peer.configured_endpoint = spec.endpoint;
                    if spec.endpoint.is_some() {
                        peer.endpoint = spec.endpoint;
                    }
                }
                changes.kept += 1;
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut peer = Peer {
                id,
                public_key: spec.public_key,
                role: spec.role,
                endpoint: spec.endpoint,
                keepalive: spec.keepalive,
                received: Traffic::default(),
                sent: Traffic::default(),
                configured_endpoint: spec.endpoint,
                tunn: self.new_tunn(id, &spec.public_key, spec.keepalive),
            };
            if let (Some(endpoint), TunnResult::WriteToNetwork(init)) = (
                peer.endpoint,
                peer.tunn.format_handshake_initiation(&mut self.buf, false),
            ) {
                peer.sent.count(init.len());
                out.udp(endpoint, init);
            }
            self.by_key.insert(spec.public_key, id);
            self.peers.insert(id, peer);
            changes.added += 1;
        }
        changes
    }

    fn new_tunn(&self, id: PeerId, key: &PeerKey, keepalive: Option<u16>) -> Tunn {
        Tunn::new(
            self.private.clone(),
            PublicKey::from(*key),
            None,
            keepalive,
            id,
            Some(self.rate_limiter.clone()),
        )
    }

    /// Encrypts `packet` for peer `id`; the datagram (or a handshake, while there is no
    /// session and the packet waits) goes to `out`.
    pub fn encapsulate(&mut self, id: PeerId, packet: &[u8], out: &mut Outputs, drops: &mut Drops) {
        let Some(peer) = self.peers.get_mut(&id) else {
            drops.count(DropReason::UnknownPeer);
            return;
        };
        match peer.tunn.encapsulate(packet, &mut self.buf) {
            TunnResult::WriteToNetwork(datagram) => match peer.endpoint {
                Some(destination) => {
                    peer.sent.count(datagram.len());
                    out.udp(destination, datagram);
                }
                None => drops.count(DropReason::NoEndpoint),
            },
            TunnResult::Err(_) => drops.count(DropReason::WireGuard),
            _ => {}
        }
    }

    /// Decrypts a datagram from `from`. Handshake answers and packets that waited for a
    /// session go to `out`; a decrypted IP packet replaces the contents of `packet` (a buffer
    /// the caller reuses), and its peer is returned.
    pub fn decapsulate(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        packet: &mut Vec<u8>,
        out: &mut Outputs,
        drops: &mut Drops,
    ) -> Option<PeerId> {
        let (id, authenticates_sender) = match Tunn::parse_incoming_packet(datagram) {
            Err(_) => {
                drops.count(DropReason::MalformedDatagram);
                return None;
            }
            Ok(Packet::HandshakeInit(init)) => {
                let id = parse_handshake_anon(&self.private, &self.public, &init)
                    .ok()
                    .and_then(|half| self.by_key.get(&half.peer_static_public).copied());
                (id, true)
            }
            Ok(Packet::HandshakeResponse(r)) => (Some(r.receiver_idx >> 8), true),
            Ok(Packet::PacketCookieReply(c)) => (Some(c.receiver_idx >> 8), false),
            Ok(Packet::PacketData(d)) => (Some(d.receiver_idx >> 8), true),
        };
        let Some(peer) = id.and_then(|id| self.peers.get_mut(&id)) else {
            drops.count(DropReason::UnknownPeer);
            return None;
        };
        let result = match peer
            .tunn
            .decapsulate(Some(from.ip()), datagram, &mut self.buf)
        {
            TunnResult::WriteToNetwork(reply) => {
                out.udp(from, reply);
                peer.sent.count(reply.len());
                // A completed handshake releases the packets that waited for it.
                while let TunnResult::WriteToNetwork(queued) =
                    peer.tunn.decapsulate(None, &[], &mut self.buf)
                {
                    peer.sent.count(queued.len());
                    out.udp(from, queued);
                }
                None
            }
            TunnResult::WriteToTunnelV4(plain, _) | TunnResult::WriteToTunnelV6(plain, _) => {
                packet.clear();
                packet.extend_from_slice(plain);
                Some(())
            }
            TunnResult::Done => None,
            TunnResult::Err(_) => {
                drops.count(DropReason::WireGuard);
                return None;
            }
        };
        peer.received.count(datagram.len());
        if authenticates_sender {
            // Roaming: a peer is where its last authenticated message came from.
            peer.endpoint = Some(from);
        }
        result.map(|()| peer.id)
    }

    /// Runs every peer's WireGuard timers: handshake retries, rekeys, keepalives.
    pub fn tick(&mut self, now: Instant, out: &mut Outputs) {
        if self
            .last_rate_reset
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            self.rate_limiter.reset_count();
            self.last_rate_reset = Some(now);
        }
        for peer in self.peers.values_mut() {
            if let TunnResult::WriteToNetwork(datagram) = peer.tunn.update_timers(&mut self.buf)
                && let Some(destination) = peer.endpoint
            {
                peer.sent.count(datagram.len());
                out.udp(destination, datagram);
            }
        }
    }
}
