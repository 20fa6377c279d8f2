//! What `weft bench --memory` measured and how it is shown, and the parsers of what it reads
//! (`/proc/PID/status`, `ip` listings). Pure.

use serde::Serialize;

use super::overlay::NETWORKS_PER_TENANT;
use crate::bench::report::HostReport;
use crate::plan::TABLE_BASE;

/// The resident size a gateway with 1,000 networks and 100 peers should stay under: the
/// acceptance line of the performance work.
pub const GOAL_BYTES: u64 = 64 << 20;

/// What `/proc/PID/status` says about a process's memory and threads, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcMemory {
    /// Resident set size (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size so far (`VmHWM`).
    pub hwm_bytes: u64,
    /// Resident anonymous memory (`RssAnon`): heap, stacks.
    pub rss_anon_bytes: u64,
    /// Resident file-backed memory (`RssFile`): the binary and libraries.
    pub rss_file_bytes: u64,
    /// Threads (`Threads`).
    pub threads: u64,
}

/// Parses the text of `/proc/PID/status`; `None` when a field is missing (a kernel thread, a
/// process gone).
pub fn parse_proc_status(text: &str) -> Option<ProcMemory> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            match words.next() {
                Some("kB") => Some(value * 1024),
                None => Some(value),
                Some(_) => None,
            }
        })
    };
    Some(ProcMemory {
        rss_bytes: field("VmRSS")?,
        hwm_bytes: field("VmHWM")?,
        rss_anon_bytes: field("RssAnon")?,
        rss_file_bytes: field("RssFile")?,
        threads: field("Threads")?,
    })
}

/// Reads `/proc/PID/status` of `pid`.
pub fn proc_memory(pid: i32) -> Option<ProcMemory> {
    parse_proc_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// How many lines of `ip route show table all` (or `ip rule show`) name one of weft's
/// tables (from [`TABLE_BASE`]) after `keyword` (`table` for routes, `lookup` for rules).
pub fn count_weft_tables(text: &str, keyword: &str) -> u64 {
    text.lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.windows(2).any(|w| {
                w[0] == keyword && w[1].parse::<u32>().is_ok_and(|table| table >= TABLE_BASE)
            })
        })
        .count() as u64
}

/// The interface names in `ip -o link show` output (`3: net0@if4: <...> ...` gives `net0`).
pub fn link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_owned())
        })
        .collect()
}

/// What the measured gateway's namespace holds once its configuration is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostPlumbing {
    /// Every link, loopback included.
    pub links: u64,
    /// weft's TUN devices (`weft<label>`).
    pub tuns: u64,
    /// IPv4 routes in weft's tables.
    pub routes_v4: u64,
    /// IPv6 routes in weft's tables.
    pub routes_v6: u64,
    /// IPv4 rules leading to weft's tables.
    pub rules_v4: u64,
    /// IPv6 rules leading to weft's tables.
    pub rules_v6: u64,
}

/// What the generated configuration holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ShapeReport {
    /// Networks attached at the measured gateway's site.
    pub networks: u32,
    /// Peer gateways.
    pub peers: u32,
    /// Tenants holding the networks.
    pub tenants: u32,
    /// Peer sites each network is also attached at (its remote prefixes).
    pub remote_sites_per_network: u32,
    /// Seconds between the configuration being applied and the measurement.
    pub settle_seconds: u64,
}

/// What the running gateway said about itself (`weft status`) after the measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayReport {
    /// Networks in its dataplane.
    pub networks: Option<u64>,
    /// Peers in its dataplane.
    pub peers: Option<u64>,
    /// Writes it made to the host (links, addresses, routes, rules) to apply the
    /// configuration.
    pub host_changes: Option<u64>,
}

/// What the gateway's `status` answer says of its networks, peers and host changes; an
/// error unless it says its configuration was applied. Counts it does not give are `None`.
pub fn gateway_report(status: &serde_json::Value) -> anyhow::Result<GatewayReport> {
    let outcome = &status["last_reload"]["outcome"];
    if outcome.as_str() != Some("applied") {
        anyhow::bail!(
            "the gateway does not report its configuration applied: last reload {outcome}"
        );
    }
    let count = |list: &serde_json::Value| list.as_array().map(|a| a.len() as u64);
    Ok(GatewayReport {
        networks: count(&status["dataplane"]["networks"]),
        peers: count(&status["dataplane"]["peers"]),
        host_changes: status["host"]["changes"].as_u64(),
    })
}

/// The whole result of `weft bench --memory`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryReport {
    /// When the run started, UTC.
    pub started_utc: String,
    /// Seconds the whole run took.
    pub wall_seconds: f64,
    /// The machine.
    pub host: HostReport,
    /// The weft measured.
    pub weft: String,
    /// The configuration measured.
    pub shape: ShapeReport,
    /// The goal for `memory.rss_bytes` at 1,000 networks and 100 peers.
    pub goal_bytes: u64,
    /// Whether the resident size is under the goal.
    pub goal_met: bool,
    /// Seconds from starting `weft run` until its control socket is served: it binds it
    /// once the first configuration is applied (TUNs open, host plumbing written).
    pub startup_seconds: f64,
    /// The gateway after settling, before anything asked it anything.
    pub memory: ProcMemory,
    /// The gateway after answering one `weft status` (which builds a report of every
    /// network and peer).
    pub memory_after_status: Option<ProcMemory>,
    /// Seconds from SIGTERM until it exited, having removed its routes and rules; `None`
    /// when it had to be killed.
    pub stop_seconds: Option<f64>,
    /// The namespace's links, routes and rules.
    pub host_plumbing: HostPlumbing,
    /// What the gateway reported.
    pub gateway: GatewayReport,
}

/// Bytes in MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// `n` with thousands separated by commas, as the docs write counts.
pub fn count_text(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report as Markdown: a table of the figures with the goal, then what was measured.
pub fn render(report: &MemoryReport) -> String {
    let s = &report.shape;
    let m = &report.memory;
    let goal = format!(
        "< {}: {}",
        mib(report.goal_bytes),
        if report.goal_met { "met" } else { "not met" }
    );
    let mut out = format!(
        "| gateway with {} networks and {} peers | measured | goal |\n| --- | ---: | --- |\n",
        count_text(u64::from(s.networks)),
        count_text(u64::from(s.peers)),
    );
    let mut row = |what: &str, value: String, goal: &str| {
        out += &format!("| {what} | {value} | {goal} |\n");
    };
    row("resident size (VmRSS)", mib(m.rss_bytes), &goal);
    row("peak resident size (VmHWM)", mib(m.hwm_bytes), "");
    row("of VmRSS: anonymous (RssAnon)", mib(m.rss_anon_bytes), "");
    row("of VmRSS: file-backed (RssFile)", mib(m.rss_file_bytes), "");
    if let Some(after) = &report.memory_after_status {
        row(
            "VmRSS / VmHWM after one `weft status`",
            format!("{} / {}", mib(after.rss_bytes), mib(after.hwm_bytes)),
            "",
        );
    }
    row("threads", m.threads.to_string(), "");
    row(
        "startup: `weft run` until its control socket answers",
        format!("{:.2} s", report.startup_seconds),
        "",
    );
    row(
        "stop: SIGTERM until exit (routes and rules removed)",
        report
            .stop_seconds
            .map_or_else(|| "killed".to_owned(), |t| format!("{t:.2} s")),
        "",
    );
    let p = &report.host_plumbing;
    let g = &report.gateway;
    let opt = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), count_text);
    out += &format!(
        "\nMeasured {} s after the configuration was applied, before anything asked the gateway \
         anything; `/proc/PID/status` of the `weft run` process.\n\
         Configuration: {} networks (IPv4 + IPv6) in tenants of up to {}, {} `linux` sites \
         with a gateway each; every network attached at the measured gateway's site (its own interface, \
         transit addresses, a router behind them) and at {} peer sites; peers' endpoints where \
         nothing answers.\n\
         The gateway reported {} networks and {} peers, and made {} changes to the host. Its \
         namespace: {} links ({} weft TUNs), {} IPv4 and {} IPv6 routes in weft's tables, {} \
         IPv4 and {} IPv6 rules.\n",
        s.settle_seconds,
        count_text(u64::from(s.networks)),
        NETWORKS_PER_TENANT,
        count_text(u64::from(s.peers) + 1),
        s.remote_sites_per_network,
        opt(g.networks),
        opt(g.peers),
        opt(g.host_changes),
        count_text(p.links),
        count_text(p.tuns),
        count_text(p.routes_v4),
        count_text(p.routes_v6),
        count_text(p.rules_v4),
        count_text(p.rules_v6),
    );
    let h = &report.host;
    out += &format!(
        "\n{}. Host: {}, {} CPUs, {} GiB, Linux {}; started {}, took {:.0} s; load average {} at \
         the start, {} at the end.\n",
        report.weft,
        h.cpu_model,
        h.cpus,
        h.memory_gib,
        h.kernel,
        report.started_utc,
        report.wall_seconds,
        h.load_at_start,
        h.load_at_end,
    );
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const STATUS: &str = "Name:\tweft\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
        VmPeak:\t  612340 kB\nVmSize:\t  546804 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n\
        VmHWM:\t   30120 kB\nVmRSS:\t   24576 kB\nRssAnon:\t   18432 kB\nRssFile:\t    6144 kB\n\
        RssShmem:\t       0 kB\nVmData:\t  80000 kB\nThreads:\t4\nSigQ:\t0/95000\n";

    #[test]
    fn proc_status_gives_sizes_in_bytes_and_threads() {
        assert_eq!(
            parse_proc_status(STATUS),
            Some(ProcMemory {
                rss_bytes: 24 << 20,
                hwm_bytes: 30120 * 1024,
                rss_anon_bytes: 18 << 20,
                rss_file_bytes: 6 << 20,
                threads: 4,
            })
        );
        // A kernel thread has no memory lines.
        assert_eq!(parse_proc_status("Name:\tkworker/0:1\nThreads:\t1\n"), None);
        assert_eq!(
            parse_proc_status(&STATUS.replace("VmRSS:\t   24576 kB", "VmRSS:\t   x kB")),
            None
        );
    }

    #[test]
    fn only_weft_tables_are_counted() {
        let routes = "default via 192.0.2.254 dev ul0\n\
            10.0.0.0/24 via 169.254.100.2 dev net0 table 1049576 proto static\n\
            10.0.1.0/24 dev weft1000 table 1049576 proto static\n\
            unreachable default table 1049576 proto static metric 4278198272\n\
            local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1\n\
            10.9.0.0/24 dev x table 100\n";
        assert_eq!(count_weft_tables(routes, "table"), 3);
        let rules = "0:\tfrom all lookup local\n1000:\tfrom all iif net0 lookup 1049576\n\
            1000:\tfrom all iif weft1000 lookup 1049576\n32766:\tfrom all lookup main\n";
        assert_eq!(count_weft_tables(rules, "lookup"), 2);
        assert_eq!(count_weft_tables("", "table"), 0);
    }

    #[test]
    fn link_names_drop_the_peer_index() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n\
            2: ul0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n\
            5: weft1000: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500\n";
        assert_eq!(link_names(text), ["lo", "ul0", "weft1000"]);
    }

    #[test]
    fn the_status_answer_must_say_applied() {
        let status = json!({
            "last_reload": {"outcome": "applied"},
            "host": {"changes": 12345},
            "dataplane": {"networks": [{}, {}], "peers": [{}]},
        });
        assert_eq!(
            gateway_report(&status).unwrap(),
            GatewayReport {
                networks: Some(2),
                peers: Some(1),
                host_changes: Some(12345),
            }
        );
        // Counts the daemon no longer gives are unknown, not an error.
        assert_eq!(
            gateway_report(&json!({"last_reload": {"outcome": "applied"}})).unwrap(),
            GatewayReport::default()
        );
        let failed = json!({"last_reload": {"outcome": "failed: no TUN"}});
        let e = gateway_report(&failed).unwrap_err().to_string();
        assert!(e.contains("failed: no TUN"), "{e}");
        assert!(gateway_report(&json!({})).is_err());
    }

    fn report(rss_bytes: u64) -> MemoryReport {
        MemoryReport {
            started_utc: "2026-11-27 10:00 UTC".to_owned(),
            wall_seconds: 42.0,
            host: HostReport::default(),
            weft: "weft 0.1.0 (release build)".to_owned(),
            shape: ShapeReport {
                networks: 1000,
                peers: 100,
                tenants: 10,
                remote_sites_per_network: 3,
                settle_seconds: 5,
            },
            goal_bytes: GOAL_BYTES,
            goal_met: rss_bytes < GOAL_BYTES,
            startup_seconds: 6.543,
            memory: ProcMemory {
                rss_bytes,
                hwm_bytes: 30 << 20,
                rss_anon_bytes: 20 << 20,
                rss_file_bytes: 4 << 20,
                threads: 4,
            },
            memory_after_status: None,
            stop_seconds: None,
            host_plumbing: HostPlumbing {
                links: 2002,
                tuns: 1000,
                routes_v4: 7000,
                routes_v6: 5000,
                rules_v4: 2000,
                rules_v6: 2000,
            },
            gateway: GatewayReport {
                networks: Some(1000),
                peers: Some(100),
                host_changes: None,
            },
        }
    }

    #[test]
    fn the_table_puts_the_goal_next_to_the_figure() {
        let text = render(&report(24 << 20));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "| gateway with 1,000 networks and 100 peers | measured | goal |"
        );
        assert_eq!(lines[1], "| --- | ---: | --- |");
        assert_eq!(
            lines[2],
            "| resident size (VmRSS) | 24.0 MiB | < 64.0 MiB: met |"
        );
        assert!(
            text.contains("| startup: `weft run` until its control socket answers | 6.54 s |  |")
        );
        assert!(
            text.contains("| stop: SIGTERM until exit (routes and rules removed) | killed |  |")
        );
        assert!(text.contains("2,002 links (1,000 weft TUNs), 7,000 IPv4 and 5,000 IPv6 routes"));
        assert!(text.contains("made ? changes"), "{text}");
        assert!(!text.contains("after one `weft status`"));
        let over = render(&report(70 << 20));
        assert!(over.contains("| resident size (VmRSS) | 70.0 MiB | < 64.0 MiB: not met |"));
    }

    #[test]
    fn the_json_names_every_figure() {
        let json = serde_json::to_value(report(24 << 20)).unwrap();
        assert_eq!(json["memory"]["rss_bytes"], 24 << 20);
        assert_eq!(json["goal_bytes"], 64 << 20);
        assert_eq!(json["goal_met"], true);
        assert_eq!(json["shape"]["networks"], 1000);
        assert!(json["host"].get("iperf3").is_none());
        assert!(json["memory_after_status"].is_null());
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(999), "999");
        assert_eq!(count_text(1000), "1,000");
        assert_eq!(count_text(1_234_567), "1,234,567");
        assert_eq!(mib(3 << 19), "1.5 MiB");
    }
}
