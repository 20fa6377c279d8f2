//! `weft bench --memory`: the resident size of one gateway with many networks and peers
//! (by default 1,000 and 100: the acceptance line of the performance work, goal under
//! 64 MiB), how long it takes to start, and what its host plumbing looks like.
//!
//! It generates the overlay of [`overlay`], builds two namespaces — the gateway's, and a
//! "site" one holding the other end of the gateway's underlay link and of each network's
//! interface (as the VPC would) — and runs this very binary's `weft run` for the measured
//! gateway in the first. Startup is timed until the control socket is served (the daemon
//! binds it once its first configuration is applied); after a settling pause `VmRSS`,
//! `VmHWM` and the thread count are read from `/proc/PID/status`, before anything asks the
//! gateway anything. Then the gateway is asked for its `status` (which must say the
//! configuration was applied, with every network and peer) and measured once more, the
//! namespace's routes and rules are counted, and the gateway is stopped with SIGTERM (timed:
//! it removes its routes and rules). The peers never run; the gateway's handshakes to them
//! go unanswered.
//!
//! The pure parts (the generated configuration, the parsers and the report) are unit
//! tested; a root-only test in `tests/bench.rs` runs `weft bench --memory --networks 20
//! --peers 5 --quick --json`.

pub mod overlay;
pub mod report;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use weft_dataplane::linux::netns;

use self::overlay::{MEASURED_GATEWAY, Shape, UNDERLAY_LEN, interface_name, underlay_address};
use self::report::{
    GOAL_BYTES, GatewayReport, HostPlumbing, MemoryReport, ProcMemory, ShapeReport,
    count_weft_tables, link_names, proc_memory,
};
use super::topology::{
    GRACE, LINK_MTU, NAME_HEAD, Process, UNDERLAY_INTERFACE, remove_namespaces, veth, wait_until,
};
use super::{BenchArgs, RunDir, check_interrupt, host_report, load_average};
use crate::daemon::control::{Request, ask};
use crate::lab::netns::set_sysctl;

/// How long the gateway runs after its configuration is applied before it is measured.
pub const SETTLE: Duration = Duration::from_secs(5);
/// The same with `--quick`.
pub const QUICK_SETTLE: Duration = Duration::from_secs(1);
/// How long startup may take at least; each network adds [`START_PER_NETWORK`].
const START_BASE: Duration = Duration::from_secs(60);
/// Startup time allowed per network (a TUN, addresses, routes and rules each).
const START_PER_NETWORK: Duration = Duration::from_millis(200);
/// How long the gateway gets to remove its routes and rules after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(120);

/// The two namespaces of one measurement and the gateway running in one of them; dropping
/// it stops the gateway and deletes both, also on an error, a panic or after Ctrl-C.
struct Bed {
    /// The measured gateway's namespace, `wfb<pid>-mem-gw`.
    gateway_ns: String,
    /// The other end of every link, `wfb<pid>-mem-site`.
    site_ns: String,
    /// Namespaces created so far.
    created: Vec<String>,
    /// `weft run`, once started.
    gateway: Option<Process>,
}

impl Bed {
    /// The names for the run of process `pid`; nothing is created yet.
    fn new(pid: u32) -> Bed {
        Bed {
            gateway_ns: format!("{NAME_HEAD}{pid}-mem-gw"),
            site_ns: format!("{NAME_HEAD}{pid}-mem-site"),
            created: Vec::new(),
            gateway: None,
        }
    }

    /// Creates both namespaces, the underlay link (`ul0`, the gateway's address
    /// `198.18.0.1/15`) and one veth pair per network (`net<i>` at both ends), all up.
    /// The interfaces are made with `ip -batch` files written into `dir`.
    fn build(&mut self, networks: u32, dir: &Path) -> anyhow::Result<()> {
        for ns in [self.gateway_ns.clone(), self.site_ns.clone()] {
            check_interrupt()?;
            netns::create(&ns)?;
            self.created.push(ns);
        }
        // As in the throughput topology: a gateway forwards and does not filter by reverse
        // path; set before the links exist, so that they inherit `default`.
        set_sysctl(&self.gateway_ns, &["ipv4", "ip_forward"], "1")?;
        for scope in ["all", "default"] {
            set_sysctl(&self.gateway_ns, &["ipv4", "conf", scope, "rp_filter"], "0")?;
        }
        let mtu = LINK_MTU.to_string();
        veth(
            &self.gateway_ns,
            UNDERLAY_INTERFACE,
            &self.site_ns,
            UNDERLAY_INTERFACE,
            &mtu,
        )?;
        let underlay = format!("{}/{UNDERLAY_LEN}", underlay_address(0));
        netns::ip(
            &self.gateway_ns,
            &["address", "add", &underlay, "dev", UNDERLAY_INTERFACE],
        )?;
        let (gateway_batch, site_batch) = link_batches(networks, &self.site_ns);
        for (ns, text, file) in [
            (&self.gateway_ns, gateway_batch, "links-gateway.ip"),
            (&self.site_ns, site_batch, "links-site.ip"),
        ] {
            check_interrupt()?;
            let path = dir.join(file);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            netns::ip(ns, &["-batch", &path.display().to_string()])?;
        }
        Ok(())
    }

    /// Stops the gateway (if it runs) and deletes the namespaces. Safe to call twice.
    fn teardown(&mut self) {
        if let Some(mut gateway) = self.gateway.take()
            && !gateway.stop(GRACE)
        {
            eprintln!("warning: {} needed SIGKILL", gateway.name);
        }
        remove_namespaces(&mut self.created);
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The `ip -batch` files that make the interfaces: in the gateway's namespace a veth pair
/// per network, whose other end goes to `site_ns`, and both underlay ends up; in
/// `site_ns`, every other end up.
pub fn link_batches(networks: u32, site_ns: &str) -> (String, String) {
    let mut gateway = String::new();
    let mut site = format!("link set {UNDERLAY_INTERFACE} up\n");
    for i in 0..networks {
        let name = interface_name(i);
        let _ = writeln!(
            gateway,
            "link add {name} mtu {LINK_MTU} type veth peer name {name} mtu {LINK_MTU} netns {site_ns}"
        );
        let _ = writeln!(gateway, "link set {name} up");
        let _ = writeln!(site, "link set {name} up");
    }
    let _ = writeln!(gateway, "link set {UNDERLAY_INTERFACE} up");
    (gateway, site)
}

/// Runs the measurement of `args` (`--memory` given) and prints its report. The caller has
/// checked for root and catches signals.
pub fn run(args: &BenchArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let load_at_start = load_average();
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build of weft, and the weft measured is this binary: \
             build with `cargo build --release` for figures worth reporting"
        );
    }
    let shape = Shape {
        networks: args.networks,
        peers: args.peers,
    };
    let settle = if args.quick { QUICK_SETTLE } else { SETTLE };
    let weft = std::env::current_exe().context("finding the weft binary")?;
    let mut run_dir = RunDir::create(&args.cache_dir)?;
    let dir = run_dir.path.clone();
    let measured = match measure(shape, settle, &weft, &dir) {
        Ok(m) => m,
        Err(e) => {
            run_dir.keep = true;
            eprintln!(
                "the configuration and the gateway's log are kept in {}",
                dir.display()
            );
            return Err(e);
        }
    };
    let memory = measured.memory;
    let report = MemoryReport {
        started_utc: super::report::utc_text(started_at),
        wall_seconds: started.elapsed().as_secs_f64(),
        host: host_report(None, load_at_start),
        weft: format!(
            "weft {} ({} build)",
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ),
        shape: ShapeReport {
            networks: shape.networks,
            peers: shape.peers,
            tenants: shape.tenants(),
            remote_sites_per_network: shape.remote_sites_per_network(),
            settle_seconds: settle.as_secs(),
        },
        goal_bytes: GOAL_BYTES,
        goal_met: memory.rss_bytes < GOAL_BYTES,
        startup_seconds: measured.startup.as_secs_f64(),
        memory,
        memory_after_status: measured.memory_after_status,
        stop_seconds: measured.stop.map(|d| d.as_secs_f64()),
        host_plumbing: measured.plumbing,
        gateway: measured.gateway,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render(&report));
    }
    Ok(true)
}

/// What one measurement gave.
struct Measured {
    startup: Duration,
    memory: ProcMemory,
    memory_after_status: Option<ProcMemory>,
    stop: Option<Duration>,
    plumbing: HostPlumbing,
    gateway: GatewayReport,
}

/// Writes the configuration into `dir`, builds the namespaces, runs and measures the
/// gateway, stops it and removes everything.
fn measure(shape: Shape, settle: Duration, weft: &Path, dir: &Path) -> anyhow::Result<Measured> {
    let config = overlay::write(dir, shape)?;
    let mut bed = Bed::new(std::process::id());
    eprintln!(
        "building namespaces {} and {} ({} veth pairs)",
        bed.gateway_ns, bed.site_ns, shape.networks
    );
    bed.build(shape.networks, dir)?;

    let socket = dir.join(format!("{MEASURED_GATEWAY}.sock"));
    let args = vec![
        "run".to_owned(),
        "-c".to_owned(),
        config.display().to_string(),
        "--gateway".to_owned(),
        MEASURED_GATEWAY.to_owned(),
        "--control".to_owned(),
        socket.display().to_string(),
        "--no-watch".to_owned(),
    ];
    eprintln!(
        "starting weft run --gateway {MEASURED_GATEWAY}: {} networks, {} peers",
        shape.networks, shape.peers
    );
    let t = Instant::now();
    let process = Process::spawn(
        &format!("weft run --gateway {MEASURED_GATEWAY}"),
        &bed.gateway_ns,
        weft,
        &args,
        &[],
        &dir.join(format!("{MEASURED_GATEWAY}.log")),
    )?;
    let gateway = bed.gateway.insert(process);
    let limit = START_BASE + START_PER_NETWORK * shape.networks;
    wait_until(limit, "the gateway's control socket", || {
        if gateway.exited().is_some() {
            return Err(gateway.died());
        }
        Ok(socket.exists())
    })?;
    let startup = t.elapsed();
    eprintln!(
        "configuration applied after {:.2} s; settling {} s",
        startup.as_secs_f64(),
        settle.as_secs()
    );
    let settled = Instant::now() + settle;
    wait_until(settle + Duration::from_secs(1), "settling", || {
        if gateway.exited().is_some() {
            return Err(gateway.died());
        }
        Ok(Instant::now() >= settled)
    })?;
    let pid = gateway.pid();
    let memory = proc_memory(pid).with_context(|| format!("reading /proc/{pid}/status"))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(ask(&socket, Request::Status))?;
    let gateway_report = report::gateway_report(&status)?;
    for (what, reported, expected) in [
        ("networks", gateway_report.networks, shape.networks),
        ("peers", gateway_report.peers, shape.peers),
    ] {
        if let Some(n) = reported
            && n != u64::from(expected)
        {
            bail!("the gateway reports {n} {what}, the configuration has {expected}");
        }
    }
    let memory_after_status = proc_memory(pid);
    let plumbing = host_plumbing(&bed.gateway_ns)?;

    eprintln!("stopping the gateway");
    let t = Instant::now();
    let stopped = gateway.stop(STOP_GRACE);
    let stop = stopped.then(|| t.elapsed());
    bed.gateway = None;
    bed.teardown();
    Ok(Measured {
        startup,
        memory,
        memory_after_status,
        stop,
        plumbing,
        gateway: gateway_report,
    })
}

/// Counts the links, weft's TUNs and the routes and rules of weft's tables in `ns`.
fn host_plumbing(ns: &str) -> anyhow::Result<HostPlumbing> {
    let links = link_names(&netns::ip(ns, &["-o", "link", "show"])?);
    let family = |flag: &str, what: &[&str], keyword: &str| -> anyhow::Result<u64> {
        let mut args = vec![flag];
        args.extend_from_slice(what);
        Ok(count_weft_tables(&netns::ip(ns, &args)?, keyword))
    };
    let routes = ["route", "show", "table", "all"];
    let rules = ["rule", "show"];
    Ok(HostPlumbing {
        links: links.len() as u64,
        tuns: links.iter().filter(|l| l.starts_with("weft")).count() as u64,
        routes_v4: family("-4", &routes, "table")?,
        routes_v6: family("-6", &routes, "table")?,
        rules_v4: family("-4", &rules, "lookup")?,
        rules_v6: family("-6", &rules, "lookup")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_network_gets_a_veth_pair_up_at_both_ends() {
        let (gateway, site) = link_batches(2, "wfb1-mem-site");
        assert_eq!(
            gateway,
            "link add net0 mtu 1500 type veth peer name net0 mtu 1500 netns wfb1-mem-site\n\
             link set net0 up\n\
             link add net1 mtu 1500 type veth peer name net1 mtu 1500 netns wfb1-mem-site\n\
             link set net1 up\n\
             link set ul0 up\n"
        );
        assert_eq!(
            site,
            "link set ul0 up\nlink set net0 up\nlink set net1 up\n"
        );
        let bed = Bed::new(4242);
        assert_eq!(bed.gateway_ns, "wfb4242-mem-gw");
        assert_eq!(bed.site_ns, "wfb4242-mem-site");
        // A killed run's namespaces are found by the sweep of every `weft bench`.
        assert_eq!(super::super::topology::owner_pid(&bed.site_ns), Some(4242));
    }
}
