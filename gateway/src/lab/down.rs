//! `weft lab down`: ends the lab's processes and removes its namespaces and state, whatever
//! state `up` left it in (finished, failed half-way, or killed). Safe to run twice.

use std::path::Path;
use std::time::Duration;

use weft_dataplane::linux::netns::{self, NetnsError};

use super::naming::{BadPrefix, parse_prefix};
use super::netns::{identity, list, processes_in};
use super::process::{self, Terminated};
use super::state::{LabState, StateDir, StateError};

/// How long gateways and other processes get to exit after SIGTERM.
pub const GRACE: Duration = Duration::from_secs(5);
/// Where WireGuard UAPI sockets live; a gateway killed hard leaves its socket behind.
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// What `down` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// The prefix of the lab removed, if there was one.
    pub prefix: Option<String>,
    /// The gateway processes ended.
    pub gateways: Terminated,
    /// Other processes that were living in the lab's namespaces.
    pub others: Terminated,
    /// Namespaces deleted.
    pub deleted: Vec<String>,
}

/// Why `down` could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DownError {
    /// The state file could not be read or removed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The prefix given is not a lab prefix.
    #[error(transparent)]
    Prefix(#[from] BadPrefix),
    /// A namespace could not be deleted.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Namespaces of the lab survived.
    #[error("namespaces still there after deleting them: {0}")]
    Left(String),
}

/// Removes the lab recorded in `dir`, or, with `prefix`, every namespace of that prefix
/// (for a lab whose state file is lost).
pub fn down(dir: &StateDir, prefix: Option<&str>) -> Result<DownReport, DownError> {
    let mut damaged = false;
    let state = match dir.load() {
        Ok(s) => s,
        // A damaged state file must not keep a lab alive when its prefix is known.
        Err(StateError::Corrupt { .. } | StateError::Version { .. }) if prefix.is_some() => {
            damaged = true;
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (prefix, state) = match (prefix, state) {
        // A sweep of another prefix leaves the lab recorded here alone.
        (Some(p), Some(s)) if s.prefix != p => (parse_prefix(p)?.to_owned(), None),
        (Some(p), s) => (parse_prefix(p)?.to_owned(), s),
        (None, Some(s)) => (s.prefix.clone(), Some(s)),
        (None, None) => return Ok(DownReport::default()),
    };
    let owns_state_file = state.is_some() || damaged;
    let mut report = DownReport {
        prefix: Some(prefix.clone()),
        ..Default::default()
    };

    if let Some(s) = &state {
        let gateways: Vec<(i32, Option<u64>)> = s
            .gateways
            .iter()
            .filter(|g| g.pid > 1)
            .map(|g| (g.pid, Some(g.start_time)))
            .collect();
        report.gateways = process::terminate(&gateways, GRACE);
    }

    let mut namespaces: Vec<String> = state
        .as_ref()
        .map(|s: &LabState| {
            s.topology
                .namespaces()
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for n in list() {
        if n.starts_with(&prefix) && !namespaces.contains(&n) {
            namespaces.push(n);
        }
    }

    // Anything still living in a lab namespace (a gateway started by hand, a command left
    // by `exec`) would keep the namespace and its links alive after the name is deleted.
    let ids: Vec<(u64, u64)> = namespaces.iter().filter_map(|n| identity(n)).collect();
    let others: Vec<(i32, Option<u64>)> = processes_in(&ids)
        .into_iter()
        .map(|pid| (pid, process::stat(pid).map(|s| s.start_time)))
        .collect();
    report.others = process::terminate(&others, GRACE);

    let mut failures = Vec::new();
    // Workloads first, the underlay last: the reverse of building.
    for n in namespaces.iter().rev() {
        match netns::delete(n) {
            Ok(true) => report.deleted.push(n.clone()),
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    if let Some(e) = failures.into_iter().next() {
        return Err(e.into());
    }
    let left: Vec<String> = list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !left.is_empty() {
        return Err(DownError::Left(left.join(", ")));
    }
    if let Some(s) = &state {
        for g in &s.topology.gateways {
            let _ = std::fs::remove_file(Path::new(UAPI_DIR).join(format!("{}.sock", g.uapi_name)));
        }
    }
    if owns_state_file {
        dir.remove(state.as_ref())?;
    }
    Ok(report)
}
