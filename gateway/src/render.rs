//! Human-readable tables of a plan, for `weft plan`, and the pieces every text report of
//! the binary shares.

use std::path::PathBuf;

use comfy_table::{Table, presets};
use weft_config::Diagnostics;

use crate::plan::{GatewayPlan, RouteTableTarget};

/// An empty table with `header`, in the style of every table weft prints (`weft plan`,
/// `weft status`, `weft lab status` and `weft lab check`), so that they all look alike and
/// a change of style happens in one place.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// Why a configuration is invalid, as text: every diagnostic rendered, then the summary
/// line. Every command that loads a configuration (`weft validate`, `weft plan`, `weft
/// parity`, `weft lab`) prints it the same way.
pub fn diagnostics_text(diagnostics: &Diagnostics) -> String {
    let mut out: String = diagnostics.iter().map(|d| d.render() + "\n").collect();
    out += format!("{diagnostics}").lines().next().unwrap_or_default();
    out.push('\n');
    out
}

/// Configuration layers as one line, in the order they merge: `base.toml + lab.toml`.
pub fn config_layers(layers: &[PathBuf]) -> String {
    layers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The plan of one gateway as text tables: peers, networks, routes per network and the
/// cloud routes it owns.
pub fn plan_text(plan: &GatewayPlan) -> String {
    let mut out = format!(
        "gateway {} at site {} ({}), endpoint {}, infra address {}\n",
        plan.gateway, plan.site, plan.site_kind, plan.endpoint, plan.infra_address
    );

    let mut peers = table(&["peer", "site", "endpoint", "public key", "infra address"]);
    for p in &plan.peers {
        peers.add_row(vec![
            p.gateway.clone(),
            p.site.clone(),
            p.endpoint.to_string(),
            p.public_key.to_string(),
            p.infra_address.to_string(),
        ]);
    }
    out += &format!("\nWireGuard peers ({})\n{peers}\n", plan.peers.len());

    let mut networks = table(&["network", "label", "table", "tun", "mtu", "interface"]);
    for n in &plan.networks {
        networks.add_row(vec![
            n.network.to_string(),
            n.label.to_string(),
            n.table.to_string(),
            n.tun.clone(),
            n.mtu.to_string(),
            n.interface.clone(),
        ]);
    }
    out += &format!("\nNetworks ({})\n{networks}\n", plan.networks.len());

    for n in &plan.networks {
        let mut routes = table(&["prefix", "via", "label"]);
        for prefix in &n.local_routes {
            routes.add_row(vec![
                prefix.to_string(),
                format!("local, {}", n.interface),
                "-".into(),
            ]);
        }
        for r in &n.remote_routes {
            routes.add_row(vec![
                r.prefix.to_string(),
                format!("gateway {} (site {})", r.gateway, r.site),
                n.label.to_string(),
            ]);
        }
        out += &format!("\nRoutes of {} (table {})\n{routes}\n", n.network, n.table);
    }

    let mut cloud = table(&[
        "route table",
        "network",
        "destination",
        "next hop",
        "takeover",
    ]);
    for t in &plan.route_tables {
        let target = match &t.target {
            RouteTableTarget::Table { table } => table.to_string(),
            RouteTableTarget::Tagged { tags } => format!(
                "tagged {}",
                tags.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        for d in &t.destinations {
            cloud.add_row(vec![
                target.clone(),
                t.network.to_string(),
                d.to_string(),
                t.next_hop.to_string(),
                t.takeover.to_string(),
            ]);
        }
    }
    let owned: usize = plan.route_tables.iter().map(|t| t.destinations.len()).sum();
    out += &format!("\nCloud routes this gateway owns ({owned})\n{cloud}\n");
    out
}
