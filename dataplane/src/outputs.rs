//! The queue of what the shell must write, and the buffers the shell hands back.
//!
//! Every packet the core emits needs a buffer of its own until the shell has written it.
//! Allocating one per packet costs as much as the label codec's whole work; instead the shell
//! returns each buffer with [`crate::core::Dataplane::recycle`] once written, and the next
//! packet reuses it.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::core::Transmit;

/// Buffers kept for reuse at most: what a large batch needs in flight, no more (a burst
/// beyond it allocates, and its buffers are freed rather than hoarded).
const MAX_SPARE: usize = 1024;

/// Transmits in order, and spare buffers to build the next ones in.
#[derive(Default)]
pub(crate) struct Outputs {
    queue: VecDeque<Transmit>,
    spare: Vec<Vec<u8>>,
}

impl Outputs {
    /// Queues a copy of `datagram` for the UDP socket.
    pub fn udp(&mut self, destination: SocketAddr, datagram: &[u8]) {
        let payload = self.copy(datagram);
        self.queue.push_back(Transmit::Udp {
            destination,
            payload,
        });
    }

    /// Queues a copy of `packet` for network `network`'s TUN, and returns the copy for last
    /// edits (MSS clamping).
    pub fn tun(&mut self, network: u32, packet: &[u8]) -> &mut Vec<u8> {
        let packet = self.copy(packet);
        self.queue.push_back(Transmit::Tun { network, packet });
        match self.queue.back_mut() {
            Some(Transmit::Tun { packet, .. }) => packet,
            _ => unreachable!("just pushed"),
        }
    }

    /// The oldest transmit.
    pub fn pop(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }

    /// Takes back a buffer the shell is done with.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < MAX_SPARE {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    fn copy(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.extend_from_slice(bytes);
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_are_reused_empty() {
        let mut outputs = Outputs::default();
        let to: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        outputs.udp(to, &[0xaa; 64]);
        let Some(Transmit::Udp { payload, .. }) = outputs.pop() else {
            panic!("a datagram was queued")
        };
        let address = payload.as_ptr();
        outputs.recycle(payload);
        outputs.tun(7, b"second").push(b'!');
        let Some(Transmit::Tun { network, packet }) = outputs.pop() else {
            panic!("a packet was queued")
        };
        assert_eq!((network, packet.as_slice()), (7, b"second!".as_slice()));
        assert_eq!(packet.as_ptr(), address, "the recycled buffer was reused");
        assert!(outputs.pop().is_none());
    }
}
