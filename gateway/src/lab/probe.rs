//! The traffic `weft lab check` sends, each kind from sockets opened inside a lab namespace:
//! ICMP echo over raw sockets (no `ping` program needed), a TCP transfer whose SHA-256 the
//! receiver sends back, and tagged UDP probes whose payload names their sender. Every wait
//! is bounded.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{SockaddrStorage, recvfrom};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};
use weft_dataplane::linux::netns::{NetnsError, run_in};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A socket operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// No echo reply came.
    #[error("no echo reply to {attempts} requests in {waited:?}")]
    NoReply {
        /// Requests sent.
        attempts: u32,
        /// Time waited in all.
        waited: Duration,
    },
    /// An ICMP error came back instead of a reply.
    #[error("{what} from {from}")]
    Unreachable {
        /// What the ICMP error said.
        what: String,
        /// Who sent it.
        from: IpAddr,
    },
    /// The receiver's digest differs from the data sent.
    #[error("the receiver's SHA-256 differs from the data sent")]
    DigestMismatch,
    /// Random data could not be had.
    #[error("reading the system's random source: {0}")]
    Random(getrandom::Error),
}

fn io_err(action: &'static str) -> impl FnOnce(io::Error) -> ProbeError {
    move |source| ProbeError::Io { action, source }
}

/// A successful echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Round trip time of the reply.
    pub rtt: Duration,
    /// Requests sent until one was answered.
    pub attempts: u32,
}

/// Sends ICMP (or ICMPv6) echo requests from inside `namespace` to `destination`, one per
/// `per_attempt`, up to `attempts` requests, and returns at the first reply.
pub fn ping(
    namespace: &str,
    destination: IpAddr,
    attempts: u32,
    per_attempt: Duration,
) -> Result<Echo, ProbeError> {
    run_in(namespace, || ping_here(destination, attempts, per_attempt))?
}

/// An echo request or reply's identity: the ICMP id and a token in the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EchoId {
    id: u16,
    token: [u8; 8],
}

/// What a received ICMP message means for one pinger.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Heard {
    /// A reply to one of our requests.
    Reply { seq: u16 },
    /// An error about one of our requests.
    Error { what: String },
    /// Not ours.
    Other,
}

/// An echo request: type 8 (IPv4) or 128 (IPv6); the kernel fills in the ICMPv6 checksum.
fn echo_request(v6: bool, echo: EchoId, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&echo.id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"weft-lab");
    p.extend_from_slice(&echo.token);
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Reads what a raw ICMP socket received: IPv4 raw sockets deliver the IP header too, ICMPv6
/// raw sockets only the message.
fn classify(v6: bool, packet: &[u8], echo: EchoId) -> Heard {
    let icmp = if v6 {
        packet
    } else {
        let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        packet.get(ihl..).unwrap_or_default()
    };
    let (reply, unreachable, exceeded, too_big, request) = if v6 {
        (129, 1, 3, 2, 128)
    } else {
        (0, 3, 11, 255, 8)
    };
    let Some(&kind) = icmp.first() else {
        return Heard::Other;
    };
    let code = icmp.get(1).copied().unwrap_or(0);
    let id_of = |m: &[u8]| m.get(4..6).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if kind == reply {
        let token_ok = icmp.get(16..24) == Some(&echo.token[..]);
        if id_of(icmp) == Some(echo.id) && token_ok {
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            return Heard::Reply { seq };
        }
        return Heard::Other;
    }
    if kind != unreachable && kind != exceeded && kind != too_big {
        return Heard::Other;
    }
    // The offending packet follows the 8-byte ICMP header: its IP header, then our request.
    let inner = icmp.get(8..).unwrap_or_default();
    let inner_icmp = if v6 {
        inner.get(40..)
    } else {
        let ihl = usize::from(inner.first().map_or(0, |b| b & 0x0f)) * 4;
        inner.get(ihl..)
    }
    .unwrap_or_default();
    if inner_icmp.first() != Some(&request) || id_of(inner_icmp) != Some(echo.id) {
        return Heard::Other;
    }
    let what = match (v6, kind, code) {
        (false, 3, 0) | (true, 1, 0) => "network unreachable (no route)".to_owned(),
        (false, 3, 1) | (true, 1, 3) => "host unreachable (no neighbour answered)".to_owned(),
        (false, 3, 3) | (true, 1, 4) => "port unreachable".to_owned(),
        (false, 3, 4) => "fragmentation needed".to_owned(),
        (false, 3, 13) | (true, 1, 1) => "administratively prohibited".to_owned(),
        (true, 2, _) => "packet too big".to_owned(),
        (false, 11, _) | (true, 3, _) => "time exceeded (a routing loop?)".to_owned(),
        (_, k, c) => format!("destination unreachable (type {k} code {c})"),
    };
    Heard::Error { what }
}

fn ping_here(
    destination: IpAddr,
    attempts: u32,
    per_attempt: Duration,
) -> Result<Echo, ProbeError> {
    let v6 = destination.is_ipv6();
    let socket = if v6 {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
    }
    .map_err(io_err("opening a raw ICMP socket"))?;
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(ProbeError::Random)?;
    let echo = EchoId {
        id: u16::from_be_bytes([random[0], random[1]]),
        token: random[2..].try_into().expect("8 bytes"),
    };
    let to: socket2::SockAddr = SocketAddr::new(destination, 0).into();
    let started = Instant::now();
    let mut sent_at = Vec::new();
    let mut last_error = None;
    let mut buf = [0u8; 2048];
    for seq in 1..=attempts {
        let seq = seq as u16;
        socket
            .send_to(&echo_request(v6, echo, seq), &to)
            .map_err(io_err("sending an echo request"))?;
        sent_at.push(Instant::now());
        let deadline = Instant::now() + per_attempt;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(io_err("setting a timeout"))?;
            let (n, from) = match recvfrom::<SockaddrStorage>(socket.as_raw_fd(), &mut buf) {
                Ok(r) => r,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_err("receiving ICMP")(e.into())),
            };
            match classify(v6, &buf[..n], echo) {
                Heard::Reply { seq: answered } => {
                    // A late answer to an earlier request proves the path as well.
                    let sent = sent_at
                        .get(usize::from(answered).saturating_sub(1))
                        .copied()
                        .unwrap_or(started);
                    return Ok(Echo {
                        rtt: sent.elapsed(),
                        attempts: seq.into(),
                    });
                }
                Heard::Error { what } => {
                    last_error = Some(ProbeError::Unreachable {
                        what,
                        from: from.and_then(|f| source_ip(&f)).unwrap_or(destination),
                    });
                }
                Heard::Other => {}
            }
        }
    }
    Err(last_error.unwrap_or(ProbeError::NoReply {
        attempts,
        waited: started.elapsed(),
    }))
}

fn source_ip(from: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = from.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    from.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// A completed TCP transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes sent (and hashed identically by the receiver).
    pub bytes: usize,
    /// From connecting to receiving the digest.
    pub elapsed: Duration,
}

/// The largest transfer a receiver accepts, so a stray connection cannot make it wait for
/// gigabytes.
pub const MAX_TRANSFER: u64 = 64 << 20;

/// Opens a TCP listener on `address` (port chosen by the kernel) inside `namespace`.
pub fn tcp_listen(namespace: &str, address: IpAddr) -> Result<TcpListener, ProbeError> {
    let listener = run_in(namespace, || TcpListener::bind(SocketAddr::new(address, 0)))?
        .map_err(io_err("opening a TCP listener"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configuring a TCP listener"))?;
    Ok(listener)
}

/// Serves transfers on `listener` until `stop` is set: reads an 8-byte length and that many
/// bytes, and answers with their SHA-256. Each connection is served on its own thread with
/// bounded reads and writes.
pub fn tcp_serve(listener: &TcpListener, stop: &AtomicBool, io_timeout: Duration) {
    std::thread::scope(|s| {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    s.spawn(move || {
                        let _ = serve_one(stream, io_timeout);
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

fn serve_one(mut stream: TcpStream, io_timeout: Duration) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    let mut len = [0u8; 8];
    stream.read_exact(&mut len)?;
    let len = u64::from_be_bytes(len);
    if len > MAX_TRANSFER {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "too long"));
    }
    let mut hasher = Sha256::new();
    let mut left = len;
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = stream.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    stream.write_all(hasher.finalize().as_slice())?;
    stream.flush()
}

/// Connects from inside `namespace` to `to`, sends `data` and checks the SHA-256 the
/// receiver answers with.
pub fn tcp_transfer(
    namespace: &str,
    to: SocketAddr,
    data: &[u8],
    timeout: Duration,
) -> Result<Transfer, ProbeError> {
    run_in(namespace, || transfer_here(to, data, timeout))?
}

fn transfer_here(to: SocketAddr, data: &[u8], timeout: Duration) -> Result<Transfer, ProbeError> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&to, timeout).map_err(io_err("connecting"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(io_err("configuring the connection"))?;
    stream
        .write_all(&(data.len() as u64).to_be_bytes())
        .and_then(|()| stream.write_all(data))
        .map_err(io_err("sending"))?;
    let mut digest = [0u8; 32];
    stream
        .read_exact(&mut digest)
        .map_err(io_err("receiving the digest"))?;
    if digest[..] != Sha256::digest(data)[..] {
        return Err(ProbeError::DigestMismatch);
    }
    Ok(Transfer {
        bytes: data.len(),
        elapsed: started.elapsed(),
    })
}

/// The tag that starts every UDP probe, with the format's version.
pub const PROBE_TAG: &str = "weft-lab-probe/1";

/// One UDP probe's payload: which run, network and workload sent it, to which address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The check run that sent it, so leftovers of an earlier run are not counted.
    pub run: u64,
    /// The sender's network, `tenant/name`.
    pub network: String,
    /// The sending workload.
    pub from: String,
    /// The address it was sent to.
    pub to: IpAddr,
    /// Its number among the probes from `from` to `to`.
    pub seq: u32,
}

impl Probe {
    /// The payload: `weft-lab-probe/1 RUN NETWORK FROM TO SEQ`, one space apart (no name
    /// of the configuration holds a space).
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{PROBE_TAG} {:016x} {} {} {} {}",
            self.run, self.network, self.from, self.to, self.seq
        )
        .into_bytes()
    }

    /// Reads a payload; `None` for anything that is not a probe.
    pub fn decode(payload: &[u8]) -> Option<Probe> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut f = text.split(' ');
        if f.next()? != PROBE_TAG {
            return None;
        }
        let probe = Probe {
            run: u64::from_str_radix(f.next()?, 16).ok()?,
            network: f.next()?.to_owned(),
            from: f.next()?.to_owned(),
            to: f.next()?.parse().ok()?,
            seq: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(probe)
    }
}

/// Opens the UDP socket a workload receives probes on: every address of its family, port
/// `port`, inside `namespace`, so a probe delivered there by mistake is seen as well.
pub fn udp_listen(namespace: &str, ipv6: bool, port: u16) -> Result<UdpSocket, ProbeError> {
    let any = if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let socket = run_in(namespace, || UdpSocket::bind(SocketAddr::new(any, port)))?
        .map_err(io_err("opening the probe listener"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(io_err("configuring the probe listener"))?;
    Ok(socket)
}

/// Opens a UDP socket to send probes from, bound to `address` inside `namespace`.
pub fn udp_sender(namespace: &str, address: IpAddr) -> Result<UdpSocket, ProbeError> {
    run_in(namespace, || UdpSocket::bind(SocketAddr::new(address, 0)))?
        .map_err(io_err("opening the probe sender"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: EchoId = EchoId {
        id: 0x1234,
        token: *b"abcdefgh",
    };

    fn reply_of(request: &[u8], v6: bool) -> Vec<u8> {
        let mut r = request.to_vec();
        r[0] = if v6 { 129 } else { 0 };
        r
    }

    #[test]
    fn echo_requests_carry_id_sequence_token_and_a_valid_checksum() {
        let p = echo_request(false, ECHO, 7);
        assert_eq!(p[0], 8);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[16..24], b"abcdefgh");
        assert_eq!(checksum(&p), 0, "a correct checksum sums to zero");
        let p6 = echo_request(true, ECHO, 7);
        assert_eq!(p6[0], 128);
        assert_eq!(&p6[2..4], &[0, 0], "the kernel computes it");
    }

    #[test]
    fn replies_and_errors_are_told_apart_and_strangers_ignored() {
        let req = echo_request(true, ECHO, 3);
        assert_eq!(
            classify(true, &reply_of(&req, true), ECHO),
            Heard::Reply { seq: 3 }
        );
        let other = EchoId {
            id: 0x1234,
            token: *b"zzzzzzzz",
        };
        assert_eq!(classify(true, &reply_of(&req, true), other), Heard::Other);
        // IPv4: the raw socket hands over the IP header as well.
        let req4 = echo_request(false, ECHO, 2);
        let mut packet = vec![0x45; 1];
        packet.extend_from_slice(&[0; 19]);
        packet.extend_from_slice(&reply_of(&req4, false));
        assert_eq!(classify(false, &packet, ECHO), Heard::Reply { seq: 2 });
        // Destination unreachable quoting our request.
        let mut unreach = vec![0x45];
        unreach.extend_from_slice(&[0; 19]);
        unreach.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        unreach.push(0x45);
        unreach.extend_from_slice(&[0; 19]);
        unreach.extend_from_slice(&req4[..8]);
        assert_eq!(
            classify(false, &unreach, ECHO),
            Heard::Error {
                what: "network unreachable (no route)".into()
            }
        );
        assert_eq!(classify(false, &[], ECHO), Heard::Other);
        assert_eq!(classify(true, &[135, 0, 0, 0], ECHO), Heard::Other);
    }

    #[test]
    fn probes_round_trip_and_garbage_is_not_a_probe() {
        let p = Probe {
            run: 0xdead_beef,
            network: "shop/prod".into(),
            from: "shop.prod.aws-lab.v4".into(),
            to: "10.10.2.10".parse().unwrap(),
            seq: 2,
        };
        let bytes = p.encode();
        assert!(bytes.starts_with(b"weft-lab-probe/1 00000000deadbeef shop/prod "));
        assert_eq!(Probe::decode(&bytes), Some(p));
        assert_eq!(Probe::decode(b"hello"), None);
        assert_eq!(Probe::decode(b"weft-lab-probe/1 zz a b 10.0.0.1 1"), None);
        assert_eq!(
            Probe::decode(b"weft-lab-probe/1 1 a b 10.0.0.1 1 extra"),
            None
        );
        assert_eq!(Probe::decode(&[0xff, 0xfe]), None);
    }

    #[test]
    fn the_checksum_matches_rfc_1071() {
        // The example of RFC 1071 section 3: sum ddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }
}
