//! The policy stage: the place in the pipeline where a packet that is routable may still be
//! refused. SecOps' rules between networks plug in here; today every packet is allowed.

use crate::packet::IpPacket;

/// Decides whether a routed packet may pass.
pub trait Policy: Send {
    /// Whether `packet` may go on within network `label`.
    fn allows(&self, label: u32, packet: &IpPacket<'_>) -> bool;
}

/// The policy that allows everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn allows(&self, _label: u32, _packet: &IpPacket<'_>) -> bool {
        true
    }
}
