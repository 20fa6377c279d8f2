//! TUN devices: one per network, the gateway's door between the kernel's routing tables and
//! the forwarder.
//!
//! A packet the kernel routes into a network's table towards `dev weftNNNN` is read here by
//! the forwarder, which encapsulates it towards another gateway; a packet arriving from
//! another gateway for that network is written here, and the kernel routes it with the
//! network's table (it enters with `iif weftNNNN`).
//!
//! The device is opened with exactly these `TUNSETIFF` flags, and no others:
//! - `IFF_TUN` (layer 3): the forwarder deals in IP packets; there is no Ethernet header to
//!   strip or forge and no ARP on the device.
//! - `IFF_NO_PI`: no 4-byte packet-information prefix. The IP version nibble says whether a
//!   packet is IPv4 or IPv6, which is all the prefix would have said (the kernel refuses
//!   the prefix and the virtio header together anyway).
//! - `IFF_VNET_HDR` with TSO/checksum offload (and UDP segmentation offload where the kernel
//!   has it): every read and write carries a 12-byte `virtio_net_hdr`. The kernel then hands
//!   the forwarder a TCP flow as 64 KiB GSO super-packets, one read for up to ~45 segments,
//!   which [`TunDevice::try_read`] splits into the segments the network's MTU allows
//!   (tun-rs's `gso_split`, completing checksums the kernel left partial); and
//!   [`TunDevice::write`] coalesces the segments of a flow back into one super-packet per
//!   write (tun-rs's GRO table). Syscalls per packet, not encryption, were what bounded the
//!   forwarder without it (see `docs/performance.md`).
//! - not `IFF_MULTI_QUEUE`: one queue per device, read by one task at a time. Multi-queue
//!   needs the flag at creation and on every later attach, so turning it on is a deliberate
//!   change, not a default.
//!
//! The device is not made persistent: it lives as long as the file descriptor returned here,
//! so a stopped gateway leaves no device behind (and the kernel drops the routes through it).
//! If a device of that name already exists (for instance a persistent one made with
//! `ip tuntap add NAME mode tun`), `TUNSETIFF` attaches to it instead of creating one.

use std::io;

use thiserror::Error;

use super::is_valid_interface_name;

/// The MTU every network's TUN gets: the largest an IP packet can be. The forwarder, not
/// the kernel, enforces a network's MTU: it answers too-big packets with ICMP errors that
/// it routes back into the network, and fragments IPv4 packets that allow it. A kernel
/// enforcing it at the TUN would drop the packet and route its ICMP error by the main
/// table, where networks with identical addresses cannot be told apart.
pub const TUN_MTU: u16 = u16::MAX;

/// Why a TUN device could not be opened, naming the device.
#[derive(Debug, Error)]
pub enum TunError {
    /// The name would be rejected (or templated, with `%`) by the kernel.
    #[error("invalid TUN device name {name:?}: 1 to 15 bytes, no '/', ':', '%' or whitespace")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The MTU is below IPv4's minimum of 68 bytes.
    #[error("invalid MTU {mtu} for TUN device {name:?}: at least 68")]
    InvalidMtu {
        /// The device.
        name: String,
        /// The rejected MTU.
        mtu: u16,
    },
    /// `/dev/net/tun` could not be opened or `TUNSETIFF` failed (`EBUSY`: another process is
    /// attached to a single-queue device of that name; `EINVAL`: a non-TUN link has the name
    /// or its flags differ; `EPERM`: not allowed to create devices).
    #[error("cannot create or attach TUN device {name:?}: {source}")]
    Create {
        /// The device.
        name: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Setting the MTU failed.
    #[error("cannot set MTU {mtu} on TUN device {name:?}: {source}")]
    SetMtu {
        /// The device.
        name: String,
        /// The MTU asked for.
        mtu: u16,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Bringing the device up failed.
    #[error("cannot bring TUN device {name:?} up: {source}")]
    Up {
        /// The device.
        name: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Registering the descriptor with the tokio reactor failed (for instance when called
    /// outside a tokio runtime).
    #[error("cannot register TUN device {name:?} with the async runtime: {source}")]
    Register {
        /// The device.
        name: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// Creates the TUN device `name` (or attaches to it if it exists) in the calling thread's
/// network namespace, sets its MTU, brings it up and returns it ready for async I/O.
///
/// Must be called from within a tokio runtime (the descriptor is registered with its
/// reactor). The MTU is the network's inner MTU (underlay MTU minus WireGuard and label
/// overhead): the kernel then answers oversized packets itself before they reach the
/// forwarder.
pub fn open_tun(name: &str, mtu: u16) -> Result<TunDevice, TunError> {
    if !is_valid_interface_name(name) || name.contains('%') {
        return Err(TunError::InvalidName {
            name: name.to_owned(),
        });
    }
    if mtu < 68 {
        return Err(TunError::InvalidMtu {
            name: name.to_owned(),
            mtu,
        });
    }
    let device = tun_rs::DeviceBuilder::new()
        .name(name)
        .layer(tun_rs::Layer::L3)
        .packet_information(false)
        .offload(true)
        .multi_queue(false)
        .build_sync()
        .map_err(|source| TunError::Create {
            name: name.to_owned(),
            source,
        })?;
    device.set_mtu(mtu).map_err(|source| TunError::SetMtu {
        name: name.to_owned(),
        mtu,
        source,
    })?;
    // No IPv6 link-local address: the kernel would otherwise send router solicitations and
    // MLD reports into the network, which the forwarder can only drop and count. Routes
    // through the device need no address. tun-rs brings the device up as it creates it, so
    // it goes down once after the change: IPv6 drops its automatic addresses on the way
    // down. Where IPv6 is off there is nothing to turn off.
    if std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/addr_gen_mode"), "1").is_ok() {
        device.enabled(false).map_err(|source| TunError::Up {
            name: name.to_owned(),
            source,
        })?;
    }
    device.enabled(true).map_err(|source| TunError::Up {
        name: name.to_owned(),
        source,
    })?;
    let device = tun_rs::AsyncDevice::new(device).map_err(|source| TunError::Register {
        name: name.to_owned(),
        source,
    })?;
    Ok(TunDevice { device })
}

/// Output buffers per read: one 64 KiB super-packet of segments of at least 536 bytes
/// (the smallest MSS IPv4 hosts must accept) splits into at most 123.
const SEGMENTS_PER_READ: usize = tun_rs::IDEAL_BATCH_SIZE;
/// The largest segment a super-packet may be split into: a jumbo-frame MTU. The forwarder
/// clamps the MSS of every TCP flow it carries to its network's MTU, so segments are
/// normally far smaller; a super-packet with larger ones is refused as a read error.
const MAX_SEGMENT: usize = 9216;
/// The largest packet a read can bring (the TUN's MTU, [`TUN_MTU`]), plus the virtio header.
const MAX_READ: usize = tun_rs::VIRTIO_NET_HDR_LEN + TUN_MTU as usize;

/// A network's TUN device, opened with offload (see the module documentation): reads come
/// as batches of packets, writes go as batches that the kernel receives coalesced.
pub struct TunDevice {
    device: tun_rs::AsyncDevice,
}

impl TunDevice {
    /// The device's name, as the kernel knows it.
    pub fn name(&self) -> io::Result<String> {
        self.device.name()
    }

    /// The device's MTU (what the plumbing set; not the network's MTU, which the forwarder
    /// enforces).
    pub fn mtu(&self) -> io::Result<u16> {
        self.device.mtu()
    }

    /// Waits until a read may succeed, without holding any buffer: a gateway with a
    /// thousand networks waits on a thousand devices and reads from a few at a time.
    pub async fn readable(&self) -> io::Result<()> {
        self.device.readable().await
    }

    /// Reads once without waiting: one packet, or the segments of one super-packet, into
    /// `batch`. Returns how many packets it holds now; `WouldBlock` when nothing is pending.
    pub fn try_read(&self, batch: &mut TunReadBatch) -> io::Result<usize> {
        batch.count = 0;
        let count = self.device.try_recv_multiple(
            &mut batch.raw,
            &mut batch.segments,
            &mut batch.sizes,
            0,
        )?;
        batch.count = count;
        Ok(count)
    }

    /// Waits for and reads one packet or super-packet into `batch` (see
    /// [`TunDevice::try_read`]).
    pub async fn read(&self, batch: &mut TunReadBatch) -> io::Result<usize> {
        batch.count = 0;
        let count = self
            .device
            .recv_multiple(&mut batch.raw, &mut batch.segments, &mut batch.sizes, 0)
            .await?;
        batch.count = count;
        Ok(count)
    }

    /// Writes the packets of `batch` into the device, coalescing segments of the same TCP
    /// (or UDP) flow into super-packets, and empties the batch (keeping its buffers).
    pub async fn write(&self, batch: &mut TunWriteBatch) -> io::Result<()> {
        if batch.packets.is_empty() {
            return Ok(());
        }
        let result = self
            .device
            .send_multiple(
                &mut batch.gro,
                &mut batch.packets,
                tun_rs::VIRTIO_NET_HDR_LEN,
            )
            .await;
        batch.clear();
        result.map(|_| ())
    }
}

/// The buffers of one TUN read: the raw super-packet and the segments it is split into.
/// About 1.2 MiB, so the forwarder keeps a few and lends them to whichever device is
/// readable rather than giving every network its own.
pub struct TunReadBatch {
    raw: Vec<u8>,
    segments: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
}

impl TunReadBatch {
    /// Empty buffers for one read.
    pub fn new() -> Self {
        let mut segments = vec![vec![0u8; MAX_SEGMENT]; SEGMENTS_PER_READ];
        // A packet that is not a super-packet lands whole in the first buffer.
        segments[0] = vec![0u8; usize::from(TUN_MTU)];
        Self {
            raw: vec![0u8; MAX_READ],
            segments,
            sizes: vec![0; SEGMENTS_PER_READ],
            count: 0,
        }
    }

    /// The packets of the last read, in order.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.segments
            .iter()
            .zip(&self.sizes)
            .take(self.count)
            .map(|(segment, size)| &segment[..*size])
    }
}

impl Default for TunReadBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Packets waiting to be written into one device, each behind room for the virtio header,
/// with the coalescing state tun-rs needs. Buffers are kept between writes.
pub struct TunWriteBatch {
    packets: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    gro: tun_rs::GROTable,
}

impl TunWriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            packets: Vec::new(),
            spare: Vec::new(),
            gro: tun_rs::GROTable::default(),
        }
    }

    /// Queues a copy of `packet`.
    pub fn push(&mut self, packet: &[u8]) {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.resize(tun_rs::VIRTIO_NET_HDR_LEN, 0);
        buffer.extend_from_slice(packet);
        self.packets.push(buffer);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// How many packets are queued.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Drops what is queued, keeping the buffers.
    pub fn clear(&mut self) {
        self.spare.append(&mut self.packets);
    }
}

impl Default for TunWriteBatch {
    fn default() -> Self {
        Self::new()
    }
}
