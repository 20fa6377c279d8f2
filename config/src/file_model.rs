//! The configuration file as written: the TOML schema.
//!
//! These types are what `weft schema` prints and what structural checking holds a file to.
//! Addresses, keys and names stay strings here: their meaning is checked by validation,
//! which can then say precisely what is wrong with each.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A weft overlay: every tenant network, site and gateway, in one file that every gateway reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "weft overlay configuration")]
pub struct OverlayFile {
    /// Settings of the whole overlay.
    pub overlay: OverlaySection,
    /// Owners of networks; networks of different tenants never exchange a packet.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSection>,
    /// Virtual networks (one VRF each), keyed `tenant/name`.
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkSection>,
    /// Places with their own route tables, keyed by site name.
    #[serde(default)]
    pub sites: BTreeMap<String, SiteSection>,
    /// weft processes, one per site, keyed by gateway name.
    #[serde(default)]
    pub gateways: BTreeMap<String, GatewaySection>,
    /// Networks present at sites: `[attachments."tenant/name".site]`.
    #[serde(default)]
    pub attachments: BTreeMap<String, BTreeMap<String, AttachmentSection>>,
}

/// Settings of the whole overlay.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlaySection {
    /// Name of the overlay, a DNS label such as `acme`.
    pub name: String,
    /// DNS domain under which workloads get names, such as `weft.internal`.
    pub domain: String,
    /// IPv4 prefix holding every gateway's infra address, such as `100.64.0.0/24`.
    pub infra_prefix: String,
    /// UDP port gateways listen on for WireGuard when their endpoint names none.
    #[serde(default = "default_listen_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub listen_port: u32,
    /// Underlay MTU of sites that do not set their own, in bytes (1280 to 9216).
    #[serde(default = "default_mtu")]
    #[schemars(range(min = 1280, max = 9216))]
    pub underlay_mtu: u32,
}

/// The UDP port gateways listen on when neither the overlay nor their endpoint names one.
pub(crate) const DEFAULT_LISTEN_PORT: u16 = 51820;

fn default_listen_port() -> u32 {
    u32::from(DEFAULT_LISTEN_PORT)
}

fn default_mtu() -> u32 {
    1500
}

/// An owner of networks.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
}

/// A virtual network: one routing table (VRF) at every gateway where it is attached.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// The network's address space: IPv4 and IPv6 CIDRs without host bits. Taken from the
    /// `like` network when not given.
    #[serde(default)]
    pub cidrs: Option<Vec<String>>,
    /// MPLS label carried between gateways, 16 to 1048575; derived stably from the name when
    /// not given.
    #[serde(default)]
    #[schemars(range(min = 16, max = 1_048_575))]
    pub label: Option<u32>,
    /// Another network (`tenant/name`) whose CIDRs and per-site prefixes this one copies, so
    /// that staging has prod's exact shape; anything set here overrides the copy.
    #[serde(default)]
    pub like: Option<String>,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
}

/// Which cloud (or none) a site is in; it decides how route tables are written.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SiteKindName {
    /// Amazon Web Services: VPC route tables.
    Aws,
    /// Microsoft Azure: route tables of virtual networks.
    Azure,
    /// Google Cloud: routes of a VPC network.
    Gcp,
    /// On-premises or lab: Linux kernel routing tables.
    Linux,
}

/// A place with its own route tables.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// `aws`, `azure`, `gcp` or `linux`.
    pub kind: SiteKindName,
    /// AWS region, such as `eu-west-1` (aws sites).
    #[serde(default)]
    pub region: Option<String>,
    /// Azure subscription id, a GUID (azure sites).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Azure resource group of the route tables (azure sites).
    #[serde(default)]
    pub resource_group: Option<String>,
    /// GCP project id (gcp sites).
    #[serde(default)]
    pub project: Option<String>,
    /// Where the gateway finds its cloud credentials; never a secret itself. `default` (the
    /// cloud's standard chain), `env`, `imds`, `profile:NAME` (aws); `managed-identity`,
    /// `workload-identity`, `cli` (azure); `metadata`, `file:PATH` (gcp).
    #[serde(default)]
    pub credentials: Option<String>,
    /// Underlay MTU at this site in bytes (1280 to 9216); the overlay's when not given.
    #[serde(default)]
    #[schemars(range(min = 1280, max = 9216))]
    pub underlay_mtu: Option<u32>,
    /// Base URL of the cloud API, for other partitions and for tests.
    #[serde(default)]
    pub api_endpoint: Option<String>,
}

/// One weft process at a site.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// The site this gateway serves.
    pub site: String,
    /// Underlay address other gateways send WireGuard to: `IP`, `IP:PORT`, `[IPv6]:PORT` or
    /// `host.name:PORT`.
    pub endpoint: String,
    /// The gateway's WireGuard public key (base64, 32 bytes), as printed by `weft keygen`.
    pub public_key: String,
    /// File holding the WireGuard private key (mode 0600), relative to this config file.
    pub private_key_file: String,
    /// The gateway's address inside `overlay.infra_prefix`.
    pub infra_address: String,
}

/// A network present at a site.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSection {
    /// The network's prefixes that live at this site (inside the network's CIDRs). Copied
    /// from the `like` network when not given.
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// The gateway's interface on which this network's traffic arrives, such as `eth1`.
    pub interface: String,
    /// The gateway's own addresses on `interface` with their prefix length, such as
    /// `169.254.100.1/30`. weft adds them without a prefix route and routes their subnets in
    /// this network's table only, so networks may share addresses. Leave out when the cloud
    /// or the OS assigns them.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The IPv4 router towards this site's prefixes, such as the VPC router; without it they
    /// are on-link on `interface`.
    #[serde(default)]
    pub local_router: Option<String>,
    /// The IPv6 router towards this site's prefixes (a link-local address is fine); without
    /// it they are on-link on `interface`.
    #[serde(default)]
    pub local_router_ipv6: Option<String>,
    /// Route tables to write the remote prefixes into: AWS `rtb-…` ids, Azure route table
    /// resource ids, GCP VPC network names, Linux `TABLE` or `NETNS:TABLE`.
    #[serde(default)]
    pub route_tables: Vec<String>,
    /// AWS only: also write every route table carrying all of these tags.
    #[serde(default)]
    pub route_table_tags: BTreeMap<String, String>,
    /// The next hop written into those route tables: AWS `eni-…` or `i-…`; Azure the NIC's
    /// IP; GCP an IP or `zones/ZONE/instances/NAME`; Linux an IP.
    #[serde(default)]
    pub next_hop: Option<String>,
    /// The next hop for IPv6 destinations when `next_hop` is an IPv4 address: the
    /// gateway's IPv6 address in this network (Azure, GCP, Linux).
    #[serde(default)]
    pub next_hop_ipv6: Option<String>,
    /// Replace routes of other owners for our destinations instead of reporting a conflict.
    #[serde(default)]
    pub takeover: bool,
}
