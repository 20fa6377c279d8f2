//! End-to-end acceptance of the dataplane in the lab: four gateways (`weft run`) in network
//! namespaces with real WireGuard between them and real traffic between workloads.
//!
//! Each test brings up its own lab in its own temporary state directory (labs have unique
//! namespace prefixes, so tests run in parallel) and a guard runs `weft lab down` even when
//! an assertion fails. Needs root: every test prints a skip line and returns otherwise (CI
//! runs as root). Failures print the end of every gateway's log.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt::TcpMaxSeg};
use serde_json::Value;
use sha2::{Digest, Sha256};
use weft_dataplane::linux::netns;
use weft_gateway::lab::gateways::tail;
use weft_gateway::lab::probe;
use weft_gateway::lab::state::{LabState, StateDir};
use weft_gateway::lab::topology::WorkloadNode;

/// Whether the tests can run; prints the skip line when they cannot.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipped {test}: the lab needs root (network namespaces, TUN devices); CI runs the \
         tests as root"
    );
    false
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml")
}

fn weft(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(args);
    // Only what the test sets may override the configuration.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WEFT_")) {
        cmd.env_remove(k);
    }
    cmd.output().expect("weft runs")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)))
}

/// Polls `probe` every 200 ms until it returns `Some`, at most `limit`.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = probe() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A copy of the example configuration and its key directory that a test may edit.
fn config_copy(dir: &Path) -> PathBuf {
    let keys = dir.join("lab-keys");
    std::fs::create_dir(&keys).unwrap();
    let source = example().parent().unwrap().join("lab-keys");
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        // `fs::copy` keeps the mode: the keys stay 0600, as `weft run` requires.
        std::fs::copy(entry.path(), keys.join(entry.file_name())).unwrap();
    }
    let config = dir.join("lab.toml");
    std::fs::copy(example(), &config).unwrap();
    config
}

/// A running lab in a temporary state directory; dropping it runs `weft lab down`.
struct Lab {
    state_dir: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Brings up the lab of `config` (the example when `None`; else a copy made with
    /// [`config_copy`] inside `dir`).
    fn up(dir: tempfile::TempDir, config: Option<PathBuf>) -> Lab {
        let state_dir = dir.path().join("state");
        let config = config.unwrap_or_else(example);
        let lab = Lab {
            state_dir,
            config,
            _dir: dir,
        };
        let o = weft(&[
            "lab",
            "up",
            "-c",
            lab.config.to_str().unwrap(),
            "--state-dir",
            lab.sd(),
        ]);
        assert!(o.status.success(), "weft lab up: {}", text(&o));
        lab
    }

    fn sd(&self) -> &str {
        self.state_dir.to_str().unwrap()
    }

    fn state(&self) -> LabState {
        StateDir::new(&self.state_dir)
            .load()
            .unwrap()
            .expect("the lab is up")
    }

    /// `weft lab SUBCOMMAND --state-dir DIR ARGS...`.
    fn lab(&self, subcommand: &str, args: &[&str]) -> Output {
        let mut all = vec!["lab", subcommand, "--state-dir", self.sd()];
        all.extend_from_slice(args);
        weft(&all)
    }

    /// The end of every gateway's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for g in self.state().gateways {
            out += &format!(
                "\n--- {} (pid {}), {}:\n{}\n",
                g.name,
                g.pid,
                g.log.display(),
                tail(&g.log, 25)
            );
        }
        out
    }

    /// `weft lab check --json`, which must pass.
    fn check(&self) -> Value {
        let o = self.lab("check", &["--json"]);
        let report = json_of(&o);
        assert!(
            o.status.success() && report["ok"] == true,
            "weft lab check failed: {}{}",
            text(&o),
            self.logs()
        );
        report
    }

    /// `weft status --json` of one gateway.
    fn status(&self, gateway: &str) -> Value {
        let socket = self.state_dir.join(format!("{gateway}.sock"));
        let o = weft(&["status", "--control", socket.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "weft status {gateway}: {}", text(&o));
        json_of(&o)
    }

    fn gateway_names(&self) -> Vec<String> {
        self.state().gateways.into_iter().map(|g| g.name).collect()
    }

    /// Waits until every gateway has a session with each of its 3 peers, at most 20 s.
    fn wait_for_handshakes(&self) {
        let all = wait_for(Duration::from_secs(20), || {
            self.gateway_names()
                .iter()
                .all(|g| {
                    let peers = peers(&self.status(g));
                    peers.len() == 3 && peers.values().all(|p| p.since_handshake.is_some())
                })
                .then_some(())
        });
        assert!(
            all.is_some(),
            "not every gateway completed a handshake with each peer within 20 s:\n{:#?}{}",
            self.gateway_names()
                .iter()
                .map(|g| (g.clone(), peers(&self.status(g))))
                .collect::<Vec<_>>(),
            self.logs()
        );
    }

    fn workload(&self, name: &str) -> WorkloadNode {
        self.state()
            .topology
            .workload(name)
            .unwrap_or_else(|| panic!("no workload {name}"))
            .clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = self.lab("down", &[]);
        if !o.status.success() {
            eprintln!("weft lab down failed during cleanup: {}", text(&o));
        }
    }
}

/// What `weft status` says of one peer.
#[derive(Clone, Debug, PartialEq)]
struct Peer {
    since_handshake: Option<Duration>,
    wireguard_tx: u64,
    wireguard_rx: u64,
    packets_received: u64,
    packets_sent: u64,
}

/// The peers of a `weft status --json` answer, by gateway name.
fn peers(status: &Value) -> BTreeMap<String, Peer> {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    status["dataplane"]["peers"]
        .as_array()
        .expect("status lists peers")
        .iter()
        .map(|p| {
            let since = &p["since_last_handshake"];
            (
                p["name"].as_str().unwrap_or("?").to_owned(),
                Peer {
                    since_handshake: (!since.is_null())
                        .then(|| Duration::new(n(&since["secs"]), n(&since["nanos"]) as u32)),
                    wireguard_tx: n(&p["wireguard_tx_bytes"]),
                    wireguard_rx: n(&p["wireguard_rx_bytes"]),
                    packets_received: n(&p["received"]["packets"]),
                    packets_sent: n(&p["sent"]["packets"]),
                },
            )
        })
        .collect()
}

/// The MTU `weft plan` gives `network` at `gateway`.
fn planned_mtu(config: &Path, gateway: &str, network: &str) -> u64 {
    let o = weft(&[
        "plan",
        "-c",
        config.to_str().unwrap(),
        "--gateway",
        gateway,
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    json_of(&o)[0]["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == network)
        .and_then(|n| n["mtu"].as_u64())
        .unwrap_or_else(|| panic!("{network} has no MTU in the plan of {gateway}"))
}

/// Asserts what `check --json` says of each network's isolation probes: some were sent,
/// every one arrived at the workload it was addressed to, none in another network.
fn assert_isolated(report: &Value, networks: &[&str]) {
    let isolation = report["isolation"].as_array().unwrap();
    for network in networks {
        let i = isolation
            .iter()
            .find(|i| i["network"] == *network)
            .unwrap_or_else(|| panic!("no isolation result for {network}: {report:#}"));
        let sent = i["sent"].as_u64().unwrap();
        assert!(sent > 0, "{network} sent no probes: {i:#}");
        assert_eq!(i["delivered"], sent, "{network}: {i:#}");
        assert_eq!(
            i["leaked"], 0,
            "{network} leaked into another network: {i:#}"
        );
        assert_eq!(i["misdelivered"], 0, "{network}: {i:#}");
    }
}

/// The gateway namespace's rules and routes of both families, exactly as `ip -j` prints
/// them, in the kernel's order. Nothing is volatile here: TUNs carry no IPv6 link-local
/// address, no route has an `expires`, and weft opens its TUNs in label order, so even the
/// per-device routes the kernel keeps in creation order (`ff00::/8` of each TUN in table
/// local) come out the same after a restart.
fn rules_and_routes(namespace: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for family in ["-4", "-6"] {
        for what in [
            &["rule", "show"][..],
            &["route", "show", "table", "all"][..],
        ] {
            let mut args = vec!["-n", namespace, "-j", family];
            args.extend_from_slice(what);
            let o = run("ip", &args);
            assert!(o.status.success(), "ip {}: {}", args.join(" "), text(&o));
            let list = json_of(&o);
            out.insert(format!("ip {family} {}", what.join(" ")), list);
        }
    }
    out
}

#[test]
fn every_lab_subcommand_has_help_with_an_example() {
    for subcommand in ["up", "check", "status", "exec", "reload", "restart", "down"] {
        let o = weft(&["lab", subcommand, "--help"]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("Examples:\n  sudo weft lab {subcommand}")),
            "lab {subcommand} --help has no example:\n{out}"
        );
    }
}

#[test]
fn reload_and_restart_without_a_lab_say_how_to_make_one() {
    if !root_or_skip("reload_and_restart_without_a_lab_say_how_to_make_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_str().unwrap();
    for args in [
        &["lab", "reload", "--state-dir", sd][..],
        &["lab", "restart", "aws-gw", "--state-dir", sd][..],
    ] {
        let o = weft(args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains(&format!(
                "no lab is up in {sd}; start one with `sudo weft lab up --state-dir {sd}`"
            )),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn check_proves_every_path_and_isolation_and_wg_show_lists_each_peer() {
    if !root_or_skip("check_proves_every_path_and_isolation_and_wg_show_lists_each_peer") {
        return;
    }
    let lab = Lab::up(tempfile::tempdir().unwrap(), None);

    // (a) Every same-network pair at different sites, both directions, both families.
    let report = lab.check();
    let state = lab.state();
    let w = &state.topology.workloads;
    let expected: BTreeSet<(String, String)> = weft_gateway::lab::check::paths(&state.topology)
        .into_iter()
        .map(|(i, j)| (w[i].name.clone(), w[j].name.clone()))
        .collect();
    assert_eq!(expected.len(), 54, "24 + 24 + 6 paths in the example");
    let mut proven = BTreeSet::new();
    for p in report["reachability"].as_array().unwrap() {
        assert_eq!(p["icmp"]["result"], "ok", "{p:#}");
        assert_eq!(p["tcp"]["result"], "ok", "{p:#}");
        assert!(
            p["tcp"]["detail"].as_str().unwrap().contains("sha256 ok"),
            "{p:#}"
        );
        proven.insert((
            p["from"].as_str().unwrap().to_owned(),
            p["to"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(proven, expected);
    assert_isolated(&report, &["shop/prod", "shop/staging", "media/prod"]);
    assert_eq!(report["gateways_running"], 4);

    // (f) `wg show` against every running gateway, through the UAPI socket it serves.
    let plan = json_of(&weft(&[
        "plan",
        "-c",
        lab.config.to_str().unwrap(),
        "--json",
    ]));
    for (node, plan) in state.topology.gateways.iter().zip(plan.as_array().unwrap()) {
        assert_eq!(plan["gateway"], node.name.as_str());
        let o = run(
            "ip",
            &[
                "netns",
                "exec",
                &node.namespace,
                "wg",
                "show",
                &node.uapi_name,
            ],
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "wg show {}: {}",
            node.uapi_name,
            text(&o)
        );
        assert!(
            out.contains(&format!("interface: {}", node.uapi_name)),
            "{out}"
        );
        assert!(out.contains("listening port: 51820"), "{out}");
        let blocks: Vec<&str> = out.split("\npeer: ").skip(1).collect();
        assert_eq!(blocks.len(), 3, "three peers:\n{out}");
        let keys: BTreeSet<&str> = blocks
            .iter()
            .map(|b| b.lines().next().unwrap().trim())
            .collect();
        let planned: BTreeSet<&str> = plan["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["public_key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, planned, "wg show lists the other gateways:\n{out}");
        for b in blocks {
            assert!(b.contains("latest handshake: "), "{out}");
            assert!(b.contains("transfer: "), "{out}");
        }
    }
}

#[test]
fn a_restarted_gateway_gets_back_its_rules_routes_sessions_and_traffic() {
    if !root_or_skip("a_restarted_gateway_gets_back_its_rules_routes_sessions_and_traffic") {
        return;
    }
    let lab = Lab::up(tempfile::tempdir().unwrap(), None);
    // The first sessions, aged a little: boringtun stamps a handshake with the time of its
    // last timer tick (every 250 ms), so only a handshake clearly older than the restart
    // can be told from one made after it.
    lab.wait_for_handshakes();
    std::thread::sleep(Duration::from_millis(1500));
    let old = lab.state();
    let aws = old.topology.gateway("aws-gw").unwrap().namespace.clone();
    let old_pid = old
        .gateways
        .iter()
        .find(|g| g.name == "aws-gw")
        .unwrap()
        .pid;
    let o = lab.lab("restart", &["no-such-gw"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("has no gateway `no-such-gw`; its gateways are: aws-gw, azure-gw"),
        "{}",
        text(&o)
    );
    let before = rules_and_routes(&aws);
    assert!(
        before["ip -4 rule show"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["iif"] == "shop-prod"),
        "the gateway's iif rules are there: {:#}",
        before["ip -4 rule show"]
    );

    let restarted_at = Instant::now();
    let o = lab.lab("restart", &["aws-gw"]);
    assert!(
        o.status.success(),
        "weft lab restart: {}{}",
        text(&o),
        lab.logs()
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("stopped with SIGTERM"),
        "{}",
        text(&o)
    );
    let new = lab.state();
    let record = new.gateways.iter().find(|g| g.name == "aws-gw").unwrap();
    assert_ne!(record.pid, old_pid, "the state file has the new process");
    assert!(weft_gateway::lab::process::is_alive(
        record.pid,
        Some(record.start_time)
    ));
    let log = std::fs::read_to_string(&record.log).unwrap();
    assert!(log.contains("---- weft lab restart"), "{log}");
    assert_eq!(
        log.matches("gateway running").count(),
        2,
        "the log was appended to:\n{log}"
    );

    // Sessions again with every peer, on both ends: the restarted gateway has a handshake
    // with each of them, and each of them one with it since the restart (give or take a
    // timer tick).
    let tick = Duration::from_millis(500);
    let handshakes = wait_for(Duration::from_secs(20), || {
        let mine = peers(&lab.status("aws-gw"));
        let theirs_ok = ["azure-gw", "gcp-gw", "onprem-gw"].iter().all(|g| {
            peers(&lab.status(g))["aws-gw"]
                .since_handshake
                .is_some_and(|since| since < restarted_at.elapsed() + tick)
        });
        (mine.len() == 3 && mine.values().all(|p| p.since_handshake.is_some()) && theirs_ok)
            .then_some(mine)
    });
    assert!(
        handshakes.is_some(),
        "no handshake with every peer within 20 s of the restart ({:?} ago): {:#?}{}",
        restarted_at.elapsed(),
        lab.gateway_names()
            .iter()
            .map(|g| (g.clone(), peers(&lab.status(g))))
            .collect::<Vec<_>>(),
        lab.logs()
    );

    // Traffic resumes: the whole matrix, including every path from and to aws-lab.
    let report = lab.check();
    assert!(
        report["reachability"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["from_site"] == "aws-lab")
    );
    assert_isolated(&report, &["shop/prod", "shop/staging", "media/prod"]);

    let after = rules_and_routes(&aws);
    for (what, list) in &before {
        assert!(
            &after[what] == list,
            "`{what}` in {aws} differs after the restart:\n{}",
            difference(list, &after[what])
        );
    }
}

/// The entries of two `ip -j` lists that differ, one JSON object a line, or their order.
fn difference(before: &Value, after: &Value) -> String {
    let lines = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    let (b, a) = (lines(before), lines(after));
    let mut out = String::new();
    for l in b.iter().filter(|l| !a.contains(l)) {
        out += &format!("- {l}\n");
    }
    for l in a.iter().filter(|l| !b.contains(l)) {
        out += &format!("+ {l}\n");
    }
    if out.is_empty() {
        out = format!(
            "same entries, another order:\nbefore:\n{}\nafter:\n{}",
            b.join("\n"),
            a.join("\n")
        );
    }
    out
}

/// shop/dev: a new network on shop's addresses, at three of the four sites.
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

[attachments."shop/dev".azure-lab]
prefixes = ["10.10.2.0/24", "fd10:10:0:2::/64"]
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

#[test]
fn a_network_added_to_the_running_lab_applies_without_a_new_handshake() {
    if !root_or_skip("a_network_added_to_the_running_lab_applies_without_a_new_handshake") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path());
    let lab = Lab::up(dir, Some(config.clone()));
    lab.wait_for_handshakes();
    let gateways = lab.gateway_names();
    let attached = ["aws-gw", "azure-gw", "gcp-gw"];

    let status_before: BTreeMap<String, Value> = gateways
        .iter()
        .map(|g| (g.clone(), lab.status(g)))
        .collect();
    let taken = Instant::now();
    let mut edited = std::fs::read_to_string(&config).unwrap();
    edited.push_str(SHOP_DEV);
    std::fs::write(&config, edited).unwrap();

    // Each gateway's file watcher tries first. Where shop/dev is attached its interface
    // does not exist yet: that attempt fails and changes nothing.
    for g in &gateways {
        let previous = status_before[g]["last_reload"].clone();
        let status = wait_for(Duration::from_secs(10), || {
            let s = lab.status(g);
            (s["last_reload"] != previous).then_some(s)
        })
        .unwrap_or_else(|| panic!("{g}'s watcher did not notice the edit{}", lab.logs()));
        let outcome = status["last_reload"]["outcome"]
            .as_str()
            .unwrap_or_default();
        if attached.contains(&g.as_str()) {
            assert!(
                outcome.starts_with("failed") && outcome.contains("shop-dev"),
                "{g}: {outcome}"
            );
        } else {
            assert_eq!(outcome, "applied", "{g}");
        }
        let names = |s: &Value| weft_gateway::lab::reload::network_names(s);
        assert_eq!(names(&status), names(&status_before[g]), "{g}");
        assert_eq!(
            peers(&status).keys().collect::<Vec<_>>(),
            peers(&status_before[g]).keys().collect::<Vec<_>>()
        );
    }

    let o = lab.lab("reload", &["--json"]);
    let report = json_of(&o);
    assert!(
        o.status.success(),
        "weft lab reload: {}{}",
        text(&o),
        lab.logs()
    );
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(
        report["changes"]["routers_added"],
        serde_json::json!([
            "shop/dev at aws-lab",
            "shop/dev at azure-lab",
            "shop/dev at gcp-lab"
        ])
    );
    for g in report["gateways"].as_array().unwrap() {
        let name = g["gateway"].as_str().unwrap();
        let d = &g["answer"]["dataplane"];
        assert_eq!(g["answer"]["outcome"], "applied", "{g:#}");
        assert_eq!(d["peers_kept"], 3, "{g:#}");
        assert_eq!(d["peers_added"], 0, "{g:#}");
        assert_eq!(d["peers_removed"], 0, "{g:#}");
        let here = attached.contains(&name);
        assert_eq!(d["networks_added"], u64::from(here), "{g:#}");
        assert_eq!(d["networks_removed"], 0, "{g:#}");
        let has_dev = g["networks_after"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "shop/dev");
        assert_eq!(has_dev, here, "{g:#}");
    }

    // No new handshake: the time since each peer's last one grew by at least the time that
    // passed (a handshake would have reset it to about zero), and no counter restarted.
    let elapsed = taken.elapsed();
    let slack = Duration::from_millis(500);
    for g in &gateways {
        let before = peers(&status_before[g]);
        let after = peers(&lab.status(g));
        for (peer, b) in &before {
            let a = &after[peer];
            let (since_b, since_a) = (b.since_handshake.unwrap(), a.since_handshake.unwrap());
            assert!(
                since_a + slack >= since_b + elapsed,
                "{g} -> {peer}: a handshake since the reload? {since_b:?} before, {since_a:?} \
                 {elapsed:?} later"
            );
            assert!(
                a.wireguard_tx >= b.wireguard_tx,
                "{g} -> {peer}: {b:?} {a:?}"
            );
            assert!(
                a.wireguard_rx >= b.wireguard_rx,
                "{g} -> {peer}: {b:?} {a:?}"
            );
            assert!(
                a.packets_sent >= b.packets_sent,
                "{g} -> {peer}: {b:?} {a:?}"
            );
            assert!(
                a.packets_received >= b.packets_received,
                "{g} -> {peer}: {b:?} {a:?}"
            );
        }
    }

    // The new network works and is isolated from the three others, which share its
    // addresses.
    let report = lab.check();
    let dev_paths = report["reachability"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["network"] == "shop/dev")
        .count();
    assert_eq!(dev_paths, 12, "3 sites x 2 others x 2 families");
    assert_isolated(
        &report,
        &["shop/dev", "shop/prod", "shop/staging", "media/prod"],
    );

    // Reloading again changes nothing anywhere.
    let o = lab.lab("reload", &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("the lab's namespaces already matched the configuration"),
        "{out}"
    );
    assert_eq!(
        out.matches("applied: networks +0 -0, peers kept 3").count(),
        4,
        "{out}"
    );

    // Taking the network out again removes it where it was attached, TUN and all, and
    // leaves the others alone.
    let restored = std::fs::read_to_string(&config)
        .unwrap()
        .replace(SHOP_DEV, "");
    std::fs::write(&config, restored).unwrap();
    let o = lab.lab("reload", &["--json"]);
    let report = json_of(&o);
    assert!(o.status.success(), "{}{}", text(&o), lab.logs());
    for g in report["gateways"].as_array().unwrap() {
        let name = g["gateway"].as_str().unwrap();
        let d = &g["answer"]["dataplane"];
        assert_eq!(g["answer"]["outcome"], "applied", "{g:#}");
        let here = attached.contains(&name);
        assert_eq!(d["networks_removed"], u64::from(here), "{g:#}");
        assert_eq!(d["peers_kept"], 3, "{g:#}");
        let namespace = lab
            .state()
            .topology
            .gateway(name)
            .unwrap()
            .namespace
            .clone();
        // Closed beside forwarding, just after the answer.
        let gone = wait_for(Duration::from_secs(5), || {
            let tun = run("ip", &["-n", &namespace, "link", "show", "weft1003"]);
            (!tun.status.success()).then_some(())
        });
        assert!(gone.is_some(), "{name} still has weft1003");
    }
    let report = lab.check();
    assert_isolated(&report, &["shop/prod", "shop/staging", "media/prod"]);

    // An invalid configuration is reported, and the lab stays as it was.
    let topology = lab.state().topology;
    let mut broken = std::fs::read_to_string(&config).unwrap();
    broken.push_str("\n[networks.\"shop/qa\"]\nlable = 1004\n");
    std::fs::write(&config, broken).unwrap();
    let o = lab.lab("reload", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("did you mean `label`?"), "{}", text(&o));
    assert_eq!(lab.state().topology, topology);
}

#[test]
fn an_oversized_df_packet_gets_icmp_too_big_with_the_network_mtu() {
    if !root_or_skip("an_oversized_df_packet_gets_icmp_too_big_with_the_network_mtu") {
        return;
    }
    let lab = Lab::up(tempfile::tempdir().unwrap(), None);
    // gcp-lab's 1460-byte underlay less WireGuard over IPv4 (60) and weft's label header
    // (24): 1376, as the plan says.
    let mtu = planned_mtu(&lab.config, "aws-gw", "shop/prod");
    assert_eq!(mtu, 1376);
    // On failure: where the packet died. A DF packet dropped by the kernel in front of the
    // TUN counts as IP FragFails; the ICMP error it then owes counts as sent only if it
    // could be routed from the gateway itself.
    let diagnose = || {
        let aws = lab
            .state()
            .topology
            .gateway("aws-gw")
            .unwrap()
            .namespace
            .clone();
        let link = run("ip", &["-n", &aws, "-o", "link", "show", "weft1001"]);
        let counters = kernel_counters(
            &aws,
            &[
                "IpFragFails",
                "IcmpOutDestUnreachs",
                "Ip6FragFails",
                "Ip6OutNoRoutes",
                "Icmp6OutPktTooBigs",
            ],
        );
        format!(
            "\naws-gw's TUN of shop/prod: {}aws-gw's kernel: {counters}\naws-gw's dataplane \
             drops: {}{}",
            String::from_utf8_lossy(&link.stdout),
            lab.status("aws-gw")["dataplane"]["drops"],
            lab.logs()
        )
    };
    let ping = |workload: &str, args: &[&str]| {
        let mut all = vec![workload, "--", "ping"];
        all.extend_from_slice(args);
        lab.lab("exec", &all)
    };

    // Both families are tried before failing, so a failure reports both.
    let mut missing = Vec::new();
    for (from, to, v6) in [
        ("shop.prod.aws-lab.v4", "10.10.2.10", false),
        ("shop.prod.aws-lab.v6", "fd10:10:0:2::10", true),
    ] {
        let family = if v6 { "-6" } else { "-4" };
        // What fits goes through with Don't Fragment: IPv4 and ICMP headers are 28 bytes,
        // IPv6 and ICMPv6 48.
        let fits = (mtu - if v6 { 48 } else { 28 }).to_string();
        let o = ping(
            from,
            &[family, "-M", "do", "-s", &fits, "-c", "3", "-W", "3", to],
        );
        assert!(
            o.status.success(),
            "{fits} bytes fit: {}{}",
            text(&o),
            diagnose()
        );

        let o = ping(
            from,
            &[family, "-M", "do", "-s", "1400", "-c", "1", "-W", "2", to],
        );
        let out = text(&o);
        assert!(!o.status.success(), "1400 bytes do not fit: {out}");
        // iputils says `Frag needed and DF set (mtu = 1376)` for IPv4 and `Packet too big:
        // mtu=1376` for IPv6.
        let said = if v6 {
            format!("Packet too big: mtu={mtu}")
        } else {
            format!("Frag needed and DF set (mtu = {mtu})")
        };
        if !out.contains(&said) {
            missing.push(format!(
                "{from} -> {to}: expected `{said}` from the gateway: {out}"
            ));
        }
    }
    assert!(missing.is_empty(), "{}\n{}", missing.join("\n"), diagnose());
}

/// Counters of `/proc/net/snmp` (as `IpFragFails`: the line's tag and the field's name) and
/// `/proc/net/snmp6` in namespace `ns`.
fn kernel_counters(ns: &str, names: &[&str]) -> String {
    let mut all = BTreeMap::new();
    let snmp = run("ip", &["netns", "exec", ns, "cat", "/proc/net/snmp"]);
    let snmp = String::from_utf8_lossy(&snmp.stdout).into_owned();
    let lines: Vec<&str> = snmp.lines().collect();
    for pair in lines.chunks(2) {
        if let [header, values] = pair {
            let tag = header.split(':').next().unwrap_or_default();
            for (k, v) in header
                .split_whitespace()
                .skip(1)
                .zip(values.split_whitespace().skip(1))
            {
                all.insert(format!("{tag}{k}"), v.to_owned());
            }
        }
    }
    let snmp6 = run("ip", &["netns", "exec", ns, "cat", "/proc/net/snmp6"]);
    for line in String::from_utf8_lossy(&snmp6.stdout).lines() {
        if let Some((k, v)) = line.split_once(char::is_whitespace) {
            all.insert(k.to_owned(), v.trim().to_owned());
        }
    }
    names
        .iter()
        .map(|n| format!("{n}={}", all.get(*n).map_or("?", String::as_str)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Receives one transfer on `listener` (non-blocking, in the remote workload's namespace):
/// returns TCP_MAXSEG of the accepted socket and the SHA-256 of what arrived, which it also
/// sends back.
fn serve_one(listener: &std::net::TcpListener) -> (u32, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection within 15 s");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accepting: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mss = getsockopt(&stream, TcpMaxSeg).unwrap();
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).unwrap();
    let mut data = vec![0u8; u64::from_be_bytes(len) as usize];
    stream.read_exact(&mut data).unwrap();
    let digest = Sha256::digest(&data).to_vec();
    stream.write_all(&digest).unwrap();
    (mss, digest)
}

/// Connects from `from`'s namespace to `to`, sends `data`, and returns TCP_MAXSEG of the
/// connection and the digest the receiver sent back.
fn send_one(from: &WorkloadNode, to: SocketAddr, data: &[u8]) -> (u32, Vec<u8>) {
    netns::run_in(&from.namespace, || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(10)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mss = getsockopt(&stream, TcpMaxSeg).unwrap();
        stream
            .write_all(&(data.len() as u64).to_be_bytes())
            .unwrap();
        stream.write_all(data).unwrap();
        let mut digest = vec![0u8; 32];
        stream.read_exact(&mut digest).unwrap();
        (mss, digest)
    })
    .unwrap()
}

#[test]
fn tcp_through_the_tunnel_has_its_mss_clamped_to_the_network_mtu() {
    if !root_or_skip("tcp_through_the_tunnel_has_its_mss_clamped_to_the_network_mtu") {
        return;
    }
    let lab = Lab::up(tempfile::tempdir().unwrap(), None);
    let mtu = planned_mtu(&lab.config, "aws-gw", "shop/prod") as u32;
    let mut data = vec![0u8; 1 << 20];
    getrandom::fill(&mut data).unwrap();

    for (from, to, headers) in [
        ("shop.prod.aws-lab.v4", "shop.prod.azure-lab.v4", 40),
        ("shop.prod.aws-lab.v6", "shop.prod.azure-lab.v6", 60),
    ] {
        let (from, to) = (lab.workload(from), lab.workload(to));
        assert_eq!(from.mtu, 1500, "workloads' links have the underlay's MTU");
        let address: IpAddr = to.address.addr();
        let listener = probe::tcp_listen(&to.namespace, address).unwrap();
        let port = listener.local_addr().unwrap().port();
        let ((server_mss, received), (client_mss, answered)) = std::thread::scope(|s| {
            let server = s.spawn(|| serve_one(&listener));
            let client = send_one(&from, SocketAddr::new(address, port), &data);
            (server.join().expect("the receiver does not panic"), client)
        });
        assert_eq!(received, Sha256::digest(&data).to_vec(), "{}", lab.logs());
        assert_eq!(answered, received);
        // Why this proves the clamp: both workloads have 1500-byte links and no ICMP told
        // them of a smaller path MTU, so each puts MSS 1460 (IPv6: 1440) in its SYN, and
        // TCP_MAXSEG of a connected socket is the segment size it sends with: the smaller
        // of its own MSS and the peer's advertised one (less options such as timestamps).
        // Unclamped that would be 1460 (1448 with timestamps). At most MTU - 40 (IPv6: 60)
        // is only possible if the MSS options were rewritten in flight, by the gateways,
        // the only hops that know the network's 1376-byte MTU.
        let limit = mtu - headers;
        eprintln!(
            "{} -> {}: MSS {server_mss} accepted, {client_mss} connecting, at most {limit}",
            from.name, to.name
        );
        assert!(
            server_mss <= limit,
            "{} -> {}: accepted socket MSS {server_mss} > {limit}",
            from.name,
            to.name
        );
        assert!(
            client_mss <= limit,
            "{} -> {}: connecting socket MSS {client_mss} > {limit}",
            from.name,
            to.name
        );
        assert!(server_mss >= limit - 40, "a plausible MSS: {server_mss}");
    }
}
