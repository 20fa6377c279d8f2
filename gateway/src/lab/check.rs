//! `weft lab check`: proves the lab's reachability matrix and its isolation with real
//! traffic between workload namespaces.
//!
//! Reachability: for each network, between every two of its workloads at different sites
//! of one address family (both directions), an ICMP echo and a TCP transfer of random data
//! whose SHA-256 the receiver sends back.
//!
//! Isolation: networks may use identical addresses (shop/prod, shop/staging and media/prod
//! all have 10.10.x.10), so every workload listens on one UDP port on every address, every
//! workload sends tagged probes to each address of its own network at other sites, and what
//! arrives is counted: a probe must arrive at the workload it was addressed to, in the
//! sender's network, and nowhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use weft_dataplane::linux::netns;

use super::addressing::family_name;
use super::probe::{self, Probe, ProbeError};
use super::process;
use super::state::LabState;
use super::topology::{Topology, WorkloadNode};
use crate::render::table;

/// How much traffic a check sends and how long it waits.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Echo requests per path before it counts as failed.
    pub icmp_attempts: u32,
    /// How long to wait for each echo reply.
    pub icmp_wait: Duration,
    /// Bytes of each TCP transfer.
    pub tcp_bytes: usize,
    /// Bound on connecting and on each read or write of a transfer.
    pub tcp_timeout: Duration,
    /// UDP probes from each workload to each address.
    pub udp_probes: u32,
    /// The port every workload receives probes on.
    pub udp_port: u16,
    /// How long to wait for all expected probes.
    pub udp_wait: Duration,
    /// How long to keep listening after the last expected probe, for strays.
    pub udp_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            icmp_attempts: 5,
            icmp_wait: Duration::from_secs(1),
            tcp_bytes: 256 << 10,
            tcp_timeout: Duration::from_secs(10),
            udp_probes: 3,
            udp_port: 47_010,
            udp_wait: Duration::from_secs(5),
            udp_grace: Duration::from_millis(500),
        }
    }
}

/// The result of one probe of a path.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Ok {
        /// How it went, e.g. the round trip time.
        detail: String,
        /// The round trip (ICMP) or the whole transfer (TCP), in milliseconds.
        millis: f64,
    },
    /// It did not.
    Failed {
        /// Why.
        error: String,
    },
}

impl Outcome {
    /// Whether it worked.
    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    fn cell(&self) -> String {
        match self {
            Outcome::Ok { detail, .. } => format!("ok {detail}"),
            Outcome::Failed { error } => format!("FAIL {error}"),
        }
    }
}

/// One path of the reachability matrix: from a workload to another of its network.
#[derive(Clone, Debug, Serialize)]
pub struct PathResult {
    /// The network.
    pub network: String,
    /// `IPv4` or `IPv6`.
    pub family: &'static str,
    /// The sending workload.
    pub from: String,
    /// Its site.
    pub from_site: String,
    /// The receiving workload.
    pub to: String,
    /// Its site.
    pub to_site: String,
    /// The address probed.
    pub address: IpAddr,
    /// The ICMP echo.
    pub icmp: Outcome,
    /// The TCP transfer.
    pub tcp: Outcome,
}

/// What one network's UDP probes did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IsolationResult {
    /// The network.
    pub network: String,
    /// Probes its workloads sent.
    pub sent: u64,
    /// Of those, received by the workload they were addressed to.
    pub delivered: u64,
    /// Received by another workload of the same network.
    pub misdelivered: u64,
    /// Received by a workload of another network: isolation broken.
    pub leaked: u64,
    /// Probes sent but not received where addressed, as `from -> to (got/sent)`.
    pub missing: Vec<String>,
    /// Each probe received outside its network, as `from -> to received by workload`.
    pub leaks: Vec<String>,
}

impl IsolationResult {
    /// Whether the network is both isolated and reachable by UDP.
    pub fn ok(&self) -> bool {
        self.leaked == 0 && self.misdelivered == 0 && self.missing.is_empty()
    }
}

/// The whole check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The lab's prefix.
    pub lab: String,
    /// Gateways alive of those the lab started.
    pub gateways_running: usize,
    /// Gateways of the lab.
    pub gateways: usize,
    /// Bytes of each TCP transfer.
    pub tcp_bytes: usize,
    /// Every path.
    pub reachability: Vec<PathResult>,
    /// Every network.
    pub isolation: Vec<IsolationResult>,
    /// Whether everything passed.
    pub ok: bool,
}

/// A probe as received by a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The receiving workload.
    pub at: String,
    /// What it received.
    pub probe: Probe,
}

/// The paths of the matrix, as indices into `topology.workloads`: same network, different
/// sites, same address family, both directions.
pub fn paths(topology: &Topology) -> Vec<(usize, usize)> {
    let w = &topology.workloads;
    let mut out = Vec::new();
    for (i, a) in w.iter().enumerate() {
        for (j, b) in w.iter().enumerate() {
            if a.network == b.network && a.site != b.site && a.same_family(b) {
                out.push((i, j));
            }
        }
    }
    out
}

/// Counts what arrived against what was sent: `per_path` probes along each of `paths`,
/// tagged with `run`. Received probes of other runs are ignored; repeats of one probe count
/// once.
pub fn evaluate(
    topology: &Topology,
    paths: &[(usize, usize)],
    per_path: u32,
    run: u64,
    received: &[Received],
) -> Vec<IsolationResult> {
    let w = &topology.workloads;
    let network_of: BTreeMap<&str, &str> = w
        .iter()
        .map(|w| (w.name.as_str(), w.network.as_str()))
        .collect();
    let mut results: BTreeMap<&str, IsolationResult> = topology
        .networks()
        .into_iter()
        .map(|n| {
            (
                n,
                IsolationResult {
                    network: n.to_owned(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut leaks = BTreeMap::new();
    // (from, to address) -> the workloads of the sender's network it should reach.
    let mut got: BTreeMap<(&str, &str), BTreeSet<u32>> = BTreeMap::new();
    for r in received.iter().filter(|r| r.probe.run == run) {
        let p = &r.probe;
        if !seen.insert((r.at.as_str(), p.from.as_str(), p.to, p.seq)) {
            continue;
        }
        let Some(result) = results.get_mut(p.network.as_str()) else {
            continue;
        };
        let receiver_network = network_of.get(r.at.as_str()).copied();
        let addressed = w
            .iter()
            .find(|x| x.name == r.at)
            .is_some_and(|x| x.address.addr() == p.to);
        if receiver_network != Some(p.network.as_str()) {
            result.leaked += 1;
            *leaks
                .entry((p.network.as_str(), p.from.as_str(), p.to, r.at.as_str()))
                .or_insert(0u32) += 1;
        } else if !addressed {
            result.misdelivered += 1;
        } else {
            result.delivered += 1;
            got.entry((p.from.as_str(), r.at.as_str()))
                .or_default()
                .insert(p.seq);
        }
    }
    for ((network, from, to, at), n) in leaks {
        if let Some(result) = results.get_mut(network) {
            result
                .leaks
                .push(format!("{from} -> {to} received by {at} ({n}x)"));
        }
    }
    for &(i, j) in paths {
        let (from, to) = (&w[i], &w[j]);
        let Some(result) = results.get_mut(from.network.as_str()) else {
            continue;
        };
        result.sent += u64::from(per_path);
        let n = got
            .get(&(from.name.as_str(), to.name.as_str()))
            .map_or(0, BTreeSet::len);
        if n < per_path as usize {
            result
                .missing
                .push(format!("{} -> {} ({n}/{per_path})", from.name, to.name));
        }
    }
    results.into_values().collect()
}

/// Runs the check against the lab in `state`.
pub fn run(state: &LabState, settings: &Settings) -> Result<CheckReport, CheckError> {
    let topology = &state.topology;
    let missing: Vec<&str> = topology
        .namespaces()
        .into_iter()
        .filter(|n| !netns::exists(n))
        .collect();
    if !missing.is_empty() {
        return Err(CheckError::Incomplete(missing.join(", ")));
    }
    let gateways_running = state
        .gateways
        .iter()
        .filter(|g| process::is_alive(g.pid, Some(g.start_time)))
        .count();
    let paths = paths(topology);
    let reachability = reachability(topology, &paths, settings)?;
    let isolation = isolation(topology, &paths, settings)?;
    let ok = !paths.is_empty()
        && reachability.iter().all(|p| p.icmp.ok() && p.tcp.ok())
        && isolation.iter().all(IsolationResult::ok);
    Ok(CheckReport {
        lab: topology.prefix.clone(),
        gateways_running,
        gateways: topology.gateways.len(),
        tcp_bytes: settings.tcp_bytes,
        reachability,
        isolation,
        ok,
    })
}

/// Why a check could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Namespaces of the lab are gone.
    #[error(
        "the lab is incomplete, these namespaces are missing: {0}; run `weft lab down` and `weft lab up` again"
    )]
    Incomplete(String),
    /// A socket could not be opened.
    #[error("setting up the check in {workload}: {source}")]
    Setup {
        /// The workload.
        workload: String,
        /// What failed.
        source: ProbeError,
    },
}

fn setup(workload: &WorkloadNode) -> impl FnOnce(ProbeError) -> CheckError + '_ {
    move |source| CheckError::Setup {
        workload: workload.name.clone(),
        source,
    }
}

fn reachability(
    topology: &Topology,
    paths: &[(usize, usize)],
    settings: &Settings,
) -> Result<Vec<PathResult>, CheckError> {
    let w = &topology.workloads;
    let mut data = vec![0u8; settings.tcp_bytes];
    getrandom::fill(&mut data).map_err(|e| CheckError::Setup {
        workload: "(all)".into(),
        source: ProbeError::Random(e),
    })?;
    let destinations: BTreeSet<usize> = paths.iter().map(|&(_, j)| j).collect();
    let mut listeners = BTreeMap::new();
    for &j in &destinations {
        let l = probe::tcp_listen(&w[j].namespace, w[j].address.addr()).map_err(setup(&w[j]))?;
        listeners.insert(j, l);
    }
    let ports: BTreeMap<usize, u16> = listeners
        .iter()
        .map(|(j, l)| (*j, l.local_addr().map_or(0, |a| a.port())))
        .collect();
    let stop = AtomicBool::new(false);
    let results = std::thread::scope(|s| {
        for l in listeners.values() {
            let stop = &stop;
            s.spawn(move || probe::tcp_serve(l, stop, settings.tcp_timeout));
        }
        let workers: Vec<_> = paths
            .iter()
            .map(|&(i, j)| {
                let (from, to) = (&w[i], &w[j]);
                let data = &data;
                let port = ports[&j];
                s.spawn(move || {
                    let address = to.address.addr();
                    let icmp = match probe::ping(
                        &from.namespace,
                        address,
                        settings.icmp_attempts,
                        settings.icmp_wait,
                    ) {
                        Ok(e) => Outcome::Ok {
                            millis: e.rtt.as_secs_f64() * 1e3,
                            detail: format!(
                                "{:.2} ms{}",
                                e.rtt.as_secs_f64() * 1e3,
                                if e.attempts > 1 {
                                    format!(" (try {})", e.attempts)
                                } else {
                                    String::new()
                                }
                            ),
                        },
                        Err(e) => Outcome::Failed {
                            error: e.to_string(),
                        },
                    };
                    let tcp = match probe::tcp_transfer(
                        &from.namespace,
                        SocketAddr::new(address, port),
                        data,
                        settings.tcp_timeout,
                    ) {
                        Ok(t) => Outcome::Ok {
                            millis: t.elapsed.as_secs_f64() * 1e3,
                            detail: format!(
                                "{} KiB, sha256 ok, {:.0} ms",
                                t.bytes >> 10,
                                t.elapsed.as_secs_f64() * 1e3
                            ),
                        },
                        Err(e) => Outcome::Failed {
                            error: e.to_string(),
                        },
                    };
                    PathResult {
                        network: from.network.clone(),
                        family: family_name(&from.prefix),
                        from: from.name.clone(),
                        from_site: from.site.clone(),
                        to: to.name.clone(),
                        to_site: to.site.clone(),
                        address,
                        icmp,
                        tcp,
                    }
                })
            })
            .collect();
        let results: Vec<PathResult> = workers
            .into_iter()
            .map(|h| h.join().expect("a path worker does not panic"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        results
    });
    Ok(results)
}

fn isolation(
    topology: &Topology,
    paths: &[(usize, usize)],
    settings: &Settings,
) -> Result<Vec<IsolationResult>, CheckError> {
    let w = &topology.workloads;
    let mut run = [0u8; 8];
    getrandom::fill(&mut run).map_err(|e| CheckError::Setup {
        workload: "(all)".into(),
        source: ProbeError::Random(e),
    })?;
    let run = u64::from_be_bytes(run);
    // Every workload listens, whether or not probes are meant for it: that is how a probe
    // delivered into the wrong network is caught.
    let mut listeners = Vec::new();
    for x in w {
        let socket = probe::udp_listen(&x.namespace, x.address.addr().is_ipv6(), settings.udp_port)
            .map_err(setup(x))?;
        listeners.push((x.name.as_str(), socket));
    }
    let senders: BTreeSet<usize> = paths.iter().map(|&(i, _)| i).collect();
    let mut sockets = BTreeMap::new();
    for &i in &senders {
        let s = probe::udp_sender(&w[i].namespace, w[i].address.addr()).map_err(setup(&w[i]))?;
        sockets.insert(i, s);
    }
    let expected = paths.len() * settings.udp_probes as usize;
    let received: Mutex<Vec<Received>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for (at, socket) in &listeners {
            let (received, stop) = (&received, &stop);
            s.spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf)
                        && let Some(probe) = Probe::decode(&buf[..n])
                    {
                        let mut r = received.lock().expect("not poisoned");
                        r.push(Received {
                            at: (*at).to_owned(),
                            probe,
                        });
                    }
                }
            });
        }
        for seq in 1..=settings.udp_probes {
            for &(i, j) in paths {
                let probe = Probe {
                    run,
                    network: w[i].network.clone(),
                    from: w[i].name.clone(),
                    to: w[j].address.addr(),
                    seq,
                };
                let to = SocketAddr::new(w[j].address.addr(), settings.udp_port);
                // A send error (no route) shows up as a missing probe.
                let _ = sockets[&i].send_to(&probe.encode(), to);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let deadline = Instant::now() + settings.udp_wait;
        while Instant::now() < deadline {
            let arrived = received
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|r| r.probe.run == run)
                .count();
            if arrived >= expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(settings.udp_grace);
        stop.store(true, Ordering::Relaxed);
    });
    let received = received.into_inner().expect("not poisoned");
    Ok(evaluate(
        topology,
        paths,
        settings.udp_probes,
        run,
        &received,
    ))
}

/// The report as text tables: one row per path, one per network's isolation, a verdict.
pub fn render(report: &CheckReport) -> String {
    let mut out = format!(
        "lab {}: {} of {} gateways running\n\n",
        report.lab, report.gateways_running, report.gateways
    );
    out += &format!(
        "Reachability: ICMP echo, and {} KiB over TCP checked by the receiver's SHA-256\n",
        report.tcp_bytes >> 10
    );
    let mut t = table(&["network", "from", "to", "address", "icmp", "tcp"]);
    for p in &report.reachability {
        t.add_row(vec![
            p.network.clone(),
            p.from.clone(),
            p.to.clone(),
            p.address.to_string(),
            p.icmp.cell(),
            p.tcp.cell(),
        ]);
    }
    out += &format!("{t}\n\n");
    out += "Isolation: tagged UDP probes to every address of the sender's network at other \
            sites, counted where they arrive\n";
    let mut t = table(&[
        "network",
        "sent",
        "arrived as addressed",
        "elsewhere in network",
        "in other networks",
        "missing",
        "result",
    ]);
    for i in &report.isolation {
        t.add_row(vec![
            i.network.clone(),
            i.sent.to_string(),
            i.delivered.to_string(),
            i.misdelivered.to_string(),
            i.leaked.to_string(),
            i.missing.len().to_string(),
            if i.ok() { "ok" } else { "FAIL" }.to_owned(),
        ]);
    }
    out += &format!("{t}\n");
    // The first few of each kind per network; `--json` has them all.
    const SHOWN: usize = 6;
    for i in &report.isolation {
        for (kind, list) in [("LEAK", &i.leaks), ("missing", &i.missing)] {
            for item in list.iter().take(SHOWN) {
                out += &format!("  {kind} {}: {item}\n", i.network);
            }
            if list.len() > SHOWN {
                out += &format!(
                    "  {kind} {}: ... and {} more (see --json)\n",
                    i.network,
                    list.len() - SHOWN
                );
            }
        }
    }
    let paths_ok = report
        .reachability
        .iter()
        .filter(|p| p.icmp.ok() && p.tcp.ok())
        .count();
    let nets_ok = report.isolation.iter().filter(|i| i.ok()).count();
    out += &format!(
        "\n{}: {paths_ok} of {} paths reachable, {nets_ok} of {} networks isolated and complete\n",
        if report.ok { "PASS" } else { "FAIL" },
        report.reachability.len(),
        report.isolation.len()
    );
    if report.reachability.is_empty() {
        out += "note: no network of the lab is at two sites, so there is nothing to prove\n";
    }
    if report.gateways_running < report.gateways {
        out += "note: not every gateway is running (was the lab built with --no-gateways? see \
                `weft lab status`)\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use weft_config::Loader;

    use super::*;

    fn topology() -> Topology {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
        let intent = Loader::new().env_prefix(None).file(path).load().unwrap();
        Topology::build(&intent, "wl0001-").unwrap()
    }

    fn delivered(t: &Topology, paths: &[(usize, usize)], run: u64, n: u32) -> Vec<Received> {
        let w = &t.workloads;
        let mut out = Vec::new();
        for &(i, j) in paths {
            for seq in 1..=n {
                out.push(Received {
                    at: w[j].name.clone(),
                    probe: Probe {
                        run,
                        network: w[i].network.clone(),
                        from: w[i].name.clone(),
                        to: w[j].address.addr(),
                        seq,
                    },
                });
            }
        }
        out
    }

    #[test]
    fn the_matrix_pairs_sites_within_a_network_and_a_family() {
        let t = topology();
        let p = paths(&t);
        // shop/prod and shop/staging: 4 sites x 3 others x 2 families; media/prod: 3 x 2.
        assert_eq!(p.len(), 24 + 24 + 6);
        for (i, j) in p {
            let (a, b) = (&t.workloads[i], &t.workloads[j]);
            assert_eq!(a.network, b.network);
            assert_ne!(a.site, b.site);
            assert!(a.same_family(b));
        }
    }

    #[test]
    fn everything_arriving_where_addressed_passes() {
        let t = topology();
        let p = paths(&t);
        let mut got = delivered(&t, &p, 7, 3);
        // A repeat and a leftover of another run change nothing.
        got.push(got[0].clone());
        let mut old = got[1].clone();
        old.probe.run = 6;
        got.push(old);
        let r = evaluate(&t, &p, 3, 7, &got);
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(IsolationResult::ok), "{r:#?}");
        let media = r.iter().find(|x| x.network == "media/prod").unwrap();
        assert_eq!((media.sent, media.delivered), (18, 18));
    }

    #[test]
    fn a_probe_arriving_in_another_network_is_a_leak() {
        let t = topology();
        let p = paths(&t);
        let mut got = delivered(&t, &p, 7, 1);
        // shop/prod's probe to 10.10.2.10 turns up at shop/staging's workload of that address.
        let leak = got
            .iter()
            .find(|r| r.probe.network == "shop/prod" && r.probe.to.to_string() == "10.10.2.10")
            .unwrap()
            .clone();
        got.push(Received {
            at: "shop.staging.azure-lab.v4".into(),
            ..leak
        });
        let r = evaluate(&t, &p, 1, 7, &got);
        let prod = r.iter().find(|x| x.network == "shop/prod").unwrap();
        assert_eq!(prod.leaked, 1);
        assert!(!prod.ok());
        assert_eq!(
            prod.leaks,
            ["shop.prod.aws-lab.v4 -> 10.10.2.10 received by shop.staging.azure-lab.v4 (1x)"]
        );
        assert!(
            r.iter()
                .filter(|x| x.network != "shop/prod")
                .all(IsolationResult::ok)
        );
    }

    #[test]
    fn a_missing_probe_and_a_misdelivered_one_fail_their_network() {
        let t = topology();
        let p = paths(&t);
        let mut got = delivered(&t, &p, 7, 2);
        let lost = got
            .iter()
            .position(|r| r.probe.network == "media/prod")
            .unwrap();
        let mut wrong = got.remove(lost);
        let (from, to) = (wrong.probe.from.clone(), wrong.at.clone());
        // It went to a workload of its network, but not the one addressed.
        wrong.at = t
            .workloads
            .iter()
            .find(|w| w.network == "media/prod" && w.name != to && w.name != from)
            .unwrap()
            .name
            .clone();
        got.push(wrong);
        let r = evaluate(&t, &p, 2, 7, &got);
        let media = r.iter().find(|x| x.network == "media/prod").unwrap();
        assert_eq!(media.missing, [format!("{from} -> {to} (1/2)")]);
        assert_eq!(media.misdelivered, 1);
        assert_eq!(media.leaked, 0);
        assert!(!media.ok());
    }

    #[test]
    fn the_report_renders_a_verdict() {
        let report = CheckReport {
            lab: "wl0001-".into(),
            gateways_running: 0,
            gateways: 4,
            tcp_bytes: 256 << 10,
            reachability: vec![PathResult {
                network: "shop/prod".into(),
                family: "IPv4",
                from: "a".into(),
                from_site: "x".into(),
                to: "b".into(),
                to_site: "y".into(),
                address: "10.10.2.10".parse().unwrap(),
                icmp: Outcome::Failed {
                    error: "no echo reply".into(),
                },
                tcp: Outcome::Ok {
                    detail: "256 KiB".into(),
                    millis: 3.0,
                },
            }],
            isolation: vec![IsolationResult {
                network: "shop/prod".into(),
                ..Default::default()
            }],
            ok: false,
        };
        let text = render(&report);
        assert!(text.contains("FAIL no echo reply"), "{text}");
        assert!(
            text.contains("FAIL: 0 of 1 paths reachable, 1 of 1 networks"),
            "{text}"
        );
        assert!(text.contains("--no-gateways"), "{text}");
    }
}
