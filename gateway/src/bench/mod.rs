//! `weft bench`: weft's dataplane against plain veth forwarding (the ceiling), boringtun-cli
//! and wireguard-go, on the same two-site topology of network namespaces on this host.
//!
//! Every candidate gets the same namespaces, addresses and link MTUs ([`topology`]): a
//! client, gateway A, an underlay link, gateway B and a server. Rounds are interleaved
//! (veth, weft, boringtun, wireguard-go, then again), each run on a freshly built topology
//! that is removed afterwards. A run measures, in order: UDP round-trip latency (timed in
//! this process), iperf3 TCP with one stream (and the gateways' CPU time meanwhile), TCP
//! with four streams, and UDP packet rates with small and large datagrams. The report gives
//! the medians over rounds and weft's ratios to each other candidate, as Markdown or JSON.
//!
//! `weft bench --memory` measures something else on the same footing ([`memory`]): the
//! resident size of one gateway with many networks and peers, its startup time and its host
//! plumbing.
//!
//! The pure parts (statistics, the report and its table, the generated configurations, the
//! parsers of iperf3, `/proc` and `ss` output) are unit tested; root-only tests run
//! `weft bench --quick --only veth,weft --rounds 1 --json` and a small `--memory`.

pub mod candidates;
pub mod measure;
pub mod memory;
pub mod report;
pub mod stats;
pub mod topology;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Args;

use self::candidates::{Tools, WIREGUARD_MTU};
use self::measure::IPV4_UDP_HEADERS;
use self::report::{
    Candidate, CandidateReport, HostReport, Metric, Report, RoundValues, SettingsReport, Values,
};
use self::topology::{Bed, LINK_MTU, Names};

/// Where boringtun-cli is installed and run files live unless `--cache-dir` says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/tmp/weft-bench";

/// The arguments of `weft bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Rounds; each runs every candidate once, in order [default: 5, or 3 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
    /// Shorter tests and fewer rounds: the whole run takes under two minutes once the
    /// programs are installed. With --memory: measure 1 s after startup instead of 5.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
    /// The candidates to run, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub only: Vec<Candidate>,
    /// Measure memory instead of throughput: the resident size (VmRSS, VmHWM) of one
    /// `weft run` gateway with --networks networks and --peers peers from a generated
    /// configuration (goal: under 64 MiB at 1,000 and 100), its startup time and its host
    /// plumbing. The peers do not run.
    #[arg(long, conflicts_with_all = ["rounds", "only"])]
    pub memory: bool,
    /// With --memory: networks attached at the measured gateway, each with its own
    /// interface, TUN and routing table.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        requires = "memory",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(memory::overlay::MAX_COUNT))
    )]
    pub networks: u32,
    /// With --memory: peer gateways, one site each; every network is also attached at up
    /// to three of them.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "memory",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(memory::overlay::MAX_COUNT))
    )]
    pub peers: u32,
    /// Where boringtun-cli is installed (`cargo install --root`) and each run keeps its
    /// configurations, keys and logs.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CACHE_DIR)]
    pub cache_dir: PathBuf,
    /// Forwarding threads of each `weft run` (its `--threads`) [default: weft run's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub weft_threads: Option<u16>,
}

/// How much to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Rounds.
    pub rounds: u32,
    /// `--quick`.
    pub quick: bool,
    /// Candidates, in round order.
    pub order: Vec<Candidate>,
    /// Counted seconds of a TCP test.
    pub tcp_seconds: u32,
    /// Seconds omitted at the start of a TCP test.
    pub tcp_omit_seconds: u32,
    /// Seconds of a UDP test.
    pub udp_seconds: u32,
    /// Timed round trips.
    pub latency_samples: usize,
    /// Uncounted round trips first.
    pub latency_warmup: usize,
    /// Pause between round trips.
    pub latency_interval: Duration,
    /// Pause between tests, for queues to drain.
    pub pause: Duration,
}

impl Settings {
    /// The settings of `args`.
    pub fn of(args: &BenchArgs) -> Settings {
        let order = if args.only.is_empty() {
            Candidate::ALL.to_vec()
        } else {
            Candidate::ALL
                .into_iter()
                .filter(|c| args.only.contains(c))
                .collect()
        };
        if args.quick {
            Settings {
                rounds: args.rounds.unwrap_or(3),
                quick: true,
                order,
                tcp_seconds: 1,
                tcp_omit_seconds: 0,
                udp_seconds: 1,
                latency_samples: 300,
                latency_warmup: 20,
                latency_interval: Duration::from_millis(1),
                pause: Duration::from_millis(200),
            }
        } else {
            Settings {
                rounds: args.rounds.unwrap_or(5),
                quick: false,
                order,
                tcp_seconds: 5,
                tcp_omit_seconds: 1,
                udp_seconds: 5,
                latency_samples: 2000,
                latency_warmup: 50,
                latency_interval: Duration::from_millis(1),
                pause: Duration::from_millis(500),
            }
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// An error once SIGINT, SIGTERM or SIGHUP has arrived: every wait of the benchmark asks,
/// so that it stops soon and its namespaces and processes are removed on the way out.
pub fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Catches SIGINT, SIGTERM and SIGHUP on a thread of its own (once per process): they set
/// the flag [`check_interrupt`] reads instead of ending the process with its namespaces
/// still there. Returns once the handlers are in place.
fn catch_signals() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("bench-signals".to_owned())
            .spawn(move || {
                use tokio::signal::unix::{SignalKind, signal};
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let kinds = [
                        SignalKind::interrupt(),
                        SignalKind::terminate(),
                        SignalKind::hangup(),
                    ];
                    let mut streams = Vec::new();
                    for kind in kinds {
                        match signal(kind) {
                            Ok(s) => streams.push(s),
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    let [a, b, c] = &mut streams[..] else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = a.recv() => {}
                            _ = b.recv() => {}
                            _ = c.recv() => {}
                        }
                        if INTERRUPTED.swap(true, Ordering::Relaxed) {
                            eprintln!("still stopping: removing the benchmark's namespaces");
                        } else {
                            eprintln!(
                                "interrupted: stopping the candidate and removing its namespaces"
                            );
                        }
                    }
                });
            });
        result = match spawned {
            Ok(_) => ready_rx
                .recv()
                .context("the signal thread ended")
                .and_then(|r| r.context("catching signals")),
            Err(e) => Err(e.into()),
        };
    });
    result
}

/// Runs the benchmark and prints its report; `Ok(false)` when a measurement failed (the
/// report says which).
pub fn run(args: BenchArgs) -> anyhow::Result<bool> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "`weft bench` must run as root: it creates network namespaces, TUN devices and \
             gateway processes; run it with sudo"
        );
    }
    catch_signals()?;
    let started = Instant::now();
    let started_at = SystemTime::now();
    let load_at_start = load_average();
    let swept = topology::sweep_stale();
    if swept > 0 {
        eprintln!("removed {swept} namespaces left by an earlier `weft bench` that was killed");
    }
    if args.memory {
        return memory::run(&args);
    }
    let settings = Settings::of(&args);
    if cfg!(debug_assertions) && settings.order.contains(&Candidate::Weft) {
        eprintln!(
            "warning: this is a debug build of weft, and the weft measured is this binary: \
             build with `cargo build --release` for figures worth comparing"
        );
    }
    let tools = find_tools(&settings.order, &args.cache_dir, args.weft_threads)?;
    let mut run_dir = RunDir::create(&args.cache_dir)?;
    let dir = run_dir.path.clone();
    let weft_mtu =
        candidates::weft_network_mtu(&candidates::write_weft_config(&dir.join("plan"))?)?;
    let tunnel_mtu = weft_mtu.min(WIREGUARD_MTU);
    let udp_large = 1400.min(usize::from(tunnel_mtu) - IPV4_UDP_HEADERS);
    let settings_report = SettingsReport {
        rounds: settings.rounds,
        quick: settings.quick,
        order: settings.order.clone(),
        tcp_seconds: settings.tcp_seconds,
        tcp_omit_seconds: settings.tcp_omit_seconds,
        udp_seconds: settings.udp_seconds,
        udp_small_bytes: 64,
        udp_large_bytes: udp_large,
        latency_samples: settings.latency_samples,
        latency_interval_us: settings.latency_interval.as_micros() as u64,
        link_mtu: LINK_MTU,
        wireguard_mtu: WIREGUARD_MTU,
        weft_network_mtu: weft_mtu,
    };

    let mut rounds: Vec<Vec<RoundValues>> = vec![Vec::new(); settings.order.len()];
    let mut buffers: Vec<Option<u64>> = vec![None; settings.order.len()];
    let mut errors = Vec::new();
    for round in 1..=settings.rounds {
        for (i, &candidate) in settings.order.iter().enumerate() {
            check_interrupt()?;
            let t = Instant::now();
            eprint!(
                "round {round}/{}: {:<13}",
                settings.rounds,
                candidate.name()
            );
            // Each run's configurations, keys and logs; kept only when something failed.
            let run_path = dir.join(format!("round{round}-{}", candidate.tag()));
            std::fs::create_dir_all(&run_path)
                .with_context(|| format!("creating {}", run_path.display()))?;
            let outcome = run_once(candidate, &settings, &settings_report, &tools, &run_path);
            check_interrupt()?;
            if outcome.as_ref().is_ok_and(|o| o.errors.is_empty()) {
                let _ = std::fs::remove_dir_all(&run_path);
            }
            match outcome {
                Ok(once) => {
                    eprintln!(
                        "{} ({:.0} s)",
                        progress_text(&once.values),
                        t.elapsed().as_secs_f64()
                    );
                    for e in once.errors {
                        eprintln!("  error: {e}");
                        errors.push(format!("round {round}, {}: {e}", candidate.name()));
                    }
                    buffers[i] = buffers[i].or(once.udp_receive_buffer);
                    rounds[i].push(RoundValues {
                        round,
                        values: once.values,
                        udp_drops_tcp_1_stream: once.udp_drops_tcp_1_stream,
                    });
                }
                Err(e) => {
                    eprintln!("failed: {e:#}");
                    errors.push(format!("round {round}, {}: {e:#}", candidate.name()));
                }
            }
        }
    }

    let candidate_reports: Vec<CandidateReport> = settings
        .order
        .iter()
        .zip(rounds)
        .zip(buffers)
        .map(|((&candidate, rounds), buffer)| CandidateReport {
            candidate,
            version: candidates::version(candidate, &tools),
            setup: candidates::setup_text(candidate, weft_mtu, tools.weft_threads),
            udp_receive_buffer_bytes: buffer,
            median: report::medians(&rounds),
            rounds,
        })
        .collect();
    let report = Report {
        started_utc: report::utc_text(started_at),
        wall_seconds: started.elapsed().as_secs_f64(),
        host: host_report(
            candidates::version_line(&tools.iperf3, &["--version"]),
            load_at_start,
        ),
        settings: settings_report,
        ratios: report::ratios(&candidate_reports),
        candidates: candidate_reports,
        errors,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render(&report));
    }
    if !report.errors.is_empty() {
        run_dir.keep = true;
        eprintln!(
            "configurations and logs of this run are kept in {}",
            dir.display()
        );
    }
    Ok(report.errors.is_empty())
}

/// The directory of one run (`<cache>/run-<pid>`): configurations, keys and logs. Removed
/// when dropped unless a failure asks to keep it for a look.
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn create(cache: &Path) -> anyhow::Result<RunDir> {
        let path = cache.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(RunDir { path, keep: false })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What one run of one candidate gave.
struct RunOutcome {
    values: Values,
    errors: Vec<String>,
    udp_receive_buffer: Option<u64>,
    udp_drops_tcp_1_stream: Option<u64>,
}

/// Builds the topology for `candidate`, starts it, measures everything and removes it all.
/// An error here means nothing could be measured; a failed test is in `errors`.
fn run_once(
    candidate: Candidate,
    settings: &Settings,
    report: &SettingsReport,
    tools: &Tools,
    dir: &Path,
) -> anyhow::Result<RunOutcome> {
    let names = Names::new(std::process::id(), candidate);
    let mut bed = Bed::build(names, candidate != Candidate::Weft)?;
    candidates::start(candidate, &mut bed, tools, dir)?;
    measure::start_iperf_server(&mut bed, &tools.iperf3, dir)?;
    measure::wait_reachable(&mut bed, Duration::from_secs(20))?;
    let gateways = [bed.names.gateway_a.clone(), bed.names.gateway_b.clone()];
    let tunnel = candidate != Candidate::Veth;
    let udp_receive_buffer = gateways
        .iter()
        .filter_map(|ns| measure::udp_receive_buffer(ns))
        .max()
        .filter(|_| tunnel);
    let drops = || -> Option<u64> {
        let list: Option<Vec<u64>> = gateways.iter().map(|ns| measure::udp_drops(ns)).collect();
        list.map(|l| l.iter().sum()).filter(|_| tunnel)
    };
    let mut values = Values::new();
    let mut errors = Vec::new();
    let mut record =
        |result: anyhow::Result<Vec<(Metric, f64)>>, errors: &mut Vec<String>| match result {
            Ok(list) => values.extend(list),
            Err(e) => errors.push(format!("{e:#}")),
        };
    let limit = |seconds: u32| Duration::from_secs(u64::from(seconds) + 30);

    let latency = measure::latency(
        &bed,
        settings.latency_warmup,
        settings.latency_samples,
        settings.latency_interval,
    )
    .map(|l| {
        vec![
            (Metric::LatencyP50, l.p50_us),
            (Metric::LatencyP99, l.p99_us),
        ]
    });
    record(latency, &mut errors);
    check_interrupt()?;

    std::thread::sleep(settings.pause);
    let pids = bed.gateway_pids();
    let drops_before = drops();
    let cpu_before = measure::cpu_seconds(&pids);
    let tcp1 = measure::iperf_client(
        &mut bed,
        &tools.iperf3,
        &measure::tcp_args(settings.tcp_seconds, settings.tcp_omit_seconds, 1),
        limit(settings.tcp_seconds + settings.tcp_omit_seconds),
        dir,
    )
    .and_then(|json| measure::tcp_result(&json));
    let cpu_after = measure::cpu_seconds(&pids);
    let udp_drops_tcp_1_stream = drops()
        .zip(drops_before)
        .map(|(after, before)| after.saturating_sub(before));
    let tcp1 = tcp1.map(|r| {
        let mut list = vec![(Metric::Tcp1, r.gbps)];
        if candidate != Candidate::Veth
            && let (Some(before), Some(after)) = (cpu_before, cpu_after)
            && r.bytes_all > 0.0
        {
            list.push((Metric::CpuPerGb, (after - before) / (r.bytes_all / 1e9)));
        }
        list
    });
    record(tcp1, &mut errors);
    check_interrupt()?;

    std::thread::sleep(settings.pause);
    let tcp4 = measure::iperf_client(
        &mut bed,
        &tools.iperf3,
        &measure::tcp_args(settings.tcp_seconds, settings.tcp_omit_seconds, 4),
        limit(settings.tcp_seconds + settings.tcp_omit_seconds),
        dir,
    )
    .and_then(|json| measure::tcp_result(&json))
    .map(|r| vec![(Metric::Tcp4, r.gbps)]);
    record(tcp4, &mut errors);
    check_interrupt()?;

    for (metric, size) in [
        (Metric::UdpSmall, report.udp_small_bytes),
        (Metric::UdpLarge, report.udp_large_bytes),
    ] {
        std::thread::sleep(settings.pause);
        let udp = measure::iperf_client(
            &mut bed,
            &tools.iperf3,
            &measure::udp_args(settings.udp_seconds, size),
            limit(settings.udp_seconds),
            dir,
        )
        .and_then(|json| measure::udp_result(&json))
        .map(|pps| vec![(metric, pps)]);
        record(udp, &mut errors);
        check_interrupt()?;
    }
    bed.check_alive()?;
    bed.teardown();
    Ok(RunOutcome {
        values,
        errors,
        udp_receive_buffer,
        udp_drops_tcp_1_stream,
    })
}

/// One line of progress: every value measured.
fn progress_text(values: &Values) -> String {
    let get = |m: Metric| {
        values
            .get(&m)
            .map_or_else(|| "-".to_owned(), |v| m.format(*v))
    };
    format!(
        "tcp1 {} tcp4 {} Gbit/s, udp {} / {} kpps, rtt p50 {} p99 {} µs, cpu {} s/GB",
        get(Metric::Tcp1),
        get(Metric::Tcp4),
        get(Metric::UdpSmall),
        get(Metric::UdpLarge),
        get(Metric::LatencyP50),
        get(Metric::LatencyP99),
        get(Metric::CpuPerGb),
    )
}

/// The programs the chosen candidates need; installs boringtun-cli when it is chosen and
/// missing.
fn find_tools(
    order: &[Candidate],
    cache: &Path,
    weft_threads: Option<u16>,
) -> anyhow::Result<Tools> {
    let hint = "run scripts/install-deps as root, or apt-get install";
    let iperf3 = candidates::which("iperf3")
        .with_context(|| format!("iperf3 is not installed: {hint} iperf3"))?;
    let wants = |c: Candidate| order.contains(&c);
    let wg = if wants(Candidate::Boringtun) || wants(Candidate::WireguardGo) {
        Some(candidates::which("wg").with_context(|| {
            format!("`wg` is not installed: {hint} wireguard-tools (or leave boringtun and wireguard-go out with --only)")
        })?)
    } else {
        None
    };
    let wireguard_go = if wants(Candidate::WireguardGo) {
        Some(candidates::which("wireguard-go").with_context(|| {
            format!(
                "wireguard-go is not installed: {hint} wireguard-go (or leave it out with --only)"
            )
        })?)
    } else {
        None
    };
    let boringtun = if wants(Candidate::Boringtun) {
        Some(candidates::ensure_boringtun(cache)?)
    } else {
        None
    };
    let weft = std::env::current_exe().context("finding the weft binary")?;
    Ok(Tools {
        iperf3,
        weft,
        weft_threads,
        wg,
        boringtun,
        wireguard_go,
    })
}

/// What the report says about this machine; `iperf3` is its version line when the run used it.
fn host_report(iperf3: Option<String>, load_at_start: String) -> HostReport {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| (kib + (1 << 19)) >> 20);
    HostReport {
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib,
        kernel: candidates::kernel_release(),
        iperf3,
        load_at_start,
        load_at_end: load_average(),
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_run_every_candidate_five_rounds() {
        let s = Settings::of(&parse(&[]));
        assert_eq!(s.rounds, 5);
        assert_eq!(s.order, Candidate::ALL);
        assert!(!s.quick);
        assert_eq!(parse(&[]).cache_dir, Path::new(DEFAULT_CACHE_DIR));
    }

    #[test]
    fn only_keeps_round_order_and_quick_is_shorter() {
        let args = parse(&[
            "--quick",
            "--only",
            "wireguard-go,veth",
            "--rounds",
            "1",
            "--json",
        ]);
        assert!(args.json);
        let s = Settings::of(&args);
        assert_eq!(s.order, [Candidate::Veth, Candidate::WireguardGo]);
        assert_eq!(s.rounds, 1);
        assert!(s.quick && s.tcp_seconds < Settings::of(&parse(&[])).tcp_seconds);
        assert_eq!(Settings::of(&parse(&["--quick"])).rounds, 3);
        assert!(Cli::try_parse_from(["bench", "--rounds", "0"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--only", "tailscale"]).is_err());
    }

    #[test]
    fn memory_takes_network_and_peer_counts() {
        let args = parse(&["--memory"]);
        assert!(args.memory);
        assert_eq!((args.networks, args.peers), (1000, 100));
        let args = parse(&["--memory", "--networks", "20", "--peers", "5", "--quick"]);
        assert_eq!((args.networks, args.peers), (20, 5));
        // The counts mean nothing without --memory, and rounds and candidates nothing with it.
        for wrong in [
            &["bench", "--networks", "20"][..],
            &["bench", "--peers", "5"],
            &["bench", "--memory", "--rounds", "2"],
            &["bench", "--memory", "--only", "weft"],
            &["bench", "--memory", "--networks", "0"],
            &["bench", "--memory", "--peers", "10001"],
        ] {
            assert!(Cli::try_parse_from(wrong).is_err(), "{wrong:?}");
        }
        assert!(!parse(&[]).memory);
    }

    #[test]
    fn progress_lines_show_what_was_measured() {
        let values: Values = [(Metric::Tcp1, 2.345), (Metric::UdpSmall, 81_234.0)]
            .into_iter()
            .collect();
        assert_eq!(
            progress_text(&values),
            "tcp1 2.35 tcp4 - Gbit/s, udp 81.2 / - kpps, rtt p50 - p99 - µs, cpu - s/GB"
        );
    }
}
