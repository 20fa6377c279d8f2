//! What a lab consists of, derived from the overlay intent by a pure function: namespaces,
//! links, addresses and routes. `up` only carries it out and the state file keeps it, so
//! `check`, `status`, `exec` and `down` work from what was built, not from a configuration
//! that may have changed since.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use weft_config::{EndpointHost, Intent};
use weft_dataplane::linux::is_valid_interface_name;

use super::addressing::{
    first_of_family, router_address, subnet_of, underlay_address, workload_address,
};
use super::naming;
use crate::plan::{PlanError, plan};

/// Everything one lab builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The prefix of every namespace, e.g. `wl3f9a-`.
    pub prefix: String,
    /// The shared underlay that joins the gateways.
    pub underlay: Underlay,
    /// One per gateway of the configuration.
    pub gateways: Vec<GatewayNode>,
    /// One VPC router per attachment (network at a site).
    pub routers: Vec<RouterNode>,
    /// One workload per prefix of each attachment.
    pub workloads: Vec<WorkloadNode>,
}

/// The stand-in for the internet between sites: a namespace with a bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlay {
    /// Its namespace.
    pub namespace: String,
    /// The bridge every gateway's underlay link is a port of.
    pub bridge: String,
}

/// A gateway's namespace: where one `weft run` lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNode {
    /// The gateway's name in the configuration.
    pub name: String,
    /// The site it serves.
    pub site: String,
    /// Its namespace.
    pub namespace: String,
    /// Its interface on the underlay (`ul0`).
    pub underlay_interface: String,
    /// The bridge port of that link, inside the underlay namespace.
    pub underlay_port: String,
    /// Its endpoint address with the underlay subnet's length.
    pub underlay_address: IpNet,
    /// The site's underlay MTU, set on every link of the site.
    pub mtu: u16,
    /// The WireGuard UAPI name `weft run` serves, unique on the host.
    pub uapi_name: String,
}

/// The router of a network at a site (a VPC's router), joined to the gateway's namespace by
/// the attachment's interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterNode {
    /// The network, `tenant/name`.
    pub network: String,
    /// The site.
    pub site: String,
    /// The gateway serving the site.
    pub gateway: String,
    /// The router's namespace.
    pub namespace: String,
    /// The gateway-side end of the link: exactly the attachment's `interface`.
    pub gateway_interface: String,
    /// What weft itself puts on `gateway_interface` (the lab adds none of them).
    pub gateway_addresses: Vec<IpNet>,
    /// The router-side end of the link (`gw`).
    pub interface: String,
    /// The router's addresses on `interface`: `local_router` and `local_router_ipv6`.
    pub addresses: Vec<IpNet>,
    /// The site's MTU.
    pub mtu: u16,
    /// Routes to the network's prefixes at other sites, towards the gateway.
    pub routes: Vec<RouterRoute>,
}

/// A route of a VPC router towards its gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterRoute {
    /// The remote prefix.
    pub prefix: IpNet,
    /// The site it lives at.
    pub site: String,
    /// The gateway's address on the link.
    pub via: IpAddr,
    /// The router's interface (`gw`).
    pub dev: String,
}

/// A workload: one namespace with one address in one of the network's prefixes at a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadNode {
    /// Its name, e.g. `shop.prod.aws-lab.v4`.
    pub name: String,
    /// The network, `tenant/name`.
    pub network: String,
    /// The site.
    pub site: String,
    /// Its namespace.
    pub namespace: String,
    /// The prefix it lives in.
    pub prefix: IpNet,
    /// Its interface (`eth0`).
    pub interface: String,
    /// Its address (the prefix's 10th host) with the prefix's length.
    pub address: IpNet,
    /// Its default gateway: the VPC router's address in the prefix.
    pub default_gateway: IpAddr,
    /// The VPC router's namespace.
    pub router_namespace: String,
    /// The router's interface towards it (`p<i>`).
    pub router_interface: String,
    /// The router's address in the prefix (its first host).
    pub router_address: IpNet,
    /// The site's MTU.
    pub mtu: u16,
}

impl WorkloadNode {
    /// Whether two workloads speak the same address family.
    pub fn same_family(&self, other: &WorkloadNode) -> bool {
        self.address.addr().is_ipv4() == other.address.addr().is_ipv4()
    }
}

/// Why a configuration cannot be built as a lab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The lab puts every gateway on one bridge and gives it its endpoint address.
    #[error(
        "gateway `{gateway}` has endpoint `{endpoint}`, a DNS name; the lab gives each gateway its \
         endpoint address on a shared bridge, so endpoints must be IP addresses"
    )]
    EndpointNotAnAddress {
        /// The gateway.
        gateway: String,
        /// Its endpoint.
        endpoint: String,
    },
    /// Two gateways have the same endpoint address.
    #[error("gateways `{a}` and `{b}` share the endpoint address {address}")]
    SharedEndpoint {
        /// One gateway.
        a: String,
        /// The other.
        b: String,
        /// The address.
        address: IpAddr,
    },
    /// An attachment at a site without a gateway cannot be reached.
    #[error("network `{network}` is attached at site `{site}`, which has no gateway")]
    NoGateway {
        /// The network.
        network: String,
        /// The site.
        site: String,
    },
    /// The lab's VPC router needs an address of each family the site's prefixes use, in a
    /// subnet of the gateway's addresses, and the gateway an address to route towards.
    #[error(
        "network `{network}` at site `{site}` has {family} prefixes but no {what}; the lab's VPC \
         router needs `local_router{suffix}` inside a subnet of `addresses`"
    )]
    MissingTransit {
        /// The network.
        network: String,
        /// The site.
        site: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// What is missing.
        what: &'static str,
        /// `""` or `"_ipv6"`.
        suffix: &'static str,
    },
    /// A prefix too small for a router and a workload.
    #[error(
        "prefix {prefix} of network `{network}` at site `{site}` is too small for a router and a \
         workload"
    )]
    PrefixTooSmall {
        /// The network.
        network: String,
        /// The site.
        site: String,
        /// The prefix.
        prefix: IpNet,
    },
    /// An interface name the kernel would refuse.
    #[error("interface name `{0}` is longer than 15 bytes or not a valid Linux interface name")]
    InterfaceName(String),
    /// The plan of a gateway could not be made.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl Topology {
    /// The lab for `intent`, every namespace starting with `prefix`.
    pub fn build(intent: &Intent, prefix: &str) -> Result<Topology, TopologyError> {
        let endpoints = gateway_endpoints(intent)?;
        let all: Vec<IpAddr> = endpoints.iter().map(|(_, a)| *a).collect();
        let mut gateways = Vec::new();
        for (index, (gateway, address)) in endpoints.iter().enumerate() {
            let g = &intent.gateways[*gateway];
            let uapi_name = naming::uapi_name(prefix, index);
            let underlay_port = naming::underlay_port(index);
            for name in [&uapi_name, &underlay_port] {
                check_interface(name)?;
            }
            gateways.push(GatewayNode {
                name: g.name.clone(),
                site: g.site.clone(),
                namespace: naming::gateway_namespace(prefix, &g.name),
                underlay_interface: naming::GATEWAY_UNDERLAY_INTERFACE.to_owned(),
                underlay_port,
                underlay_address: underlay_address(*address, &all),
                mtu: site_mtu(intent, &g.site),
                uapi_name,
            });
        }

        let mut routers = Vec::new();
        let mut workloads = Vec::new();
        for network in intent.networks.values() {
            let id = network.id.to_string();
            for (site, attachment) in &network.attachments {
                let gateway = intent
                    .gateway_at(site)
                    .ok_or_else(|| TopologyError::NoGateway {
                        network: id.clone(),
                        site: site.clone(),
                    })?;
                check_interface(&attachment.interface)?;
                let gateway_plan = plan(intent, &gateway.name)?;
                let remote = gateway_plan
                    .networks
                    .iter()
                    .find(|n| n.network == network.id)
                    .map(|n| n.remote_routes.as_slice())
                    .unwrap_or_default();
                let missing = |family: &'static str, what: &'static str| {
                    let suffix = if family == "IPv4" { "" } else { "_ipv6" };
                    TopologyError::MissingTransit {
                        network: id.clone(),
                        site: site.clone(),
                        family,
                        what,
                        suffix,
                    }
                };
                let mtu = site_mtu(intent, site);
                let namespace = naming::router_namespace(prefix, &id, site);

                // The router's own addresses: one per family its site or the remote sites use.
                let families_used = attachment
                    .prefixes
                    .iter()
                    .chain(remote.iter().map(|r| &r.prefix))
                    .map(|p| p.addr().is_ipv4());
                let mut addresses = Vec::new();
                for v4 in dedup(families_used) {
                    let (router, family) = if v4 {
                        (attachment.local_router.map(IpAddr::V4), "IPv4")
                    } else {
                        (attachment.local_router_ipv6.map(IpAddr::V6), "IPv6")
                    };
                    let router = router.ok_or_else(|| missing(family, "VPC router address"))?;
                    let subnet = subnet_of(&attachment.addresses, router)
                        .ok_or_else(|| missing(family, "gateway address around the VPC router"))?;
                    addresses.push(
                        IpNet::new(router, subnet.prefix_len()).expect("length of a valid subnet"),
                    );
                }

                let routes = remote
                    .iter()
                    .map(|r| {
                        let family = crate::lab::addressing::family_name(&r.prefix);
                        let via = first_of_family(&attachment.addresses, &r.prefix)
                            .ok_or_else(|| missing(family, "gateway address to route to"))?;
                        Ok(RouterRoute {
                            prefix: r.prefix,
                            site: r.site.clone(),
                            via,
                            dev: naming::ROUTER_UPLINK.to_owned(),
                        })
                    })
                    .collect::<Result<Vec<_>, TopologyError>>()?;

                let mut seen_v4 = 0;
                let mut seen_v6 = 0;
                for (index, p) in attachment.prefixes.iter().enumerate() {
                    let too_small = || TopologyError::PrefixTooSmall {
                        network: id.clone(),
                        site: site.clone(),
                        prefix: *p,
                    };
                    let router_address = router_address(*p).ok_or_else(too_small)?;
                    let address = workload_address(*p).ok_or_else(too_small)?;
                    let nth = match p {
                        IpNet::V4(_) => &mut seen_v4,
                        IpNet::V6(_) => &mut seen_v6,
                    };
                    let name = naming::workload_name(&id, site, p, *nth);
                    *nth += 1;
                    let router_interface = naming::router_workload_interface(index);
                    check_interface(&router_interface)?;
                    workloads.push(WorkloadNode {
                        namespace: naming::workload_namespace(prefix, &name),
                        name,
                        network: id.clone(),
                        site: site.clone(),
                        prefix: *p,
                        interface: naming::WORKLOAD_INTERFACE.to_owned(),
                        address,
                        default_gateway: router_address.addr(),
                        router_namespace: namespace.clone(),
                        router_interface,
                        router_address,
                        mtu,
                    });
                }

                routers.push(RouterNode {
                    network: id.clone(),
                    site: site.clone(),
                    gateway: gateway.name.clone(),
                    namespace,
                    gateway_interface: attachment.interface.clone(),
                    gateway_addresses: attachment.addresses.clone(),
                    interface: naming::ROUTER_UPLINK.to_owned(),
                    addresses,
                    mtu,
                    routes,
                });
            }
        }
        Ok(Topology {
            prefix: prefix.to_owned(),
            underlay: Underlay {
                namespace: naming::underlay_namespace(prefix),
                bridge: naming::UNDERLAY_BRIDGE.to_owned(),
            },
            gateways,
            routers,
            workloads,
        })
    }

    /// Every namespace of the lab, the underlay first and the workloads last.
    pub fn namespaces(&self) -> Vec<&str> {
        std::iter::once(self.underlay.namespace.as_str())
            .chain(self.gateways.iter().map(|g| g.namespace.as_str()))
            .chain(self.routers.iter().map(|r| r.namespace.as_str()))
            .chain(self.workloads.iter().map(|w| w.namespace.as_str()))
            .collect()
    }

    /// The workload called `name`; its namespace name is accepted too.
    pub fn workload(&self, name: &str) -> Option<&WorkloadNode> {
        self.workloads
            .iter()
            .find(|w| w.name == name || w.namespace == name)
    }

    /// The gateway node called `name`.
    pub fn gateway(&self, name: &str) -> Option<&GatewayNode> {
        self.gateways.iter().find(|g| g.name == name)
    }

    /// The networks of the lab, in order, each once.
    pub fn networks(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for w in &self.workloads {
            if !out.contains(&w.network.as_str()) {
                out.push(&w.network);
            }
        }
        out
    }
}

/// Each gateway with its endpoint address, in the configuration's order.
fn gateway_endpoints(intent: &Intent) -> Result<Vec<(&String, IpAddr)>, TopologyError> {
    let mut out: Vec<(&String, IpAddr)> = Vec::new();
    for (name, g) in &intent.gateways {
        let address = match &g.endpoint.host {
            EndpointHost::Ip(a) => *a,
            EndpointHost::Name(_) => {
                return Err(TopologyError::EndpointNotAnAddress {
                    gateway: name.clone(),
                    endpoint: g.endpoint.to_string(),
                });
            }
        };
        if let Some((other, _)) = out.iter().find(|(_, a)| *a == address) {
            return Err(TopologyError::SharedEndpoint {
                a: (*other).clone(),
                b: name.clone(),
                address,
            });
        }
        out.push((name, address));
    }
    Ok(out)
}

fn site_mtu(intent: &Intent, site: &str) -> u16 {
    intent
        .sites
        .get(site)
        .map_or(intent.overlay.underlay_mtu, |s| s.underlay_mtu)
}

fn check_interface(name: &str) -> Result<(), TopologyError> {
    if is_valid_interface_name(name) {
        Ok(())
    } else {
        Err(TopologyError::InterfaceName(name.to_owned()))
    }
}

fn dedup(items: impl Iterator<Item = bool>) -> Vec<bool> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use weft_config::Loader;

    use super::*;

    fn lab_intent() -> Intent {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
        Loader::new().env_prefix(None).file(path).load().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_example_lab_has_every_site_network_and_prefix() {
        let t = Topology::build(&lab_intent(), "wl0001-").unwrap();
        assert_eq!(t.gateways.len(), 4);
        // shop/prod and shop/staging at 4 sites, media/prod at 3.
        assert_eq!(t.routers.len(), 11);
        // Two prefixes per shop attachment, one per media attachment.
        assert_eq!(t.workloads.len(), 19);
        assert_eq!(t.namespaces().len(), 1 + 4 + 11 + 19);
        assert!(t.namespaces().iter().all(|n| n.starts_with("wl0001-")));
        let mut unique = t.namespaces();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 35, "namespace names are unique");
        assert_eq!(t.networks(), ["media/prod", "shop/prod", "shop/staging"]);
    }

    #[test]
    fn gateways_hold_their_endpoint_on_the_underlay_with_their_sites_mtu() {
        let t = Topology::build(&lab_intent(), "wl0001-").unwrap();
        let aws = t.gateway("aws-gw").unwrap();
        assert_eq!(aws.namespace, "wl0001-gw-aws-gw");
        assert_eq!(aws.underlay_interface, "ul0");
        assert_eq!(aws.underlay_address, net("192.0.2.1/24"));
        assert_eq!(aws.mtu, 1500);
        assert_eq!(aws.uapi_name, "wl0001-0");
        let gcp = t.gateway("gcp-gw").unwrap();
        assert_eq!(gcp.mtu, 1460);
        assert_eq!(t.underlay.namespace, "wl0001-ul");
    }

    #[test]
    fn routers_sit_on_the_attachment_interface_and_route_remote_prefixes_to_the_gateway() {
        let t = Topology::build(&lab_intent(), "wl0001-").unwrap();
        let r = t
            .routers
            .iter()
            .find(|r| r.network == "shop/prod" && r.site == "aws-lab")
            .unwrap();
        assert_eq!(r.namespace, "wl0001-rt-shop.prod.aws-lab");
        assert_eq!(r.gateway, "aws-gw");
        assert_eq!(r.gateway_interface, "shop-prod");
        assert_eq!(r.interface, "gw");
        assert_eq!(r.addresses, [net("169.254.100.2/30"), net("fe80::2/64")]);
        let routes: Vec<(IpNet, IpAddr)> = r.routes.iter().map(|r| (r.prefix, r.via)).collect();
        let v4: IpAddr = "169.254.100.1".parse().unwrap();
        let v6: IpAddr = "fe80::1".parse().unwrap();
        for site in 2..=4 {
            assert!(routes.contains(&(net(&format!("10.10.{site}.0/24")), v4)));
            assert!(routes.contains(&(net(&format!("fd10:10:0:{site}::/64")), v6)));
        }
        assert_eq!(routes.len(), 6, "no local prefix among the remote routes");
        let media = t
            .routers
            .iter()
            .find(|r| r.network == "media/prod" && r.site == "aws-lab")
            .unwrap();
        assert_eq!(media.gateway_interface, "media-prod");
        assert_eq!(media.routes.len(), 2, "media/prod is at two other sites");
        // IPv4 only: no IPv6 address is needed on its link.
        assert_eq!(media.addresses, [net("169.254.100.2/30")]);
    }

    #[test]
    fn workloads_hold_the_tenth_host_behind_the_first() {
        let t = Topology::build(&lab_intent(), "wl0001-").unwrap();
        let w = t.workload("shop.prod.aws-lab.v4").unwrap();
        assert_eq!(w.namespace, "wl0001-wl-shop.prod.aws-lab.v4");
        assert_eq!(w.address, net("10.10.1.10/24"));
        assert_eq!(w.router_address, net("10.10.1.1/24"));
        assert_eq!(w.default_gateway, "10.10.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(w.router_interface, "p0");
        assert_eq!(w.router_namespace, "wl0001-rt-shop.prod.aws-lab");
        let w6 = t.workload("shop.prod.aws-lab.v6").unwrap();
        assert_eq!(w6.address, net("fd10:10:0:1::10/64"));
        assert_eq!(w6.router_address, net("fd10:10:0:1::1/64"));
        assert_eq!(w6.router_interface, "p1");
        assert!(t.workload("wl0001-wl-shop.prod.aws-lab.v6").is_some());
        assert!(t.workload("shop.prod.nowhere.v4").is_none());
        let gcp = t.workload("media.prod.gcp-lab.v4").unwrap();
        assert_eq!(gcp.mtu, 1460);
    }

    #[test]
    fn dns_endpoints_and_missing_transit_are_explained() {
        let mut intent = lab_intent();
        intent.gateways.get_mut("aws-gw").unwrap().endpoint.host =
            EndpointHost::Name("gw.example".into());
        let e = Topology::build(&intent, "wl0001-").unwrap_err();
        assert!(
            matches!(e, TopologyError::EndpointNotAnAddress { .. }),
            "{e}"
        );

        let mut intent = lab_intent();
        let net_id: weft_config::NetworkId = "shop/prod".parse().unwrap();
        let a = intent
            .networks
            .get_mut(&net_id)
            .unwrap()
            .attachments
            .get_mut("aws-lab")
            .unwrap();
        a.local_router_ipv6 = None;
        let e = Topology::build(&intent, "wl0001-").unwrap_err();
        assert_eq!(
            e.to_string(),
            "network `shop/prod` at site `aws-lab` has IPv6 prefixes but no VPC router address; \
             the lab's VPC router needs `local_router_ipv6` inside a subnet of `addresses`"
        );
    }
}
