//! What `weft bench` measured and how it is shown: the candidates, the metrics, medians over
//! rounds, the ratios of weft to the others, the Markdown table and the JSON. Pure.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::stats::{median, ratio};

/// One dataplane under test, always in this order (the order of a round).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Candidate {
    /// Plain routing through both gateway namespaces, no encryption: the ceiling.
    Veth,
    /// Two `weft run` gateways.
    Weft,
    /// boringtun-cli (the userspace WireGuard weft's core is built on), configured with `wg`.
    Boringtun,
    /// Debian's wireguard-go, configured with `wg`.
    WireguardGo,
}

impl Candidate {
    /// Every candidate, in round order.
    pub const ALL: [Candidate; 4] = [
        Candidate::Veth,
        Candidate::Weft,
        Candidate::Boringtun,
        Candidate::WireguardGo,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Candidate::Veth => "veth",
            Candidate::Weft => "weft",
            Candidate::Boringtun => "boringtun",
            Candidate::WireguardGo => "wireguard-go",
        }
    }

    /// A short tag for namespace and interface names.
    pub fn tag(self) -> &'static str {
        match self {
            Candidate::Veth => "veth",
            Candidate::Weft => "weft",
            Candidate::Boringtun => "bt",
            Candidate::WireguardGo => "wgo",
        }
    }
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput and packet rates.
    Higher,
    /// Latency and CPU cost.
    Lower,
}

/// One figure measured per candidate and round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Metric {
    /// iperf3 TCP, one stream, Gbit/s at the receiver.
    #[serde(rename = "tcp_1_stream_gbps")]
    Tcp1,
    /// iperf3 TCP, four parallel streams, Gbit/s at the receiver.
    #[serde(rename = "tcp_4_streams_gbps")]
    Tcp4,
    /// iperf3 UDP at unlimited rate, small datagrams: packets per second received.
    #[serde(rename = "udp_small_pps")]
    UdpSmall,
    /// iperf3 UDP at unlimited rate, the largest datagrams every tunnel carries whole.
    #[serde(rename = "udp_large_pps")]
    UdpLarge,
    /// Median round trip of UDP request/response, microseconds.
    #[serde(rename = "latency_p50_us")]
    LatencyP50,
    /// 99th percentile round trip, microseconds.
    #[serde(rename = "latency_p99_us")]
    LatencyP99,
    /// User + system CPU seconds of both gateway processes per GB moved by TCP one stream.
    #[serde(rename = "cpu_seconds_per_gb")]
    CpuPerGb,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 7] = [
        Metric::Tcp1,
        Metric::Tcp4,
        Metric::UdpSmall,
        Metric::UdpLarge,
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::CpuPerGb,
    ];

    /// Which way it improves.
    pub fn better(self) -> Better {
        match self {
            Metric::Tcp1 | Metric::Tcp4 | Metric::UdpSmall | Metric::UdpLarge => Better::Higher,
            Metric::LatencyP50 | Metric::LatencyP99 | Metric::CpuPerGb => Better::Lower,
        }
    }

    /// The row label, naming the unit (UDP rows name their datagram size).
    pub fn label(self, settings: &SettingsReport) -> String {
        match self {
            Metric::Tcp1 => "TCP, 1 stream (Gbit/s)".to_owned(),
            Metric::Tcp4 => "TCP, 4 streams (Gbit/s)".to_owned(),
            Metric::UdpSmall => format!("UDP {} B payload (kpps)", settings.udp_small_bytes),
            Metric::UdpLarge => format!("UDP {} B payload (kpps)", settings.udp_large_bytes),
            Metric::LatencyP50 => "latency p50 (µs)".to_owned(),
            Metric::LatencyP99 => "latency p99 (µs)".to_owned(),
            Metric::CpuPerGb => "CPU s per GB (TCP 1 stream)".to_owned(),
        }
    }

    /// A value as the table shows it (packet rates in thousands).
    pub fn format(self, value: f64) -> String {
        match self {
            Metric::Tcp1 | Metric::Tcp4 => format!("{value:.2}"),
            Metric::UdpSmall | Metric::UdpLarge => format!("{:.1}", value / 1000.0),
            Metric::LatencyP50 | Metric::LatencyP99 => format!("{value:.0}"),
            Metric::CpuPerGb => format!("{value:.2}"),
        }
    }
}

/// The measurements of one candidate in one round; a metric that failed or does not apply
/// is absent.
pub type Values = BTreeMap<Metric, f64>;

/// The settings a report was made with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingsReport {
    /// Rounds run (each runs every candidate once).
    pub rounds: u32,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// The candidates, in round order.
    pub order: Vec<Candidate>,
    /// Seconds of each TCP test that count.
    pub tcp_seconds: u32,
    /// Seconds at the start of each TCP test left out (slow start).
    pub tcp_omit_seconds: u32,
    /// Seconds of each UDP test.
    pub udp_seconds: u32,
    /// UDP payload of the small-packet test.
    pub udp_small_bytes: usize,
    /// UDP payload of the large-packet test: at most 1400 and small enough that every
    /// tunnel carries the datagram without fragmenting it.
    pub udp_large_bytes: usize,
    /// Round trips timed per latency test.
    pub latency_samples: usize,
    /// Microseconds between latency requests.
    pub latency_interval_us: u64,
    /// MTU of every veth link (client, underlay, server).
    pub link_mtu: u16,
    /// MTU of the WireGuard tunnel interfaces of boringtun and wireguard-go.
    pub wireguard_mtu: u16,
    /// weft's network MTU (from its plan; the forwarder enforces it and clamps TCP MSS).
    pub weft_network_mtu: u16,
}

/// The machine the benchmark ran on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// CPU model, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Memory in GiB, from `/proc/meminfo`.
    pub memory_gib: u64,
    /// Kernel release.
    pub kernel: String,
    /// iperf3's version line; absent when the run used no iperf3 (`--memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iperf3: Option<String>,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load averages when the run started: other work
    /// on the machine skews every figure.
    pub load_at_start: String,
    /// The same when it ended.
    pub load_at_end: String,
}

/// One candidate's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CandidateReport {
    /// Which.
    pub candidate: Candidate,
    /// Its program and version.
    pub version: String,
    /// How it was set up.
    pub setup: String,
    /// The largest receive buffer (bytes, as `ss` reports `rb`) of its UDP sockets in a
    /// gateway namespace: what absorbs bursts from the underlay.
    pub udp_receive_buffer_bytes: Option<u64>,
    /// Every round's values.
    pub rounds: Vec<RoundValues>,
    /// The median of each metric over the rounds; `null` when never measured (CPU of veth).
    pub median: BTreeMap<Metric, Option<f64>>,
}

/// The values of one round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundValues {
    /// The round, from 1.
    pub round: u32,
    /// What was measured.
    pub values: Values,
    /// Datagrams the gateways' UDP sockets dropped with a full receive buffer during the
    /// TCP one-stream test (both gateways; `ss -m`'s `d`); none for veth.
    pub udp_drops_tcp_1_stream: Option<u64>,
}

/// weft's medians divided by another candidate's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatioRow {
    /// `weft/<other>`.
    pub name: String,
    /// The other candidate.
    pub other: Candidate,
    /// Per metric: above 1 means weft's figure is larger (better for rates, worse for
    /// latency and CPU).
    pub values: BTreeMap<Metric, Option<f64>>,
}

/// The whole result of `weft bench`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// When the run started, UTC.
    pub started_utc: String,
    /// Seconds the whole run took.
    pub wall_seconds: f64,
    /// The machine.
    pub host: HostReport,
    /// How it was measured.
    pub settings: SettingsReport,
    /// Results per candidate, in round order.
    pub candidates: Vec<CandidateReport>,
    /// weft against each other candidate that ran.
    pub ratios: Vec<RatioRow>,
    /// What failed (a failed measurement leaves its value out of that round).
    pub errors: Vec<String>,
}

/// The medians of every metric over `rounds`.
pub fn medians(rounds: &[RoundValues]) -> BTreeMap<Metric, Option<f64>> {
    Metric::ALL
        .iter()
        .map(|m| {
            let values: Vec<f64> = rounds
                .iter()
                .filter_map(|r| r.values.get(m).copied())
                .collect();
            (*m, median(&values))
        })
        .collect()
}

/// weft's medians over each other candidate's, for weft/boringtun, weft/wireguard-go and
/// weft/veth (in that order), when weft and the other both ran.
pub fn ratios(candidates: &[CandidateReport]) -> Vec<RatioRow> {
    let find = |c: Candidate| candidates.iter().find(|r| r.candidate == c);
    let Some(weft) = find(Candidate::Weft) else {
        return Vec::new();
    };
    [
        Candidate::Boringtun,
        Candidate::WireguardGo,
        Candidate::Veth,
    ]
    .into_iter()
    .filter_map(find)
    .map(|other| RatioRow {
        name: format!("weft/{}", other.candidate.name()),
        other: other.candidate,
        values: Metric::ALL
            .iter()
            .map(|m| {
                let of = |r: &CandidateReport| r.median.get(m).copied().flatten();
                (*m, ratio(of(weft), of(other)))
            })
            .collect(),
    })
    .collect()
}

/// The report as Markdown: one row per metric, a column per candidate that ran and per
/// ratio, then how it was measured.
pub fn render(report: &Report) -> String {
    let mut header = vec!["metric".to_owned(), "better".to_owned()];
    header.extend(
        report
            .candidates
            .iter()
            .map(|c| c.candidate.name().to_owned()),
    );
    header.extend(report.ratios.iter().map(|r| r.name.clone()));
    let mut out = String::new();
    out += &format!("| {} |\n", header.join(" | "));
    let aligns: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i < 2 { "---" } else { "---:" })
        .collect();
    out += &format!("| {} |\n", aligns.join(" | "));
    for metric in Metric::ALL {
        let mut row = vec![
            metric.label(&report.settings),
            match metric.better() {
                Better::Higher => "higher".to_owned(),
                Better::Lower => "lower".to_owned(),
            },
        ];
        row.extend(report.candidates.iter().map(|c| {
            c.median
                .get(&metric)
                .copied()
                .flatten()
                .map_or_else(|| "n/a".to_owned(), |v| metric.format(v))
        }));
        row.extend(report.ratios.iter().map(|r| {
            r.values
                .get(&metric)
                .copied()
                .flatten()
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
        }));
        out += &format!("| {} |\n", row.join(" | "));
    }
    let s = &report.settings;
    let order: Vec<&str> = s.order.iter().map(|c| c.name()).collect();
    out += &format!(
        "\nMedians of {} interleaved rounds ({}). TCP: iperf3, {} s{}; UDP: iperf3 -u -b 0 -w 4M, \
         {} s, packets received at the server per second; latency: {} UDP echoes {} µs apart; \
         CPU: utime+stime of both gateway processes during TCP 1 stream (n/a for veth: its \
         forwarding is kernel softirq time). MTUs: links {}, WireGuard tunnels {}, weft network \
         {}.\n",
        s.rounds,
        order.join(" → "),
        s.tcp_seconds,
        if s.tcp_omit_seconds > 0 {
            format!(" after {} s omitted", s.tcp_omit_seconds)
        } else {
            String::new()
        },
        s.udp_seconds,
        s.latency_samples,
        s.latency_interval_us,
        s.link_mtu,
        s.wireguard_mtu,
        s.weft_network_mtu,
    );
    for c in &report.candidates {
        let buffer = c
            .udp_receive_buffer_bytes
            .map(|b| format!("; UDP receive buffer {}", bytes_text(b)))
            .unwrap_or_default();
        let drops: Vec<f64> = c
            .rounds
            .iter()
            .filter_map(|r| r.udp_drops_tcp_1_stream)
            .map(|d| d as f64)
            .collect();
        let drops = median(&drops)
            .map(|d| format!(", full-buffer drops during TCP 1 stream {d:.0} (median)"))
            .unwrap_or_default();
        out += &format!(
            "- {}: {}{buffer}{drops}; {}\n",
            c.candidate.name(),
            c.version,
            c.setup
        );
    }
    let h = &report.host;
    out += &format!(
        "\nHost: {}, {} CPUs, {} GiB, Linux {}, {}; started {}, took {:.0} s; load average \
         {} at the start, {} at the end.\n",
        h.cpu_model,
        h.cpus,
        h.memory_gib,
        h.kernel,
        h.iperf3.as_deref().unwrap_or("no iperf3"),
        report.started_utc,
        report.wall_seconds,
        h.load_at_start,
        h.load_at_end,
    );
    if !report.errors.is_empty() {
        out += "\nErrors:\n";
        for e in &report.errors {
            out += &format!("- {e}\n");
        }
    }
    out
}

/// Bytes as KiB or MiB.
pub fn bytes_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// `time` as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_text(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> SettingsReport {
        SettingsReport {
            rounds: 3,
            quick: true,
            order: vec![Candidate::Veth, Candidate::Weft, Candidate::Boringtun],
            tcp_seconds: 1,
            tcp_omit_seconds: 0,
            udp_seconds: 1,
            udp_small_bytes: 64,
            udp_large_bytes: 1388,
            latency_samples: 300,
            latency_interval_us: 1000,
            link_mtu: 1500,
            wireguard_mtu: 1420,
            weft_network_mtu: 1416,
        }
    }

    fn rounds(values: &[&[(Metric, f64)]]) -> Vec<RoundValues> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| RoundValues {
                round: i as u32 + 1,
                values: v.iter().copied().collect(),
                udp_drops_tcp_1_stream: Some(10 * i as u64),
            })
            .collect()
    }

    fn candidate(c: Candidate, r: Vec<RoundValues>) -> CandidateReport {
        CandidateReport {
            candidate: c,
            version: format!("{} 1.0", c.name()),
            setup: "test".to_owned(),
            udp_receive_buffer_bytes: Some(212_992),
            median: medians(&r),
            rounds: r,
        }
    }

    #[test]
    fn medians_per_metric_skip_missing_rounds() {
        let r = rounds(&[
            &[(Metric::Tcp1, 1.0), (Metric::LatencyP50, 50.0)],
            &[(Metric::Tcp1, 3.0)],
            &[(Metric::Tcp1, 2.0), (Metric::LatencyP50, 70.0)],
        ]);
        let m = medians(&r);
        assert_eq!(m[&Metric::Tcp1], Some(2.0));
        assert_eq!(m[&Metric::LatencyP50], Some(60.0));
        assert_eq!(m[&Metric::CpuPerGb], None);
        assert_eq!(m.len(), Metric::ALL.len());
    }

    #[test]
    fn ratios_are_weft_over_each_other_that_ran() {
        let weft = candidate(
            Candidate::Weft,
            rounds(&[&[(Metric::Tcp1, 2.0), (Metric::CpuPerGb, 3.0)]]),
        );
        let bt = candidate(
            Candidate::Boringtun,
            rounds(&[&[(Metric::Tcp1, 1.0), (Metric::CpuPerGb, 6.0)]]),
        );
        let veth = candidate(Candidate::Veth, rounds(&[&[(Metric::Tcp1, 8.0)]]));
        let rows = ratios(&[veth.clone(), weft.clone(), bt]);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["weft/boringtun", "weft/veth"]);
        assert_eq!(rows[0].values[&Metric::Tcp1], Some(2.0));
        assert_eq!(rows[0].values[&Metric::CpuPerGb], Some(0.5));
        assert_eq!(rows[1].values[&Metric::Tcp1], Some(0.25));
        assert_eq!(rows[1].values[&Metric::CpuPerGb], None);
        assert!(ratios(&[veth]).is_empty());
    }

    #[test]
    fn the_table_has_a_row_per_metric_and_a_column_per_candidate_and_ratio() {
        let veth = candidate(
            Candidate::Veth,
            rounds(&[&[
                (Metric::Tcp1, 20.0),
                (Metric::UdpSmall, 120_000.0),
                (Metric::LatencyP50, 40.0),
            ]]),
        );
        let weft = candidate(
            Candidate::Weft,
            rounds(&[&[
                (Metric::Tcp1, 2.5),
                (Metric::UdpSmall, 60_000.0),
                (Metric::LatencyP50, 120.4),
                (Metric::CpuPerGb, 1.234),
            ]]),
        );
        let candidates = vec![veth, weft];
        let report = Report {
            started_utc: "2026-11-27 10:00 UTC".to_owned(),
            wall_seconds: 61.0,
            host: HostReport::default(),
            settings: settings(),
            ratios: ratios(&candidates),
            candidates,
            errors: vec!["round 1, boringtun: failed".to_owned()],
        };
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| metric | better | veth | weft | weft/veth |");
        assert_eq!(lines[1], "| --- | --- | ---: | ---: | ---: |");
        assert_eq!(
            lines[2],
            "| TCP, 1 stream (Gbit/s) | higher | 20.00 | 2.50 | 0.12 |"
        );
        assert_eq!(
            lines[4],
            "| UDP 64 B payload (kpps) | higher | 120.0 | 60.0 | 0.50 |"
        );
        assert!(lines[5].starts_with("| UDP 1388 B payload (kpps) | higher | n/a | n/a | n/a |"));
        assert_eq!(lines[6], "| latency p50 (µs) | lower | 40 | 120 | 3.01 |");
        assert_eq!(
            lines[8],
            "| CPU s per GB (TCP 1 stream) | lower | n/a | 1.23 | n/a |"
        );
        assert_eq!(lines.iter().filter(|l| l.starts_with('|')).count(), 9);
        assert!(text.contains("Medians of 3 interleaved rounds (veth → weft → boringtun)"));
        assert!(text.contains(
            "- weft: weft 1.0; UDP receive buffer 208 KiB, full-buffer drops during TCP 1 \
             stream 0 (median); test"
        ));
        assert!(text.contains("Errors:\n- round 1, boringtun: failed"));
        // The JSON names metrics as documented; never-measured values are null.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["candidates"][1]["candidate"], "weft");
        assert_eq!(json["candidates"][1]["median"]["tcp_1_stream_gbps"], 2.5);
        assert!(json["candidates"][0]["median"]["cpu_seconds_per_gb"].is_null());
        assert_eq!(json["ratios"][0]["name"], "weft/veth");
        assert_eq!(
            json["candidates"][1]["rounds"][0]["values"]["udp_small_pps"],
            60_000.0
        );
    }

    #[test]
    fn sizes_and_dates_read_well() {
        assert_eq!(bytes_text(212_992), "208 KiB");
        assert_eq!(bytes_text(16 << 20), "16 MiB");
        assert_eq!(bytes_text(3 << 19), "1.5 MiB");
        assert_eq!(utc_text(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        // 2026-11-27 10:15:00 UTC
        assert_eq!(
            utc_text(UNIX_EPOCH + Duration::from_secs(1_795_774_500)),
            "2026-11-27 10:15 UTC"
        );
        assert_eq!(
            utc_text(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00 UTC"
        );
    }

    #[test]
    fn candidates_have_their_command_line_names() {
        use clap::ValueEnum;
        let names: Vec<String> = Candidate::ALL
            .iter()
            .map(|c| c.to_possible_value().unwrap().get_name().to_owned())
            .collect();
        assert_eq!(names, ["veth", "weft", "boringtun", "wireguard-go"]);
        for c in Candidate::ALL {
            assert_eq!(c.name(), c.to_possible_value().unwrap().get_name());
        }
    }
}
