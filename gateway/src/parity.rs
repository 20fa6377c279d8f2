//! Proof that two networks have the same shape everywhere (staging is prod's twin), or the
//! list of every way in which they differ.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use weft_config::{Intent, NetworkId};

use crate::plan::plan;

/// One way in which two networks differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Where: `overlay` for network-wide aspects, else the site.
    pub place: String,
    /// What was compared: cidrs, attached, prefixes, routes, cloud routes, mtu.
    pub aspect: &'static str,
    /// Items only the first network has.
    pub only_in_a: Vec<String>,
    /// Items only the second network has.
    pub only_in_b: Vec<String>,
}

/// The outcome of comparing two networks.
#[derive(Clone, Debug, Serialize)]
pub struct ParityReport {
    /// The first network.
    pub a: NetworkId,
    /// The second network.
    pub b: NetworkId,
    /// How many items were compared.
    pub compared: usize,
    /// Sites looked at.
    pub sites: Vec<String>,
    /// Every difference; empty means identical.
    pub differences: Vec<Difference>,
}

impl ParityReport {
    /// Whether the two networks are identical in every compared aspect.
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Why two networks cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParityError {
    /// A network is not in the configuration.
    #[error("network `{0}` is not in the configuration")]
    UnknownNetwork(String),
}

struct Comparison<'a> {
    report: ParityReport,
    a: &'a NetworkId,
    b: &'a NetworkId,
}

impl Comparison<'_> {
    fn compare(
        &mut self,
        place: &str,
        aspect: &'static str,
        a: BTreeSet<String>,
        b: BTreeSet<String>,
    ) {
        self.report.compared += a.union(&b).count();
        let only_in_a: Vec<String> = a.difference(&b).cloned().collect();
        let only_in_b: Vec<String> = b.difference(&a).cloned().collect();
        if !only_in_a.is_empty() || !only_in_b.is_empty() {
            self.report.differences.push(Difference {
                place: place.to_owned(),
                aspect,
                only_in_a,
                only_in_b,
            });
        }
    }
}

fn set<T: ToString>(items: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

/// Compares networks `a` and `b`: address space, the sites they are attached at, the
/// prefixes at each site, and at each site's gateway the routes, cloud route destinations
/// and MTU. Labels, interfaces, route table ids and next hops are meant to differ and are
/// not compared.
pub fn parity(intent: &Intent, a: &str, b: &str) -> Result<ParityReport, ParityError> {
    let find = |name: &str| {
        name.parse::<NetworkId>()
            .ok()
            .and_then(|id| intent.networks.get(&id))
            .ok_or_else(|| ParityError::UnknownNetwork(name.to_owned()))
    };
    let (net_a, net_b) = (find(a)?, find(b)?);
    let mut c = Comparison {
        report: ParityReport {
            a: net_a.id.clone(),
            b: net_b.id.clone(),
            compared: 0,
            sites: Vec::new(),
            differences: Vec::new(),
        },
        a: &net_a.id,
        b: &net_b.id,
    };
    c.compare("overlay", "cidrs", set(&net_a.cidrs), set(&net_b.cidrs));
    c.compare(
        "overlay",
        "attached at",
        set(net_a.attachments.keys()),
        set(net_b.attachments.keys()),
    );
    let sites: BTreeSet<&String> = net_a
        .attachments
        .keys()
        .chain(net_b.attachments.keys())
        .collect();
    for site in sites {
        c.report.sites.push(site.clone());
        let (Some(att_a), Some(att_b)) = (net_a.attachments.get(site), net_b.attachments.get(site))
        else {
            continue;
        };
        c.compare(site, "prefixes", set(&att_a.prefixes), set(&att_b.prefixes));
        let Some(gateway) = intent.gateway_at(site) else {
            continue;
        };
        let Ok(gateway_plan) = plan(intent, &gateway.name) else {
            continue;
        };
        let of = |id: &NetworkId| gateway_plan.networks.iter().find(|n| &n.network == id);
        let (Some(plan_a), Some(plan_b)) = (of(c.a), of(c.b)) else {
            continue;
        };
        let routes = |p: &crate::plan::NetworkPlan| {
            p.local_routes
                .iter()
                .map(|r| format!("{r} local"))
                .chain(
                    p.remote_routes
                        .iter()
                        .map(|r| format!("{} via {}", r.prefix, r.site)),
                )
                .collect::<BTreeSet<_>>()
        };
        c.compare(site, "routes", routes(plan_a), routes(plan_b));
        let cloud = |id: &NetworkId| {
            gateway_plan
                .route_tables
                .iter()
                .filter(|t| &t.network == id)
                .flat_map(|t| t.destinations.iter().map(ToString::to_string))
                .collect::<BTreeSet<_>>()
        };
        c.compare(site, "cloud routes", cloud(c.a), cloud(c.b));
        c.compare(site, "mtu", set([plan_a.mtu]), set([plan_b.mtu]));
    }
    Ok(c.report)
}

impl fmt::Display for ParityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.identical() {
            return write!(
                f,
                "identical: {} and {} have the same CIDRs, attachments, prefixes, routes, cloud \
                 routes and MTU at {} site(s) ({} items compared)",
                self.a,
                self.b,
                self.sites.len(),
                self.compared
            );
        }
        writeln!(
            f,
            "different: {} and {} differ in {} place(s):",
            self.a,
            self.b,
            self.differences.len()
        )?;
        for d in &self.differences {
            write!(f, "  {} {}:", d.place, d.aspect)?;
            if !d.only_in_a.is_empty() {
                write!(f, " only in {}: {};", self.a, d.only_in_a.join(", "))?;
            }
            if !d.only_in_b.is_empty() {
                write!(f, " only in {}: {};", self.b, d.only_in_b.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
