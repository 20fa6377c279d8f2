//! The plan of each gateway of the example overlays, checked field by field.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use weft_config::{Intent, Loader, NextHop, RouteTableRef};
use weft_gateway::plan::{RouteTableTarget, TABLE_BASE, plan};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name)
}

fn load(path: &Path) -> Intent {
    Loader::new()
        .env_prefix(None)
        .file(path)
        .load()
        .expect("example is valid")
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn lab_gateway_plan() {
    let intent = load(&example("lab.toml"));
    let p = plan(&intent, "aws-gw").unwrap();
    assert_eq!(p.site, "aws-lab");
    assert_eq!(p.listen_port, 51820);
    assert_eq!(p.infra_address.to_string(), "100.64.0.1");

    let peers: Vec<(&str, String)> = p
        .peers
        .iter()
        .map(|x| (x.gateway.as_str(), x.infra_address.to_string()))
        .collect();
    assert_eq!(
        peers,
        [
            ("azure-gw", "100.64.0.2".into()),
            ("gcp-gw", "100.64.0.3".into()),
            ("onprem-gw", "100.64.0.4".into())
        ]
    );

    let names: Vec<String> = p.networks.iter().map(|n| n.network.to_string()).collect();
    assert_eq!(names, ["media/prod", "shop/prod", "shop/staging"]);
    let shop = &p.networks[1];
    assert_eq!(shop.label.value(), 1001);
    assert_eq!(shop.table, TABLE_BASE + 1001);
    assert_eq!(shop.tun, "weft1001");
    assert_eq!(shop.interface, "shop-prod");
    // The smallest underlay of its sites is gcp-lab's 1460; less 60 (WireGuard over IPv4)
    // and 24 (IPv4 + MPLS).
    assert_eq!(shop.mtu, 1460 - 60 - 24);
    assert_eq!(
        shop.local_routes,
        nets(&["10.10.1.0/24", "fd10:10:0:1::/64"])
    );
    let remote: Vec<(String, &str, &str)> = shop
        .remote_routes
        .iter()
        .map(|r| (r.prefix.to_string(), r.site.as_str(), r.gateway.as_str()))
        .collect();
    assert_eq!(
        remote,
        [
            ("10.10.2.0/24".into(), "azure-lab", "azure-gw"),
            ("fd10:10:0:2::/64".into(), "azure-lab", "azure-gw"),
            ("10.10.3.0/24".into(), "gcp-lab", "gcp-gw"),
            ("fd10:10:0:3::/64".into(), "gcp-lab", "gcp-gw"),
            ("10.10.4.0/24".into(), "onprem", "onprem-gw"),
            ("fd10:10:0:4::/64".into(), "onprem", "onprem-gw"),
        ]
    );
    // No route table is configured in the lab, so the gateway owns no cloud route.
    assert!(p.route_tables.is_empty());
}

#[test]
fn networks_not_attached_at_the_site_are_left_out() {
    let intent = load(&example("lab.toml"));
    let p = plan(&intent, "azure-gw").unwrap();
    let names: Vec<String> = p.networks.iter().map(|n| n.network.to_string()).collect();
    assert_eq!(
        names,
        ["shop/prod", "shop/staging"],
        "media/prod is not attached at azure-lab"
    );
}

#[test]
fn routes_never_cross_networks_with_identical_prefixes() {
    let intent = load(&example("lab.toml"));
    for gateway in intent.gateways.keys() {
        let p = plan(&intent, gateway).unwrap();
        for n in &p.networks {
            let network = &intent.networks[&n.network];
            for r in &n.remote_routes {
                assert!(
                    network.attachments[&r.site].prefixes.contains(&r.prefix),
                    "{gateway}: {} routes {} to {}, which is not that network's prefix there",
                    n.network,
                    r.prefix,
                    r.site
                );
            }
        }
    }
}

#[test]
fn multicloud_cloud_routes() {
    let intent = load(&example("multicloud.toml"));
    let p = plan(&intent, "aws-gw").unwrap();
    let shop_prod: Vec<_> = p
        .route_tables
        .iter()
        .filter(|t| t.network.to_string() == "shop/prod")
        .collect();
    assert_eq!(shop_prod.len(), 2);
    assert_eq!(
        shop_prod[0].target,
        RouteTableTarget::Table {
            table: RouteTableRef::Aws {
                id: "rtb-0a1b2c3d4e5f60711".into()
            }
        }
    );
    assert_eq!(
        shop_prod[0].next_hop,
        NextHop::AwsEni("eni-0f1e2d3c4b5a69781".into())
    );
    assert_eq!(
        shop_prod[0].destinations,
        nets(&[
            "10.10.2.0/24",
            "fd10:10:0:2::/64",
            "10.10.4.0/24",
            "fd10:10:0:4::/64",
            "10.10.3.0/24",
            "fd10:10:0:3::/64"
        ])
    );
    // Staging copied prod's prefixes and writes them to route tables selected by tag.
    let staging = p
        .route_tables
        .iter()
        .find(|t| t.network.to_string() == "shop/staging")
        .unwrap();
    assert!(
        matches!(&staging.target, RouteTableTarget::Tagged { tags } if tags["weft/network"] == "shop-staging")
    );
    assert_eq!(staging.destinations.len(), 6);
    // media/prod is at three sites: aws-eu writes the other two sites' prefixes.
    let media = p
        .route_tables
        .iter()
        .find(|t| t.network.to_string() == "media/prod")
        .unwrap();
    assert_eq!(media.destinations, nets(&["10.10.4.0/24", "10.10.3.0/24"]));

    // At Azure the next hop is an address: IPv4 destinations go to the IPv4 one and IPv6
    // destinations to `next_hop_ipv6`, as two sets of routes in the same table.
    let azure = plan(&intent, "azure-gw").unwrap();
    let prod: Vec<_> = azure
        .route_tables
        .iter()
        .filter(|t| t.network.to_string() == "shop/prod")
        .collect();
    assert_eq!(prod.len(), 2);
    assert_eq!(prod[0].target, prod[1].target);
    assert_eq!(prod[0].next_hop.to_string(), "10.10.2.4");
    assert_eq!(
        prod[0].destinations,
        nets(&["10.10.1.0/24", "10.10.4.0/24", "10.10.3.0/24"])
    );
    assert_eq!(prod[1].next_hop.to_string(), "fd10:10:0:2::4");
    assert_eq!(
        prod[1].destinations,
        nets(&["fd10:10:0:1::/64", "fd10:10:0:4::/64", "fd10:10:0:3::/64"])
    );

    let gcp = plan(&intent, "gcp-gw").unwrap();
    let staging = gcp
        .route_tables
        .iter()
        .find(|t| t.network.to_string() == "shop/staging")
        .unwrap();
    assert_eq!(
        staging.next_hop,
        NextHop::GcpInstance("zones/europe-west1-b/instances/weft-gw".into())
    );
    assert_eq!(
        staging.target,
        RouteTableTarget::Table {
            table: RouteTableRef::Gcp {
                network: "projects/acme-net-prod/global/networks/shop-staging".into()
            }
        }
    );
}

#[test]
fn unknown_gateway_is_an_error_naming_the_known_ones() {
    let intent = load(&example("lab.toml"));
    let e = plan(&intent, "nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no gateway named `nope`; the configuration has: aws-gw, azure-gw, gcp-gw, onprem-gw"
    );
}
