//! What the dataplane is told to be: its key, its networks and its peers.
//!
//! This is the dataplane's own input model, independent of the configuration file: the
//! gateway translates a plan into it. Applying a new one to a running dataplane changes only
//! what differs.

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::IpNet;

/// A WireGuard public key, as raw bytes.
pub type PeerKey = [u8; 32];

/// The whole desired state of one gateway's dataplane.
#[derive(Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// The gateway's WireGuard private key.
    pub private_key: [u8; 32],
    /// The gateway's infra address: the source of the IPv4 header that carries labels.
    pub infra_address: Ipv4Addr,
    /// The networks present at this gateway.
    pub networks: Vec<NetworkConfig>,
    /// The other gateways.
    pub gateway_peers: Vec<GatewayPeerConfig>,
    /// WireGuard clients bound to one network each.
    pub workload_peers: Vec<WorkloadPeerConfig>,
}

impl std::fmt::Debug for DataplaneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneConfig")
            .field("private_key", &"<redacted>")
            .field("infra_address", &self.infra_address)
            .field("networks", &self.networks)
            .field("gateway_peers", &self.gateway_peers)
            .field("workload_peers", &self.workload_peers)
            .finish()
    }
}

/// One network (VRF) at this gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Human name, `tenant/name`, for counters and logs.
    pub name: String,
    /// The MPLS label naming the network between gateways; also its identity here.
    pub label: u32,
    /// The largest inner packet the network carries.
    pub mtu: u16,
    /// Prefixes at this site: packets for them go out of the network's TUN.
    pub local_prefixes: Vec<IpNet>,
    /// Prefixes at other sites and the gateway that has them.
    pub remote_routes: Vec<RemoteRoute>,
}

/// A prefix reached through another gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    /// The destination prefix.
    pub prefix: IpNet,
    /// The gateway peer that has it.
    pub peer: PeerKey,
}

/// Another gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPeerConfig {
    /// Its WireGuard public key.
    pub public_key: PeerKey,
    /// Where to send to it, if known; learnt from its packets otherwise (roaming).
    pub endpoint: Option<SocketAddr>,
    /// Its infra address: the only outer source accepted from it.
    pub infra_address: Ipv4Addr,
    /// Seconds between keepalives, to hold NAT mappings open.
    pub persistent_keepalive: Option<u16>,
}

/// A WireGuard client that belongs to exactly one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadPeerConfig {
    /// Its WireGuard public key.
    pub public_key: PeerKey,
    /// The label of the network it is bound to.
    pub network: u32,
    /// The addresses it may send from (and that are routed to it).
    pub addresses: Vec<IpNet>,
    /// Where to send to it, if known.
    pub endpoint: Option<SocketAddr>,
}
