//! `weft lab reload`: applies an edited configuration to a running lab. The lab's part (VPC
//! routers, workloads and the routers' routes of attachments that appeared, removing those
//! that went away) is a [`Changes`] computed by a pure diff of the recorded topology and the
//! new one; then every gateway is asked to reload through its control socket, and what each
//! answers is reported.
//!
//! Gateways also watch their configuration files. One that notices the edit before the lab
//! has built a new attachment's interface fails that attempt and changes nothing (the
//! interface is checked before anything is written); the explicit reload afterwards applies.
//! One that notices it after the interfaces exist applies it itself, and the explicit
//! reload finds nothing left to do; the report compares the networks each gateway had
//! before and after, so it is right either way.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use weft_dataplane::linux::netns;

use super::netns::LabNetnsError;
use super::plumbing;
use super::process;
use super::state::{LabState, StateDir, StateError};
use super::topology::{RouterNode, RouterRoute, Topology, WorkloadNode};
use crate::daemon::control::{self, Request};
use crate::render::config_layers;

/// How long one gateway may take to answer a status request.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one gateway may take to reload.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What a reload changes in the lab's own namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Routers that go away, or are rebuilt because more than their routes changed.
    pub routers_removed: Vec<RouterNode>,
    /// Routers that appear, or are rebuilt.
    pub routers_added: Vec<RouterNode>,
    /// Routes that kept routers lose: (router namespace, route).
    pub routes_removed: Vec<(String, RouterRoute)>,
    /// Routes that kept routers gain: (router namespace, route).
    pub routes_added: Vec<(String, RouterRoute)>,
    /// Workloads that go away or are rebuilt (with their router, or because they changed).
    pub workloads_removed: Vec<WorkloadNode>,
    /// Workloads that appear or are rebuilt.
    pub workloads_added: Vec<WorkloadNode>,
}

/// Why the lab cannot follow the new configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Gateways or the underlay changed: their processes and links would have to be rebuilt.
    #[error(
        "the gateways changed (added, removed, renamed, moved, or a site's MTU): reload only \
         follows networks and attachments; rebuild the lab with `weft lab down{dir_flag}` and \
         `weft lab up{dir_flag}`"
    )]
    Gateways {
        /// ` --state-dir DIR` when not the default.
        dir_flag: String,
    },
    /// A namespace, link or route could not be made or removed.
    #[error(
        "changing the lab stopped half-way: {source}; the state file still describes the lab \
         before this reload, and running `weft lab reload{dir_flag}` again retries (`weft lab \
         down{dir_flag}` removes everything)"
    )]
    Build {
        /// What failed.
        source: LabNetnsError,
        /// ` --state-dir DIR` when not the default.
        dir_flag: String,
    },
    /// The state file could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The runtime for talking to the gateways could not be made.
    #[error("starting the runtime that talks to the gateways: {0}")]
    Runtime(std::io::Error),
}

impl Changes {
    /// What turns `old` into `new`. `None` when the gateways or the underlay differ, which a
    /// reload does not rebuild.
    pub fn between(old: &Topology, new: &Topology) -> Option<Changes> {
        if old.prefix != new.prefix || old.underlay != new.underlay || old.gateways != new.gateways
        {
            return None;
        }
        let mut c = Changes::default();
        let without_routes = |r: &RouterNode| RouterNode {
            routes: Vec::new(),
            ..r.clone()
        };
        let mut rebuilt: BTreeSet<&str> = BTreeSet::new();
        for r in &new.routers {
            match old.routers.iter().find(|o| o.namespace == r.namespace) {
                None => c.routers_added.push(r.clone()),
                Some(o) if without_routes(o) != without_routes(r) => {
                    c.routers_removed.push(o.clone());
                    c.routers_added.push(r.clone());
                    rebuilt.insert(&r.namespace);
                }
                Some(o) => {
                    for route in r.routes.iter().filter(|x| !o.routes.contains(x)) {
                        c.routes_added.push((r.namespace.clone(), route.clone()));
                    }
                    for route in o.routes.iter().filter(|x| !r.routes.contains(x)) {
                        c.routes_removed.push((r.namespace.clone(), route.clone()));
                    }
                }
            }
        }
        for o in &old.routers {
            if !new.routers.iter().any(|r| r.namespace == o.namespace) {
                c.routers_removed.push(o.clone());
            }
        }
        let with_router_rebuilt = |w: &WorkloadNode| rebuilt.contains(w.router_namespace.as_str());
        for w in &new.workloads {
            if with_router_rebuilt(w) || !old.workloads.contains(w) {
                c.workloads_added.push(w.clone());
            }
        }
        for o in &old.workloads {
            if with_router_rebuilt(o) || !new.workloads.contains(o) {
                c.workloads_removed.push(o.clone());
            }
        }
        Some(c)
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Routers removed and not added again: they go only after the gateways have stopped
    /// using their interfaces.
    fn routers_gone(&self) -> impl Iterator<Item = &RouterNode> {
        self.routers_removed.iter().filter(|o| {
            !self
                .routers_added
                .iter()
                .any(|r| r.namespace == o.namespace)
        })
    }

    /// The changes as lists of names, for the report.
    pub fn summary(&self) -> ChangeSummary {
        let router = |r: &RouterNode| format!("{} at {}", r.network, r.site);
        let route = |(ns, r): &(String, RouterRoute)| format!("{ns}: {} via {}", r.prefix, r.via);
        ChangeSummary {
            routers_added: self.routers_added.iter().map(router).collect(),
            routers_removed: self.routers_removed.iter().map(router).collect(),
            routes_added: self.routes_added.iter().map(route).collect(),
            routes_removed: self.routes_removed.iter().map(route).collect(),
            workloads_added: self
                .workloads_added
                .iter()
                .map(|w| w.name.clone())
                .collect(),
            workloads_removed: self
                .workloads_removed
                .iter()
                .map(|w| w.name.clone())
                .collect(),
        }
    }
}

/// The changes to the lab, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// VPC routers built, as `network at site`.
    pub routers_added: Vec<String>,
    /// VPC routers removed (a rebuilt one is in both lists).
    pub routers_removed: Vec<String>,
    /// Routes added to kept routers, as `namespace: prefix via address`.
    pub routes_added: Vec<String>,
    /// Routes removed from kept routers.
    pub routes_removed: Vec<String>,
    /// Workloads built.
    pub workloads_added: Vec<String>,
    /// Workloads removed.
    pub workloads_removed: Vec<String>,
}

/// One gateway's part of a reload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayReload {
    /// The gateway.
    pub gateway: String,
    /// Whether it answered that it applied the configuration.
    pub applied: bool,
    /// Its answer to `reload`: `outcome`, and when applied `dataplane` (networks and peers
    /// added, removed, kept) and `host_changes`.
    pub answer: Option<Value>,
    /// Why it could not be asked, or how its reload failed.
    pub error: Option<String>,
    /// Its networks when the reload began (from `status`).
    pub networks_before: Vec<String>,
    /// Its networks afterwards.
    pub networks_after: Vec<String>,
}

/// What `weft lab reload` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReloadReport {
    /// The lab's prefix.
    pub lab: String,
    /// The configuration layers read.
    pub config: Vec<PathBuf>,
    /// What changed in the lab's namespaces.
    pub changes: ChangeSummary,
    /// Every gateway the lab started, in order.
    pub gateways: Vec<GatewayReload>,
    /// Whether every gateway applied.
    pub ok: bool,
}

/// Applies `new` (the topology of the re-read configuration) to the lab in `state`: builds
/// and removes what [`Changes::between`] says, records the new topology, and asks every
/// gateway to reload. `progress` hears of each step.
pub fn reload(
    dir: &StateDir,
    state: &mut LabState,
    new: Topology,
    mut progress: impl FnMut(&str),
) -> Result<ReloadReport, ReloadError> {
    let changes = Changes::between(&state.topology, &new).ok_or_else(|| ReloadError::Gateways {
        dir_flag: dir.flag(),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReloadError::Runtime)?;
    let alive: Vec<_> = state
        .gateways
        .iter()
        .filter(|g| process::is_alive(g.pid, Some(g.start_time)))
        .cloned()
        .collect();
    let before: Vec<Result<Vec<String>, String>> = alive
        .iter()
        .map(|g| runtime.block_on(networks_of(&g.control_socket)))
        .collect();

    let build_err = |source| ReloadError::Build {
        source,
        dir_flag: dir.flag(),
    };
    build(&changes, &new, &mut progress).map_err(build_err)?;
    state.topology = new;
    dir.save(state)?;

    if !state.gateways.is_empty() {
        progress("gateways: asking each to reload");
    }
    let mut gateways = Vec::new();
    for g in &state.gateways {
        let Some(i) = alive.iter().position(|a| a.name == g.name) else {
            gateways.push(GatewayReload {
                gateway: g.name.clone(),
                applied: false,
                answer: None,
                error: Some(format!(
                    "not running (pid {} is gone; `weft lab restart {}{}` starts it again)",
                    g.pid,
                    g.name,
                    dir.flag()
                )),
                networks_before: Vec::new(),
                networks_after: Vec::new(),
            });
            continue;
        };
        let asked = runtime.block_on(async {
            tokio::time::timeout(
                RELOAD_TIMEOUT,
                control::ask(&g.control_socket, Request::Reload),
            )
            .await
        });
        let (answer, mut error) = match asked {
            Ok(Ok(answer)) => (Some(answer), None),
            Ok(Err(e)) => (None, Some(format!("{e:#}"))),
            Err(_) => (
                None,
                Some(format!(
                    "no answer within {} s; see its log {}",
                    RELOAD_TIMEOUT.as_secs(),
                    g.log.display()
                )),
            ),
        };
        let outcome = answer
            .as_ref()
            .and_then(|a| a.get("outcome"))
            .and_then(Value::as_str);
        let applied = outcome == Some("applied");
        if error.is_none() && !applied {
            error = Some(outcome.map_or_else(
                || format!("unexpected answer: {}", answer.clone().unwrap_or_default()),
                str::to_owned,
            ));
        }
        let after = runtime.block_on(networks_of(&g.control_socket));
        let (networks_before, networks_after) = match (before[i].clone(), after) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(e), _) | (_, Err(e)) => {
                error.get_or_insert(e);
                (Vec::new(), Vec::new())
            }
        };
        gateways.push(GatewayReload {
            gateway: g.name.clone(),
            applied,
            answer,
            error,
            networks_before,
            networks_after,
        });
    }

    // Only now that the gateways stopped using their interfaces do the routers go.
    remove_routers(&changes, &mut progress).map_err(build_err)?;
    let ok = gateways.iter().all(|g| g.applied);
    Ok(ReloadReport {
        lab: state.prefix.clone(),
        config: state.config.clone(),
        changes: changes.summary(),
        gateways,
        ok,
    })
}

/// Everything but removing routers that go away: workloads go first, rebuilt routers are
/// made again, then new routers, routes and workloads. A namespace about to be built is
/// removed first if it exists, so that a reload stopped half-way can be run again.
fn build(
    changes: &Changes,
    new: &Topology,
    progress: &mut impl FnMut(&str),
) -> Result<(), LabNetnsError> {
    if changes.is_empty() {
        progress("the lab's namespaces already match the configuration");
        return Ok(());
    }
    for w in &changes.workloads_removed {
        progress(&format!("removing workload {}", w.name));
        netns::delete(&w.namespace)?;
    }
    for r in &changes.routers_removed {
        if changes
            .routers_added
            .iter()
            .any(|a| a.namespace == r.namespace)
        {
            progress(&format!(
                "removing VPC router of {} at {} to rebuild it",
                r.network, r.site
            ));
            netns::delete(&r.namespace)?;
        }
    }
    for (ns, route) in &changes.routes_removed {
        progress(&format!("{ns}: removing route {}", route.prefix));
        plumbing::remove_router_route(ns, route)?;
    }
    for r in &changes.routers_added {
        progress(&format!(
            "adding VPC router of {} at {} (interface {} of gateway {})",
            r.network, r.site, r.gateway_interface, r.gateway
        ));
        let gateway = new
            .gateway(&r.gateway)
            .expect("a router's gateway is in the topology");
        netns::delete(&r.namespace)?;
        plumbing::add_router(gateway, r)?;
    }
    for (ns, route) in &changes.routes_added {
        progress(&format!(
            "{ns}: adding route {} via {}",
            route.prefix, route.via
        ));
        plumbing::add_router_route(ns, route)?;
    }
    for w in &changes.workloads_added {
        progress(&format!("adding workload {} ({})", w.name, w.address));
        netns::delete(&w.namespace)?;
        plumbing::add_workload(w)?;
    }
    Ok(())
}

fn remove_routers(changes: &Changes, progress: &mut impl FnMut(&str)) -> Result<(), LabNetnsError> {
    for r in changes.routers_gone() {
        progress(&format!(
            "removing VPC router of {} at {}",
            r.network, r.site
        ));
        netns::delete(&r.namespace)?;
    }
    Ok(())
}

/// The names of a running gateway's networks, from its `status`.
async fn networks_of(socket: &std::path::Path) -> Result<Vec<String>, String> {
    let status = tokio::time::timeout(STATUS_TIMEOUT, control::ask(socket, Request::Status))
        .await
        .map_err(|_| format!("no status from {} within 10 s", socket.display()))?
        .map_err(|e| format!("{e:#}"))?;
    Ok(network_names(&status))
}

/// The network names in a `status` answer.
pub fn network_names(status: &Value) -> Vec<String> {
    let mut names: Vec<String> = status["dataplane"]["networks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One line about a gateway's reload: its outcome, what its dataplane reported and how its
/// networks changed.
pub fn describe(g: &GatewayReload) -> String {
    let before: BTreeSet<&String> = g.networks_before.iter().collect();
    let after: BTreeSet<&String> = g.networks_after.iter().collect();
    let gained: Vec<&str> = after.difference(&before).map(|s| s.as_str()).collect();
    let lost: Vec<&str> = before.difference(&after).map(|s| s.as_str()).collect();
    let mut networks = String::new();
    if !gained.is_empty() {
        networks += &format!("; now has {}", gained.join(", "));
    }
    if !lost.is_empty() {
        networks += &format!("; no longer has {}", lost.join(", "));
    }
    if !g.applied {
        return format!(
            "FAILED: {}{networks}",
            g.error.as_deref().unwrap_or("no answer")
        );
    }
    let answer = g.answer.clone().unwrap_or_default();
    let d = &answer["dataplane"];
    let n = |key: &str| d[key].as_u64().unwrap_or(0);
    let mut line = format!(
        "applied: networks +{} -{}, peers kept {} added {} removed {}, {} host changes{networks}",
        n("networks_added"),
        n("networks_removed"),
        n("peers_kept"),
        n("peers_added"),
        n("peers_removed"),
        answer["host_changes"].as_u64().unwrap_or(0),
    );
    if n("networks_added") < gained.len() as u64 || n("networks_removed") < lost.len() as u64 {
        line += " (its own file watcher had applied part of the change already)";
    }
    line
}

/// The report as text.
pub fn render(report: &ReloadReport) -> String {
    let config = config_layers(&report.config);
    let mut out = format!("lab {} reloaded from {config}\n", report.lab);
    let c = &report.changes;
    let lists = [
        ("VPC routers added", &c.routers_added),
        ("VPC routers removed", &c.routers_removed),
        ("routes added", &c.routes_added),
        ("routes removed", &c.routes_removed),
        ("workloads added", &c.workloads_added),
        ("workloads removed", &c.workloads_removed),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        out += "  the lab's namespaces already matched the configuration\n";
    }
    for (what, list) in lists {
        if !list.is_empty() {
            out += &format!("  {what}: {}\n", list.join(", "));
        }
    }
    if report.gateways.is_empty() {
        out += "  no gateway runs in this lab (built with --no-gateways)\n";
    }
    let width = report
        .gateways
        .iter()
        .map(|g| g.gateway.len())
        .max()
        .unwrap_or(0);
    for g in &report.gateways {
        out += &format!("  gateway {:width$}  {}\n", g.gateway, describe(g));
    }
    out += if report.ok {
        "OK: every gateway applied the configuration\n"
    } else {
        "FAIL: not every gateway applied the configuration (see its log in the state directory)\n"
    };
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;
    use weft_config::Loader;

    use super::*;

    const SHOP_DEV: &str = r#"
[networks."shop/dev"]
cidrs = ["10.10.0.0/16", "fd10:10::/48"]
label = 1003

[attachments."shop/dev".aws-lab]
prefixes = ["10.10.1.0/24", "fd10:10:0:1::/64"]
interface = "shop-dev"
addresses = ["169.254.100.1/30", "fe80::1/64"]
local_router = "169.254.100.2"
local_router_ipv6 = "fe80::2"

[attachments."shop/dev".gcp-lab]
prefixes = ["10.10.3.0/24", "fd10:10:0:3::/64"]
interface = "shop-dev"
addresses = ["169.254.100.1/30", "fe80::1/64"]
local_router = "169.254.100.2"
local_router_ipv6 = "fe80::2"
"#;

    fn topology(extra: Option<&str>) -> Topology {
        let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
        let dir = tempfile::tempdir().unwrap();
        let mut loader = Loader::new().env_prefix(None).file(lab);
        if let Some(extra) = extra {
            let path = dir.path().join("extra.toml");
            std::fs::write(&path, extra).unwrap();
            loader = loader.file(path);
        }
        Topology::build(&loader.load().unwrap(), "wl0001-").unwrap()
    }

    #[test]
    fn nothing_changes_when_the_configuration_did_not() {
        let t = topology(None);
        let c = Changes::between(&t, &t).unwrap();
        assert!(c.is_empty());
        assert_eq!(c.summary(), ChangeSummary::default());
    }

    #[test]
    fn a_new_network_adds_its_routers_and_workloads_and_nothing_else() {
        let old = topology(None);
        let new = topology(Some(SHOP_DEV));
        let c = Changes::between(&old, &new).unwrap();
        let s = c.summary();
        assert_eq!(
            s.routers_added,
            ["shop/dev at aws-lab", "shop/dev at gcp-lab"]
        );
        assert_eq!(
            s.workloads_added,
            [
                "shop.dev.aws-lab.v4",
                "shop.dev.aws-lab.v6",
                "shop.dev.gcp-lab.v4",
                "shop.dev.gcp-lab.v6"
            ]
        );
        assert!(s.routers_removed.is_empty() && s.workloads_removed.is_empty());
        assert!(s.routes_added.is_empty() && s.routes_removed.is_empty());
        let aws = &c.routers_added[0];
        assert_eq!(aws.gateway_interface, "shop-dev");
        assert_eq!(aws.namespace, "wl0001-rt-shop.dev.aws-lab");
        assert_eq!(aws.routes.len(), 2, "the gcp-lab prefixes, both families");

        // And back: what appeared goes, the routers after the gateways let go of them.
        let back = Changes::between(&new, &old).unwrap();
        assert_eq!(back.summary().routers_removed, s.routers_added);
        assert_eq!(back.summary().workloads_removed, s.workloads_added);
        assert_eq!(back.routers_gone().count(), 2);
        assert!(back.routers_added.is_empty());
    }

    #[test]
    fn a_network_reaching_a_new_site_adds_routes_to_its_other_routers() {
        let old = topology(None);
        let new = topology(Some(
            r#"
[attachments."media/prod".azure-lab]
prefixes = ["10.10.2.0/24"]
interface = "media-prod"
addresses = ["169.254.100.1/30"]
local_router = "169.254.100.2"
"#,
        ));
        let c = Changes::between(&old, &new).unwrap();
        let s = c.summary();
        assert_eq!(s.routers_added, ["media/prod at azure-lab"]);
        assert_eq!(s.workloads_added, ["media.prod.azure-lab.v4"]);
        // The three other sites of media/prod now route 10.10.2.0/24 to their gateway.
        assert_eq!(
            s.routes_added,
            [
                "wl0001-rt-media.prod.aws-lab: 10.10.2.0/24 via 169.254.100.1",
                "wl0001-rt-media.prod.gcp-lab: 10.10.2.0/24 via 169.254.100.1",
                "wl0001-rt-media.prod.onprem: 10.10.2.0/24 via 169.254.100.1",
            ]
        );
        assert!(s.routers_removed.is_empty() && s.routes_removed.is_empty());
    }

    #[test]
    fn a_router_whose_link_changed_is_rebuilt_with_its_workloads() {
        let old = topology(None);
        let new = topology(Some(
            r#"
[attachments."media/prod".onprem]
interface = "media-prod2"
"#,
        ));
        let c = Changes::between(&old, &new).unwrap();
        let s = c.summary();
        assert_eq!(s.routers_removed, ["media/prod at onprem"]);
        assert_eq!(s.routers_added, ["media/prod at onprem"]);
        assert_eq!(s.workloads_removed, ["media.prod.onprem.v4"]);
        assert_eq!(s.workloads_added, ["media.prod.onprem.v4"]);
        assert_eq!(c.routers_gone().count(), 0, "rebuilt, not gone");
    }

    #[test]
    fn changed_gateways_are_refused() {
        let old = topology(None);
        let mut new = old.clone();
        new.gateways[0].mtu = 1400;
        assert!(Changes::between(&old, &new).is_none());
        new = old.clone();
        new.gateways.pop();
        assert!(Changes::between(&old, &new).is_none());
    }

    fn gateway(name: &str, answer: Value, before: &[&str], after: &[&str]) -> GatewayReload {
        let applied = answer["outcome"] == "applied";
        GatewayReload {
            gateway: name.into(),
            applied,
            error: (!applied).then(|| answer["outcome"].as_str().unwrap().to_owned()),
            answer: Some(answer),
            networks_before: before.iter().map(|s| (*s).to_owned()).collect(),
            networks_after: after.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn each_gateways_answer_is_described_and_the_report_rendered() {
        let applied = |added: u64| {
            json!({"outcome": "applied", "host_changes": 9, "dataplane": {
                "networks_added": added, "networks_removed": 0,
                "peers_added": 0, "peers_removed": 0, "peers_kept": 3}})
        };
        let aws = gateway(
            "aws-gw",
            applied(1),
            &["shop/prod"],
            &["shop/dev", "shop/prod"],
        );
        assert_eq!(
            describe(&aws),
            "applied: networks +1 -0, peers kept 3 added 0 removed 0, 9 host changes; now has \
             shop/dev"
        );
        let watched = gateway(
            "gcp-gw",
            applied(0),
            &["shop/prod"],
            &["shop/dev", "shop/prod"],
        );
        assert!(
            describe(&watched)
                .ends_with("(its own file watcher had applied part of the change already)")
        );
        let failed = gateway(
            "onprem-gw",
            json!({"outcome": "failed: interface shop-dev does not exist"}),
            &["shop/prod"],
            &["shop/prod"],
        );
        assert_eq!(
            describe(&failed),
            "FAILED: failed: interface shop-dev does not exist"
        );
        assert_eq!(
            network_names(&json!({"dataplane": {"networks": [{"name": "b"}, {"name": "a"}]}})),
            ["a", "b"]
        );

        let report = ReloadReport {
            lab: "wl0001-".into(),
            config: vec!["/lab.toml".into()],
            changes: ChangeSummary {
                routers_added: vec!["shop/dev at aws-lab".into()],
                ..Default::default()
            },
            gateways: vec![aws, failed],
            ok: false,
        };
        let text = render(&report);
        assert!(
            text.starts_with("lab wl0001- reloaded from /lab.toml\n"),
            "{text}"
        );
        assert!(
            text.contains("  VPC routers added: shop/dev at aws-lab\n"),
            "{text}"
        );
        assert!(!text.contains("workloads added"), "{text}");
        assert!(
            text.contains("  gateway aws-gw     applied: networks +1"),
            "{text}"
        );
        assert!(text.contains("  gateway onprem-gw  FAILED"), "{text}");
        assert!(text.ends_with("FAIL: not every gateway applied the configuration (see its log in the state directory)\n"), "{text}");
    }
}
