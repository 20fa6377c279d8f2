//! The plan of one gateway: what its dataplane and its site's route tables must look like,
//! derived from the overlay intent by a pure function.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;
use weft_config::{
    Endpoint, EndpointHost, Gateway, Intent, Label, NetworkId, NextHop, PublicKey, RouteTableRef,
};

/// Bytes WireGuard adds over an IPv4 underlay: IPv4 20 + UDP 8 + WireGuard header 16 + tag 16.
pub const WIREGUARD_OVERHEAD_V4: u16 = 60;
/// Bytes WireGuard adds over an IPv6 underlay: IPv6 40 + UDP 8 + header 16 + tag 16.
pub const WIREGUARD_OVERHEAD_V6: u16 = 80;
/// Bytes of weft's own encapsulation inside WireGuard: IPv4 header 20 + one MPLS entry 4.
pub const LABEL_OVERHEAD: u16 = 24;
/// Linux routing tables of networks are numbered from here plus the label, so they stay
/// put when networks come and go and never meet the kernel's own (253 to 255).
pub const TABLE_BASE: u32 = 1 << 20;

/// Everything one gateway must set up.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayPlan {
    /// The gateway's name.
    pub gateway: String,
    /// The site it serves.
    pub site: String,
    /// The site's kind (aws, azure, gcp, linux).
    pub site_kind: &'static str,
    /// Where it receives WireGuard.
    pub endpoint: Endpoint,
    /// UDP port to listen on.
    pub listen_port: u16,
    /// Its infra address.
    pub infra_address: Ipv4Addr,
    /// The networks attached at its site.
    pub networks: Vec<NetworkPlan>,
    /// Every other gateway.
    pub peers: Vec<PeerPlan>,
    /// Route tables of its site and the routes it must own there.
    pub route_tables: Vec<RouteTablePlan>,
}

/// One network (VRF) at a gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkPlan {
    /// The network.
    pub network: NetworkId,
    /// Its MPLS label.
    pub label: Label,
    /// The Linux routing table holding its routes.
    pub table: u32,
    /// The TUN device of the network at this gateway.
    pub tun: String,
    /// MTU of the network: the smallest underlay MTU of its sites less the encapsulation.
    pub mtu: u16,
    /// The interface its local traffic arrives on.
    pub interface: String,
    /// The gateway's own addresses on that interface.
    pub addresses: Vec<IpNet>,
    /// The IPv4 router towards the local prefixes; on-link when absent.
    pub local_router: Option<Ipv4Addr>,
    /// The IPv6 router towards the local prefixes; on-link when absent.
    pub local_router_ipv6: Option<Ipv6Addr>,
    /// Prefixes at this site, reached through `interface`.
    pub local_routes: Vec<IpNet>,
    /// Prefixes at other sites, reached through their gateways.
    pub remote_routes: Vec<RemoteRoute>,
}

/// A prefix at another site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemoteRoute {
    /// The destination.
    pub prefix: IpNet,
    /// The site it lives at.
    pub site: String,
    /// The gateway to send it to.
    pub gateway: String,
}

/// Another gateway and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerPlan {
    /// The peer's name.
    pub gateway: String,
    /// Its site.
    pub site: String,
    /// Its underlay endpoint.
    pub endpoint: Endpoint,
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// The only inner source address accepted from it: its infra address.
    pub infra_address: Ipv4Addr,
}

/// Which route tables a set of routes goes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum RouteTableTarget {
    /// A table named in the configuration.
    Table {
        /// The table.
        table: RouteTableRef,
    },
    /// Every AWS route table carrying these tags.
    Tagged {
        /// Tag key and value pairs, all required.
        tags: BTreeMap<String, String>,
    },
}

/// The routes the gateway must own in one route table (or tag selection) for one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteTablePlan {
    /// The table.
    pub target: RouteTableTarget,
    /// The network whose remote prefixes these are.
    pub network: NetworkId,
    /// Destinations: the network's prefixes at other sites.
    pub destinations: Vec<IpNet>,
    /// Where they point: this gateway.
    pub next_hop: NextHop,
    /// Whether foreign routes for these destinations may be replaced.
    pub takeover: bool,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The configuration has no such gateway.
    #[error("no gateway named `{name}`; the configuration has: {known}")]
    UnknownGateway {
        /// The name asked for.
        name: String,
        /// The gateways there are.
        known: String,
    },
}

fn overhead(endpoint: &Endpoint) -> u16 {
    match endpoint.host {
        EndpointHost::Ip(IpAddr::V4(_)) => WIREGUARD_OVERHEAD_V4,
        // A DNS name may resolve to IPv6: plan for the larger header.
        EndpointHost::Ip(IpAddr::V6(_)) | EndpointHost::Name(_) => WIREGUARD_OVERHEAD_V6,
    }
}

/// The plan of gateway `name`.
pub fn plan(intent: &Intent, name: &str) -> Result<GatewayPlan, PlanError> {
    let gateway = intent
        .gateways
        .get(name)
        .ok_or_else(|| PlanError::UnknownGateway {
            name: name.to_owned(),
            known: intent
                .gateways
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let site = &intent.sites[&gateway.site];
    let gateway_of = |site: &str| intent.gateway_at(site);
    let mut networks = Vec::new();
    let mut route_tables = Vec::new();
    for network in intent.networks.values() {
        let Some(local) = network.attachments.get(&gateway.site) else {
            continue;
        };
        let remote_routes: Vec<RemoteRoute> = network
            .attachments
            .values()
            .filter(|a| a.site != gateway.site)
            .filter_map(|a| Some((a, gateway_of(&a.site)?)))
            .flat_map(|(a, peer)| {
                a.prefixes.iter().map(|prefix| RemoteRoute {
                    prefix: *prefix,
                    site: a.site.clone(),
                    gateway: peer.name.clone(),
                })
            })
            .collect();
        let mtu = network
            .attachments
            .keys()
            .filter_map(|s| Some((intent.sites.get(s)?, gateway_of(s)?)))
            .map(|(s, g): (_, &Gateway)| {
                s.underlay_mtu
                    .saturating_sub(overhead(&g.endpoint) + LABEL_OVERHEAD)
            })
            .min()
            .unwrap_or(site.underlay_mtu - overhead(&gateway.endpoint) - LABEL_OVERHEAD);
        let destinations: Vec<IpNet> = remote_routes.iter().map(|r| r.prefix).collect();
        if local.next_hop.is_some() {
            let targets = local
                .route_tables
                .iter()
                .map(|t| RouteTableTarget::Table { table: t.clone() })
                .chain(
                    (!local.route_table_tags.is_empty()).then(|| RouteTableTarget::Tagged {
                        tags: local.route_table_tags.clone(),
                    }),
                );
            // One plan per next hop: an IPv4 address serves the IPv4 destinations and
            // `next_hop_ipv6` the IPv6 ones; an interface or instance serves both.
            let mut by_hop: Vec<(NextHop, Vec<IpNet>)> = Vec::new();
            // Validation guarantees every destination a next hop.
            for d in &destinations {
                let Some(hop) = local.next_hop_for(d) else {
                    continue;
                };
                match by_hop.iter_mut().find(|(h, _)| *h == hop) {
                    Some((_, list)) => list.push(*d),
                    None => by_hop.push((hop, vec![*d])),
                }
            }
            for target in targets {
                route_tables.extend(by_hop.iter().map(|(hop, list)| RouteTablePlan {
                    target: target.clone(),
                    network: network.id.clone(),
                    destinations: list.clone(),
                    next_hop: hop.clone(),
                    takeover: local.takeover,
                }));
            }
        }
        networks.push(NetworkPlan {
            network: network.id.clone(),
            label: network.label,
            table: TABLE_BASE + network.label.value(),
            tun: format!("weft{}", network.label),
            mtu,
            interface: local.interface.clone(),
            addresses: local.addresses.clone(),
            local_router: local.local_router,
            local_router_ipv6: local.local_router_ipv6,
            local_routes: local.prefixes.clone(),
            remote_routes,
        });
    }
    let peers = intent
        .gateways
        .values()
        .filter(|g| g.name != gateway.name)
        .map(|g| PeerPlan {
            gateway: g.name.clone(),
            site: g.site.clone(),
            endpoint: g.endpoint.clone(),
            public_key: g.public_key,
            infra_address: g.infra_address,
        })
        .collect();
    Ok(GatewayPlan {
        gateway: gateway.name.clone(),
        site: site.name.clone(),
        site_kind: site.kind.name(),
        endpoint: gateway.endpoint.clone(),
        listen_port: gateway.endpoint.port,
        infra_address: gateway.infra_address,
        networks,
        peers,
        route_tables,
    })
}

/// The plan of one gateway of `config/examples/lab.toml`, for the unit tests of the
/// translations that start from a plan.
#[cfg(test)]
pub(crate) fn lab_plan(gateway: &str) -> (Intent, GatewayPlan) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
    let intent = weft_config::Loader::new()
        .env_prefix(None)
        .file(path)
        .load()
        .expect("the lab example is valid");
    let plan = plan(&intent, gateway).expect("the lab has this gateway");
    (intent, plan)
}
