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
//! - `IFF_NO_PI`: no 4-byte packet-information prefix. Every read is exactly one IP packet
//!   and the IP version nibble says whether it is IPv4 or IPv6, which is all the prefix
//!   would have said; the forwarder hands reads straight to the label codec.
//! - not `IFF_VNET_HDR` (offload off): with it, reads carry a `virtio_net_hdr` and may be
//!   64 KiB GSO super-packets that the forwarder would have to segment before encrypting.
//!   Plain packets of at most the network MTU keep the core simple; offload is a later,
//!   measured optimisation. (tun-rs also clears a stale device-wide offload mask when it
//!   attaches to an existing device, so a previous user's setting cannot leak in.)
//! - not `IFF_MULTI_QUEUE`: one queue per device for now, read by one task. Multi-queue
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

/// The async TUN device handed to the forwarder's shell: `recv` reads one IP packet, `send`
/// writes one. It derefs to tun-rs's device for `name()`, `if_index()` and `mtu()`.
pub type TunDevice = tun_rs::AsyncDevice;

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
        .offload(false)
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
    tun_rs::AsyncDevice::new(device).map_err(|source| TunError::Register {
        name: name.to_owned(),
        source,
    })
}
