//! `weft bench` end to end: a quick run of veth and weft on the two-site namespace topology
//! measures every metric and leaves nothing behind, and so does a small `--memory` run.
//! Needs root (namespaces, TUN devices) and iperf3 (`scripts/install-deps`); skips with a
//! message when not root. No timing or size is asserted: the figures only have to be there.

use std::process::Command;

use serde_json::Value;

/// The metrics every candidate reports, as the JSON names them.
const METRICS: [&str; 7] = [
    "tcp_1_stream_gbps",
    "tcp_4_streams_gbps",
    "udp_small_pps",
    "udp_large_pps",
    "latency_p50_us",
    "latency_p99_us",
    "cpu_seconds_per_gb",
];

fn positive(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite())
}

/// `weft bench ARGS --cache-dir CACHE` with no `WEFT_` variable of ours: its pid, exit
/// status, JSON report and standard error.
fn bench(args: &[&str], cache: &std::path::Path) -> (u32, bool, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("bench").args(args).arg("--cache-dir").arg(cache);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WEFT_")) {
        cmd.env_remove(k);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weft runs");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (pid, out.status.success(), report, stderr)
}

/// The namespaces of the run of `pid` that are still there.
fn namespaces_left(pid: u32) -> Vec<String> {
    let namespaces = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let prefix = format!("wfb{pid}-");
    namespaces
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_quick_bench_of_veth_and_weft_reports_every_metric_and_cleans_up() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped a_quick_bench_of_veth_and_weft_reports_every_metric_and_cleans_up: `weft \
             bench` needs root (network namespaces, TUN devices); CI runs the tests as root"
        );
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let (pid, ok, report, stderr) = bench(
        &["--quick", "--only", "veth,weft", "--rounds", "1", "--json"],
        cache.path(),
    );
    assert!(ok, "weft bench failed:\n{stderr}");
    assert!(!report.is_null(), "not JSON:\n{stderr}");

    let candidates = report["candidates"].as_array().expect("candidates");
    let names: Vec<&str> = candidates
        .iter()
        .map(|c| c["candidate"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["veth", "weft"]);
    for c in candidates {
        let name = c["candidate"].as_str().unwrap();
        assert_eq!(c["rounds"].as_array().unwrap().len(), 1, "{name}");
        for metric in METRICS {
            let median = &c["median"][metric];
            let round = &c["rounds"][0]["values"][metric];
            if name == "veth" && metric == "cpu_seconds_per_gb" {
                // Kernel forwarding has no process to charge: reported as n/a.
                assert!(median.is_null(), "veth CPU: {median}");
                assert!(round.is_null(), "veth CPU: {round}");
            } else {
                assert!(positive(median), "{name} {metric}: {median}\n{stderr}");
                assert!(positive(round), "{name} {metric}: {round}");
            }
        }
    }
    // weft carries its socket buffer; veth has no gateway sockets.
    assert!(positive(&candidates[1]["udp_receive_buffer_bytes"]));
    assert!(candidates[0]["udp_receive_buffer_bytes"].is_null());
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 1);
    assert_eq!(ratios[0]["name"], "weft/veth");
    assert!(positive(&ratios[0]["values"]["tcp_1_stream_gbps"]));
    assert!(report["errors"].as_array().unwrap().is_empty());
    assert_eq!(report["settings"]["weft_network_mtu"], 1416);

    // Nothing of the run is left: namespaces, processes in them, the run directory.
    assert_eq!(namespaces_left(pid), Vec::<String>::new());
    assert!(!cache.path().join(format!("run-{pid}")).exists());
}

#[test]
fn a_small_memory_bench_reports_a_resident_size_and_cleans_up() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped a_small_memory_bench_reports_a_resident_size_and_cleans_up: `weft bench \
             --memory` needs root (network namespaces, TUN devices); CI runs the tests as root"
        );
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let (pid, ok, report, stderr) = bench(
        &[
            "--memory",
            "--networks",
            "20",
            "--peers",
            "5",
            "--quick",
            "--json",
        ],
        cache.path(),
    );
    assert!(ok, "weft bench --memory failed:\n{stderr}");
    let memory = &report["memory"];
    assert!(positive(&memory["rss_bytes"]), "{report:#}\n{stderr}");
    assert!(memory["hwm_bytes"].as_u64() >= memory["rss_bytes"].as_u64());
    assert!(positive(&memory["threads"]));
    assert!(positive(&report["startup_seconds"]));
    assert_eq!(report["goal_bytes"], 64 << 20);
    assert!(report["goal_met"].is_boolean());
    assert_eq!(report["shape"]["networks"], 20);
    assert_eq!(report["shape"]["peers"], 5);
    assert_eq!(report["gateway"]["networks"], 20);
    assert_eq!(report["gateway"]["peers"], 5);
    // A TUN, a table and four rules per network.
    let plumbing = &report["host_plumbing"];
    assert_eq!(plumbing["tuns"], 20);
    assert_eq!(plumbing["rules_v4"], 40);
    assert_eq!(plumbing["rules_v6"], 40);
    assert!(positive(&plumbing["routes_v4"]) && positive(&plumbing["routes_v6"]));
    assert_eq!(namespaces_left(pid), Vec::<String>::new());
    assert!(!cache.path().join(format!("run-{pid}")).exists());
}
