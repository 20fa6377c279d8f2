//! The measurements: iperf3 TCP and UDP between the client and server namespaces, UDP
//! request/response round trips timed in this process, the CPU time of gateway processes
//! from `/proc/PID/stat`, and the receive buffers of their UDP sockets from `ss`. The
//! parsers of what those programs and files say are pure and unit tested.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use weft_dataplane::linux::netns::{self, run_in};

use super::check_interrupt;
use super::stats::percentile;
use super::topology::{Bed, CLIENT_ADDRESS, Process, SERVER_ADDRESS, wait_until};

/// The iperf3 server's port.
pub const IPERF_PORT: u16 = 5201;
/// The UDP echo server's port.
pub const ECHO_PORT: u16 = 7777;
/// Linux reports process times in clock ticks of `USER_HZ`, which is 100 on every
/// architecture for the `/proc` ABI.
pub const USER_HZ: f64 = 100.0;
/// Socket buffers iperf3 asks for in UDP tests (`-w`, both ends; the host's `rmem_max`
/// caps it): so that the measuring endpoints are not what drops packets.
pub const IPERF_UDP_WINDOW: &str = "4M";
/// Bytes of an IPv4 and a UDP header.
pub const IPV4_UDP_HEADERS: usize = 28;

/// Starts `iperf3 -s` in the server namespace and waits until it listens.
pub fn start_iperf_server(bed: &mut Bed, iperf3: &Path, dir: &Path) -> anyhow::Result<()> {
    let process = Process::spawn(
        "iperf3 server",
        &bed.names.server.clone(),
        iperf3,
        &[
            "-s".to_owned(),
            "-B".to_owned(),
            SERVER_ADDRESS.to_string(),
            "-p".to_owned(),
            IPERF_PORT.to_string(),
        ],
        &[],
        &dir.join("iperf3-server.log"),
    )?;
    bed.helpers.push(process);
    let ns = bed.names.server.clone();
    wait_until(
        Duration::from_secs(10),
        "the iperf3 server listening",
        || {
            bed.check_alive()?;
            let tcp = run_in(&ns, || std::fs::read_to_string("/proc/thread-self/net/tcp"))??;
            Ok(tcp_listening(&tcp, IPERF_PORT))
        },
    )
}

/// Whether `/proc/net/tcp` text shows a socket listening on `port`.
pub fn tcp_listening(text: &str, port: u16) -> bool {
    let wanted = format!("{port:04X}");
    text.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3
            && fields[1].rsplit(':').next() == Some(wanted.as_str())
            && fields[3] == "0A"
    })
}

/// Runs the iperf3 client in the client namespace with `args` (after `-c SERVER -p PORT
/// -J`) and returns its JSON report. A busy server is asked again; a report with an
/// `error` is an error.
pub fn iperf_client(
    bed: &mut Bed,
    iperf3: &Path,
    args: &[String],
    limit: Duration,
    dir: &Path,
) -> anyhow::Result<Value> {
    for attempt in 1.. {
        let out_path = dir.join("iperf3-client.json");
        let err_path = dir.join("iperf3-client.err");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &bed.names.client])
            .arg(iperf3)
            .args([
                "-c",
                &SERVER_ADDRESS.to_string(),
                "-p",
                &IPERF_PORT.to_string(),
                "-J",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path)?)
            .stderr(File::create(&err_path)?)
            .spawn()
            .context("starting the iperf3 client")?;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let stop = check_interrupt()
                .err()
                .or_else(|| bed.check_alive().err())
                .or_else(|| {
                    (Instant::now() >= deadline).then(|| {
                        anyhow::anyhow!(
                            "iperf3 {} did not finish within {} s",
                            args.join(" "),
                            limit.as_secs()
                        )
                    })
                });
            if let Some(e) = stop {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        let json: Option<Value> = serde_json::from_str(&text).ok();
        let error = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (json, error) {
            (Some(_), Some(e)) if e.contains("busy") && attempt < 5 => {
                std::thread::sleep(Duration::from_millis(500));
            }
            (_, Some(e)) => bail!("iperf3 {}: {e}", args.join(" ")),
            (Some(json), None) if status.success() => return Ok(json),
            _ => bail!(
                "iperf3 {} failed ({status}): {}",
                args.join(" "),
                std::fs::read_to_string(&err_path)
                    .unwrap_or_default()
                    .trim()
            ),
        }
    }
    unreachable!("the loop returns")
}

/// What a TCP test says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TcpResult {
    /// Throughput at the receiver over the counted seconds, Gbit/s.
    pub gbps: f64,
    /// Bytes sent over the whole test, the omitted first seconds included (what the
    /// gateways' CPU time was spent on).
    pub bytes_all: f64,
}

/// Reads iperf3's JSON report of a TCP test.
pub fn tcp_result(json: &Value) -> anyhow::Result<TcpResult> {
    let bps = json
        .pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .context("iperf3's report has no end.sum_received.bits_per_second")?;
    let intervals: f64 = json
        .get("intervals")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|i| i.pointer("/sum/bytes").and_then(Value::as_f64))
                .sum()
        })
        .unwrap_or(0.0);
    let sent = json
        .pointer("/end/sum_sent/bytes")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    Ok(TcpResult {
        gbps: bps / 1e9,
        bytes_all: intervals.max(sent),
    })
}

/// Reads iperf3's JSON report of a UDP test: datagrams the server received per second
/// (sent less lost, over the receiver's seconds).
pub fn udp_result(json: &Value) -> anyhow::Result<f64> {
    let r = json
        .pointer("/end/sum_received")
        .or_else(|| json.pointer("/end/sum"))
        .context("iperf3's report has no end.sum_received")?;
    let field = |k: &str| {
        r.get(k)
            .and_then(Value::as_f64)
            .with_context(|| format!("iperf3's end.sum_received has no {k}"))
    };
    let (packets, lost, seconds) = (field("packets")?, field("lost_packets")?, field("seconds")?);
    if seconds <= 0.0 {
        bail!("iperf3 reports a UDP test of {seconds} s");
    }
    Ok((packets - lost).max(0.0) / seconds)
}

/// The arguments of a TCP test.
pub fn tcp_args(seconds: u32, omit: u32, streams: u32) -> Vec<String> {
    let mut args = vec!["-t".to_owned(), seconds.to_string()];
    if omit > 0 {
        args.extend(["-O".to_owned(), omit.to_string()]);
    }
    if streams > 1 {
        args.extend(["-P".to_owned(), streams.to_string()]);
    }
    args
}

/// The arguments of a UDP test at unlimited rate.
pub fn udp_args(seconds: u32, payload: usize) -> Vec<String> {
    [
        "-u",
        "-b",
        "0",
        "-l",
        &payload.to_string(),
        "-w",
        IPERF_UDP_WINDOW,
        "-t",
        &seconds.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// User plus system clock ticks of a process (all its threads) from the text of
/// `/proc/PID/stat`: fields 14 and 15, counted after the command name, which may hold
/// spaces and parentheses.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After `)`, field 3 (state) comes first: utime is the 12th from there.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU seconds (user + system) `pids` have used so far; `None` when one is unreadable.
pub fn cpu_seconds(pids: &[i32]) -> Option<f64> {
    let mut ticks = 0;
    for pid in pids {
        ticks += cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    }
    Some(ticks as f64 / USER_HZ)
}

/// The values of field `name` (e.g. `rb`, the receive buffer, or `d`, packets dropped
/// because the receive buffer was full) of every socket's `skmem:(...)` in `ss -m` output.
pub fn skmem_field(ss: &str, name: &str) -> Vec<u64> {
    ss.split("skmem:(")
        .skip(1)
        .filter_map(|s| {
            s.split(')').next()?.split(',').find_map(|field| {
                let digits = field.find(|c: char| c.is_ascii_digit())?;
                (&field[..digits] == name)
                    .then(|| field[digits..].parse().ok())
                    .flatten()
            })
        })
        .collect()
}

/// `ss -uamn` in namespace `ns`: its UDP sockets with their memory.
fn udp_sockets(ns: &str) -> Option<String> {
    netns::exec(ns, "ss", &["-H", "-u", "-a", "-m", "-n"]).ok()
}

/// The largest receive buffer of the UDP sockets in namespace `ns`.
pub fn udp_receive_buffer(ns: &str) -> Option<u64> {
    skmem_field(&udp_sockets(ns)?, "rb").into_iter().max()
}

/// Datagrams the UDP sockets in namespace `ns` have dropped so far because their receive
/// buffer was full.
pub fn udp_drops(ns: &str) -> Option<u64> {
    Some(skmem_field(&udp_sockets(ns)?, "d").into_iter().sum())
}

/// Round trips of UDP request/response between the client and the server namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Requests that got no answer within a second.
    pub lost: usize,
}

/// A request or reply: a magic word and the sequence number.
const ECHO_MAGIC: u32 = 0x7765_6674;

fn echo_message(seq: u64) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[..4].copy_from_slice(&ECHO_MAGIC.to_be_bytes());
    m[4..].copy_from_slice(&seq.to_be_bytes());
    m
}

fn echo_seq(m: &[u8]) -> Option<u64> {
    (m.len() == 12 && m[..4] == ECHO_MAGIC.to_be_bytes())
        .then(|| u64::from_be_bytes(m[4..12].try_into().expect("8 bytes")))
}

/// Runs a UDP echo server in the server namespace while `f` runs with a socket of the client
/// namespace connected to it.
fn with_echo<T>(bed: &Bed, f: impl FnOnce(&UdpSocket) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let server_addr = SocketAddr::from((SERVER_ADDRESS, ECHO_PORT));
    let server = run_in(&bed.names.server, || UdpSocket::bind(server_addr))?
        .context("binding the echo server")?;
    server.set_read_timeout(Some(Duration::from_millis(100)))?;
    let client = run_in(&bed.names.client, || {
        UdpSocket::bind(SocketAddr::from((CLIENT_ADDRESS, 0)))
    })?
    .context("binding the echo client")?;
    client.connect(server_addr)?;
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    let _ = server.send_to(&buf[..n], from);
                }
            }
        });
        let result = f(&client);
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// One round trip: the time until the reply to `seq`, `None` after a second without it.
fn round_trip(client: &UdpSocket, seq: u64) -> anyhow::Result<Option<Duration>> {
    let start = Instant::now();
    client.send(&echo_message(seq))?;
    let mut buf = [0u8; 64];
    loop {
        match client.recv(&mut buf) {
            Ok(n) if echo_seq(&buf[..n]) == Some(seq) => return Ok(Some(start.elapsed())),
            // A late reply to an earlier request.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            // ICMP unreachable while routes or handshakes are not there yet.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(50));
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() > Duration::from_secs(1) {
            return Ok(None);
        }
    }
}

/// Waits until a UDP echo crosses from client to server and back (routes in place,
/// handshakes done), at most `limit`.
pub fn wait_reachable(bed: &mut Bed, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let ok = with_echo(bed, |client| {
        client.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut seq = 0;
        while Instant::now() < deadline {
            check_interrupt()?;
            seq += 1;
            if round_trip(client, seq)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    bed.check_alive()?;
    if !ok {
        bail!(
            "no UDP echo from {SERVER_ADDRESS} to {CLIENT_ADDRESS} within {} s",
            limit.as_secs()
        );
    }
    Ok(())
}

/// `samples` round trips `interval` apart after `warmup` uncounted ones: their median and
/// 99th percentile.
pub fn latency(
    bed: &Bed,
    warmup: usize,
    samples: usize,
    interval: Duration,
) -> anyhow::Result<Latency> {
    with_echo(bed, |client| {
        let mut rtts = Vec::with_capacity(samples);
        let mut lost = 0;
        for seq in 0..(warmup + samples) as u64 {
            if seq % 100 == 0 {
                check_interrupt()?;
            }
            match round_trip(client, seq)? {
                Some(rtt) if seq >= warmup as u64 => rtts.push(rtt.as_secs_f64() * 1e6),
                Some(_) => {}
                None => lost += 1,
            }
            std::thread::sleep(interval);
        }
        if rtts.len() < samples / 2 {
            bail!("{lost} of {} UDP echoes got no reply", warmup + samples);
        }
        Ok(Latency {
            p50_us: percentile(&rtts, 50.0).expect("samples"),
            p99_us: percentile(&rtts, 99.0).expect("samples"),
            lost,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_user_plus_system_past_odd_command_names() {
        let text = "4242 (weft (run) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 \
                    0 3 0 987654 1000000 200 18446744073709551615";
        assert_eq!(cpu_ticks(text), Some(1801));
        assert_eq!(cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(cpu_ticks(""), None);
        // This process has a readable entry.
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ticks(&me).is_some());
        assert!(cpu_seconds(&[std::process::id() as i32]).is_some());
        assert_eq!(cpu_seconds(&[i32::MAX]), None);
    }

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0A0A020A:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0A0A020A:1F90 0A0A010A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert!(tcp_listening(text, 5201));
        // Established, not listening.
        assert!(!tcp_listening(text, 8080));
        assert!(!tcp_listening(text, 22));
        assert!(!tcp_listening("", 5201));
    }

    #[test]
    fn socket_memory_is_read_from_ss() {
        let ss = "UNCONN 0      0            *:51820            *:*    \n\
\t skmem:(r0,rb16777216,t0,tb16777216,f0,w0,o0,bl0,d0)\n\
ESTAB  0      0      192.0.2.1:51820  192.0.2.2:51820\n\
\t skmem:(r2304,rb212992,t0,tb212992,f4096,w0,o0,bl0,d12)\n";
        assert_eq!(skmem_field(ss, "rb"), vec![16_777_216, 212_992]);
        assert_eq!(skmem_field(ss, "r"), vec![0, 2304]);
        assert_eq!(skmem_field(ss, "d"), vec![0, 12]);
        assert_eq!(skmem_field(ss, "x"), Vec::<u64>::new());
        assert!(skmem_field("", "rb").is_empty());
    }

    fn udp_report() -> Value {
        serde_json::json!({
            "intervals": [{"sum": {"bytes": 6427520, "packets": 100430}}],
            "end": {
                "sum_sent": {"seconds": 1.0, "bytes": 6427520, "packets": 100430, "lost_packets": 0},
                "sum_received": {"seconds": 1.003549, "bytes": 1878784, "packets": 100217,
                                 "lost_packets": 70861}
            }
        })
    }

    #[test]
    fn udp_rates_count_what_the_server_received() {
        let pps = udp_result(&udp_report()).unwrap();
        assert!((pps - 29_356.0 / 1.003549).abs() < 1e-6, "{pps}");
        assert!(udp_result(&serde_json::json!({"end": {}})).is_err());
        // iperf3 before 3.?: only `sum`.
        let old =
            serde_json::json!({"end": {"sum": {"seconds": 2.0, "packets": 10, "lost_packets": 2}}});
        assert_eq!(udp_result(&old).unwrap(), 4.0);
    }

    #[test]
    fn tcp_results_take_the_receiver_rate_and_every_byte_sent() {
        let json = serde_json::json!({
            "intervals": [
                {"sum": {"bytes": 100.0, "omitted": true}},
                {"sum": {"bytes": 300.0, "omitted": false}},
                {"sum": {"bytes": 300.0, "omitted": false}}
            ],
            "end": {
                "sum_sent": {"bytes": 600.0, "bits_per_second": 2.5e9},
                "sum_received": {"bytes": 590.0, "bits_per_second": 2.4e9}
            }
        });
        assert_eq!(
            tcp_result(&json).unwrap(),
            TcpResult {
                gbps: 2.4,
                bytes_all: 700.0
            }
        );
        assert!(tcp_result(&serde_json::json!({})).is_err());
    }

    #[test]
    fn iperf_arguments() {
        assert_eq!(tcp_args(5, 1, 4).join(" "), "-t 5 -O 1 -P 4");
        assert_eq!(tcp_args(1, 0, 1).join(" "), "-t 1");
        assert_eq!(udp_args(2, 64).join(" "), "-u -b 0 -l 64 -w 4M -t 2");
    }

    #[test]
    fn echo_messages_carry_their_sequence_number() {
        assert_eq!(echo_seq(&echo_message(42)), Some(42));
        assert_eq!(echo_seq(&[0; 12]), None);
        assert_eq!(echo_seq(&echo_message(42)[..11]), None);
    }
}
