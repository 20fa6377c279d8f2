//! The Linux plumbing against a real kernel: every test builds its own network namespaces
//! (never the host's), with veth pairs and TUN devices inside, and checks the kernel's state
//! with `ip -j` — an observer independent of the netlink code under test.
//!
//! Needs root (namespaces, TUN); without it each test prints why it skipped. CI runs as root.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;
use weft_dataplane::linux::netns::NetnsGuard;
use weft_dataplane::linux::plumbing::{
    self, ApplyReport, Conflict, Counts, Family, LinkSpec, LocalRoute, NetworkPlumbing, Plumbing,
    RuleSelector, RuleSpec, UNREACHABLE_METRIC, WEFT_RT_PROTOCOL,
};
use weft_dataplane::linux::tun::{TunDevice, TunError, TunReadBatch, TunWriteBatch, open_tun};

/// Returns early, saying why, when the test cannot run here.
macro_rules! require_root {
    ($test:literal) => {
        if !nix::unistd::geteuid().is_root() {
            // Straight to the file descriptor: the test harness would swallow eprintln!.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {}: needs root for network namespaces and TUN devices (CI runs as root)",
                $test
            );
            return;
        }
    };
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn json(ns: &NetnsGuard, args: &[&str]) -> Value {
    let out = ns.ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    if out.trim().is_empty() {
        Value::Array(vec![])
    } else {
        serde_json::from_str(&out).unwrap()
    }
}

fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Routes of `protocol` in every table, both families, as readable lines.
fn routes_with_protocol(ns: &NetnsGuard, protocol: &str) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for (family, flag) in [("4", "-4"), ("6", "-6")] {
        for route in json(ns, &["-j", flag, "route", "show", "table", "all"])
            .as_array()
            .unwrap()
        {
            if field(route, "protocol") != protocol {
                continue;
            }
            let kind = match field(route, "type") {
                k if k.is_empty() => "unicast".to_owned(),
                k => k,
            };
            let mut line = format!(
                "{family} table {} {kind} {}",
                field(route, "table"),
                field(route, "dst")
            );
            if kind == "unicast" {
                for (key, label) in [("gateway", "via"), ("dev", "dev"), ("prefsrc", "src")] {
                    let value = field(route, key);
                    if !value.is_empty() {
                        line.push_str(&format!(" {label} {value}"));
                    }
                }
            }
            let metric = field(route, "metric");
            if !metric.is_empty() && metric != "1024" && metric != "0" {
                line.push_str(&format!(" metric {metric}"));
            }
            lines.insert(line);
        }
    }
    lines
}

fn weft_routes(ns: &NetnsGuard) -> BTreeSet<String> {
    routes_with_protocol(ns, &WEFT_RT_PROTOCOL.to_string())
}

/// Rules of `protocol`, both families, as readable lines.
fn rules_with_protocol(ns: &NetnsGuard, protocol: &str) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for (family, flag) in [("4", "-4"), ("6", "-6")] {
        for rule in json(ns, &["-j", flag, "rule", "show"]).as_array().unwrap() {
            if field(rule, "protocol") != protocol {
                continue;
            }
            let selector = if rule.get("iif").is_some() {
                format!("iif {}", field(rule, "iif"))
            } else {
                format!("oif {}", field(rule, "oif"))
            };
            lines.insert(format!(
                "{family} {} {selector} lookup {}",
                field(rule, "priority"),
                field(rule, "table")
            ));
        }
    }
    lines
}

fn weft_rules(ns: &NetnsGuard) -> BTreeSet<String> {
    rules_with_protocol(ns, &WEFT_RT_PROTOCOL.to_string())
}

/// The IPv4 addresses of `dev`, as `ADDR/LEN[ noprefixroute]`.
fn ipv4_addresses(ns: &NetnsGuard, dev: &str) -> Vec<String> {
    let mut out = Vec::new();
    for link in json(ns, &["-j", "addr", "show", "dev", dev])
        .as_array()
        .unwrap()
    {
        for a in link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["family"] == "inet")
        {
            let flag = if a["noprefixroute"] == true {
                " noprefixroute"
            } else {
                ""
            };
            out.push(format!(
                "{}/{}{flag}",
                field(a, "local"),
                field(a, "prefixlen")
            ));
        }
    }
    out
}

fn lines(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A veth pair `name` <-> `peer`, both up, in `ns`.
fn veth(ns: &NetnsGuard, name: &str, peer: &str) {
    ns.ip(&["link", "add", name, "type", "veth", "peer", "name", peer])
        .unwrap();
    ns.ip(&["link", "set", name, "up"]).unwrap();
    ns.ip(&["link", "set", peer, "up"]).unwrap();
}

/// One network as the lab uses it: the gateway holds 169.254.100.1/30 on `interface`, the
/// VPC router is .2, the local subnet 10.10.1.0/24 is behind it — identical in every
/// network.
fn network(table: u32, tun: &str, interface: &str, remote: &[&str]) -> NetworkPlumbing {
    NetworkPlumbing {
        table,
        tun: tun.into(),
        mtu: 1380,
        interface: interface.into(),
        interface_addresses: vec![net("169.254.100.1/30")],
        local_routes: vec![LocalRoute {
            prefix: net("10.10.1.0/24"),
            via: Some(ip("169.254.100.2")),
        }],
        remote_prefixes: remote.iter().map(|p| net(p)).collect(),
    }
}

fn two_networks(prod_remote: &[&str], stg_remote: &[&str]) -> Plumbing {
    let mut plumbing = Plumbing::default();
    plumbing.add_network(&network(1001, "weft1001", "shop-prod", prod_remote));
    plumbing.add_network(&network(1002, "weft1002", "shop-stg", stg_remote));
    plumbing
}

fn network_routes(table: u32, interface: &str, tun: &str, remote: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("4 table {table} unicast 169.254.100.0/30 dev {interface} src 169.254.100.1"),
        format!("4 table {table} unicast 10.10.1.0/24 via 169.254.100.2 dev {interface}"),
        format!("4 table {table} unreachable default metric {UNREACHABLE_METRIC}"),
        format!("6 table {table} unreachable default metric {UNREACHABLE_METRIC}"),
    ];
    v.extend(
        remote
            .iter()
            .map(|p| format!("4 table {table} unicast {p} dev {tun}")),
    );
    v
}

fn expected_routes(prod_remote: &[&str], stg_remote: &[&str]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = network_routes(1001, "shop-prod", "weft1001", prod_remote)
        .into_iter()
        .collect();
    set.extend(network_routes(1002, "shop-stg", "weft1002", stg_remote));
    set
}

fn expected_rules() -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for family in ["4", "6"] {
        for (dev, table) in [
            ("shop-prod", 1001),
            ("weft1001", 1001),
            ("shop-stg", 1002),
            ("weft1002", 1002),
        ] {
            set.insert(format!("{family} 12000 iif {dev} lookup {table}"));
        }
    }
    set
}

fn counts(added: usize, changed: usize, removed: usize, unchanged: usize) -> Counts {
    Counts {
        added,
        changed,
        removed,
        unchanged,
    }
}

/// The gateway namespace of the plumbing tests: the two network interfaces as veths (their
/// other ends stay in the namespace, unused).
fn gateway_namespace(label: &str) -> NetnsGuard {
    let gw = NetnsGuard::new(label).unwrap();
    veth(&gw, "shop-prod", "shop-prod-p");
    veth(&gw, "shop-stg", "shop-stg-p");
    gw
}

async fn apply(plumbing: &Plumbing) -> ApplyReport {
    let handle = plumbing::connect().unwrap();
    plumbing::apply(&handle, plumbing)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"))
}

#[test]
fn identical_subnets_are_plumbed_exactly_idempotently_and_incrementally() {
    require_root!("identical_subnets_are_plumbed_exactly_idempotently_and_incrementally");
    let gw = gateway_namespace("plumb");
    gw.block_on(|| async {
        let _prod_tun = open_tun("weft1001", 1380).unwrap();
        let _stg_tun = open_tun("weft1002", 1380).unwrap();

        // First apply: everything is new.
        let desired = two_networks(&["10.20.0.0/16"], &["10.30.0.0/16"]);
        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(10, 0, 0, 0), "{report:?}");
        assert_eq!(report.rules, counts(8, 0, 0, 0), "{report:?}");
        assert_eq!(report.addresses, counts(2, 0, 0, 0), "{report:?}");
        assert_eq!(
            report.links,
            counts(0, 0, 0, 2),
            "open_tun already set MTU and up: {report:?}"
        );
        assert!(report.conflicts.is_empty(), "{report:?}");
        assert_eq!(
            weft_routes(&gw),
            expected_routes(&["10.20.0.0/16"], &["10.30.0.0/16"])
        );
        assert_eq!(weft_rules(&gw), expected_rules());

        // The identical addresses are there, without connected routes in main.
        for dev in ["shop-prod", "shop-stg"] {
            assert_eq!(ipv4_addresses(&gw, dev), ["169.254.100.1/30 noprefixroute"]);
        }
        let main = json(&gw, &["-j", "route", "show", "table", "main"]);
        assert!(
            !main
                .as_array()
                .unwrap()
                .iter()
                .any(|r| field(r, "dst").starts_with("169.254.100.")),
            "connected route leaked into main: {main}"
        );

        // Again, and again from a fresh connection (a restarted gateway): nothing to do.
        for _ in 0..2 {
            let report = apply(&desired).await;
            assert!(report.is_noop(), "{report:?}");
            assert_eq!(report.routes, counts(0, 0, 0, 10));
            assert_eq!(report.rules, counts(0, 0, 0, 8));
            assert_eq!(report.addresses, counts(0, 0, 0, 2));
        }

        // Drop a remote prefix and add another: only that difference is written.
        let desired = two_networks(&["10.21.0.0/16"], &["10.30.0.0/16"]);
        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(1, 0, 1, 9), "{report:?}");
        assert_eq!(report.rules, counts(0, 0, 0, 8), "{report:?}");
        assert_eq!(report.changes(), 2, "{report:?}");
        assert_eq!(
            weft_routes(&gw),
            expected_routes(&["10.21.0.0/16"], &["10.30.0.0/16"])
        );

        // A next hop that changes is replaced in place.
        let mut moved = desired.clone();
        let stg = moved.tables.iter_mut().find(|t| t.id == 1002).unwrap();
        let local = stg
            .routes
            .iter_mut()
            .find(|r| r.destination == net("10.10.1.0/24"))
            .unwrap();
        local.next_hop = plumbing::NextHop::Device("shop-stg".into());
        let report = apply(&moved).await;
        assert_eq!(report.routes, counts(0, 1, 0, 9), "{report:?}");
        assert!(weft_routes(&gw).contains("4 table 1002 unicast 10.10.1.0/24 dev shop-stg"));
        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(0, 1, 0, 9), "{report:?}");
        assert_eq!(
            weft_routes(&gw),
            expected_routes(&["10.21.0.0/16"], &["10.30.0.0/16"])
        );
    })
    .unwrap();
}

#[test]
fn routes_and_rules_of_other_owners_are_never_touched() {
    require_root!("routes_and_rules_of_other_owners_are_never_touched");
    let gw = gateway_namespace("foreign");
    gw.block_on(|| async {
        let _prod_tun = open_tun("weft1001", 1380).unwrap();
        let _stg_tun = open_tun("weft1002", 1380).unwrap();
        let desired = two_networks(&["10.20.0.0/16"], &["10.30.0.0/16"]);
        apply(&desired).await;

        // An operator's routes in weft's tables, one of them where weft wants one, and
        // rules of theirs, one of them where weft wants one.
        gw.ip(&[
            "route",
            "add",
            "10.99.0.0/16",
            "dev",
            "shop-prod",
            "table",
            "1001",
            "proto",
            "static",
        ])
        .unwrap();
        gw.ip(&[
            "route",
            "add",
            "10.40.0.0/16",
            "dev",
            "shop-stg",
            "table",
            "1002",
            "proto",
            "static",
        ])
        .unwrap();
        gw.ip(&[
            "rule",
            "add",
            "iif",
            "shop-prod",
            "lookup",
            "1001",
            "priority",
            "12500",
            "protocol",
            "static",
        ])
        .unwrap();
        gw.ip(&[
            "rule", "add", "iif", "shop-stg", "lookup", "1002", "priority", "12001", "protocol",
            "boot",
        ])
        .unwrap();
        let foreign_routes = routes_with_protocol(&gw, "static");
        let foreign_rules = rules_with_protocol(&gw, "static");
        assert_eq!(
            foreign_routes,
            lines(&[
                "4 table 1001 unicast 10.99.0.0/16 dev shop-prod",
                "4 table 1002 unicast 10.40.0.0/16 dev shop-stg"
            ])
        );
        assert_eq!(foreign_rules.len(), 1);

        let mut wanting = two_networks(&["10.20.0.0/16"], &["10.30.0.0/16", "10.40.0.0/16"]);
        wanting.rules.push(RuleSpec {
            family: Family::V4,
            priority: 12001,
            selector: RuleSelector::Iif("shop-stg".into()),
            table: 1002,
        });
        for _ in 0..2 {
            let report = apply(&wanting).await;
            assert!(report.is_noop(), "{report:?}");
            assert_eq!(report.conflicts.len(), 2, "{report:?}");
            assert!(
                report
                    .conflicts
                    .iter()
                    .any(|c| matches!(c, Conflict::Route { wanted, protocol: 4 }
                    if wanted == "10.40.0.0/16 dev weft1002 table 1002")),
                "{report:?}"
            );
            assert!(
                report
                    .conflicts
                    .iter()
                    .any(|c| matches!(c, Conflict::Rule { protocol: 3, .. })),
                "{report:?}"
            );
        }
        assert_eq!(routes_with_protocol(&gw, "static"), foreign_routes);
        assert_eq!(rules_with_protocol(&gw, "static"), foreign_rules);
        assert_eq!(
            weft_routes(&gw),
            expected_routes(&["10.20.0.0/16"], &["10.30.0.0/16"])
        );

        // Stopping removes all of weft's and only weft's.
        let handle = plumbing::connect().unwrap();
        let removed = plumbing::remove_all(&handle).await.unwrap();
        assert_eq!((removed.routes, removed.rules), (10, 8));
        assert!(weft_routes(&gw).is_empty(), "{:?}", weft_routes(&gw));
        assert!(weft_rules(&gw).is_empty(), "{:?}", weft_rules(&gw));
        assert_eq!(routes_with_protocol(&gw, "static"), foreign_routes);
        assert_eq!(rules_with_protocol(&gw, "static"), foreign_rules);
        assert_eq!(rules_with_protocol(&gw, "boot").len(), 1);
        let again = plumbing::remove_all(&handle).await.unwrap();
        assert_eq!((again.routes, again.rules), (0, 0));
    })
    .unwrap();
}

#[test]
fn stopping_removes_hundreds_of_weft_routes_and_rules_and_nothing_else() {
    require_root!("stopping_removes_hundreds_of_weft_routes_and_rules_and_nothing_else");
    let gw = gateway_namespace("stopmany");
    gw.block_on(|| async {
        let _prod_tun = open_tun("weft1001", 1380).unwrap();
        let _stg_tun = open_tun("weft1002", 1380).unwrap();
        // Several times more objects than the plumbing keeps requests in flight: 150 remote
        // prefixes per network, 100 more rules per family.
        let remote = |second: u8| -> Vec<String> {
            (0..150).map(|i| format!("10.{second}.{i}.0/24")).collect()
        };
        let (prod, stg) = (remote(20), remote(30));
        let prod: Vec<&str> = prod.iter().map(String::as_str).collect();
        let stg: Vec<&str> = stg.iter().map(String::as_str).collect();
        let mut desired = two_networks(&prod, &stg);
        for priority in 12001..12101 {
            for family in Family::ALL {
                desired.rules.push(RuleSpec {
                    family,
                    priority,
                    selector: RuleSelector::Oif("shop-prod".into()),
                    table: 1001,
                });
            }
        }
        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(308, 0, 0, 0), "{report:?}");
        assert_eq!(report.rules, counts(208, 0, 0, 0), "{report:?}");

        // Others' objects: a route in a weft table, a rule in weft's priorities, and a rule
        // with weft's protocol outside them, which is not weft's either.
        gw.ip(&[
            "route",
            "add",
            "10.99.0.0/16",
            "dev",
            "shop-prod",
            "table",
            "1001",
            "proto",
            "static",
        ])
        .unwrap();
        gw.ip(&[
            "rule",
            "add",
            "iif",
            "shop-prod",
            "lookup",
            "1001",
            "priority",
            "12500",
            "protocol",
            "static",
        ])
        .unwrap();
        let foreign_245 = "4 100 iif shop-stg lookup 1002";
        gw.ip(&[
            "rule", "add", "iif", "shop-stg", "lookup", "1002", "priority", "100", "protocol",
            "245",
        ])
        .unwrap();
        let foreign_routes = routes_with_protocol(&gw, "static");
        let foreign_rules = rules_with_protocol(&gw, "static");
        assert_eq!((foreign_routes.len(), foreign_rules.len()), (1, 1));

        let handle = plumbing::connect().unwrap();
        let removed = plumbing::remove_all(&handle).await.unwrap();
        assert_eq!((removed.routes, removed.rules), (308, 208));
        assert!(weft_routes(&gw).is_empty(), "{:?}", weft_routes(&gw));
        assert_eq!(weft_rules(&gw), lines(&[foreign_245]));
        assert_eq!(routes_with_protocol(&gw, "static"), foreign_routes);
        assert_eq!(rules_with_protocol(&gw, "static"), foreign_rules);
        let again = plumbing::remove_all(&handle).await.unwrap();
        assert_eq!((again.routes, again.rules), (0, 0));
    })
    .unwrap();
}

#[test]
fn a_stopping_gateways_tuns_are_deleted_together_and_nothing_else() {
    require_root!("a_stopping_gateways_tuns_are_deleted_together_and_nothing_else");
    let gw = gateway_namespace("tundel");
    gw.block_on(|| async {
        let tuns: Vec<TunDevice> = (1001..=1003)
            .map(|n| open_tun(&format!("weft{n}"), 1380).unwrap())
            .collect();
        let other = open_tun("other0", 1380).unwrap();
        let mut desired = Plumbing::default();
        desired.add_network(&network(1001, "weft1001", "shop-prod", &["10.20.0.0/16"]));
        apply(&desired).await;

        let handle = plumbing::connect().unwrap();
        let names: Vec<String> = ["weft1001", "weft1002", "weft1003", "weft1009"]
            .map(String::from)
            .to_vec();
        let deleted = plumbing::remove_links(&handle, &names).await.unwrap();
        assert_eq!(deleted, 3, "weft1009 never existed");
        for name in &names {
            assert!(gw.ip(&["link", "show", "dev", name]).is_err(), "{name}");
        }
        for name in ["other0", "shop-prod", "shop-stg"] {
            assert!(gw.ip(&["link", "show", "dev", name]).is_ok(), "{name}");
        }
        // The routes through a deleted TUN went with it; the others are remove_all's.
        let routes = weft_routes(&gw);
        assert!(!routes.iter().any(|r| r.contains("weft1001")), "{routes:?}");
        assert!(
            routes.iter().any(|r| r.contains("unreachable")),
            "{routes:?}"
        );

        // The descriptors outlive their devices and close as usual; nothing is left to delete.
        drop(tuns);
        assert_eq!(plumbing::remove_links(&handle, &names).await.unwrap(), 0);
        assert!(matches!(
            plumbing::remove_links(&handle, &["bad/name".to_owned()]).await,
            Err(plumbing::PlumbingError::InvalidInterfaceName { .. })
        ));
        plumbing::remove_all(&handle).await.unwrap();
        drop(other);
    })
    .unwrap();
}

#[test]
fn a_restart_converges_from_drift_without_duplicates() {
    require_root!("a_restart_converges_from_drift_without_duplicates");
    let gw = gateway_namespace("drift");
    gw.block_on(|| async {
        let _prod_tun = open_tun("weft1001", 1380).unwrap();
        let _stg_tun = open_tun("weft1002", 1380).unwrap();
        let desired = two_networks(&["10.20.0.0/16"], &["10.30.0.0/16"]);
        apply(&desired).await;

        // While weft was down: one of its routes was deleted, a stale weft route and a
        // stale weft rule were left behind by an older configuration.
        gw.ip(&[
            "route",
            "del",
            "10.30.0.0/16",
            "table",
            "1002",
            "proto",
            "245",
        ])
        .unwrap();
        gw.ip(&[
            "route",
            "add",
            "10.77.0.0/16",
            "dev",
            "shop-prod",
            "table",
            "1001",
            "proto",
            "245",
        ])
        .unwrap();
        gw.ip(&[
            "route",
            "add",
            "10.78.0.0/16",
            "dev",
            "shop-prod",
            "table",
            "1077",
            "proto",
            "245",
        ])
        .unwrap();
        gw.ip(&[
            "rule",
            "add",
            "iif",
            "shop-prod",
            "lookup",
            "1002",
            "priority",
            "12999",
            "protocol",
            "245",
        ])
        .unwrap();

        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(1, 0, 2, 9), "{report:?}");
        assert_eq!(report.rules, counts(0, 0, 1, 8), "{report:?}");
        assert_eq!(
            weft_routes(&gw),
            expected_routes(&["10.20.0.0/16"], &["10.30.0.0/16"])
        );
        assert_eq!(weft_rules(&gw), expected_rules());

        // Stop, then start again: everything comes back once.
        let handle = plumbing::connect().unwrap();
        plumbing::remove_all(&handle).await.unwrap();
        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(10, 0, 0, 0), "{report:?}");
        assert_eq!(report.rules, counts(8, 0, 0, 0), "{report:?}");
        assert_eq!(
            report.addresses,
            counts(0, 0, 0, 2),
            "addresses survive a stop: {report:?}"
        );
        assert_eq!(
            weft_routes(&gw),
            expected_routes(&["10.20.0.0/16"], &["10.30.0.0/16"])
        );
        assert_eq!(weft_rules(&gw), expected_rules());

        // A network that goes away takes its routes, rules and addresses with it.
        let mut only_prod = Plumbing::default();
        only_prod.add_network(&network(1001, "weft1001", "shop-prod", &["10.20.0.0/16"]));
        let report = apply(&only_prod).await;
        assert_eq!(report.routes, counts(0, 0, 5, 5), "{report:?}");
        assert_eq!(report.rules, counts(0, 0, 4, 4), "{report:?}");
        assert_eq!(report.addresses, counts(0, 0, 1, 1), "{report:?}");
        assert!(ipv4_addresses(&gw, "shop-stg").is_empty());
        assert_eq!(
            ipv4_addresses(&gw, "shop-prod"),
            ["169.254.100.1/30 noprefixroute"]
        );
        plumbing::remove_all(&handle).await.unwrap();
    })
    .unwrap();
}

#[test]
fn invalid_desired_state_is_refused_before_any_write() {
    require_root!("invalid_desired_state_is_refused_before_any_write");
    let gw = gateway_namespace("invalid");
    gw.block_on(|| async {
        let handle = plumbing::connect().unwrap();
        // The TUNs do not exist: the error names the missing link, and nothing was written.
        let desired = two_networks(&["10.20.0.0/16"], &[]);
        let error = plumbing::apply(&handle, &desired).await.unwrap_err();
        assert!(
            matches!(&error, plumbing::PlumbingError::LinkNotFound { name, .. } if name == "weft1001"),
            "{error}"
        );
        assert!(error.to_string().contains("weft1001"), "{error}");
        assert!(weft_routes(&gw).is_empty());
        assert!(weft_rules(&gw).is_empty());
        assert!(ipv4_addresses(&gw, "shop-prod").is_empty());
    })
    .unwrap();
}

#[test]
fn tun_devices_open_in_the_namespace_with_their_mtu_and_up() {
    require_root!("tun_devices_open_in_the_namespace_with_their_mtu_and_up");
    let gw = NetnsGuard::new("tun").unwrap();
    gw.block_on(|| async {
        let tun = open_tun("weft7", 1380).unwrap();
        assert_eq!(tun.name().unwrap(), "weft7");
        let link = &json(&gw, &["-j", "-d", "link", "show", "dev", "weft7"])[0];
        assert_eq!(link["mtu"], 1380, "{link}");
        assert!(
            link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{link}"
        );
        assert_eq!(link["linkinfo"]["info_kind"], "tun", "{link}");
        let info = &link["linkinfo"]["info_data"];
        assert_eq!(info["type"], "tun", "{link}");
        assert_eq!(info["pi"], false, "{link}");
        // Offload on: packets come and go with a virtio header, TCP as super-packets.
        assert_eq!(info["vnet_hdr"], true, "{link}");
        assert_eq!(info["multi_queue"], false, "{link}");
        assert_eq!(info["persist"], false, "{link}");
        // No link-local address: the kernel sends no router solicitations or MLD reports into
        // the network for the forwarder to drop.
        let addresses = json(&gw, &["-j", "-6", "addr", "show", "dev", "weft7"]);
        let none = addresses
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["addr_info"].as_array().is_none_or(|list| list.is_empty()));
        assert!(none, "{addresses}");

        // Attached by someone: busy, and the error names the device.
        let Err(busy) = open_tun("weft7", 1380) else {
            panic!("a second attach to weft7 succeeded")
        };
        assert!(
            matches!(&busy, TunError::Create { name, .. } if name == "weft7"),
            "{busy}"
        );

        // An existing (persistent) device is attached to, and configured.
        gw.ip(&["tuntap", "add", "weft8", "mode", "tun"]).unwrap();
        let existing = open_tun("weft8", 1400).unwrap();
        let link = &json(&gw, &["-j", "link", "show", "dev", "weft8"])[0];
        assert_eq!(link["mtu"], 1400, "{link}");
        assert!(
            link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{link}"
        );
        drop(existing);

        assert!(matches!(
            open_tun("bad/name", 1400),
            Err(TunError::InvalidName { .. })
        ));
        assert!(matches!(
            open_tun("weft-name-too-long", 1400),
            Err(TunError::InvalidName { .. })
        ));
        assert!(matches!(
            open_tun("weft%d", 1400),
            Err(TunError::InvalidName { .. })
        ));
        assert!(matches!(
            open_tun("weft9", 40),
            Err(TunError::InvalidMtu { .. })
        ));

        // The plumbing owns the MTU from then on.
        let desired = Plumbing {
            links: vec![LinkSpec {
                name: "weft7".into(),
                mtu: Some(1300),
                up: true,
            }],
            ..Plumbing::default()
        };
        let report = apply(&desired).await;
        assert_eq!(report.links, counts(0, 1, 0, 0), "{report:?}");
        assert_eq!(tun.mtu().unwrap(), 1300);
        assert!(apply(&desired).await.is_noop());

        // Not persistent: the device goes with its descriptor.
        drop(tun);
        assert!(gw.ip(&["link", "show", "dev", "weft7"]).is_err());
    })
    .unwrap();
    // Never on the host.
    assert!(!host_has_link("weft7"));
}

fn host_has_link(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A peer namespace behind `gw_dev`: its end of the veth holds 169.254.100.2/30 (the VPC
/// router) and 10.10.1.10/24 (a workload), and routes everything via the gateway.
fn peer_namespace(gw: &NetnsGuard, gw_dev: &str, label: &str) -> NetnsGuard {
    let peer = NetnsGuard::new(label).unwrap();
    gw.ip(&[
        "link",
        "add",
        gw_dev,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        peer.name(),
    ])
    .unwrap();
    gw.ip(&["link", "set", gw_dev, "up"]).unwrap();
    peer.ip(&["link", "set", "eth0", "up"]).unwrap();
    peer.ip(&["addr", "add", "169.254.100.2/30", "dev", "eth0"])
        .unwrap();
    peer.ip(&["addr", "add", "10.10.1.10/24", "dev", "eth0"])
        .unwrap();
    peer.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.100.1",
        "dev",
        "eth0",
    ])
    .unwrap();
    peer
}

fn enable_forwarding(gw: &NetnsGuard, rp_filter: &str) {
    gw.run(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap();
        std::fs::write("/proc/sys/net/ipv4/conf/all/rp_filter", rp_filter).unwrap();
        std::fs::write("/proc/sys/net/ipv4/conf/default/rp_filter", rp_filter).unwrap();
    })
    .unwrap();
    assert_eq!(
        gw.exec("cat", &["/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .trim(),
        "1"
    );
}

fn host_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}")).ok()
}

fn route_get(gw: &NetnsGuard, args: &[&str]) -> Result<Value, String> {
    let mut full = vec!["-j", "route", "get"];
    full.extend_from_slice(args);
    gw.ip(&full)
        .map(|out| serde_json::from_str::<Value>(&out).unwrap()[0].clone())
        .map_err(|e| e.to_string())
}

#[test]
fn the_ingress_interface_selects_the_table_for_identical_subnets() {
    require_root!("the_ingress_interface_selects_the_table_for_identical_subnets");
    let host_forwarding = host_sysctl("net/ipv4/ip_forward");
    let gw = NetnsGuard::new("iif").unwrap();
    let _peer_a = peer_namespace(&gw, "shop-prod", "peer-a");
    let _peer_b = peer_namespace(&gw, "shop-stg", "peer-b");
    // Stand-ins for the two TUNs: the remote prefix leaves by a different veth per table.
    veth(&gw, "up-a", "up-a-p");
    veth(&gw, "up-b", "up-b-p");
    enable_forwarding(&gw, "1");
    let mut desired = Plumbing::default();
    desired.add_network(&network(1001, "up-a", "shop-prod", &["10.20.0.0/16"]));
    desired.add_network(&network(1002, "up-b", "shop-stg", &["10.20.0.0/16"]));
    gw.block_on(|| async { apply(&desired).await }).unwrap();

    // The same packet, 10.10.1.10 -> 10.20.0.5, leaves by the table of its ingress.
    let a = route_get(
        &gw,
        &["10.20.0.5", "from", "10.10.1.10", "iif", "shop-prod"],
    )
    .unwrap();
    assert_eq!(
        (field(&a, "dev"), field(&a, "table")),
        ("up-a".into(), "1001".into()),
        "{a}"
    );
    let b = route_get(&gw, &["10.20.0.5", "from", "10.10.1.10", "iif", "shop-stg"]).unwrap();
    assert_eq!(
        (field(&b, "dev"), field(&b, "table")),
        ("up-b".into(), "1002".into()),
        "{b}"
    );

    // And the answers go back to the peer of their own network, though both are 10.10.1.10
    // behind 169.254.100.2.
    let a = route_get(&gw, &["10.10.1.10", "from", "10.20.0.5", "iif", "up-a"]).unwrap();
    assert_eq!(
        (field(&a, "gateway"), field(&a, "dev")),
        ("169.254.100.2".into(), "shop-prod".into()),
        "{a}"
    );
    let b = route_get(&gw, &["10.10.1.10", "from", "10.20.0.5", "iif", "up-b"]).unwrap();
    assert_eq!(
        (field(&b, "gateway"), field(&b, "dev")),
        ("169.254.100.2".into(), "shop-stg".into()),
        "{b}"
    );

    // Unknown destinations end in the network's table instead of falling through to main.
    gw.ip(&["route", "add", "10.66.0.0/16", "dev", "up-b"])
        .unwrap();
    let leak = route_get(
        &gw,
        &["10.66.0.5", "from", "10.10.1.10", "iif", "shop-prod"],
    );
    assert!(
        leak.is_err(),
        "a packet of shop-prod reached main's route: {leak:?}"
    );
    // Strict reverse-path filtering holds: the peers' source is known in their own table.
    let spoofed = route_get(&gw, &["10.20.0.5", "from", "10.99.0.1", "iif", "shop-prod"]);
    assert!(
        spoofed.is_err(),
        "strict rp_filter accepted an unknown source: {spoofed:?}"
    );

    assert_eq!(
        host_sysctl("net/ipv4/ip_forward"),
        host_forwarding,
        "the host's sysctl changed"
    );
}

/// Swaps source and destination addresses and ports of an IPv4/UDP packet: the answer to
/// it. Both checksums stay valid, since sums are commutative.
fn udp_answer(packet: &[u8]) -> Vec<u8> {
    let mut answer = packet.to_vec();
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    answer[12..16].copy_from_slice(&packet[16..20]);
    answer[16..20].copy_from_slice(&packet[12..16]);
    answer[ihl..ihl + 2].copy_from_slice(&packet[ihl + 2..ihl + 4]);
    answer[ihl + 2..ihl + 4].copy_from_slice(&packet[ihl..ihl + 2]);
    answer
}

/// The next IPv4 packet read from `tun` within `wait` (other packets, such as IPv6
/// chatter, are skipped).
async fn next_ipv4(tun: &TunDevice, wait: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut batch = TunReadBatch::new();
    loop {
        tokio::time::timeout_at(deadline, tun.read(&mut batch))
            .await
            .ok()?
            .unwrap();
        if let Some(packet) = batch.packets().find(|p| p.len() >= 20 && p[0] >> 4 == 4) {
            return Some(packet.to_vec());
        }
    }
}

#[test]
fn packets_of_identical_peers_stay_in_their_network_through_the_tuns() {
    require_root!("packets_of_identical_peers_stay_in_their_network_through_the_tuns");
    let gw = NetnsGuard::new("fwd").unwrap();
    let peer_a = peer_namespace(&gw, "shop-prod", "peer-a");
    let peer_b = peer_namespace(&gw, "shop-stg", "peer-b");
    // Not strict (1): the reverse-path check of packets delivered locally (here: the peers'
    // ARP requests for 169.254.100.1) is made with iif lo, which no iif rule matches, and
    // main has no route to a noprefixroute subnet; strict filtering would drop them. Loose
    // (2) needs any route to the source in main, and this namespace's main is empty.
    enable_forwarding(&gw, "0");
    // Two workloads with the very same address and port, one per network.
    let bind = || {
        let socket = UdpSocket::bind("10.10.1.10:5000").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    };
    let socket_a = peer_a.run(bind).unwrap();
    let socket_b = peer_b.run(bind).unwrap();

    gw.block_on(|| async {
        let tun_prod = open_tun("weft1001", 1380).unwrap();
        let tun_stg = open_tun("weft1002", 1380).unwrap();
        let desired = two_networks(&["10.20.0.0/16"], &["10.20.0.0/16"]);
        assert!(apply(&desired).await.conflicts.is_empty());

        let remote = "10.20.0.5:7000";
        for (socket, own_tun, other_tun, other_socket, payload) in [
            (
                &socket_a,
                &tun_prod,
                &tun_stg,
                &socket_b,
                b"from prod".as_slice(),
            ),
            (
                &socket_b,
                &tun_stg,
                &tun_prod,
                &socket_a,
                b"from stg".as_slice(),
            ),
        ] {
            socket.send_to(payload, remote).unwrap();
            let packet = next_ipv4(own_tun, Duration::from_secs(5))
                .await
                .expect("the packet reaches its network's TUN");
            assert_eq!(packet[9], 17, "UDP");
            assert_eq!(
                Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).unwrap()),
                Ipv4Addr::new(10, 10, 1, 10)
            );
            assert_eq!(
                Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap()),
                Ipv4Addr::new(10, 20, 0, 5)
            );
            assert!(packet.ends_with(payload));
            assert!(
                next_ipv4(other_tun, Duration::from_millis(300))
                    .await
                    .is_none(),
                "leaked into the other TUN"
            );

            // The answer, written into the network's TUN, reaches this network's workload
            // only.
            let mut answer = TunWriteBatch::new();
            answer.push(&udp_answer(&packet));
            own_tun.write(&mut answer).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = socket
                .recv_from(&mut buf)
                .expect("the answer reaches the workload");
            assert_eq!(&buf[..n], payload);
            assert_eq!(from.to_string(), remote);
            other_socket.set_nonblocking(true).unwrap();
            assert!(
                other_socket.recv_from(&mut buf).is_err(),
                "the other network's workload got it"
            );
            other_socket.set_nonblocking(false).unwrap();
        }
        let handle = plumbing::connect().unwrap();
        plumbing::remove_all(&handle).await.unwrap();
    })
    .unwrap();
}

#[test]
fn namespace_guards_clean_up_even_on_panic() {
    require_root!("namespace_guards_clean_up_even_on_panic");
    let name = std::panic::catch_unwind(|| {
        let guard = NetnsGuard::new("panics").unwrap();
        let name = guard.name().to_owned();
        assert!(weft_dataplane::linux::netns::exists(&name));
        assert!(
            name.starts_with(&format!("wft-{}-", std::process::id())),
            "{name}"
        );
        // A panic inside the namespace thread reaches the caller...
        let inner = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            guard.run(|| -> u8 { panic!("inside") }).unwrap()
        }));
        assert!(inner.is_err());
        // ...and this one unwinds through the guard.
        std::panic::panic_any(name);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(
        !weft_dataplane::linux::netns::exists(&name),
        "{name} survived"
    );
    // The caller's namespace was never changed.
    let host = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let in_ns = {
        let guard = NetnsGuard::new("link").unwrap();
        guard
            .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
            .unwrap()
    };
    assert_ne!(host, in_ns);
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        host
    );
}

#[test]
fn ipv6_networks_are_plumbed_idempotently() {
    require_root!("ipv6_networks_are_plumbed_idempotently");
    let gw = gateway_namespace("v6");
    gw.block_on(|| async {
        let _tun = open_tun("weft1001", 1380).unwrap();
        let mut desired = Plumbing::default();
        desired.add_network(&NetworkPlumbing {
            table: 1001,
            tun: "weft1001".into(),
            mtu: 1380,
            interface: "shop-prod".into(),
            interface_addresses: vec![net("fd00:100::1/64")],
            local_routes: vec![LocalRoute {
                prefix: net("fd00:10::/48"),
                via: Some(ip("fe80::1")),
            }],
            remote_prefixes: vec![net("fd00:20::/48")],
        });
        let report = apply(&desired).await;
        assert_eq!(report.routes, counts(5, 0, 0, 0), "{report:?}");
        assert_eq!(report.addresses, counts(1, 0, 0, 0), "{report:?}");
        assert_eq!(
            weft_routes(&gw),
            lines(&[
                "4 table 1001 unreachable default metric 4278190080",
                "6 table 1001 unicast fd00:100::/64 dev shop-prod",
                "6 table 1001 unicast fd00:10::/48 via fe80::1 dev shop-prod",
                "6 table 1001 unicast fd00:20::/48 dev weft1001",
                "6 table 1001 unreachable default metric 4278190080",
            ])
        );
        assert!(apply(&desired).await.is_noop());
        let main = json(&gw, &["-j", "-6", "route", "show", "table", "main"]);
        assert!(
            !main
                .as_array()
                .unwrap()
                .iter()
                .any(|r| field(r, "dst") == "fd00:100::/64"),
            "connected route leaked into main: {main}"
        );
    })
    .unwrap();
}
