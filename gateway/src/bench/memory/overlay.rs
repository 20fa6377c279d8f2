//! The overlay `weft bench --memory` measures: one gateway with many networks and many
//! peers, generated deterministically from the two counts with the configuration crate's
//! file model, so that every run (and every machine) measures the same configuration.
//!
//! Site 0 is the measured gateway's; sites 1..=peers are its peers', one `linux` site and
//! one gateway each. Networks come in tenants of [`NETWORKS_PER_TENANT`]; each network is
//! attached at site 0 (over its own interface `net<i>`, with the gateway's transit
//! addresses and a "VPC router" behind them, as in the lab) and at
//! [`REMOTE_SITES_PER_NETWORK`] peer sites taken in turn, so that every peer carries some
//! networks and the measured gateway holds remote routes to all of them. Every network has
//! the same address space (`10.0.0.0/8`, `fd10::/32`; networks never meet, so they may
//! overlap) with site `s` holding `10.<s/256>.<s%256>.0/24` and `fd10:0:<s>::/48`.
//!
//! Gateways' endpoints lie in `198.18.0.0/15` (RFC 2544's benchmarking range): the measured
//! gateway's underlay is given `198.18.0.1/15`, and nobody answers at the peers' addresses.
//! Keys are derived from the gateway's index (SHA-256 of a fixed text), never random: they
//! protect nothing, since the peers never run.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use weft_config::file_model::{
    AttachmentSection, GatewaySection, NetworkSection, OverlayFile, OverlaySection, SiteKindName,
    SiteSection, TenantSection,
};
use weft_config::{PrivateKey, PublicKey};

use crate::bench::candidates::write_private_key;

/// Networks of one tenant; the last tenant may have fewer.
pub const NETWORKS_PER_TENANT: u32 = 100;
/// Peer sites each network is attached at besides the measured gateway's (fewer when there
/// are fewer peers): the remote prefixes of each network's routing table.
pub const REMOTE_SITES_PER_NETWORK: u32 = 3;
/// The first network's MPLS label; network `i` has `FIRST_LABEL + i` (its TUN is
/// `weft<label>`).
pub const FIRST_LABEL: u32 = 1000;
/// The WireGuard port of every gateway.
pub const LISTEN_PORT: u16 = 51820;
/// The underlay range: gateway `s` is at its address `1 + s`.
pub const UNDERLAY_NETWORK: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// The underlay's prefix length.
pub const UNDERLAY_LEN: u8 = 15;
/// The overlay's infra prefix: gateway `s` has its address `1 + s`.
pub const INFRA_NETWORK: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// The infra prefix's length.
pub const INFRA_LEN: u8 = 16;
/// Most networks or peers `weft bench --memory` generates: the addressing scheme holds
/// 65,534 sites; ten thousand of either is far beyond any deployment and still starts in
/// minutes.
pub const MAX_COUNT: u32 = 10_000;

/// How big the generated overlay is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Networks attached at the measured gateway's site (1..=[`MAX_COUNT`]).
    pub networks: u32,
    /// Peer gateways, one site each (1..=[`MAX_COUNT`]).
    pub peers: u32,
}

impl Shape {
    /// Peer sites each network is attached at: [`REMOTE_SITES_PER_NETWORK`], or every peer
    /// when there are fewer.
    pub fn remote_sites_per_network(self) -> u32 {
        REMOTE_SITES_PER_NETWORK.min(self.peers)
    }

    /// Tenants holding the networks.
    pub fn tenants(self) -> u32 {
        self.networks.div_ceil(NETWORKS_PER_TENANT)
    }

    /// The peer sites (1-based site indexes) network `i` is attached at: consecutive,
    /// wrapping around, so that the networks spread evenly over the peers.
    pub fn remote_sites(self, network: u32) -> impl Iterator<Item = u32> {
        let r = self.remote_sites_per_network();
        let peers = self.peers;
        (0..r).map(move |k| {
            ((u64::from(network) * u64::from(r) + u64::from(k)) % u64::from(peers)) as u32 + 1
        })
    }
}

/// The measured gateway's name.
pub const MEASURED_GATEWAY: &str = "gw-0";

/// The name of the gateway of site `s` (0 is the measured one).
pub fn gateway_name(site: u32) -> String {
    format!("gw-{site}")
}

/// The name of site `s`.
pub fn site_name(site: u32) -> String {
    format!("site-{site}")
}

/// The interface network `i` arrives on at its sites.
pub fn interface_name(network: u32) -> String {
    format!("net{network}")
}

/// `tenant/name` of network `i`.
pub fn network_id(network: u32) -> String {
    format!(
        "t{}/n{}",
        network / NETWORKS_PER_TENANT,
        network % NETWORKS_PER_TENANT
    )
}

/// The address `base + offset`.
fn offset(base: Ipv4Addr, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + offset)
}

/// Gateway `s`'s underlay address.
pub fn underlay_address(site: u32) -> Ipv4Addr {
    offset(UNDERLAY_NETWORK, 1 + site)
}

/// The private key of gateway `s`: SHA-256 of a fixed text naming it.
pub fn private_key(site: u32) -> PrivateKey {
    let digest = Sha256::digest(format!("weft bench --memory: the key of gateway {site}"));
    PrivateKey::from_bytes(digest.into())
}

/// The prefixes of every network at site `s`.
fn site_prefixes(site: u32) -> Vec<String> {
    vec![
        format!("10.{}.{}.0/24", site >> 8, site & 0xff),
        format!("fd10:0:{site:x}::/48"),
    ]
}

/// The overlay of `shape`, as a configuration file holds it.
pub fn overlay(shape: Shape) -> OverlayFile {
    let tenants = (0..shape.tenants())
        .map(|t| {
            (
                format!("t{t}"),
                TenantSection {
                    description: Some("generated by weft bench --memory".to_owned()),
                },
            )
        })
        .collect();
    let sites = (0..=shape.peers)
        .map(|s| {
            (
                site_name(s),
                SiteSection {
                    kind: SiteKindName::Linux,
                    region: None,
                    subscription: None,
                    resource_group: None,
                    project: None,
                    credentials: None,
                    underlay_mtu: None,
                    api_endpoint: None,
                },
            )
        })
        .collect();
    let gateways = (0..=shape.peers)
        .map(|s| {
            let name = gateway_name(s);
            let section = GatewaySection {
                site: site_name(s),
                endpoint: format!("{}:{LISTEN_PORT}", underlay_address(s)),
                public_key: PublicKey::from_private(&private_key(s)).to_string(),
                private_key_file: format!("{name}.key"),
                infra_address: offset(INFRA_NETWORK, 1 + s).to_string(),
            };
            (name, section)
        })
        .collect();
    let mut networks = BTreeMap::new();
    let mut attachments = BTreeMap::new();
    for i in 0..shape.networks {
        let id = network_id(i);
        networks.insert(
            id.clone(),
            NetworkSection {
                cidrs: Some(vec!["10.0.0.0/8".to_owned(), "fd10::/32".to_owned()]),
                label: Some(FIRST_LABEL + i),
                like: None,
                description: None,
            },
        );
        let mut at = BTreeMap::new();
        at.insert(
            site_name(0),
            AttachmentSection {
                prefixes: Some(site_prefixes(0)),
                interface: interface_name(i),
                addresses: vec!["169.254.100.1/30".to_owned(), "fe80::1/64".to_owned()],
                local_router: Some("169.254.100.2".to_owned()),
                local_router_ipv6: Some("fe80::2".to_owned()),
                ..AttachmentSection::default()
            },
        );
        for s in shape.remote_sites(i) {
            at.insert(
                site_name(s),
                AttachmentSection {
                    prefixes: Some(site_prefixes(s)),
                    interface: interface_name(i),
                    ..AttachmentSection::default()
                },
            );
        }
        attachments.insert(id, at);
    }
    OverlayFile {
        overlay: OverlaySection {
            name: "bench-memory".to_owned(),
            domain: "memory.bench.weft.internal".to_owned(),
            infra_prefix: format!("{INFRA_NETWORK}/{INFRA_LEN}"),
            listen_port: u32::from(LISTEN_PORT),
            underlay_mtu: 1500,
        },
        tenants,
        networks,
        sites,
        gateways,
        attachments,
    }
}

/// Leaves out, recursively, what the file model writes although it is the default: empty
/// lists and tables and `false` flags (every flag defaults to false). The file reads as a
/// person would write it, and is half as long.
fn prune(table: &mut toml::Table) {
    table.retain(|_, value| match value {
        toml::Value::Table(t) => {
            prune(t);
            !t.is_empty()
        }
        toml::Value::Array(a) => !a.is_empty(),
        toml::Value::Boolean(b) => *b,
        _ => true,
    });
}

/// The configuration file of `shape`: a comment saying what it is, then the TOML.
pub fn config_text(shape: Shape) -> anyhow::Result<String> {
    let mut table =
        toml::Table::try_from(overlay(shape)).context("turning the generated overlay into TOML")?;
    prune(&mut table);
    let body = toml::to_string(&table).context("writing the generated overlay as TOML")?;
    Ok(format!(
        "# Generated by `weft bench --memory`: gateway {MEASURED_GATEWAY} with {} networks and {} \
         peers.\n# Its keys are derived from fixed text: never use them anywhere else.\n\n{body}",
        shape.networks, shape.peers
    ))
}

/// Writes `weft.toml` and the measured gateway's key file (`gw-0.key`, mode 0600) into
/// `dir` and returns the configuration's path.
pub fn write(dir: &Path, shape: Shape) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private_key(
        &dir.join(format!("{MEASURED_GATEWAY}.key")),
        &private_key(0),
    )?;
    let path = dir.join("weft.toml");
    std::fs::write(&path, config_text(shape)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use weft_config::{Intent, Loader};

    use super::*;

    fn load(shape: Shape) -> (tempfile::TempDir, Intent) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), shape).unwrap();
        let intent = Loader::new()
            .env_prefix(None)
            .file(&path)
            .load()
            .unwrap_or_else(|e| panic!("{e:?}"));
        (dir, intent)
    }

    #[test]
    fn the_default_overlay_validates_and_plans_1000_networks_and_100_peers() {
        let shape = Shape {
            networks: 1000,
            peers: 100,
        };
        let (_dir, intent) = load(shape);
        assert_eq!(intent.tenants.len(), 10);
        assert_eq!(intent.networks.len(), 1000);
        assert_eq!(intent.sites.len(), 101);
        assert_eq!(intent.gateways.len(), 101);
        // What `weft validate --gateway gw-0` and `weft run` check: the key file matches.
        intent.load_private_key(MEASURED_GATEWAY).unwrap();
        let plan = crate::plan::plan(&intent, MEASURED_GATEWAY).unwrap();
        assert_eq!(plan.networks.len(), 1000);
        assert_eq!(plan.peers.len(), 100);
        let mut carrying = BTreeSet::new();
        for n in &plan.networks {
            assert_eq!(n.local_routes.len(), 2, "{}", n.network);
            assert_eq!(n.remote_routes.len(), 6, "{}", n.network);
            assert_eq!(n.addresses.len(), 2);
            assert!(n.local_router.is_some() && n.local_router_ipv6.is_some());
            assert_eq!(n.tun, format!("weft{}", n.label));
            carrying.extend(n.remote_routes.iter().map(|r| r.gateway.clone()));
        }
        // Every peer carries some of the networks: the gateway routes to all of them.
        assert_eq!(carrying.len(), 100);
        let first = &plan
            .networks
            .iter()
            .find(|n| n.label.value() == FIRST_LABEL)
            .unwrap();
        assert_eq!(first.network.to_string(), "t0/n0");
        assert_eq!(first.interface, "net0");
        assert_eq!(
            first.local_routes,
            vec!["10.0.0.0/24".parse().unwrap(), "fd10::/48".parse().unwrap()]
        );
        let peer = plan.peers.iter().find(|p| p.gateway == "gw-100").unwrap();
        assert_eq!(peer.endpoint.to_string(), "198.18.0.101:51820");
        assert_eq!(peer.infra_address.to_string(), "100.64.0.101");
        assert_eq!(plan.endpoint.to_string(), "198.18.0.1:51820");
    }

    #[test]
    fn small_shapes_are_valid_too() {
        for (networks, peers) in [(20, 5), (1, 1), (7, 2), (250, 300)] {
            let shape = Shape { networks, peers };
            let (_dir, intent) = load(shape);
            let plan = crate::plan::plan(&intent, MEASURED_GATEWAY).unwrap();
            assert_eq!(plan.networks.len(), networks as usize);
            assert_eq!(plan.peers.len(), peers as usize);
            let remote = shape.remote_sites_per_network() as usize;
            assert_eq!(remote, 3.min(peers as usize));
            assert!(
                plan.networks
                    .iter()
                    .all(|n| n.remote_routes.len() == 2 * remote)
            );
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let shape = Shape {
            networks: 30,
            peers: 4,
        };
        assert_eq!(config_text(shape).unwrap(), config_text(shape).unwrap());
        assert_eq!(private_key(3).as_bytes(), private_key(3).as_bytes());
        assert_ne!(private_key(3).as_bytes(), private_key(4).as_bytes());
        let text = config_text(shape).unwrap();
        assert!(text.starts_with("# Generated by `weft bench --memory`: gateway gw-0 with 30"));
        // Defaults are left out, as a person would.
        assert!(!text.contains("route_tables"), "{text}");
        assert!(!text.contains("takeover"));
        assert!(!text.contains("= []"));
        assert!(
            text.contains(
                "[attachments.\"t0/n0\".site-1]\ninterface = \"net0\"\n\
                 prefixes = [\"10.0.1.0/24\", \"fd10:0:1::/48\"]\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn networks_take_the_peers_in_turn() {
        let shape = Shape {
            networks: 4,
            peers: 5,
        };
        let sites: Vec<Vec<u32>> = (0..4).map(|i| shape.remote_sites(i).collect()).collect();
        assert_eq!(
            sites,
            [vec![1, 2, 3], vec![4, 5, 1], vec![2, 3, 4], vec![5, 1, 2]]
        );
        let two = Shape {
            networks: 3,
            peers: 2,
        };
        assert_eq!(two.remote_sites(1).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(network_id(0), "t0/n0");
        assert_eq!(network_id(1234), "t12/n34");
        assert_eq!(
            Shape {
                networks: 1001,
                peers: 1
            }
            .tenants(),
            11
        );
        assert_eq!(underlay_address(MAX_COUNT).to_string(), "198.18.39.17");
        assert_eq!(
            site_prefixes(MAX_COUNT),
            ["10.39.16.0/24", "fd10:0:2710::/48"]
        );
    }
}
