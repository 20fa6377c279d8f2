//! From a gateway's plan to what its host must look like: TUNs, addresses, routing tables
//! and rules. A pure translation; `weft_dataplane::linux::plumbing` makes it so.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_dataplane::linux::plumbing::{LocalRoute, NetworkPlumbing, Plumbing};
use weft_dataplane::linux::tun::TUN_MTU;

use crate::plan::GatewayPlan;

/// The host state of every network of `plan`.
pub fn host_plumbing(plan: &GatewayPlan) -> Plumbing {
    let mut plumbing = Plumbing::default();
    for n in &plan.networks {
        let local_routes = n
            .local_routes
            .iter()
            .map(|prefix| LocalRoute {
                prefix: *prefix,
                via: match prefix {
                    IpNet::V4(_) => n.local_router.map(IpAddr::V4),
                    IpNet::V6(_) => n.local_router_ipv6.map(IpAddr::V6),
                },
            })
            .collect();
        plumbing.add_network(&NetworkPlumbing {
            table: n.table,
            tun: n.tun.clone(),
            mtu: u32::from(TUN_MTU),
            interface: n.interface.clone(),
            interface_addresses: n.addresses.clone(),
            local_routes,
            remote_prefixes: n.remote_routes.iter().map(|r| r.prefix).collect(),
        });
    }
    plumbing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_networks_get_their_tables_rules_and_routes() {
        let (_, plan) = crate::plan::lab_plan("aws-gw");
        let p = host_plumbing(&plan);
        assert_eq!(p.links.len(), 3, "one TUN per network");
        assert_eq!(p.tables.len(), 3);
        assert_eq!(
            p.rules.len(),
            3 * 4,
            "iif interface and iif TUN, both families"
        );
        let shop = p
            .tables
            .iter()
            .find(|t| t.id == crate::plan::TABLE_BASE + 1001)
            .unwrap();
        let text: Vec<String> = shop.routes.iter().map(|r| format!("{r:?}")).collect();
        assert!(
            text.iter()
                .any(|r| r.contains("10.10.1.0/24") && r.contains("169.254.100.2")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|r| r.contains("fd10:10:0:1::/64") && r.contains("fe80::2")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|r| r.contains("10.10.2.0/24") && r.contains("weft1001")),
            "{text:?}"
        );
        // Identical transit addresses on every network's interface.
        assert_eq!(
            p.addresses
                .iter()
                .filter(|a| a.address.to_string() == "169.254.100.1/30")
                .count(),
            3
        );
    }
}
