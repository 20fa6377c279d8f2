//! The gateway's UDP socket, read and written in batches.
//!
//! WireGuard datagrams are small and many; one system call each is what held the forwarder
//! (and boringtun-cli and wireguard-go with it) to under a gigabit here. So the socket is
//! read with `recvmmsg` and UDP GRO (the kernel hands over runs of same-sized datagrams from
//! one sender as one buffer, cut at a `stride`) and written with UDP GSO (runs of
//! same-sized datagrams to one destination go down as one buffer and one `sendmsg`, the
//! kernel cutting them, or the veth/NIC passing the super-packet on whole). quinn-udp does
//! both, with fallbacks where the kernel refuses them.
//!
//! The socket is dual-stack (`[::]:port`): IPv4 peers appear as `::ffff:a.b.c.d` to the
//! kernel, and as plain IPv4 to the forwarder.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

/// The largest datagram a GRO read can hold (the kernel coalesces up to 64 KiB).
const MAX_GRO_READ: usize = 65_536;
/// Buffers per `recvmmsg`.
const READS_PER_CALL: usize = 8;
/// The most bytes one GSO send may carry (the UDP length field's limit, less headers).
const MAX_GSO_BYTES: usize = 65_000;

/// The gateway's UDP socket with its batching state.
pub struct UdpEndpoint {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl UdpEndpoint {
    /// Binds `[::]:port` (dual-stack) with send and receive buffers of `buffer_bytes` each,
    /// forced past the sysctl limits where the process may (`SO_RCVBUFFORCE`, root): a full
    /// receive buffer drops datagrams before the forwarder sees them. Must be called inside
    /// a tokio runtime. Returns the endpoint and, if the buffers could not be enlarged, why.
    pub fn bind(port: u16, buffer_bytes: usize) -> io::Result<(Self, Option<io::Error>)> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(false)?;
        socket.set_nonblocking(true)?;
        let sized = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::RcvBufForce,
            &buffer_bytes,
        )
        .and_then(|()| {
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::SndBufForce,
                &buffer_bytes,
            )
        })
        .err()
        .map(io::Error::from);
        socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
        let state = UdpSocketState::new((&socket).into())?;
        let socket = tokio::net::UdpSocket::from_std(socket.into())?;
        Ok((Self { socket, state }, sized))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits until a read may succeed.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what is pending without waiting, into `batch`: up to [`READS_PER_CALL`]
    /// buffers, each one datagram or a GRO run of them. `WouldBlock` when nothing is.
    pub fn try_read(&self, batch: &mut UdpReadBatch) -> io::Result<()> {
        batch.filled = 0;
        let mut buffers = batch.buffers.iter_mut();
        let mut slices: [IoSliceMut<'_>; READS_PER_CALL] = std::array::from_fn(|_| {
            IoSliceMut::new(buffers.next().expect("READS_PER_CALL buffers"))
        });
        let filled = self.socket.try_io(Interest::READABLE, || {
            self.state
                .recv((&self.socket).into(), &mut slices, &mut batch.meta)
        })?;
        batch.filled = filled;
        Ok(())
    }

    /// Sends everything queued in `batch`, as few `sendmsg` calls as GSO allows, and
    /// empties it. A datagram the kernel refuses (no route, say) is dropped and counted in
    /// the returned number of lost datagrams; the others still go. WireGuard recovers lost datagrams as any
    /// UDP user must.
    pub async fn write(&self, batch: &mut UdpWriteBatch) -> usize {
        let mut failed = 0;
        let max_segments = self.state.max_gso_segments().max(1);
        let mut start = 0;
        while start < batch.datagrams.len() {
            let (destination, first) = batch.datagrams[start].clone();
            let size = first.len();
            // A run: same destination, same size; the last one may be shorter.
            let mut end = start + 1;
            let mut bytes = size;
            while end < batch.datagrams.len() && end - start < max_segments {
                let (d, range) = &batch.datagrams[end];
                let previous_full = batch.datagrams[end - 1].1.len() == size;
                if *d != destination
                    || range.len() > size
                    || !previous_full
                    || bytes + range.len() > MAX_GSO_BYTES
                {
                    break;
                }
                bytes += range.len();
                end += 1;
            }
            let contents = &batch.data[first.start..batch.datagrams[end - 1].1.end];
            let transmit = Transmit {
                destination: map(destination),
                ecn: None,
                contents,
                segment_size: (end - start > 1).then_some(size),
                src_ip: None,
            };
            if let Err(e) = self.send(&transmit).await {
                tracing::debug!(%destination, datagrams = end - start, error = %e, "UDP send failed");
                failed += end - start;
            }
            start = end;
        }
        batch.clear();
        failed
    }

    async fn send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), transmit)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket.writable().await?;
                }
                other => return other,
            }
        }
    }
}

/// Buffers for one batched read (about half a MiB, kept by the one task that reads).
pub struct UdpReadBatch {
    buffers: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl UdpReadBatch {
    /// Empty buffers.
    pub fn new() -> Self {
        Self {
            buffers: vec![vec![0u8; MAX_GRO_READ]; READS_PER_CALL],
            meta: vec![RecvMeta::default(); READS_PER_CALL],
            filled: 0,
        }
    }

    /// The datagrams of the last read with their senders, GRO runs cut at their stride.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta
            .iter()
            .zip(&self.buffers)
            .take(self.filled)
            .flat_map(|(meta, buffer)| {
                let from = unmap(meta.addr);
                let stride = meta.stride.max(1);
                buffer[..meta.len].chunks(stride).map(move |d| (from, d))
            })
    }
}

impl Default for UdpReadBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Datagrams waiting to be sent, packed back to back so that runs can go as one GSO send.
#[derive(Default)]
pub struct UdpWriteBatch {
    data: Vec<u8>,
    datagrams: Vec<(SocketAddr, std::ops::Range<usize>)>,
}

impl UdpWriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a copy of `datagram` for `destination`.
    pub fn push(&mut self, destination: SocketAddr, datagram: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        self.datagrams.push((destination, start..self.data.len()));
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// Drops what is queued, keeping the buffer.
    pub fn clear(&mut self) {
        self.data.clear();
        self.datagrams.clear();
    }
}

/// IPv4 as the dual-stack socket wants it.
fn map(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), address.port()),
        IpAddr::V6(_) => address,
    }
}

/// IPv4 as the forwarder knows it.
fn unmap(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_dual_stack_form() {
        let v4: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        assert_eq!(map(v4).to_string(), "[::ffff:192.0.2.1]:51820");
        assert_eq!(unmap(map(v4)), v4);
        let v6: SocketAddr = "[2001:db8::1]:51820".parse().unwrap();
        assert_eq!(map(v6), v6);
        assert_eq!(unmap(v6), v6);
    }

    #[tokio::test]
    async fn runs_of_datagrams_arrive_whole_and_in_order() {
        let (receiver, _) = UdpEndpoint::bind(0, 1 << 20).unwrap();
        let (sender, _) = UdpEndpoint::bind(0, 1 << 20).unwrap();
        let to: SocketAddr = ([127, 0, 0, 1], receiver.local_addr().unwrap().port()).into();
        let mut batch = UdpWriteBatch::new();
        // A run of equal sizes with a shorter tail, a different size, then a single one.
        let mut sent = Vec::new();
        for (i, len) in [1200, 1200, 1200, 700, 64, 64, 1500]
            .into_iter()
            .enumerate()
        {
            let datagram = vec![i as u8; len];
            batch.push(to, &datagram);
            sent.push(datagram);
        }
        assert_eq!(sender.write(&mut batch).await, 0);
        assert!(batch.is_empty());
        let mut received = Vec::new();
        let mut read = UdpReadBatch::new();
        while received.len() < sent.len() {
            receiver.readable().await.unwrap();
            match receiver.try_read(&mut read) {
                Ok(()) => {
                    for (from, datagram) in read.datagrams() {
                        assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 1]));
                        received.push(datagram.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(received, sent);
    }
}
