//! The validated model of an overlay: what the configuration means once every reference
//! resolves, every address parses and every rule holds.
//!
//! Nothing in here can be wrong in a way validation knows about; the gateway turns it into
//! plans without further checks.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};
use serde::{Serialize, Serializer};

use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::keys::{PrivateKey, PublicKey, read_private_key};
use crate::label::Label;
use crate::source_map::{Anchor, Location, SourceMap};

/// A whole validated overlay.
#[derive(Clone, Debug)]
pub struct Intent {
    /// Settings of the whole overlay.
    pub overlay: Overlay,
    /// Tenants by name.
    pub tenants: BTreeMap<String, Tenant>,
    /// Networks by id.
    pub networks: BTreeMap<NetworkId, Network>,
    /// Sites by name.
    pub sites: BTreeMap<String, Site>,
    /// Gateways by name.
    pub gateways: BTreeMap<String, Gateway>,
    pub(crate) sources: Arc<SourceMap>,
}

impl Intent {
    /// Where the value at `path` was set, for messages that point back at the file.
    pub fn locate(&self, path: &KeyPath) -> Location {
        self.sources.locate(path, Anchor::Value)
    }

    /// The gateway serving `site`, if there is one.
    pub fn gateway_at(&self, site: &str) -> Option<&Gateway> {
        self.gateways.values().find(|g| g.site == site)
    }

    /// Reads the gateway's private key file, as `weft run` must before it starts: the file
    /// must exist, be mode 0600 or stricter and hold the key of the configured public key.
    pub fn load_private_key(&self, gateway: &str) -> Result<PrivateKey, Box<Diagnostic>> {
        let gw = self.gateways.get(gateway).ok_or_else(|| {
            let path = KeyPath::of(&["gateways", gateway]);
            Box::new(Diagnostic {
                location: Location::Unknown,
                key: path,
                message: format!("no gateway named `{gateway}`"),
                expected: "the name of a gateway under [gateways]".to_owned(),
                hint: format!(
                    "gateways in this configuration: {}",
                    self.gateways.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
        })?;
        read_private_key(&gw.private_key_file, &gw.public_key).map_err(|e| {
            let path = KeyPath::of(&["gateways", gateway, "private_key_file"]);
            Box::new(Diagnostic {
                location: self.locate(&path),
                key: path,
                message: e.to_string(),
                expected: "a file of mode 0600 holding the base64 private key of `public_key`"
                    .to_owned(),
                hint: "create one with `weft keygen FILE` and put the public key it prints into \
                       `public_key`"
                    .to_owned(),
            })
        })
    }
}

/// Settings of the whole overlay.
#[derive(Clone, Debug, Serialize)]
pub struct Overlay {
    /// The overlay's name.
    pub name: String,
    /// DNS domain for workload names.
    pub domain: String,
    /// Where gateway infra addresses live.
    pub infra_prefix: Ipv4Net,
    /// Default WireGuard port.
    pub listen_port: u16,
    /// Default underlay MTU.
    pub underlay_mtu: u16,
}

/// An owner of networks.
#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    /// The tenant's name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
}

/// The name of a network, `tenant/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId {
    /// The owning tenant.
    pub tenant: String,
    /// The network's name within the tenant.
    pub name: String,
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.name)
    }
}

impl FromStr for NetworkId {
    type Err = String;
    /// Parses `tenant/name`; each part must be a DNS label.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (tenant, name) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not of the form tenant/name"))?;
        for part in [tenant, name] {
            crate::names::check_label(part).map_err(|why| format!("`{part}` in `{s}` {why}"))?;
        }
        Ok(Self {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl Serialize for NetworkId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A virtual network.
#[derive(Clone, Debug, Serialize)]
pub struct Network {
    /// Its id.
    pub id: NetworkId,
    /// Its MPLS label between gateways.
    pub label: Label,
    /// Its address space.
    pub cidrs: Vec<IpNet>,
    /// The network whose shape it copies, if any.
    pub like: Option<NetworkId>,
    /// Free text.
    pub description: Option<String>,
    /// Where it is present, by site name.
    pub attachments: BTreeMap<String, Attachment>,
}

/// A network present at a site.
#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    /// The site.
    pub site: String,
    /// The network's prefixes that live at this site.
    pub prefixes: Vec<IpNet>,
    /// The gateway interface the network arrives on.
    pub interface: String,
    /// The gateway's own addresses on that interface (address and prefix length).
    pub addresses: Vec<IpNet>,
    /// The IPv4 router towards the site's prefixes; on-link when absent.
    pub local_router: Option<Ipv4Addr>,
    /// The IPv6 router towards the site's prefixes; on-link when absent.
    pub local_router_ipv6: Option<Ipv6Addr>,
    /// Route tables the gateway keeps pointing the remote prefixes at itself.
    pub route_tables: Vec<RouteTableRef>,
    /// AWS tag selector for further route tables.
    pub route_table_tags: BTreeMap<String, String>,
    /// The next hop to write; present whenever there is a route table to write.
    pub next_hop: Option<NextHop>,
    /// The next hop of IPv6 destinations when `next_hop` is an IPv4 address.
    pub next_hop_ipv6: Option<Ipv6Addr>,
    /// Whether routes of other owners for our destinations may be replaced.
    pub takeover: bool,
}

impl Attachment {
    /// The next hop a cloud route to `destination` points at: `next_hop` when it can carry
    /// that address family, else `next_hop_ipv6` for an IPv6 destination.
    pub fn next_hop_for(&self, destination: &IpNet) -> Option<NextHop> {
        match (&self.next_hop, destination, self.next_hop_ipv6) {
            (Some(hop), _, _) if hop.serves(destination) => Some(hop.clone()),
            (_, IpNet::V6(_), Some(v6)) => Some(NextHop::Ip(IpAddr::V6(v6))),
            _ => None,
        }
    }
}

/// A route table the gateway writes, in the form its cloud's API names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "cloud", rename_all = "snake_case")]
pub enum RouteTableRef {
    /// An AWS VPC route table id, `rtb-…`.
    Aws {
        /// The id.
        id: String,
    },
    /// An Azure route table resource id.
    Azure {
        /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/routeTables/…`.
        id: String,
    },
    /// A GCP VPC network; its routes are the table.
    Gcp {
        /// `projects/P/global/networks/N`.
        network: String,
    },
    /// A Linux kernel routing table, optionally in a named network namespace.
    Linux {
        /// The namespace, or the gateway's own when absent.
        netns: Option<String>,
        /// The table number (254 is `main`).
        table: u32,
    },
}

impl fmt::Display for RouteTableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTableRef::Aws { id } | RouteTableRef::Azure { id } => f.write_str(id),
            RouteTableRef::Gcp { network } => f.write_str(network),
            RouteTableRef::Linux { netns: None, table } => write!(f, "table {table}"),
            RouteTableRef::Linux {
                netns: Some(ns),
                table,
            } => write!(f, "{ns}:table {table}"),
        }
    }
}

/// What a cloud route points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum NextHop {
    /// An AWS elastic network interface, `eni-…`.
    AwsEni(String),
    /// An AWS instance, `i-…`.
    AwsInstance(String),
    /// A GCP instance, `zones/ZONE/instances/NAME`.
    GcpInstance(String),
    /// An IP address (Azure virtual appliance, GCP next hop IP, Linux gateway).
    Ip(IpAddr),
}

impl NextHop {
    /// Whether a route to `destination` can point at this next hop: an interface or an
    /// instance takes both families, an address only its own.
    pub fn serves(&self, destination: &IpNet) -> bool {
        match (self, destination) {
            (NextHop::Ip(IpAddr::V4(_)), IpNet::V4(_))
            | (NextHop::Ip(IpAddr::V6(_)), IpNet::V6(_)) => true,
            (NextHop::Ip(_), _) => false,
            _ => true,
        }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::AwsEni(s) | NextHop::AwsInstance(s) | NextHop::GcpInstance(s) => {
                f.write_str(s)
            }
            NextHop::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A site and where its cloud keeps the route tables.
#[derive(Clone, Debug, Serialize)]
pub struct Site {
    /// The site's name.
    pub name: String,
    /// Its cloud and what that cloud needs.
    pub kind: SiteKind,
    /// Where the gateway finds credentials for the cloud's API.
    pub credentials: CredentialSource,
    /// Underlay MTU in bytes.
    pub underlay_mtu: u16,
    /// API base URL override.
    pub api_endpoint: Option<String>,
}

/// The cloud of a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SiteKind {
    /// AWS, in one region.
    Aws {
        /// The region.
        region: String,
    },
    /// Azure, in one subscription and resource group.
    Azure {
        /// Subscription GUID.
        subscription: String,
        /// Resource group name.
        resource_group: String,
    },
    /// GCP, in one project.
    Gcp {
        /// Project id.
        project: String,
    },
    /// Linux kernel tables (on-premises, lab).
    Linux,
}

impl SiteKind {
    /// The kind's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            SiteKind::Aws { .. } => "aws",
            SiteKind::Azure { .. } => "azure",
            SiteKind::Gcp { .. } => "gcp",
            SiteKind::Linux => "linux",
        }
    }
}

/// Where a gateway's cloud credentials come from. Never a secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", content = "value", rename_all = "snake_case")]
pub enum CredentialSource {
    /// The cloud SDK's standard chain.
    Default,
    /// Environment variables of the gateway process.
    Env,
    /// AWS instance metadata (IMDSv2).
    Imds,
    /// A named AWS profile.
    Profile(String),
    /// Azure managed identity.
    ManagedIdentity,
    /// Azure workload identity federation.
    WorkloadIdentity,
    /// The Azure CLI's login, for development.
    AzureCli,
    /// The GCP metadata server.
    Metadata,
    /// A GCP credentials (ADC) file.
    File(PathBuf),
}

/// Where a gateway receives WireGuard.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Address or DNS name.
    pub host: EndpointHost,
    /// UDP port.
    pub port: u16,
}

/// The host part of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointHost {
    /// A literal address.
    Ip(IpAddr),
    /// A DNS name, resolved when the gateway starts.
    Name(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            EndpointHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            EndpointHost::Ip(ip) => write!(f, "{ip}:{}", self.port),
            EndpointHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One weft process.
#[derive(Clone, Debug, Serialize)]
pub struct Gateway {
    /// The gateway's name.
    pub name: String,
    /// The site it serves.
    pub site: String,
    /// Where other gateways reach it.
    pub endpoint: Endpoint,
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// Its private key file, resolved against the configuration file's directory.
    pub private_key_file: PathBuf,
    /// Its address in the infra prefix.
    pub infra_address: Ipv4Addr,
}
