//! `weft lab up --no-gateways` builds the example lab's topology in network namespaces, and
//! `weft lab down` removes every one of them. Needs root: skipped (with a message) otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ip(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().expect("ip runs");
    assert!(o.status.success(), "ip {}: {}", args.join(" "), text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn namespaces_with(prefix: &str) -> Vec<String> {
    weft_gateway::lab::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Runs `weft lab down` when dropped, so a failed assertion leaves no namespace behind.
struct Down {
    state_dir: PathBuf,
}

impl Drop for Down {
    fn drop(&mut self) {
        let o = weft(&[
            "lab",
            "down",
            "--state-dir",
            self.state_dir.to_str().unwrap(),
        ]);
        if !o.status.success() {
            eprintln!("weft lab down failed during cleanup: {}", text(&o));
        }
    }
}

#[test]
fn up_builds_the_example_topology_and_down_removes_it() {
    if !is_root() {
        eprintln!("skipped: `weft lab` needs root (network namespaces); run the tests as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("lab");
    let sd = state_dir.to_str().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
    let guard = Down {
        state_dir: state_dir.clone(),
    };

    let o = weft(&[
        "lab",
        "up",
        "--no-gateways",
        "-c",
        config.to_str().unwrap(),
        "--state-dir",
        sd,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("weft lab check"));

    // A second lab in the same directory is refused, with the way out.
    let again = weft(&["lab", "up", "--no-gateways", "--state-dir", sd]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains("weft lab down --state-dir"),
        "{}",
        text(&again)
    );

    let o = weft(&["lab", "status", "--json", "--state-dir", sd]);
    assert!(o.status.success(), "{}", text(&o));
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    let prefix = status["prefix"].as_str().unwrap().to_owned();
    assert!(
        prefix.starts_with("wl") && prefix.ends_with('-'),
        "{prefix}"
    );
    assert_eq!(
        namespaces_with(&prefix).len(),
        35,
        "1 underlay, 4 gateways, 11 routers, 19 workloads"
    );

    // Gateways: the endpoint on ul0, the attachment interfaces without addresses.
    let aws = format!("{prefix}gw-aws-gw");
    let links = ip(&["-n", &aws, "-br", "-4", "address"]);
    assert!(links.contains("192.0.2.1/24"), "{links}");
    let all = ip(&["-n", &aws, "-br", "link"]);
    for interface in ["shop-prod", "shop-staging", "media-prod"] {
        assert!(all.contains(interface), "{all}");
    }
    assert!(
        !links.contains("169.254.100.1"),
        "weft adds the gateway's addresses, not the lab"
    );

    // Every VPC router routes its network's remote prefixes to the gateway.
    for router in status["routers"].as_array().unwrap() {
        let ns = router["namespace"].as_str().unwrap();
        let v4 = ip(&["-n", ns, "-4", "route"]);
        let v6 = ip(&["-n", ns, "-6", "route"]);
        for prefix in router["routes"].as_array().unwrap() {
            let prefix = prefix.as_str().unwrap();
            let (table, via) = if prefix.contains(':') {
                (&v6, "via fe80::1 dev gw")
            } else {
                (&v4, "via 169.254.100.1 dev gw")
            };
            assert!(
                table.contains(&format!("{prefix} {via}")),
                "{ns} lacks {prefix} {via}:\n{table}"
            );
        }
    }

    // Every workload reaches its VPC router, from a raw socket opened in its namespace.
    let workloads = status["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 19);
    for w in workloads {
        let ns = w["namespace"].as_str().unwrap();
        let via = w["via"].as_str().unwrap().parse().unwrap();
        let echo = weft_gateway::lab::probe::ping(ns, via, 3, Duration::from_secs(1));
        assert!(echo.is_ok(), "{ns} cannot ping its router {via}: {echo:?}");
    }

    // `exec` runs in the workload and passes its exit code through.
    let o = weft(&[
        "lab",
        "exec",
        "--state-dir",
        sd,
        "shop.prod.aws-lab.v6",
        "--",
        "ip",
        "-br",
        "address",
        "show",
        "eth0",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("fd10:10:0:1::10/64"));
    let o = weft(&[
        "lab",
        "exec",
        "--state-dir",
        sd,
        "shop.prod.aws-lab.v4",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));

    drop(guard);
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert!(!state_dir.join("lab.json").exists());
    // Down again: nothing to do, still success.
    let o = weft(&["lab", "down", "--state-dir", sd]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn without_root_the_lab_says_so() {
    if is_root() {
        return;
    }
    let o = weft(&["lab", "down", "--state-dir", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("must run as root"), "{}", text(&o));
}
