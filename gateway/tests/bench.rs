//! `weft bench` end to end: a quick run of veth and weft on the two-site namespace topology
//! measures every metric and leaves nothing behind. Needs root (namespaces, TUN devices)
//! and iperf3 (`scripts/install-deps`); skips with a message when not root. No timing is
//! asserted: the figures only have to be there.

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args([
        "bench",
        "--quick",
        "--only",
        "veth,weft",
        "--rounds",
        "1",
        "--json",
    ])
    .arg("--cache-dir")
    .arg(cache.path());
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "weft bench failed:\n{stderr}");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stderr}"));

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
    let namespaces = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let prefix = format!("wfb{pid}-");
    assert!(
        !namespaces.lines().any(|l| l.starts_with(&prefix)),
        "left behind:\n{namespaces}"
    );
    assert!(!cache.path().join(format!("run-{pid}")).exists());
}
