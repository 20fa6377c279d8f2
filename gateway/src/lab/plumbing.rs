//! Carries out a [`Topology`]: namespaces, sysctls, veth links, the underlay bridge,
//! addresses and routes, each made with `ip -n NAMESPACE` ([`netns::ip`]) inside its own
//! namespace (veths are created in one lab namespace with their peer in another, never in
//! the host's). `up` builds a whole topology; `reload` adds single routers, workloads and
//! routes to a running lab with the same steps.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_dataplane::linux::netns::{self, NetnsError, ip};

use super::netns::{LabNetnsError, set_sysctl};
use super::topology::{GatewayNode, RouterNode, RouterRoute, Topology, WorkloadNode};

/// What a namespace is for, which decides its sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Underlay,
    Gateway,
    Router,
    Workload,
}

/// Builds every part of `topology`. Stops at the first failure; the caller removes what was
/// made (every namespace name is known in advance).
pub fn build(topology: &Topology, mut progress: impl FnMut(&str)) -> Result<(), LabNetnsError> {
    progress("namespaces");
    add_namespace(&topology.underlay.namespace, Role::Underlay)?;
    for g in &topology.gateways {
        add_namespace(&g.namespace, Role::Gateway)?;
    }
    for r in &topology.routers {
        add_namespace(&r.namespace, Role::Router)?;
    }
    for w in &topology.workloads {
        add_namespace(&w.namespace, Role::Workload)?;
    }

    progress("underlay");
    let ul = &topology.underlay;
    ip(
        &ul.namespace,
        &["link", "add", &ul.bridge, "type", "bridge"],
    )?;
    ip(&ul.namespace, &["link", "set", &ul.bridge, "up"])?;
    for g in &topology.gateways {
        let mtu = g.mtu.to_string();
        veth(
            &g.namespace,
            &g.underlay_interface,
            &ul.namespace,
            &g.underlay_port,
            &mtu,
        )?;
        ip(
            &ul.namespace,
            &["link", "set", &g.underlay_port, "master", &ul.bridge, "up"],
        )?;
        add_address(&g.namespace, &g.underlay_interface, &g.underlay_address)?;
        ip(&g.namespace, &["link", "set", &g.underlay_interface, "up"])?;
    }

    progress("VPC routers");
    for r in &topology.routers {
        let gateway = topology
            .gateway(&r.gateway)
            .expect("a router's gateway is in the topology");
        link_router(gateway, r)?;
    }

    progress("workloads");
    for w in &topology.workloads {
        link_workload(w)?;
    }
    Ok(())
}

/// Adds one VPC router to a running lab: its namespace, its link to `gateway` and its routes.
pub fn add_router(gateway: &GatewayNode, router: &RouterNode) -> Result<(), LabNetnsError> {
    add_namespace(&router.namespace, Role::Router)?;
    link_router(gateway, router)
}

/// Adds one workload to a running lab whose VPC router exists: its namespace, its link to the
/// router, its address and default route.
pub fn add_workload(workload: &WorkloadNode) -> Result<(), LabNetnsError> {
    add_namespace(&workload.namespace, Role::Workload)?;
    Ok(link_workload(workload)?)
}

/// Adds a route towards the gateway to a VPC router that exists (replacing one to the same
/// prefix, so that a reload stopped half-way can run again).
pub fn add_router_route(router_namespace: &str, route: &RouterRoute) -> Result<(), NetnsError> {
    let prefix = route.prefix.to_string();
    route_command(router_namespace, "replace", &prefix, route.via, &route.dev)
}

/// Removes a route of a VPC router; one that is already gone is no error.
pub fn remove_router_route(router_namespace: &str, route: &RouterRoute) -> Result<(), NetnsError> {
    let prefix = route.prefix.to_string();
    match route_command(router_namespace, "del", &prefix, route.via, &route.dev) {
        Ok(()) => Ok(()),
        Err(_) if !route_present(router_namespace, route.via, &prefix) => Ok(()),
        Err(e) => Err(e),
    }
}

fn route_present(ns: &str, via: IpAddr, prefix: &str) -> bool {
    ip(ns, &[family(via), "route", "show", prefix])
        .map(|out| !out.trim().is_empty())
        .unwrap_or(false)
}

/// `-4` or `-6`, the `ip` option for the family of `address`.
fn family(address: IpAddr) -> &'static str {
    if address.is_ipv4() { "-4" } else { "-6" }
}

/// `ip -n NS -4|-6 route VERB TO via VIA dev DEV`.
fn route_command(ns: &str, verb: &str, to: &str, via: IpAddr, dev: &str) -> Result<(), NetnsError> {
    let via_text = via.to_string();
    ip(
        ns,
        &[family(via), "route", verb, to, "via", &via_text, "dev", dev],
    )
    .map(drop)
}

/// A namespace (with its loopback up) and its sysctls.
fn add_namespace(ns: &str, role: Role) -> Result<(), LabNetnsError> {
    netns::create(ns)?;
    prepare(ns, role)
}

/// The link between a gateway and a VPC router, the router's addresses and its routes.
fn link_router(gateway: &GatewayNode, r: &RouterNode) -> Result<(), LabNetnsError> {
    let mtu = r.mtu.to_string();
    veth(
        &gateway.namespace,
        &r.gateway_interface,
        &r.namespace,
        &r.interface,
        &mtu,
    )?;
    // weft adds its own addresses here; the lab only brings the link up, with reverse
    // path filtering off (effective is the larger of `all` and the interface's value).
    set_sysctl(
        &gateway.namespace,
        &["ipv4", "conf", &r.gateway_interface, "rp_filter"],
        "0",
    )?;
    set_sysctl(
        &gateway.namespace,
        &["ipv6", "conf", &r.gateway_interface, "accept_dad"],
        "0",
    )?;
    ip(
        &gateway.namespace,
        &["link", "set", &r.gateway_interface, "up"],
    )?;
    for a in &r.addresses {
        add_address(&r.namespace, &r.interface, a)?;
    }
    ip(&r.namespace, &["link", "set", &r.interface, "up"])?;
    for route in &r.routes {
        add_router_route(&r.namespace, route)?;
    }
    Ok(())
}

/// The link between a VPC router and a workload, their addresses and the workload's route.
fn link_workload(w: &WorkloadNode) -> Result<(), NetnsError> {
    let mtu = w.mtu.to_string();
    veth(
        &w.router_namespace,
        &w.router_interface,
        &w.namespace,
        &w.interface,
        &mtu,
    )?;
    add_address(&w.router_namespace, &w.router_interface, &w.router_address)?;
    ip(
        &w.router_namespace,
        &["link", "set", &w.router_interface, "up"],
    )?;
    add_address(&w.namespace, &w.interface, &w.address)?;
    ip(&w.namespace, &["link", "set", &w.interface, "up"])?;
    route_command(
        &w.namespace,
        "add",
        "default",
        w.default_gateway,
        &w.interface,
    )
}

/// Sysctls a namespace needs before its links exist, so new interfaces inherit them: no
/// IPv6 duplicate address detection (addresses usable at once), forwarding in gateways and
/// routers, no reverse path filter in gateways (traffic of a network leaves through a TUN
/// device it did not arrive on).
fn prepare(ns: &str, role: Role) -> Result<(), LabNetnsError> {
    for scope in ["all", "default"] {
        set_sysctl(ns, &["ipv6", "conf", scope, "accept_dad"], "0")?;
    }
    if role == Role::Underlay {
        // The bridge only switches; it needs no addresses of its own.
        set_sysctl(ns, &["ipv6", "conf", "default", "disable_ipv6"], "1")?;
    }
    if matches!(role, Role::Gateway | Role::Router) {
        set_sysctl(ns, &["ipv4", "ip_forward"], "1")?;
        set_sysctl(ns, &["ipv6", "conf", "all", "forwarding"], "1")?;
    }
    if role == Role::Gateway {
        for scope in ["all", "default"] {
            set_sysctl(ns, &["ipv4", "conf", scope, "rp_filter"], "0")?;
        }
    }
    Ok(())
}

/// A veth pair: `a_name` in namespace `a`, its peer `b_name` in namespace `b`.
fn veth(a: &str, a_name: &str, b: &str, b_name: &str, mtu: &str) -> Result<(), NetnsError> {
    ip(
        a,
        &[
            "link", "add", a_name, "mtu", mtu, "type", "veth", "peer", "name", b_name, "mtu", mtu,
            "netns", b,
        ],
    )
    .map(drop)
}

fn add_address(ns: &str, dev: &str, address: &IpNet) -> Result<(), NetnsError> {
    let a = address.to_string();
    let mut args = vec!["address", "add", &a, "dev", dev];
    if address.addr().is_ipv6() {
        args.push("nodad");
    }
    ip(ns, &args).map(drop)
}
