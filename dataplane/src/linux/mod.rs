//! Linux plumbing of a gateway host: TUN devices, per-network routing tables, policy rules
//! and the network-namespace helpers the tests and the lab build on.
//!
//! A gateway keeps networks with identical subnets apart without kernel VRF (see
//! `DESIGN.md`, "A gateway host (Linux)"): each network has its own TUN device and its own
//! routing table, interface addresses are added with `noprefixroute` so that their connected
//! route lives only in the network's table, and `iif` rules select the table from the device
//! a packet arrived on. [`plumbing`] reconciles that kernel state from a declarative
//! description, [`tun`] opens the TUN devices, [`udp`] batches the WireGuard socket, and [`netns`] runs code inside network
//! namespaces without touching the host's.
//!
//! Everything here talks to the kernel; the sans-IO core never calls into this module.

pub mod netns;
pub mod plumbing;
pub mod tun;
pub mod udp;

/// The longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// Whether the kernel would accept `name` as an interface name (its `dev_valid_name`):
/// 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
///
/// Checked before asking the kernel so that a bad name in a plan is reported as such, not as
/// an `EINVAL` from deep inside a netlink exchange.
pub fn is_valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}
