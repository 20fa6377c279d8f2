//! Counters: what the forwarder did, per network and per peer, and every packet it dropped,
//! by reason. A malformed packet is never a crash, only a count.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Not a well-formed IPv4 or IPv6 packet (from a TUN, or inside a tunnel).
    MalformedPacket,
    /// A UDP datagram that is not a WireGuard message.
    MalformedDatagram,
    /// A WireGuard message from a key or for a session index we do not know.
    UnknownPeer,
    /// WireGuard refused it: bad MAC or tag, replay, expired session, rate limit.
    WireGuard,
    /// A gateway packet whose MPLS-in-IP header is malformed.
    BadLabelHeader,
    /// A label or TUN of a network this gateway does not have.
    UnknownNetwork,
    /// A gateway packet whose outer addresses are not that gateway's and ours.
    SpoofedInfraAddress,
    /// A source address the sender may not use in that network.
    SpoofedSource,
    /// No route for the destination in the network's table.
    NoRoute,
    /// The policy stage refused it.
    PolicyDenied,
    /// The peer's endpoint is not known yet.
    NoEndpoint,
    /// It would go back where it came from, or through us from one gateway to another.
    Loop,
    /// Larger than the network's MTU; answered with ICMP "too big" when allowed.
    TooBig,
    /// A TUN read the shell could not split into packets (a malformed offload header, or a
    /// super-packet with segments larger than the shell reads).
    UnreadableTunRead,
    /// A datagram or packet the kernel refused to send or write.
    SendFailed,
}

impl DropReason {
    /// Every reason, for complete reports.
    pub const ALL: [DropReason; 15] = [
        DropReason::MalformedPacket,
        DropReason::MalformedDatagram,
        DropReason::UnknownPeer,
        DropReason::WireGuard,
        DropReason::BadLabelHeader,
        DropReason::UnknownNetwork,
        DropReason::SpoofedInfraAddress,
        DropReason::SpoofedSource,
        DropReason::NoRoute,
        DropReason::PolicyDenied,
        DropReason::NoEndpoint,
        DropReason::Loop,
        DropReason::TooBig,
        DropReason::UnreadableTunRead,
        DropReason::SendFailed,
    ];
}

/// Drops counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Drops(BTreeMap<DropReason, u64>);

impl Drops {
    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        self.count_many(reason, 1);
    }

    /// Counts `n` drops.
    pub fn count_many(&mut self, reason: DropReason, n: u64) {
        if n > 0 {
            *self.0.entry(reason).or_default() += n;
        }
    }

    /// How many were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(&reason).copied().unwrap_or_default()
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// Traffic in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Bytes of the packets (inner packets for networks, datagrams for peers).
    pub bytes: u64,
}

impl Traffic {
    /// Counts one packet of `len` bytes.
    pub fn count(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}
