//! The standard WireGuard userspace API socket (`/var/run/wireguard/NAME.sock`), so that
//! `wg show NAME` works against a running gateway.
//!
//! Only `get=1` is served. weft's configuration is declarative: `set=1` is refused, and the
//! private key is never handed out (`wg showconf` therefore lacks it).

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

/// Where wireguard-tools look for userspace interfaces.
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// One peer as `wg` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UapiPeer {
    /// Its public key.
    pub public_key: [u8; 32],
    /// Where it is.
    pub endpoint: Option<SocketAddr>,
    /// Time since the last handshake.
    pub since_last_handshake: Option<Duration>,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Keepalive interval.
    pub persistent_keepalive: Option<u16>,
    /// Inner sources accepted from it.
    pub allowed_ips: Vec<IpNet>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn endpoint_text(endpoint: SocketAddr) -> String {
    match endpoint.ip() {
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", endpoint.port()),
            None => format!("[{ip}]:{}", endpoint.port()),
        },
        IpAddr::V4(ip) => format!("{ip}:{}", endpoint.port()),
    }
}

/// The answer to `get=1`: the interface, then each peer, then `errno=0` and a blank line. wg
/// derives the interface's public key from its private key, which is never given out, so
/// `wg show` lists the listening port and the peers.
pub fn render_get(listen_port: u16, peers: &[UapiPeer], now: SystemTime) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "listen_port={listen_port}");
    for peer in peers {
        let _ = writeln!(out, "public_key={}", hex(&peer.public_key));
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(out, "endpoint={}", endpoint_text(endpoint));
        }
        let handshake = peer
            .since_last_handshake
            .and_then(|since| now.checked_sub(since))
            .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        let _ = writeln!(out, "last_handshake_time_sec={}", handshake.as_secs());
        let _ = writeln!(out, "last_handshake_time_nsec={}", handshake.subsec_nanos());
        let _ = writeln!(out, "tx_bytes={}", peer.tx_bytes);
        let _ = writeln!(out, "rx_bytes={}", peer.rx_bytes);
        let _ = writeln!(
            out,
            "persistent_keepalive_interval={}",
            peer.persistent_keepalive.unwrap_or(0)
        );
        for ip in &peer.allowed_ips {
            let _ = writeln!(out, "allowed_ip={ip}");
        }
        let _ = writeln!(out, "protocol_version=1");
    }
    out.push_str("errno=0\n\n");
    out
}

/// The answer to anything but `get=1`.
pub fn render_refusal() -> &'static str {
    // EPERM: the configuration file, not `wg set`, is where weft is configured.
    "errno=1\n\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_wg_parses() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let peer = UapiPeer {
            public_key: [0xab; 32],
            endpoint: Some("[::ffff:192.0.2.2]:51820".parse().unwrap()),
            since_last_handshake: Some(Duration::from_secs(10)),
            tx_bytes: 5,
            rx_bytes: 7,
            persistent_keepalive: Some(25),
            allowed_ips: vec!["100.64.0.2/32".parse().unwrap()],
        };
        let text = render_get(51820, &[peer], now);
        assert_eq!(
            text,
            format!(
                "listen_port=51820\npublic_key={}\nendpoint=192.0.2.2:51820\nlast_handshake_time_sec=999990\n\
                 last_handshake_time_nsec=0\ntx_bytes=5\nrx_bytes=7\npersistent_keepalive_interval=25\n\
                 allowed_ip=100.64.0.2/32\nprotocol_version=1\nerrno=0\n\n",
                "ab".repeat(32)
            )
        );
    }
}
