//! The kernel side of a gateway's networks, declared as a [`Plumbing`] and reconciled with
//! [`apply`]: links (TUN MTU and up), interface addresses, per-network routing tables and
//! the policy rules that select them.
//!
//! Ownership: every route and rule weft creates carries [`WEFT_RT_PROTOCOL`]. That number is
//! how weft recognises its own objects after a restart, and only objects carrying it are ever
//! replaced or deleted: a route or rule with another protocol (the kernel's, a DHCP
//! client's, an operator's `proto static`) is never modified or deleted, and one standing
//! where weft wants to write is reported as a [`Conflict`], not overwritten. Addresses weft
//! adds carry the same number as their `IFA_PROTO` (Linux 6.1+), so only those are ever
//! removed.
//!
//! What the host must provide besides (not set here): `net.ipv4.ip_forward=1` (and IPv6
//! forwarding for IPv6 networks), and reverse-path filtering not strict on the network
//! interfaces. Forwarded packets pass even strict `rp_filter` (seen on Linux 6.18): its
//! reverse lookup uses the forward route's output device as `iif`, and that device's `iif`
//! rule selects the right table; but packets *to* the gateway (ARP requests for its
//! address, DNS, health) are checked with `iif lo`, which no `iif` rule matches, and `main`
//! has no route to a `noprefixroute` subnet, so strict filtering drops them. Loose (2)
//! works when `main` has a default route, as cloud VMs have; otherwise 0.
//!
//! Reconciling is level-triggered: [`apply`] reads the current state, computes the
//! difference and writes only that, so applying the same state twice makes no change and a
//! restarted gateway converges onto what its predecessor left, without duplicates.
//! On stop, [`remove_all`] takes every weft route and rule away and [`remove_links`] the
//! TUN devices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::{StreamExt, TryStreamExt, stream};
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, LinkUnspec};
use thiserror::Error;

use super::is_valid_interface_name;

/// The rtnetlink protocol number (`proto 245` in `ip route` / `ip rule`) that marks the
/// routes and rules weft owns.
///
/// Chosen among the numbers nothing claims: iproute2's `rt_protos` names 0–4 (kernel,
/// boot, static), 8–18, 42 (babel), 99 (openr) and 186–192 (bgp, isis, ospf, rip, eigrp),
/// and FRR's daemons take numbers from 186 upwards (to 198 today); 245 is in none of them
/// and far from the low numbers DHCP clients and network managers use. An image may name it with a line `245 weft` in
/// `/etc/iproute2/rt_protos.d/weft.conf` so that `ip route` prints `proto weft`.
pub const WEFT_RT_PROTOCOL: u8 = 245;

/// The lowest policy-rule priority weft uses; see [`WEFT_RULE_PRIORITY_MAX`].
///
/// weft's rules live in 12000..=12999: after the kernel's `local` rule (0), so packets for
/// the gateway's own addresses are still delivered locally, and well before `main` (32766)
/// and `default` (32767), so a packet that arrived on a network's interface or TUN never
/// reaches the host's tables. The range stays clear of the priorities other software on a
/// cloud VM commonly uses (the AWS VPC CNI's 512–1536, Tailscale's 52xx, wg-quick's just
/// below `main`). [`apply`] refuses rules outside it.
pub const WEFT_RULE_PRIORITY_MIN: u32 = 12000;

/// The highest policy-rule priority weft uses; see [`WEFT_RULE_PRIORITY_MIN`].
pub const WEFT_RULE_PRIORITY_MAX: u32 = 12999;

/// The priority of the `iif <device> lookup <table>` rules that select a network's table:
/// the first of weft's range. Rules with other selectors (the `oif` rules of sockets the
/// gateway opens inside a network) take later priorities of the range; they never match
/// the same packets, since locally generated packets match `iif lo`, not a network's
/// device.
pub const IIF_RULE_PRIORITY: u32 = WEFT_RULE_PRIORITY_MIN;

/// The metric of the `unreachable default` routes that close every network table, near the
/// top of the range (the kernel's VRF documentation closes VRF tables the same way, with
/// 4278198272): any real route wins, while a packet for an unknown destination is answered
/// with ICMP unreachable instead of falling through to the host's `main` table and leaking
/// out of its network.
pub const UNREACHABLE_METRIC: u32 = 0xff00_0000;

/// The link group (`group 245` in `ip link`) that [`remove_links`] puts a stopping gateway's
/// TUN devices in, so that one request deletes them all.
///
/// Like [`WEFT_RT_PROTOCOL`] for routes and rules, it marks what weft owns: a link that
/// something else puts in this group is deleted with weft's TUNs when a gateway stops. Device
/// groups are rarely used, and then with small numbers; 245 matches the protocol number.
pub const WEFT_LINK_GROUP: u32 = 245;

/// How many netlink requests are in flight at once when many objects are looked up, written
/// or deleted: enough to hide each one's round trip through the socket, few enough that the
/// answers fit the socket's default receive buffer (an overflowing buffer drops answers, and
/// the requests waiting for them would wait forever).
const IN_FLIGHT: usize = 64;

/// The kernel's reserved table ids (unspec, default, main, local): weft never writes to them.
const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

/// IPv4 or IPv6: a rule applies to one family, and routes and addresses belong to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// Both families, IPv4 first: networks carry both, so their rules and closing routes
    /// exist for both.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn of(addr: &IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn of_net(net: &IpNet) -> Self {
        Family::of(&net.addr())
    }

    fn address_family(self) -> AddressFamily {
        match self {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }

    fn default_route(self) -> IpNet {
        match self {
            Family::V4 => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            Family::V6 => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        }
        .expect("a /0 prefix is always valid")
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        })
    }
}

/// The whole desired kernel state of a gateway host, as far as weft owns it.
///
/// Usually built with [`Plumbing::add_network`], one call per network; the fields are public
/// so that tests and special cases can describe anything the reconciler supports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plumbing {
    /// Links whose MTU and up state weft sets (the networks' TUN devices). They must exist.
    pub links: Vec<LinkSpec>,
    /// Addresses to ensure on interfaces, always with `noprefixroute`.
    pub addresses: Vec<AddressSpec>,
    /// Routing tables and every weft route each must hold. A weft route in any table that
    /// is not listed here is removed.
    pub tables: Vec<TableSpec>,
    /// Policy rules. A weft rule not listed here is removed.
    pub rules: Vec<RuleSpec>,
}

/// A link whose settings weft owns: the TUN device of a network, created by
/// [`super::tun::open_tun`] before [`apply`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// The interface name.
    pub name: String,
    /// The MTU to set, if weft decides it.
    pub mtu: Option<u32>,
    /// Whether the link must be administratively up (weft never takes a link down: `false`
    /// leaves the state alone).
    pub up: bool,
}

/// An address to hold on an interface, e.g. the gateway's address in a VPC subnet.
///
/// It is added with `noprefixroute`: the kernel then puts no connected route into `main`,
/// which would be ambiguous when two networks use the same subnet. The network's table gets
/// that route instead (see [`Plumbing::add_network`]). An address that is already present
/// without `noprefixroute` is left alone and reported as a [`Conflict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSpec {
    /// The interface name.
    pub interface: String,
    /// The address with its prefix length, e.g. `169.254.100.1/30`.
    pub address: IpNet,
}

impl fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {} noprefixroute", self.address, self.interface)
    }
}

/// One routing table and the weft routes it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// The table id: not 0, 253 (default), 254 (main) or 255 (local).
    pub id: u32,
    /// The routes.
    pub routes: Vec<RouteSpec>,
}

/// Where a route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Out of a device, on link: `dev NAME` (a TUN, or a connected subnet).
    Device(String),
    /// To a router on a device: `via GATEWAY dev NAME`. The device is required because the
    /// same gateway address may exist on several interfaces (identical subnets).
    Gateway {
        /// The router's address, of the destination's family.
        via: IpAddr,
        /// The device it is reached through.
        device: String,
    },
    /// Nowhere: `unreachable`, answered with ICMP unreachable.
    Unreachable,
}

/// A route weft wants in a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// The destination prefix (host bits are ignored).
    pub destination: IpNet,
    /// Where it goes.
    pub next_hop: NextHop,
    /// The metric (`metric N`); 0 means the kernel default (0 for IPv4, 1024 for IPv6).
    pub metric: u32,
    /// The preferred source address for locally originated packets (`src ADDR`).
    pub source: Option<IpAddr>,
}

impl RouteSpec {
    /// `DESTINATION dev DEVICE`.
    pub fn device(destination: IpNet, device: impl Into<String>) -> Self {
        Self {
            destination,
            next_hop: NextHop::Device(device.into()),
            metric: 0,
            source: None,
        }
    }

    /// `DESTINATION via VIA dev DEVICE`.
    pub fn via(destination: IpNet, via: IpAddr, device: impl Into<String>) -> Self {
        Self {
            destination,
            next_hop: NextHop::Gateway {
                via,
                device: device.into(),
            },
            metric: 0,
            source: None,
        }
    }

    /// `unreachable default metric UNREACHABLE_METRIC` of `family`: closes a network table.
    pub fn unreachable_default(family: Family) -> Self {
        Self {
            destination: family.default_route(),
            next_hop: NextHop::Unreachable,
            metric: UNREACHABLE_METRIC,
            source: None,
        }
    }

    /// The same route with `src source`.
    pub fn with_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// The same route with `metric metric`.
    pub fn with_metric(mut self, metric: u32) -> Self {
        self.metric = metric;
        self
    }

    fn family(&self) -> Family {
        Family::of_net(&self.destination)
    }

    fn device_name(&self) -> Option<&str> {
        match &self.next_hop {
            NextHop::Device(d) | NextHop::Gateway { device: d, .. } => Some(d),
            NextHop::Unreachable => None,
        }
    }

    /// Renders the route as `ip route` would take it, with its table.
    fn line(&self, table: u32) -> String {
        let mut s = match &self.next_hop {
            NextHop::Unreachable => format!("unreachable {}", self.destination.trunc()),
            NextHop::Device(d) => format!("{} dev {d}", self.destination.trunc()),
            NextHop::Gateway { via, device } => {
                format!("{} via {via} dev {device}", self.destination.trunc())
            }
        };
        s.push_str(&format!(" table {table}"));
        if self.metric != 0 {
            s.push_str(&format!(" metric {}", self.metric));
        }
        if let Some(src) = self.source {
            s.push_str(&format!(" src {src}"));
        }
        s
    }
}

/// What a rule matches on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleSelector {
    /// Packets that entered through this device (`iif NAME`): forwarded traffic of a
    /// network, from its interface or its TUN.
    Iif(String),
    /// Packets leaving through this device (`oif NAME`): the gateway's own sockets bound to
    /// a network's device.
    Oif(String),
}

/// A policy rule: `ip FAMILY rule add SELECTOR lookup TABLE priority PRIORITY proto 245`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleSpec {
    /// The family it applies to.
    pub family: Family,
    /// Its priority, within [`WEFT_RULE_PRIORITY_MIN`]..=[`WEFT_RULE_PRIORITY_MAX`].
    pub priority: u32,
    /// What it matches.
    pub selector: RuleSelector,
    /// The table it looks up.
    pub table: u32,
}

impl RuleSpec {
    /// `iif DEVICE lookup TABLE` at [`IIF_RULE_PRIORITY`] for `family`.
    pub fn iif(family: Family, device: impl Into<String>, table: u32) -> Self {
        Self {
            family,
            priority: IIF_RULE_PRIORITY,
            selector: RuleSelector::Iif(device.into()),
            table,
        }
    }
}

impl fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kw, dev) = match &self.selector {
            RuleSelector::Iif(d) => ("iif", d),
            RuleSelector::Oif(d) => ("oif", d),
        };
        write!(
            f,
            "{} rule priority {} {kw} {dev} lookup {}",
            self.family, self.priority, self.table
        )
    }
}

/// A route the network's interface leads to: a local prefix, `via` a router in the VPC or
/// directly on the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalRoute {
    /// The local prefix, e.g. `10.10.1.0/24`.
    pub prefix: IpNet,
    /// The router on the interface's subnet, or `None` for an on-link prefix.
    pub via: Option<IpAddr>,
}

/// Everything the host needs for one network: the input of [`Plumbing::add_network`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPlumbing {
    /// The network's routing table.
    pub table: u32,
    /// Its TUN device (e.g. `weft1001`), already opened.
    pub tun: String,
    /// The TUN's MTU: the network's inner MTU.
    pub mtu: u32,
    /// The interface the network arrives on (e.g. the ENI in the VPC).
    pub interface: String,
    /// The gateway's addresses on that interface, e.g. `169.254.100.1/30`.
    pub interface_addresses: Vec<IpNet>,
    /// Prefixes at this site, reached through the interface.
    pub local_routes: Vec<LocalRoute>,
    /// Prefixes at other sites, reached through the TUN (and so the forwarder).
    pub remote_prefixes: Vec<IpNet>,
}

impl Plumbing {
    /// Adds one network: its TUN link (MTU, up); its interface addresses (`noprefixroute`);
    /// in its table the connected route of each address (`dev IFACE`, with `src ADDR` for
    /// IPv4; not for /32 or /128), its local routes through the interface, its remote prefixes through
    /// the TUN and an `unreachable default` per family ([`UNREACHABLE_METRIC`]); and the
    /// rules `iif IFACE lookup TABLE` and `iif TUN lookup TABLE` for both families.
    pub fn add_network(&mut self, network: &NetworkPlumbing) {
        self.links.push(LinkSpec {
            name: network.tun.clone(),
            mtu: Some(network.mtu),
            up: true,
        });
        let mut routes = Vec::new();
        for address in &network.interface_addresses {
            self.addresses.push(AddressSpec {
                interface: network.interface.clone(),
                address: *address,
            });
            if address.prefix_len() < address.max_prefix_len() {
                let connected = RouteSpec::device(address.trunc(), &network.interface);
                // IPv6 refuses `src` while the address is tentative (duplicate address
                // detection, a second or more after adding it): EINVAL. Its source selection
                // picks the device's address anyway.
                routes.push(match address {
                    IpNet::V4(_) => connected.with_source(address.addr()),
                    IpNet::V6(_) => connected,
                });
            }
        }
        let connected: Vec<IpNet> = network
            .interface_addresses
            .iter()
            .map(IpNet::trunc)
            .collect();
        for local in &network.local_routes {
            // A prefix that is the interface's own subnet is reached by its connected route
            // already (a gateway directly on the site's LAN); a second route to it would clash.
            if connected.contains(&local.prefix.trunc()) {
                continue;
            }
            routes.push(match local.via {
                Some(via) => RouteSpec::via(local.prefix, via, &network.interface),
                None => RouteSpec::device(local.prefix, &network.interface),
            });
        }
        for prefix in &network.remote_prefixes {
            routes.push(RouteSpec::device(*prefix, &network.tun));
        }
        for family in Family::ALL {
            routes.push(RouteSpec::unreachable_default(family));
        }
        match self.tables.iter_mut().find(|t| t.id == network.table) {
            Some(table) => table.routes.extend(routes),
            None => self.tables.push(TableSpec {
                id: network.table,
                routes,
            }),
        }
        for family in Family::ALL {
            self.rules
                .push(RuleSpec::iif(family, &network.interface, network.table));
            self.rules
                .push(RuleSpec::iif(family, &network.tun, network.table));
        }
    }

    /// Every valid interface name the desired state refers to: its links, its addresses'
    /// interfaces and its routes' devices. (Invalid ones are reported by the validation.)
    fn link_names(&self) -> BTreeSet<String> {
        let routes = self.tables.iter().flat_map(|t| &t.routes);
        self.links
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.addresses.iter().map(|a| a.interface.as_str()))
            .chain(routes.filter_map(RouteSpec::device_name))
            .filter(|name| is_valid_interface_name(name))
            .map(str::to_owned)
            .collect()
    }
}

/// How many objects of one kind an [`apply`] added, changed, removed or found in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Created.
    pub added: usize,
    /// Modified in place (a route replaced, a link's MTU or state set).
    pub changed: usize,
    /// Deleted.
    pub removed: usize,
    /// Already as desired.
    pub unchanged: usize,
}

impl Counts {
    /// Writes made: added + changed + removed.
    pub fn changes(&self) -> usize {
        self.added + self.changed + self.removed
    }
}

/// Something of another owner stands where weft wanted to write; weft left it alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// A route of another protocol has the desired route's key (table, destination, metric).
    Route {
        /// The route weft wanted.
        wanted: String,
        /// The protocol of the route in its place.
        protocol: u8,
    },
    /// A rule of another protocol has the desired rule's priority, selector and table.
    Rule {
        /// The rule weft wanted.
        wanted: String,
        /// The protocol of the rule in its place.
        protocol: u8,
    },
    /// The address exists without `noprefixroute`, so its connected route is in `main`;
    /// the kernel cannot change that flag in place and weft does not delete an address it
    /// did not add.
    AddressWithPrefixRoute {
        /// The address.
        address: String,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Route { wanted, protocol } => {
                write!(
                    f,
                    "route {wanted}: a route with protocol {protocol} is in its place; left alone"
                )
            }
            Conflict::Rule { wanted, protocol } => {
                write!(
                    f,
                    "{wanted}: a rule with protocol {protocol} is in its place; left alone"
                )
            }
            Conflict::AddressWithPrefixRoute { address } => {
                write!(
                    f,
                    "address {address}: present without noprefixroute, its connected route is in main"
                )
            }
        }
    }
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Links (MTU and up).
    pub links: Counts,
    /// Interface addresses.
    pub addresses: Counts,
    /// Routes.
    pub routes: Counts,
    /// Rules.
    pub rules: Counts,
    /// Objects of other owners in the way, left untouched.
    pub conflicts: Vec<Conflict>,
}

impl ApplyReport {
    /// Writes made, of every kind.
    pub fn changes(&self) -> usize {
        self.links.changes()
            + self.addresses.changes()
            + self.routes.changes()
            + self.rules.changes()
    }

    /// Whether the kernel already was as desired: nothing written.
    pub fn is_noop(&self) -> bool {
        self.changes() == 0
    }
}

/// What [`remove_all`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemovalReport {
    /// Routes with [`WEFT_RT_PROTOCOL`] deleted.
    pub routes: usize,
    /// Rules with [`WEFT_RT_PROTOCOL`] deleted.
    pub rules: usize,
}

/// The write that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Creating an object.
    Add,
    /// Replacing a route in place.
    Replace,
    /// Deleting an object.
    Delete,
    /// Setting a link's MTU or state.
    Set,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Add => "add",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Set => "set",
        })
    }
}

/// Why reconciling failed, naming the object that failed.
///
/// Validation errors come before any write; a write error stops [`apply`] where it is, and
/// the next apply continues from whatever state the kernel is in.
#[derive(Debug, Error)]
pub enum PlumbingError {
    /// The rtnetlink socket could not be opened.
    #[error("cannot open an rtnetlink socket: {0}")]
    Connect(#[source] std::io::Error),
    /// A table id the kernel reserves (0, 253 default, 254 main, 255 local).
    #[error("table {table} is reserved by the kernel; weft uses its own tables")]
    ReservedTable {
        /// The table.
        table: u32,
    },
    /// A rule priority outside weft's range.
    #[error(
        "{rule}: priority outside weft's range {WEFT_RULE_PRIORITY_MIN}..={WEFT_RULE_PRIORITY_MAX}"
    )]
    RulePriorityOutOfRange {
        /// The rule.
        rule: String,
    },
    /// Two desired rules match the same packets (family, priority, selector) but look up
    /// different tables.
    #[error("{first} and {second} match the same packets but look up different tables")]
    AmbiguousRules {
        /// One rule.
        first: String,
        /// The other.
        second: String,
    },
    /// A route whose gateway or source is of another family than its destination.
    #[error("route {route}: gateway or source of another address family than the destination")]
    FamilyMismatch {
        /// The route.
        route: String,
    },
    /// Two desired routes with the same table, destination and metric but different next
    /// hops.
    #[error("routes {first} and {second} have the same table, destination and metric")]
    DuplicateRoute {
        /// One route.
        first: String,
        /// The other.
        second: String,
    },
    /// An interface name the kernel would reject.
    #[error("invalid interface name {name:?} in {object}")]
    InvalidInterfaceName {
        /// The name.
        name: String,
        /// The object that uses it.
        object: String,
    },
    /// A link the desired state refers to does not exist.
    #[error("interface {name:?} needed by {object} does not exist")]
    LinkNotFound {
        /// The interface.
        name: String,
        /// The object that needs it.
        object: String,
    },
    /// Reading the current state failed.
    #[error("cannot list {what}: {source}")]
    Dump {
        /// What was being listed: addresses, routes or rules.
        what: &'static str,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Looking up a link by name or index failed (other than by its absence).
    #[error("cannot look up link {link}: {source}")]
    Lookup {
        /// The name, or `if#INDEX`.
        link: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Setting or deleting a link failed.
    #[error("cannot {action} link {link}: {source}")]
    Link {
        /// What was attempted.
        action: Action,
        /// The link and settings.
        link: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Adding or deleting an address failed.
    #[error("cannot {action} address {address}: {source}")]
    Address {
        /// What was attempted.
        action: Action,
        /// The address.
        address: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Adding, replacing or deleting a route failed.
    #[error("cannot {action} route {route}: {source}")]
    Route {
        /// What was attempted.
        action: Action,
        /// The route.
        route: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// Adding or deleting a rule failed.
    #[error("cannot {action} {rule}: {source}")]
    Rule {
        /// What was attempted.
        action: Action,
        /// The rule.
        rule: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
}

/// Opens an rtnetlink connection in the calling thread's network namespace and spawns its
/// driver on the current tokio runtime; the handle is what [`apply`] and [`remove_all`]
/// take. Must be called from within a tokio runtime.
pub fn connect() -> Result<Handle, PlumbingError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(PlumbingError::Connect)?;
    tokio::spawn(connection);
    Ok(handle)
}

// ---------------------------------------------------------------------------------------
// Current state, as read from the kernel.

/// A link as the kernel reports it.
#[derive(Clone, Debug)]
struct CurrentLink {
    index: u32,
    mtu: Option<u32>,
    up: bool,
}

/// Links by name, and names by index: the links an [`apply`] names, and those of the routes
/// and addresses it reports on.
///
/// Looked up with one request per link, [`IN_FLIGHT`] at a time, not dumped: rtnetlink reads
/// a whole dump and parses every message with all its attributes (statistics, per-family
/// device settings: about 17 KB per link) before it hands over the first one, so a dump of
/// the 2,002 links of a gateway with 1,000 networks held 34 MB at once, the largest part of
/// the gateway's peak resident size. Looked up, at most [`IN_FLIGHT`] parsed messages exist
/// at a time, and three fields of each are kept.
#[derive(Debug, Default)]
struct Links {
    by_name: HashMap<String, CurrentLink>,
    names: HashMap<u32, String>,
}

impl Links {
    /// Looks up the links named `names`. A name the kernel does not know is left out, for
    /// the object that needs it to be reported.
    async fn look_up(handle: &Handle, names: BTreeSet<String>) -> Result<Links, PlumbingError> {
        let mut links = Links::default();
        // Owned names and indexes in, not borrowed: futures made by closures over references
        // are not provably `Send` (rust-lang/rust#110338), and the daemon spawns this.
        let mut answers = stream::iter(names)
            .map(|name| async move {
                let answer = handle.link().get().match_name(name.clone()).execute();
                (name, answer.try_collect::<Vec<_>>().await)
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some((name, answer)) = answers.next().await {
            match answer {
                Ok(messages) => messages.iter().for_each(|m| links.insert(m)),
                Err(e) if no_such_link(&e) => {}
                Err(source) => return Err(PlumbingError::Lookup { link: name, source }),
            }
        }
        Ok(links)
    }

    /// Learns the names of the links `indexes` that are not known yet, for the messages about
    /// routes and addresses through them. A link gone meanwhile stays `if#N`.
    async fn learn_names(
        &mut self,
        handle: &Handle,
        mut indexes: BTreeSet<u32>,
    ) -> Result<(), PlumbingError> {
        indexes.retain(|index| !self.names.contains_key(index));
        let mut answers = stream::iter(indexes)
            .map(|index| async move {
                let answer = handle.link().get().match_index(index).execute();
                (index, answer.try_collect::<Vec<_>>().await)
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some((index, answer)) = answers.next().await {
            match answer {
                Ok(messages) => messages.iter().for_each(|m| self.insert(m)),
                Err(e) if no_such_link(&e) => {}
                Err(source) => {
                    return Err(PlumbingError::Lookup {
                        link: format!("if#{index}"),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Keeps the name, index, MTU and state of a link the kernel reported.
    fn insert(&mut self, message: &LinkMessage) {
        let index = message.header.index;
        let mut name = None;
        let mut mtu = None;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Mtu(m) => mtu = Some(*m),
                _ => {}
            }
        }
        if let Some(name) = name {
            let up = message.header.flags.contains(LinkFlags::Up);
            self.names.insert(index, name.clone());
            self.by_name.insert(name, CurrentLink { index, mtu, up });
        }
    }

    fn index(&self, name: &str, object: impl FnOnce() -> String) -> Result<u32, PlumbingError> {
        self.by_name
            .get(name)
            .map(|l| l.index)
            .ok_or_else(|| PlumbingError::LinkNotFound {
                name: name.to_owned(),
                object: object(),
            })
    }

    fn name(&self, index: u32) -> String {
        self.names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if#{index}"))
    }
}

/// The identity of a route in the kernel: two routes with the same key cannot coexist.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RouteKey {
    table: u32,
    destination: IpNet,
    tos: u8,
    /// The metric as the kernel stores it (IPv6's 0 is 1024).
    metric: u32,
}

/// What a route does, compared to decide whether a weft route is as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RouteBody {
    unreachable: bool,
    oif: Option<u32>,
    gateway: Option<IpAddr>,
    source: Option<IpAddr>,
    /// RT_SCOPE of an IPv4 route; IPv6 routes have no scope (always 0).
    scope: u8,
    /// Attributes weft never sets (multipath, encap, source prefix, ...): such a route is
    /// never "as desired".
    foreign_shape: bool,
}

#[derive(Clone, Debug)]
struct CurrentRoute {
    key: RouteKey,
    body: RouteBody,
    protocol: u8,
    message: RouteMessage,
}

fn effective_metric(family: Family, metric: u32) -> u32 {
    if family == Family::V6 && metric == 0 {
        1024
    } else {
        metric
    }
}

fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn parse_route(message: RouteMessage) -> Option<CurrentRoute> {
    let header = &message.header;
    let family = match header.address_family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    if header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let mut table = u32::from(header.table);
    let mut destination = None;
    let mut metric = 0;
    let mut oif = None;
    let mut gateway = None;
    let mut source = None;
    let mut foreign_shape = header.source_prefix_length != 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => destination = route_address(d),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(g) => gateway = route_address(g),
            RouteAttribute::PrefSource(s) => source = route_address(s),
            RouteAttribute::MultiPath(_)
            | RouteAttribute::Via(_)
            | RouteAttribute::Encap(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::NhId(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::Metrics(_)
            | RouteAttribute::Realm(_)
            | RouteAttribute::Mark(_) => foreign_shape = true,
            _ => {}
        }
    }
    let destination = destination.unwrap_or_else(|| family.default_route().addr());
    let destination = IpNet::new(destination, header.destination_prefix_length)
        .ok()?
        .trunc();
    let unreachable = header.kind == RouteType::Unreachable;
    if !unreachable && header.kind != RouteType::Unicast {
        foreign_shape = true;
    }
    let body = RouteBody {
        unreachable,
        oif: if unreachable { None } else { oif },
        gateway: if unreachable { None } else { gateway },
        source,
        scope: if family == Family::V4 {
            u8::from(header.scope)
        } else {
            0
        },
        foreign_shape,
    };
    Some(CurrentRoute {
        key: RouteKey {
            table,
            destination,
            tos: header.tos,
            metric: effective_metric(family, metric),
        },
        body,
        protocol: u8::from(header.protocol),
        message,
    })
}

async fn dump_routes(handle: &Handle) -> Result<Vec<CurrentRoute>, PlumbingError> {
    let mut routes = Vec::new();
    for family in Family::ALL {
        let mut request = RouteMessage::default();
        request.header.address_family = family.address_family();
        let messages: Vec<_> = handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|source| PlumbingError::Dump {
                what: "routes",
                source,
            })?;
        routes.extend(messages.into_iter().filter_map(parse_route));
    }
    Ok(routes)
}

fn render_current_route(route: &CurrentRoute, links: &Links) -> String {
    let RouteKey {
        table,
        destination,
        metric,
        ..
    } = &route.key;
    let mut s = if route.body.unreachable {
        format!("unreachable {destination}")
    } else {
        let mut s = destination.to_string();
        if let Some(gw) = route.body.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(oif) = route.body.oif {
            s.push_str(&format!(" dev {}", links.name(oif)));
        }
        s
    };
    s.push_str(&format!(" table {table} proto {}", route.protocol));
    if *metric != 0 {
        s.push_str(&format!(" metric {metric}"));
    }
    s
}

/// The rule's identity for weft: what it matches and where it sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RuleKey {
    family: Family,
    priority: u32,
    selector: RuleSelector,
    table: u32,
}

#[derive(Clone, Debug)]
struct CurrentRule {
    /// `None` for a rule of a shape weft never creates (fwmark, src, goto, ...).
    key: Option<RuleKey>,
    priority: u32,
    protocol: u8,
    message: RuleMessage,
}

impl CurrentRule {
    /// Whether the rule is weft's: its protocol and a priority in weft's range. Only such
    /// rules are ever deleted.
    fn is_weft(&self) -> bool {
        self.protocol == WEFT_RT_PROTOCOL
            && (WEFT_RULE_PRIORITY_MIN..=WEFT_RULE_PRIORITY_MAX).contains(&self.priority)
    }
}

fn parse_rule(message: RuleMessage) -> Option<CurrentRule> {
    let header = &message.header;
    let family = match header.family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    let mut table = u32::from(header.table);
    let mut priority = 0;
    let mut iif = None;
    let mut oif = None;
    let mut protocol = 0;
    let mut foreign_shape = header.action != RuleAction::ToTable
        || header.src_len != 0
        || header.dst_len != 0
        || header.tos != 0;
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Iifname(n) => iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => oif = Some(n.clone()),
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            // The kernel reports "not set" as all ones (-1).
            RuleAttribute::SuppressPrefixLen(u32::MAX)
            | RuleAttribute::SuppressIfGroup(u32::MAX) => {}
            _ => foreign_shape = true,
        }
    }
    let selector = match (iif, oif) {
        (Some(i), None) => Some(RuleSelector::Iif(i)),
        (None, Some(o)) => Some(RuleSelector::Oif(o)),
        _ => None,
    };
    let key = match selector {
        Some(selector) if !foreign_shape => Some(RuleKey {
            family,
            priority,
            selector,
            table,
        }),
        _ => None,
    };
    Some(CurrentRule {
        key,
        priority,
        protocol,
        message,
    })
}

async fn dump_rules(handle: &Handle) -> Result<Vec<CurrentRule>, PlumbingError> {
    let mut rules = Vec::new();
    for version in [IpVersion::V4, IpVersion::V6] {
        let messages: Vec<_> = handle
            .rule()
            .get(version)
            .execute()
            .try_collect()
            .await
            .map_err(|source| PlumbingError::Dump {
                what: "rules",
                source,
            })?;
        rules.extend(messages.into_iter().filter_map(parse_rule));
    }
    Ok(rules)
}

fn render_current_rule(rule: &CurrentRule) -> String {
    match &rule.key {
        Some(key) => RuleSpec {
            family: key.family,
            priority: key.priority,
            selector: key.selector.clone(),
            table: key.table,
        }
        .to_string(),
        None => format!("rule {:?}", rule.message),
    }
}

#[derive(Clone, Debug)]
struct CurrentAddress {
    index: u32,
    address: IpNet,
    noprefixroute: bool,
    protocol: Option<u8>,
    message: AddressMessage,
}

fn parse_address(message: AddressMessage) -> Option<CurrentAddress> {
    let mut local = None;
    let mut address = None;
    let mut noprefixroute = false;
    let mut protocol = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => noprefixroute = f.contains(AddressFlags::Noprefixroute),
            AddressAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links and equal to IFA_LOCAL elsewhere (IPv6 sends only IFA_ADDRESS).
    let ip = local.or(address)?;
    Some(CurrentAddress {
        index: message.header.index,
        address: IpNet::new(ip, message.header.prefix_len).ok()?,
        noprefixroute,
        protocol,
        message,
    })
}

async fn dump_addresses(handle: &Handle) -> Result<Vec<CurrentAddress>, PlumbingError> {
    let messages: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|source| PlumbingError::Dump {
            what: "addresses",
            source,
        })?;
    Ok(messages.into_iter().filter_map(parse_address).collect())
}

// ---------------------------------------------------------------------------------------
// Messages weft writes.

fn weft_protocol() -> RouteProtocol {
    RouteProtocol::from(WEFT_RT_PROTOCOL)
}

fn ip_route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// The table as the 8-bit header field (`RT_TABLE_COMPAT` above 255); the full id always
/// goes in the `RTA_TABLE` / `FRA_TABLE` attribute, which the kernel prefers.
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(252)
}

/// A desired route with its names resolved to interface indexes.
#[derive(Clone, Debug)]
struct ResolvedRoute {
    key: RouteKey,
    body: RouteBody,
    line: String,
}

fn build_route_message(route: &ResolvedRoute) -> RouteMessage {
    let mut message = RouteMessage::default();
    let family = Family::of_net(&route.key.destination);
    message.header.address_family = family.address_family();
    message.header.destination_prefix_length = route.key.destination.prefix_len();
    message.header.tos = route.key.tos;
    message.header.table = header_table(route.key.table);
    message.header.protocol = weft_protocol();
    message.header.scope = RouteScope::from(route.body.scope);
    message.header.kind = if route.body.unreachable {
        RouteType::Unreachable
    } else {
        RouteType::Unicast
    };
    let attributes = &mut message.attributes;
    attributes.push(RouteAttribute::Table(route.key.table));
    if route.key.destination.prefix_len() > 0 {
        attributes.push(RouteAttribute::Destination(ip_route_address(
            route.key.destination.addr(),
        )));
    }
    if route.key.metric != 0 {
        attributes.push(RouteAttribute::Priority(route.key.metric));
    }
    if let Some(oif) = route.body.oif {
        attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(gateway) = route.body.gateway {
        attributes.push(RouteAttribute::Gateway(ip_route_address(gateway)));
    }
    if let Some(source) = route.body.source {
        attributes.push(RouteAttribute::PrefSource(ip_route_address(source)));
    }
    message
}

/// The message that deletes exactly this weft route: its key, next hop and weft's protocol
/// (the kernel only deletes a route whose protocol matches a non-zero one given).
fn route_delete_message(route: &CurrentRoute) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = route.message.header.clone();
    message.header.protocol = weft_protocol();
    message.header.flags = RouteFlags::empty();
    message.attributes = route
        .message
        .attributes
        .iter()
        .filter(|a| {
            matches!(
                a,
                RouteAttribute::Table(_)
                    | RouteAttribute::Destination(_)
                    | RouteAttribute::Priority(_)
                    | RouteAttribute::Oif(_)
                    | RouteAttribute::Gateway(_)
            )
        })
        .cloned()
        .collect();
    message
}

fn build_rule_message(rule: &RuleSpec) -> RuleMessage {
    let mut message = RuleMessage::default();
    message.header.family = rule.family.address_family();
    message.header.table = header_table(rule.table);
    message.header.action = RuleAction::ToTable;
    message
        .attributes
        .push(RuleAttribute::Priority(rule.priority));
    message.attributes.push(match &rule.selector {
        RuleSelector::Iif(d) => RuleAttribute::Iifname(d.clone()),
        RuleSelector::Oif(d) => RuleAttribute::Oifname(d.clone()),
    });
    message.attributes.push(RuleAttribute::Table(rule.table));
    message
        .attributes
        .push(RuleAttribute::Protocol(weft_protocol()));
    message
}

/// Deleting something already gone (`ENOENT`, `ESRCH`: its interface vanished meanwhile)
/// is success for a reconciler.
fn already_gone(error: &rtnetlink::Error) -> bool {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            let code = -message.raw_code();
            code == nix::libc::ENOENT
                || code == nix::libc::ESRCH
                || code == nix::libc::EADDRNOTAVAIL
        }
        _ => false,
    }
}

/// The link asked for does not exist (`ENODEV`).
fn no_such_link(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if -message.raw_code() == nix::libc::ENODEV)
}

// ---------------------------------------------------------------------------------------
// Validation and resolution of the desired state.

fn check_interface(name: &str, object: impl FnOnce() -> String) -> Result<(), PlumbingError> {
    if is_valid_interface_name(name) {
        Ok(())
    } else {
        Err(PlumbingError::InvalidInterfaceName {
            name: name.to_owned(),
            object: object(),
        })
    }
}

fn check_table(table: u32) -> Result<(), PlumbingError> {
    if RESERVED_TABLES.contains(&table) {
        Err(PlumbingError::ReservedTable { table })
    } else {
        Ok(())
    }
}

/// Validates the desired rules and returns them keyed and deduplicated.
fn desired_rules(desired: &Plumbing) -> Result<BTreeMap<RuleKey, RuleSpec>, PlumbingError> {
    let mut rules = BTreeMap::new();
    let mut by_match: HashMap<(Family, u32, RuleSelector), &RuleSpec> = HashMap::new();
    for rule in &desired.rules {
        check_table(rule.table)?;
        if !(WEFT_RULE_PRIORITY_MIN..=WEFT_RULE_PRIORITY_MAX).contains(&rule.priority) {
            return Err(PlumbingError::RulePriorityOutOfRange {
                rule: rule.to_string(),
            });
        }
        let (RuleSelector::Iif(device) | RuleSelector::Oif(device)) = &rule.selector;
        check_interface(device, || rule.to_string())?;
        if let Some(other) =
            by_match.insert((rule.family, rule.priority, rule.selector.clone()), rule)
            && other.table != rule.table
        {
            return Err(PlumbingError::AmbiguousRules {
                first: other.to_string(),
                second: rule.to_string(),
            });
        }
        let key = RuleKey {
            family: rule.family,
            priority: rule.priority,
            selector: rule.selector.clone(),
            table: rule.table,
        };
        rules.insert(key, rule.clone());
    }
    Ok(rules)
}

/// Validates the desired routes and resolves their devices; keyed and deduplicated.
fn desired_routes(
    desired: &Plumbing,
    links: &Links,
) -> Result<BTreeMap<RouteKey, ResolvedRoute>, PlumbingError> {
    let mut routes: BTreeMap<RouteKey, ResolvedRoute> = BTreeMap::new();
    for table in &desired.tables {
        check_table(table.id)?;
        for route in &table.routes {
            let line = route.line(table.id);
            let family = route.family();
            let gateway = match &route.next_hop {
                NextHop::Gateway { via, .. } => Some(*via),
                _ => None,
            };
            if gateway
                .iter()
                .chain(route.source.iter())
                .any(|a| Family::of(a) != family)
            {
                return Err(PlumbingError::FamilyMismatch { route: line });
            }
            let oif = match route.device_name() {
                Some(device) => {
                    check_interface(device, || format!("route {line}"))?;
                    Some(links.index(device, || format!("route {line}"))?)
                }
                None => None,
            };
            let unreachable = route.next_hop == NextHop::Unreachable;
            let scope = match (family, &route.next_hop) {
                (Family::V4, NextHop::Device(_)) => u8::from(RouteScope::Link),
                _ => u8::from(RouteScope::Universe),
            };
            let key = RouteKey {
                table: table.id,
                destination: route.destination.trunc(),
                tos: 0,
                metric: effective_metric(family, route.metric),
            };
            let body = RouteBody {
                unreachable,
                oif,
                gateway,
                source: route.source,
                scope,
                foreign_shape: false,
            };
            let resolved = ResolvedRoute {
                key: key.clone(),
                body,
                line,
            };
            if let Some(existing) = routes.get(&key) {
                if existing.body != resolved.body {
                    return Err(PlumbingError::DuplicateRoute {
                        first: existing.line.clone(),
                        second: resolved.line,
                    });
                }
                continue;
            }
            routes.insert(key, resolved);
        }
    }
    Ok(routes)
}

// ---------------------------------------------------------------------------------------
// The reconciler.

/// Makes the kernel's weft-owned state equal to `desired`, writing only the difference, and
/// reports what it did.
///
/// In order: links get their MTU and are brought up; missing addresses are added
/// (`noprefixroute`, `IFA_PROTO` [`WEFT_RT_PROTOCOL`]); routes are added or replaced
/// (on-link routes before the routes whose gateway they make reachable: the kernel checks a
/// gateway against the route's own table); rules are added once their tables are filled;
/// then weft rules, routes and addresses that are no longer desired are removed, rules first
/// so that no packet is ever looked up in a half-emptied table.
///
/// Everything is validated and every interface name resolved before the first write. A
/// route or rule of another protocol where weft wanted one is left alone and reported in
/// [`ApplyReport::conflicts`]; routes and rules of other protocols are never touched.
pub async fn apply(handle: &Handle, desired: &Plumbing) -> Result<ApplyReport, PlumbingError> {
    let mut report = ApplyReport::default();
    let names = desired.link_names();
    let mut links = Links::look_up(handle, names).await?;

    // Validate and resolve everything before writing anything.
    let wanted_rules = desired_rules(desired)?;
    let wanted_routes = desired_routes(desired, &links)?;
    let mut wanted_links = Vec::new();
    for link in &desired.links {
        check_interface(&link.name, || format!("link {}", link.name))?;
        let current = links
            .by_name
            .get(&link.name)
            .ok_or_else(|| PlumbingError::LinkNotFound {
                name: link.name.clone(),
                object: format!("link {}", link.name),
            })?;
        wanted_links.push((link, current));
    }
    let mut wanted_addresses = Vec::new();
    for address in &desired.addresses {
        check_interface(&address.interface, || format!("address {address}"))?;
        let index = links.index(&address.interface, || format!("address {address}"))?;
        wanted_addresses.push((address, index));
    }

    // Links.
    for (link, current) in wanted_links {
        let mtu_wrong = link.mtu.is_some_and(|m| current.mtu != Some(m));
        let down = link.up && !current.up;
        if !mtu_wrong && !down {
            report.links.unchanged += 1;
            continue;
        }
        let mut builder = LinkUnspec::new_with_index(current.index);
        if let Some(mtu) = link.mtu.filter(|_| mtu_wrong) {
            builder = builder.mtu(mtu);
        }
        if down {
            builder = builder.up();
        }
        let description = format!("{} (mtu {:?}, up {})", link.name, link.mtu, link.up);
        handle
            .link()
            .set(builder.build())
            .execute()
            .await
            .map_err(|source| PlumbingError::Link {
                action: Action::Set,
                link: description.clone(),
                source,
            })?;
        tracing::info!(link = %description, "plumbing: link set");
        report.links.changed += 1;
    }

    // Addresses: add the missing ones now, remove stale weft ones at the end.
    let current_addresses = dump_addresses(handle).await?;
    let by_address: HashMap<(u32, IpNet), &CurrentAddress> = current_addresses
        .iter()
        .map(|c| ((c.index, c.address), c))
        .collect();
    let mut wanted_address_set = BTreeSet::new();
    let mut new_addresses = Vec::new();
    for (address, index) in &wanted_addresses {
        wanted_address_set.insert((*index, address.address));
        match by_address.get(&(*index, address.address)) {
            Some(current) if current.noprefixroute => report.addresses.unchanged += 1,
            Some(_) => report.conflicts.push(Conflict::AddressWithPrefixRoute {
                address: address.to_string(),
            }),
            None => new_addresses.push((*index, (*address).clone())),
        }
    }
    let added = new_addresses.len();
    write_in_flight(new_addresses, |(index, address)| async move {
        let net = address.address;
        let mut request = handle.address().add(index, net.addr(), net.prefix_len());
        let message = request.message_mut();
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Noprefixroute));
        message
            .attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                WEFT_RT_PROTOCOL,
            )));
        request
            .execute()
            .await
            .map_err(|source| PlumbingError::Address {
                action: Action::Add,
                address: address.to_string(),
                source,
            })?;
        tracing::info!(address = %address, "plumbing: address added");
        Ok(())
    })
    .await?;
    report.addresses.added += added;

    // Routes.
    let current_routes = dump_routes(handle).await?;
    let mut weft_routes: BTreeMap<RouteKey, Vec<&CurrentRoute>> = BTreeMap::new();
    let mut foreign_routes: HashMap<&RouteKey, u8> = HashMap::new();
    for route in &current_routes {
        if route.protocol == WEFT_RT_PROTOCOL {
            weft_routes
                .entry(route.key.clone())
                .or_default()
                .push(route);
        } else {
            foreign_routes.entry(&route.key).or_insert(route.protocol);
        }
    }
    let mut on_link = Vec::new();
    let mut via_gateway = Vec::new();
    for route in wanted_routes.values() {
        let action = match weft_routes.get(&route.key).and_then(|v| v.first()) {
            Some(current) if current.body == route.body => {
                report.routes.unchanged += 1;
                continue;
            }
            Some(_) => Action::Replace,
            None => {
                if let Some(protocol) = foreign_routes.get(&route.key) {
                    report.conflicts.push(Conflict::Route {
                        wanted: route.line.clone(),
                        protocol: *protocol,
                    });
                    continue;
                }
                Action::Add
            }
        };
        let write = (action, build_route_message(route), route.line.clone());
        if route.body.gateway.is_some() {
            via_gateway.push(write);
        } else {
            on_link.push(write);
        }
    }
    // On-link routes first: a gateway route needs its gateway reachable in its own table.
    for step in [on_link, via_gateway] {
        let replaced = step.iter().filter(|w| w.0 == Action::Replace).count();
        let added = step.len() - replaced;
        write_in_flight(step, |(action, message, line)| async move {
            let request = handle.route().add(message);
            let request = if action == Action::Replace {
                request.replace()
            } else {
                request
            };
            request
                .execute()
                .await
                .map_err(|source| PlumbingError::Route {
                    action,
                    route: line.clone(),
                    source,
                })?;
            tracing::info!(route = %line, %action, "plumbing: route written");
            Ok(())
        })
        .await?;
        report.routes.changed += replaced;
        report.routes.added += added;
    }

    // Rules, once their tables are filled.
    let current_rules = dump_rules(handle).await?;
    let mut present_rules: BTreeSet<&RuleKey> = BTreeSet::new();
    let mut stale_rules = Vec::new();
    let mut foreign_rules: HashMap<&RuleKey, u8> = HashMap::new();
    for rule in &current_rules {
        match &rule.key {
            // Wanted and seen for the first time: in place. A second identical weft rule
            // (left by an older, buggy run) is stale like an unwanted one.
            Some(key)
                if rule.is_weft()
                    && wanted_rules.contains_key(key)
                    && present_rules.insert(key) => {}
            _ if rule.is_weft() => stale_rules.push(rule),
            Some(key) => {
                foreign_rules.entry(key).or_insert(rule.protocol);
            }
            None => {}
        }
    }
    let mut new_rules = Vec::new();
    for (key, rule) in &wanted_rules {
        if present_rules.contains(key) {
            report.rules.unchanged += 1;
        } else if let Some(protocol) = foreign_rules.get(key) {
            report.conflicts.push(Conflict::Rule {
                wanted: rule.to_string(),
                protocol: *protocol,
            });
        } else {
            new_rules.push(rule.clone());
        }
    }
    let added = new_rules.len();
    write_in_flight(new_rules, |rule| async move {
        let mut request = handle.rule().add();
        *request.message_mut() = build_rule_message(&rule);
        request
            .execute()
            .await
            .map_err(|source| PlumbingError::Rule {
                action: Action::Add,
                rule: rule.to_string(),
                source,
            })?;
        tracing::info!(rule = %rule, "plumbing: rule added");
        Ok(())
    })
    .await?;
    report.rules.added += added;

    // Removals: rules, then routes (gateway routes before the on-link routes they rely on),
    // then addresses.
    let mut stale_routes: Vec<&CurrentRoute> = Vec::new();
    for (key, routes) in &weft_routes {
        let skip = usize::from(wanted_routes.contains_key(key));
        stale_routes.extend(routes.iter().skip(skip));
    }
    stale_routes.sort_by_key(|r| r.body.gateway.is_none());
    let stale_addresses: Vec<&CurrentAddress> = current_addresses
        .iter()
        .filter(|current| {
            current.protocol == Some(WEFT_RT_PROTOCOL)
                && !wanted_address_set.contains(&(current.index, current.address))
        })
        .collect();
    let stale_devices = stale_routes.iter().filter_map(|r| r.body.oif);
    let stale_devices: BTreeSet<u32> = stale_devices
        .chain(stale_addresses.iter().map(|a| a.index))
        .collect();
    links.learn_names(handle, stale_devices).await?;
    for rule in stale_rules {
        let description = render_current_rule(rule);
        tolerate_gone(handle.rule().del(rule.message.clone()).execute().await).map_err(
            |source| PlumbingError::Rule {
                action: Action::Delete,
                rule: description.clone(),
                source,
            },
        )?;
        tracing::info!(rule = %description, "plumbing: rule removed");
        report.rules.removed += 1;
    }
    for route in stale_routes {
        let description = render_current_route(route, &links);
        tolerate_gone(
            handle
                .route()
                .del(route_delete_message(route))
                .execute()
                .await,
        )
        .map_err(|source| PlumbingError::Route {
            action: Action::Delete,
            route: description.clone(),
            source,
        })?;
        tracing::info!(route = %description, "plumbing: route removed");
        report.routes.removed += 1;
    }
    for current in stale_addresses {
        let description = format!("{} dev {}", current.address, links.name(current.index));
        tolerate_gone(
            handle
                .address()
                .del(current.message.clone())
                .execute()
                .await,
        )
        .map_err(|source| PlumbingError::Address {
            action: Action::Delete,
            address: description.clone(),
            source,
        })?;
        tracing::info!(address = %description, "plumbing: address removed");
        report.addresses.removed += 1;
    }

    Ok(report)
}

/// Makes the writes of one step of [`apply`], [`IN_FLIGHT`] at a time rather than one round
/// trip each (a gateway of 1,000 networks writes 12,000 routes and 4,000 rules when it
/// starts), sent in order, and returns the first failure. Writes already sent may still take
/// effect; the next [`apply`] reconciles whatever they left.
async fn write_in_flight<T, F, R>(items: Vec<T>, write: F) -> Result<(), PlumbingError>
where
    F: FnMut(T) -> R,
    R: Future<Output = Result<(), PlumbingError>>,
{
    let mut written = stream::iter(items).map(write).buffer_unordered(IN_FLIGHT);
    while let Some(result) = written.next().await {
        result?;
    }
    Ok(())
}

/// A delete that finds the object gone already has done its job (another process, or the
/// kernel with its device, removed it first).
fn tolerate_gone(result: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match result {
        Err(e) if already_gone(&e) => Ok(()),
        other => other,
    }
}

/// Removes every route and rule that carries [`WEFT_RT_PROTOCOL`] (rules: within weft's
/// priorities), in every table, and nothing else: what a stopping gateway does so that the
/// host forwards nothing through weft any more.
///
/// In three steps: the routes that forward (gateway routes before the on-link routes they rely
/// on), then the rules, then the `unreachable` routes that close weft's tables. Meanwhile a
/// packet that a weft rule selects finds its route or is refused; it never falls through to
/// the host's `main` table. The rules do not go first because the kernel walks its whole
/// IPv6 routing table for every IPv6 rule it deletes: without the forwarding routes (6,000
/// IPv6 routes for 1,000 networks) that step takes half as long.
///
/// The deletions go out 64 at a time instead of one round trip each: a gateway of 1,000
/// networks has 12,000 routes and 4,000 rules to remove within the few seconds a supervisor
/// waits. Every one is tried even when some fail, so that a stopping gateway leaves as little
/// behind as it can; each failure is logged and the first one returned.
/// Objects already gone count as removed.
///
/// Interface addresses and links are left: a `noprefixroute` address is harmless without
/// weft's tables, the TUN devices go with [`remove_links`] or the gateway's descriptors, and
/// the next [`apply`] finds both as it wants them. Removing the addresses would be worse than
/// untidy: when the last IPv4 address leaves an interface the kernel flushes every IPv4
/// route through it, other owners' included, and weft never touches those.
pub async fn remove_all(handle: &Handle) -> Result<RemovalReport, PlumbingError> {
    let (closing, forwarding): (Vec<CurrentRoute>, Vec<CurrentRoute>) = dump_routes(handle)
        .await?
        .into_iter()
        .filter(|r| r.protocol == WEFT_RT_PROTOCOL)
        .partition(|r| r.body.unreachable);
    let (via_gateway, on_link): (Vec<CurrentRoute>, Vec<CurrentRoute>) = forwarding
        .into_iter()
        .partition(|r| r.body.gateway.is_some());
    let rules: Vec<CurrentRule> = dump_rules(handle)
        .await?
        .into_iter()
        .filter(CurrentRule::is_weft)
        .collect();
    let delete_route = |route: CurrentRoute| async move {
        let deleted = handle.route().del(route_delete_message(&route)).execute();
        match tolerate_gone(deleted.await) {
            Ok(()) => Ok(true),
            Err(source) => {
                // Named for the message only: a name that cannot be learnt stays `if#N`.
                let mut links = Links::default();
                let _ = links
                    .learn_names(handle, route.body.oif.into_iter().collect())
                    .await;
                Err(PlumbingError::Route {
                    action: Action::Delete,
                    route: render_current_route(&route, &links),
                    source,
                })
            }
        }
    };
    let (via_gateway, via_error) = in_flight(via_gateway, delete_route).await;
    let (on_link, on_link_error) = in_flight(on_link, delete_route).await;
    let (rules, rule_error) = in_flight(rules, |rule| async move {
        let deleted = handle.rule().del(rule.message.clone()).execute().await;
        tolerate_gone(deleted)
            .map(|()| true)
            .map_err(|source| PlumbingError::Rule {
                action: Action::Delete,
                rule: render_current_rule(&rule),
                source,
            })
    })
    .await;
    let (closing, closing_error) = in_flight(closing, delete_route).await;
    let report = RemovalReport {
        routes: via_gateway + on_link + closing,
        rules,
    };
    tracing::info!(
        routes = report.routes,
        rules = report.rules,
        "plumbing: removed all weft routes and rules"
    );
    match via_error.or(on_link_error).or(rule_error).or(closing_error) {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

/// Deletes the links `names`, a stopping gateway's TUN devices, all with one request, and
/// with them the routes through them. Returns how many it deleted; a link already gone is
/// skipped.
///
/// Why not let them go with their descriptors: the kernel unregisters a device that goes
/// on its own (its last descriptor closed, or an `RTM_DELLINK` of its own) in a transaction
/// of its own, which waits for several RCU grace periods: 17 to 28 ms per TUN device, 25 s
/// for a gateway of 1,000 networks, far past the 5 s a supervisor gives it before SIGKILL.
/// Devices deleted by one request share one transaction. The kernel still walks its IPv6
/// routes once for each device it takes down and once for each it deletes, so call this
/// after [`remove_all`], when there are fewer of them.
///
/// How: each link is taken down and put in [`WEFT_LINK_GROUP`] (64 requests at a time; down
/// in the same request, so that the change of group notifies nobody), then the group is
/// deleted (`ip link delete group 245`). Whatever the outcome, the descriptors of
/// the devices are still the caller's to close; closing one whose device is gone is cheap.
pub async fn remove_links(handle: &Handle, names: &[String]) -> Result<usize, PlumbingError> {
    for name in names {
        check_interface(name, || format!("link {name}"))?;
    }
    let (grouped, group_error) = in_flight(names.to_vec(), |name| async move {
        let message = LinkUnspec::new_with_name(&name)
            .down()
            .link_group(WEFT_LINK_GROUP)
            .build();
        match handle.link().set(message).execute().await {
            Err(e) if no_such_link(&e) => Ok(false),
            result => result.map(|()| true).map_err(|source| PlumbingError::Link {
                action: Action::Set,
                link: format!("{name} (down, group {WEFT_LINK_GROUP})"),
                source,
            }),
        }
    })
    .await;
    if grouped > 0 {
        let mut group = LinkMessage::default();
        group.attributes.push(LinkAttribute::Group(WEFT_LINK_GROUP));
        match handle.link().del_with_message(group).execute().await {
            Err(e) if no_such_link(&e) => {}
            result => result.map_err(|source| PlumbingError::Link {
                action: Action::Delete,
                link: format!("group {WEFT_LINK_GROUP}"),
                source,
            })?,
        }
    }
    tracing::info!(links = grouped, "plumbing: deleted the TUN devices");
    match group_error {
        Some(error) => Err(error),
        None => Ok(grouped),
    }
}

/// Makes the request `request` builds for every item, [`IN_FLIGHT`] at a time, and tries
/// them all. Returns how many did their work (answered `true`) and the first failure; each
/// failure is logged.
async fn in_flight<T, F, R>(
    items: impl IntoIterator<Item = T>,
    request: F,
) -> (usize, Option<PlumbingError>)
where
    F: FnMut(T) -> R,
    R: Future<Output = Result<bool, PlumbingError>>,
{
    let mut answers = stream::iter(items).map(request).buffer_unordered(IN_FLIGHT);
    let mut done = 0;
    let mut first_error = None;
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(did) => done += usize::from(did),
            Err(error) => {
                tracing::warn!(%error, "plumbing: a request failed");
                first_error.get_or_insert(error);
            }
        }
    }
    (done, first_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_gateway_on_the_sites_own_lan_routes_it_once() {
        let mut plumbing = Plumbing::default();
        plumbing.add_network(&NetworkPlumbing {
            table: 1001,
            tun: "weft1001".into(),
            mtu: 1380,
            interface: "lan0".into(),
            interface_addresses: vec![net("10.10.1.1/24")],
            local_routes: vec![
                LocalRoute {
                    prefix: net("10.10.1.0/24"),
                    via: None,
                },
                LocalRoute {
                    prefix: net("10.10.9.0/24"),
                    via: Some("10.10.1.254".parse().unwrap()),
                },
            ],
            remote_prefixes: vec![],
        });
        let lines: Vec<String> = plumbing.tables[0]
            .routes
            .iter()
            .map(|r| r.line(1001))
            .collect();
        assert_eq!(
            lines[..2],
            [
                "10.10.1.0/24 dev lan0 table 1001 src 10.10.1.1",
                "10.10.9.0/24 via 10.10.1.254 dev lan0 table 1001",
            ]
        );
    }

    #[test]
    fn add_network_expands_to_tables_rules_links_and_addresses() {
        let mut plumbing = Plumbing::default();
        plumbing.add_network(&NetworkPlumbing {
            table: 1001,
            tun: "weft1001".into(),
            mtu: 1380,
            interface: "shop-prod".into(),
            interface_addresses: vec![net("169.254.100.1/30")],
            local_routes: vec![LocalRoute {
                prefix: net("10.10.1.0/24"),
                via: Some("169.254.100.2".parse().unwrap()),
            }],
            remote_prefixes: vec![net("10.20.0.0/16")],
        });
        assert_eq!(
            plumbing.links,
            vec![LinkSpec {
                name: "weft1001".into(),
                mtu: Some(1380),
                up: true
            }]
        );
        assert_eq!(plumbing.addresses.len(), 1);
        let lines: Vec<String> = plumbing.tables[0]
            .routes
            .iter()
            .map(|r| r.line(1001))
            .collect();
        assert_eq!(
            lines,
            [
                "169.254.100.0/30 dev shop-prod table 1001 src 169.254.100.1",
                "10.10.1.0/24 via 169.254.100.2 dev shop-prod table 1001",
                "10.20.0.0/16 dev weft1001 table 1001",
                "unreachable 0.0.0.0/0 table 1001 metric 4278190080",
                "unreachable ::/0 table 1001 metric 4278190080",
            ]
        );
        let rules: Vec<String> = plumbing.rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            [
                "-4 rule priority 12000 iif shop-prod lookup 1001",
                "-4 rule priority 12000 iif weft1001 lookup 1001",
                "-6 rule priority 12000 iif shop-prod lookup 1001",
                "-6 rule priority 12000 iif weft1001 lookup 1001",
            ]
        );
    }

    #[test]
    fn validation_rejects_reserved_tables_bad_priorities_and_ambiguity() {
        let mut p = Plumbing::default();
        p.rules.push(RuleSpec::iif(Family::V4, "eth0", 254));
        assert!(matches!(
            desired_rules(&p),
            Err(PlumbingError::ReservedTable { table: 254 })
        ));

        let mut p = Plumbing::default();
        p.rules.push(RuleSpec {
            priority: 100,
            ..RuleSpec::iif(Family::V4, "eth0", 7)
        });
        assert!(matches!(
            desired_rules(&p),
            Err(PlumbingError::RulePriorityOutOfRange { .. })
        ));

        let mut p = Plumbing::default();
        p.rules.push(RuleSpec::iif(Family::V4, "eth0", 7));
        p.rules.push(RuleSpec::iif(Family::V4, "eth0", 8));
        assert!(matches!(
            desired_rules(&p),
            Err(PlumbingError::AmbiguousRules { .. })
        ));

        let mut p = Plumbing::default();
        p.rules
            .push(RuleSpec::iif(Family::V4, "this-name-is-too-long", 7));
        assert!(matches!(
            desired_rules(&p),
            Err(PlumbingError::InvalidInterfaceName { .. })
        ));
    }

    #[test]
    fn validation_rejects_family_mismatch_duplicates_and_unknown_links() {
        let mut links = Links::default();
        links.by_name.insert(
            "eth0".into(),
            CurrentLink {
                index: 2,
                mtu: Some(1500),
                up: true,
            },
        );
        let table = |routes| Plumbing {
            tables: vec![TableSpec { id: 7, routes }],
            ..Default::default()
        };

        let p = table(vec![RouteSpec::via(
            net("10.0.0.0/8"),
            "fe80::1".parse().unwrap(),
            "eth0",
        )]);
        assert!(matches!(
            desired_routes(&p, &links),
            Err(PlumbingError::FamilyMismatch { .. })
        ));

        let p = table(vec![
            RouteSpec::via(net("10.0.0.0/8"), "10.1.1.1".parse().unwrap(), "eth0"),
            RouteSpec::device(net("10.0.0.0/8"), "eth0"),
        ]);
        assert!(matches!(
            desired_routes(&p, &links),
            Err(PlumbingError::DuplicateRoute { .. })
        ));

        let p = table(vec![RouteSpec::device(net("10.0.0.0/8"), "eth9")]);
        let err = desired_routes(&p, &links).unwrap_err();
        assert!(
            matches!(&err, PlumbingError::LinkNotFound { name, .. } if name == "eth9"),
            "{err}"
        );
        assert!(
            err.to_string().contains("10.0.0.0/8 dev eth9 table 7"),
            "{err}"
        );

        // Identical duplicates collapse; host bits are ignored; IPv6 metric 0 is 1024.
        let p = table(vec![
            RouteSpec::device(net("10.0.0.1/8"), "eth0"),
            RouteSpec::device(net("10.0.0.0/8"), "eth0"),
            RouteSpec::device(net("2001:db8::/32"), "eth0"),
        ]);
        let routes = desired_routes(&p, &links).unwrap();
        assert_eq!(routes.len(), 2);
        assert!(routes.keys().any(|k| k.metric == 1024));
    }
}
