//! `weft lab status`: what the lab in a state directory consists of, and whether its
//! namespaces and gateway processes are still there.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Serialize;
use weft_dataplane::linux::netns;

use super::netns::list;
use super::process;
use super::state::{LabState, Phase};
use crate::render::{config_layers, table};

/// The status of one lab.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The namespace prefix.
    pub prefix: String,
    /// How far `up` got.
    pub phase: Phase,
    /// When `up` started (Unix seconds).
    pub created_unix: u64,
    /// The configuration layers.
    pub config: Vec<PathBuf>,
    /// Every namespace of the lab.
    pub namespaces: Vec<NamespaceStatus>,
    /// Namespaces with the lab's prefix that the lab does not know (left by hand or by an
    /// older build).
    pub strays: Vec<String>,
    /// Every gateway.
    pub gateways: Vec<GatewayStatus>,
    /// Every VPC router.
    pub routers: Vec<RouterStatus>,
    /// Every workload.
    pub workloads: Vec<WorkloadStatus>,
}

/// A namespace and whether it exists.
#[derive(Clone, Debug, Serialize)]
pub struct NamespaceStatus {
    /// Its name.
    pub name: String,
    /// `underlay`, `gateway`, `router` or `workload`.
    pub kind: &'static str,
    /// Whether it is there.
    pub exists: bool,
}

/// A gateway and its process.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayStatus {
    /// Its name.
    pub name: String,
    /// Its site.
    pub site: String,
    /// Its namespace.
    pub namespace: String,
    /// Its underlay address.
    pub underlay_address: IpNet,
    /// Its UAPI name.
    pub uapi_name: String,
    /// The `weft run` process, when one was started.
    pub pid: Option<i32>,
    /// Whether that process is still running.
    pub alive: bool,
    /// Whether its control socket exists.
    pub control_socket_ready: bool,
    /// Its control socket.
    pub control_socket: Option<PathBuf>,
    /// Its log.
    pub log: Option<PathBuf>,
}

/// A VPC router.
#[derive(Clone, Debug, Serialize)]
pub struct RouterStatus {
    /// The network.
    pub network: String,
    /// The site.
    pub site: String,
    /// Its namespace.
    pub namespace: String,
    /// The gateway's interface towards it.
    pub gateway_interface: String,
    /// Its addresses on the link to the gateway.
    pub addresses: Vec<IpNet>,
    /// Remote prefixes it routes to the gateway.
    pub routes: Vec<IpNet>,
}

/// A workload.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadStatus {
    /// Its name, for `weft lab exec`.
    pub name: String,
    /// The network.
    pub network: String,
    /// The site.
    pub site: String,
    /// Its namespace.
    pub namespace: String,
    /// Its address.
    pub address: IpNet,
    /// Its default gateway.
    pub via: IpAddr,
}

impl Status {
    /// The status of the lab recorded in `state`, kept in `state_dir`.
    pub fn of(state: &LabState, state_dir: PathBuf) -> Status {
        let t = &state.topology;
        let kinds = std::iter::once((t.underlay.namespace.clone(), "underlay"))
            .chain(t.gateways.iter().map(|g| (g.namespace.clone(), "gateway")))
            .chain(t.routers.iter().map(|r| (r.namespace.clone(), "router")))
            .chain(
                t.workloads
                    .iter()
                    .map(|w| (w.namespace.clone(), "workload")),
            );
        let namespaces: Vec<NamespaceStatus> = kinds
            .map(|(name, kind)| NamespaceStatus {
                exists: netns::exists(&name),
                name,
                kind,
            })
            .collect();
        let strays = list()
            .into_iter()
            .filter(|n| n.starts_with(&state.prefix) && !namespaces.iter().any(|k| &k.name == n))
            .collect();
        let gateways = t
            .gateways
            .iter()
            .map(|g| {
                let process = state.gateways.iter().find(|p| p.name == g.name);
                GatewayStatus {
                    name: g.name.clone(),
                    site: g.site.clone(),
                    namespace: g.namespace.clone(),
                    underlay_address: g.underlay_address,
                    uapi_name: g.uapi_name.clone(),
                    pid: process.map(|p| p.pid),
                    alive: process.is_some_and(|p| process::is_alive(p.pid, Some(p.start_time))),
                    control_socket_ready: process.is_some_and(|p| p.control_socket.exists()),
                    control_socket: process.map(|p| p.control_socket.clone()),
                    log: process.map(|p| p.log.clone()),
                }
            })
            .collect();
        let routers = t
            .routers
            .iter()
            .map(|r| RouterStatus {
                network: r.network.clone(),
                site: r.site.clone(),
                namespace: r.namespace.clone(),
                gateway_interface: r.gateway_interface.clone(),
                addresses: r.addresses.clone(),
                routes: r.routes.iter().map(|x| x.prefix).collect(),
            })
            .collect();
        let workloads = t
            .workloads
            .iter()
            .map(|w| WorkloadStatus {
                name: w.name.clone(),
                network: w.network.clone(),
                site: w.site.clone(),
                namespace: w.namespace.clone(),
                address: w.address,
                via: w.default_gateway,
            })
            .collect();
        Status {
            state_dir,
            prefix: state.prefix.clone(),
            phase: state.phase,
            created_unix: state.created_unix,
            config: state.config.clone(),
            namespaces,
            strays,
            gateways,
            routers,
            workloads,
        }
    }

    /// Whether every namespace exists and every started gateway is alive.
    pub fn healthy(&self) -> bool {
        self.phase == Phase::Up
            && self.namespaces.iter().all(|n| n.exists)
            && self
                .gateways
                .iter()
                .all(|g| g.pid.is_none() || (g.alive && g.control_socket_ready))
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The status as text tables.
pub fn render(s: &Status) -> String {
    let config = config_layers(&s.config);
    let mut out = format!(
        "lab {} in {} ({}), from {config}\n",
        s.prefix,
        s.state_dir.display(),
        match s.phase {
            Phase::Up => "up",
            Phase::Building => "still building, or `up` was interrupted",
        }
    );
    let missing: Vec<&str> = s
        .namespaces
        .iter()
        .filter(|n| !n.exists)
        .map(|n| n.name.as_str())
        .collect();
    out += &format!(
        "{} namespaces, {} missing{}\n\n",
        s.namespaces.len(),
        missing.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(": {}", missing.join(", "))
        }
    );

    out += "Gateways\n";
    let mut t = table(&[
        "gateway",
        "site",
        "namespace",
        "underlay",
        "uapi",
        "pid",
        "process",
        "control socket",
    ]);
    for g in &s.gateways {
        t.add_row(vec![
            g.name.clone(),
            g.site.clone(),
            g.namespace.clone(),
            g.underlay_address.to_string(),
            g.uapi_name.clone(),
            g.pid.map_or("-".to_owned(), |p| p.to_string()),
            match (g.pid, g.alive) {
                (None, _) => "not started".to_owned(),
                (Some(_), true) => "alive".to_owned(),
                (Some(_), false) => "DEAD".to_owned(),
            },
            match &g.control_socket {
                Some(p) if g.control_socket_ready => p.display().to_string(),
                Some(_) => "absent".to_owned(),
                None => "-".to_owned(),
            },
        ]);
    }
    out += &format!("{t}\n\nVPC routers\n");
    let mut t = table(&[
        "network",
        "site",
        "namespace",
        "gateway interface",
        "router addresses",
        "routes to gateway",
    ]);
    for r in &s.routers {
        t.add_row(vec![
            r.network.clone(),
            r.site.clone(),
            r.namespace.clone(),
            r.gateway_interface.clone(),
            join(&r.addresses),
            join(&r.routes),
        ]);
    }
    out += &format!("{t}\n\nWorkloads (weft lab exec WORKLOAD -- CMD)\n");
    let mut t = table(&["workload", "network", "site", "address", "via", "namespace"]);
    for w in &s.workloads {
        t.add_row(vec![
            w.name.clone(),
            w.network.clone(),
            w.site.clone(),
            w.address.to_string(),
            w.via.to_string(),
            w.namespace.clone(),
        ]);
    }
    out += &format!("{t}\n");
    if !s.strays.is_empty() {
        out += &format!(
            "\nnamespaces with the lab's prefix it did not make (down removes them too): {}\n",
            s.strays.join(", ")
        );
    }
    out
}
