//! `weft lab up`: builds every site of a configuration as namespaces on this host, starts a
//! gateway per site, and records all of it before creating anything.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use weft_config::Intent;

use super::check;
use super::down;
use super::gateways::{self, LogMode, SOCKET_WAIT, Started};
use super::naming;
use super::netns;
use super::plumbing;
use super::state::{FORMAT_VERSION, LabState, Phase, StateDir};
use super::topology::Topology;

/// What `up` was asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Configuration layers, in order.
    pub config: Vec<PathBuf>,
    /// The state directory.
    pub state_dir: StateDir,
    /// Build the namespaces only.
    pub no_gateways: bool,
}

/// A prefix no namespace of the host starts with yet.
fn fresh_prefix() -> anyhow::Result<String> {
    let existing = netns::list();
    for _ in 0..64 {
        let p = naming::random_prefix().context("reading the system's random source")?;
        if !existing.iter().any(|n| n.starts_with(&p)) {
            return Ok(p);
        }
    }
    anyhow::bail!("no free lab prefix found; remove old labs with `weft lab down --prefix P`")
}

/// Builds the lab of `intent`. Returns the state as recorded.
pub fn up(intent: &Intent, options: &UpOptions) -> anyhow::Result<LabState> {
    let config: Vec<PathBuf> = options
        .config
        .iter()
        .map(|c| std::fs::canonicalize(c).with_context(|| format!("resolving {}", c.display())))
        .collect::<anyhow::Result<_>>()?;
    let prefix = fresh_prefix()?;
    let topology = Topology::build(intent, &prefix)?;
    let dir = &options.state_dir;
    dir.ensure()?;
    let mut state = LabState {
        version: FORMAT_VERSION,
        prefix: prefix.clone(),
        phase: Phase::Building,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        config: config.clone(),
        gateways_started: !options.no_gateways,
        topology,
        gateways: Vec::new(),
    };
    // Recorded before anything exists, so `down` can remove whatever a crash leaves.
    dir.create(&state)?;

    eprintln!(
        "building lab {prefix}: {} namespaces",
        state.topology.namespaces().len()
    );
    if let Err(e) = plumbing::build(&state.topology, |step| eprintln!("  {step}")) {
        let cleanup = down::down(dir, None);
        let e = anyhow::Error::new(e).context("building the lab");
        return Err(match cleanup {
            Ok(_) => e.context("what was built has been removed"),
            Err(c) => e.context(format!(
                "and removing it failed too ({c}); run `weft lab down{}`",
                dir.flag()
            )),
        });
    }

    if !options.no_gateways {
        let weft = std::env::current_exe().context("finding the weft binary")?;
        let mut started: Vec<Started> = Vec::new();
        for node in &state.topology.gateways {
            let key = &intent.gateways[&node.name].private_key_file;
            match gateways::start(dir, &weft, &config, node, key, LogMode::Replace) {
                Ok(s) => {
                    state.gateways.push(s.record.clone());
                    // Each pid is on disk before the next gateway starts.
                    dir.save(&state)?;
                    started.push(s);
                }
                Err(e) => return Err(left_up(e.into(), dir)),
            }
        }
        eprintln!(
            "  gateways: waiting up to {} s for their control sockets",
            SOCKET_WAIT.as_secs()
        );
        if let Err(e) = gateways::wait_for_sockets(&mut started, SOCKET_WAIT) {
            return Err(left_up(e.into(), dir));
        }
    }
    state.phase = Phase::Up;
    dir.save(&state)?;
    Ok(state)
}

/// A gateway failure leaves the lab up for inspection, and says how to remove it.
fn left_up(e: anyhow::Error, dir: &StateDir) -> anyhow::Error {
    e.context(format!(
        "the lab is left up for inspection (`weft lab status{0}`); `weft lab down{0}` removes it",
        dir.flag()
    ))
}

/// What was built and what to try next.
pub fn summary(state: &LabState, dir: &Path, flag: &str) -> String {
    let t = &state.topology;
    let mut out = format!("lab {} is up (state in {})\n", t.prefix, dir.display());
    out += &format!(
        "  underlay  {}: bridge {} joining {} gateways\n",
        t.underlay.namespace,
        t.underlay.bridge,
        t.gateways.len()
    );
    for g in &t.gateways {
        let process = state
            .gateways
            .iter()
            .find(|p| p.name == g.name)
            .map_or("not started (--no-gateways)".to_owned(), |p| {
                format!("weft run pid {}, log {}", p.pid, p.log.display())
            });
        out += &format!(
            "  gateway   {} at {}: {} on {}, {process}\n",
            g.name, g.site, g.underlay_address, g.namespace
        );
    }
    for n in t.networks() {
        let sites = t.routers.iter().filter(|r| r.network == n).count();
        let workloads: Vec<String> = t
            .workloads
            .iter()
            .filter(|w| w.network == n)
            .map(|w| w.address.addr().to_string())
            .collect();
        out += &format!(
            "  network   {n}: {sites} sites, workloads {}\n",
            workloads.join(" ")
        );
    }
    out += &format!(
        "  {} namespaces: {} VPC routers, {} workloads\n\nTry next:\n",
        t.namespaces().len(),
        t.routers.len(),
        t.workloads.len()
    );
    // `scripts/lab` says how it was called, so the hints can be pasted as they are.
    let lab = std::env::var("WEFT_LAB_COMMAND").unwrap_or_else(|_| "weft lab".to_owned());
    out += &format!("  {lab} check{flag}      # reachability matrix and isolation\n");
    out += &format!("  {lab} status{flag}     # namespaces, workloads, gateway processes\n");
    if let Some(&(i, j)) = check::paths(t).first() {
        out += &format!(
            "  {lab} exec{flag} {} -- ping -c 3 {}{}\n",
            t.workloads[i].name,
            t.workloads[j].address.addr(),
            if on_path("ping") {
                ""
            } else {
                "   # ping is not installed: apt-get install iputils-ping"
            }
        );
    }
    out += &format!("  {lab} down{flag}       # remove everything\n");
    out
}

/// Whether `program` is in one of the `PATH` directories.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}
