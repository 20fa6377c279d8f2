//! IPv4 fragmentation (RFC 791) of packets a network's MTU cannot carry whole and that do
//! not forbid it. The forwarder is the one place that enforces a network's MTU: a packet
//! with Don't Fragment (or any IPv6 packet) gets an ICMP error instead (see `mtu`); one
//! without is split here, as any router on its path would.

use crate::packet::IpPacket;

/// Why a packet was not fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// Only IPv4 packets are fragmented by routers.
    #[error("only IPv4 packets are fragmented on the way")]
    NotIpv4,
    /// Don't Fragment is set: the sender must be told instead.
    #[error("the packet forbids fragmentation")]
    DontFragment,
    /// IP options would have to be sorted into copied and first-fragment-only ones; packets
    /// carrying them are too rare to be worth it and are dropped instead.
    #[error("the packet carries IP options")]
    HasOptions,
    /// The MTU leaves no room for 8 bytes of payload after the header.
    #[error("an MTU of {0} bytes cannot carry a fragment")]
    MtuTooSmall(u16),
}

const HEADER_LEN: usize = 20;
const MORE_FRAGMENTS: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Splits `packet` into fragments of at most `mtu` bytes each, appended to `out`, in order.
/// A packet that already fits is returned whole. Each fragment has the original header with
/// its own total length, fragment offset, More Fragments flag and checksum; a packet that
/// is itself a fragment keeps its offset base and, on its last piece, its own MF flag.
pub fn fragment_ipv4(
    packet: &IpPacket<'_>,
    mtu: u16,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), FragmentError> {
    if packet.len() <= usize::from(mtu) {
        out.push(packet.bytes().to_vec());
        return Ok(());
    }
    if !packet.is_ipv4() {
        return Err(FragmentError::NotIpv4);
    }
    if packet.dont_fragment() {
        return Err(FragmentError::DontFragment);
    }
    if packet.header_len() != HEADER_LEN {
        return Err(FragmentError::HasOptions);
    }
    let room = (usize::from(mtu).saturating_sub(HEADER_LEN) / 8) * 8;
    if room == 0 {
        return Err(FragmentError::MtuTooSmall(mtu));
    }
    let bytes = packet.bytes();
    let header = &bytes[..HEADER_LEN];
    let flags_and_offset = u16::from_be_bytes([header[6], header[7]]);
    let base_offset = flags_and_offset & OFFSET_MASK;
    let original_more = flags_and_offset & MORE_FRAGMENTS != 0;
    let payload = packet.payload();
    let mut start = 0;
    while start < payload.len() {
        let end = (start + room).min(payload.len());
        let last = end == payload.len();
        let mut fragment = Vec::with_capacity(HEADER_LEN + end - start);
        fragment.extend_from_slice(header);
        fragment.extend_from_slice(&payload[start..end]);
        let total = (HEADER_LEN + end - start) as u16;
        fragment[2..4].copy_from_slice(&total.to_be_bytes());
        let more = if last { original_more } else { true };
        // Offsets count 8-byte units; `start` is a multiple of 8 by construction.
        let offset = base_offset + (start / 8) as u16;
        let field = (flags_and_offset & !(OFFSET_MASK | MORE_FRAGMENTS))
            | if more { MORE_FRAGMENTS } else { 0 }
            | offset;
        fragment[6..8].copy_from_slice(&field.to_be_bytes());
        fragment[10..12].copy_from_slice(&[0, 0]);
        let checksum = header_checksum(&fragment[..HEADER_LEN]);
        fragment[10..12].copy_from_slice(&checksum.to_be_bytes());
        out.push(fragment);
        start = end;
    }
    Ok(())
}

fn header_checksum(header: &[u8]) -> u16 {
    let sum: u32 = header
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    !(((folded & 0xffff) + (folded >> 16)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4HeaderSlice, PacketBuilder};
    use proptest::prelude::*;

    fn udp(len: usize, df: bool) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 10, 1, 10], [10, 10, 2, 10], 64)
            .udp(1, 2)
            .write(&mut out, &(0..len).map(|i| i as u8).collect::<Vec<_>>())
            .unwrap();
        if !df {
            out[6] &= !0x40;
            out[10..12].copy_from_slice(&[0, 0]);
            let c = header_checksum(&out[..20]);
            out[10..12].copy_from_slice(&c.to_be_bytes());
        }
        out
    }

    /// Puts fragments back together the way a receiving host does.
    fn reassemble(fragments: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = Vec::new();
        for f in fragments {
            let h = Ipv4HeaderSlice::from_slice(f).unwrap();
            assert_eq!(
                usize::from(h.fragments_offset().value()) * 8,
                payload.len(),
                "in order, no gap"
            );
            assert_eq!(h.total_len() as usize, f.len());
            let mut check = f[..20].to_vec();
            check[10..12].copy_from_slice(&[0, 0]);
            assert_eq!(
                header_checksum(&check),
                h.header_checksum(),
                "valid checksum"
            );
            payload.extend_from_slice(&f[20..]);
        }
        let last = Ipv4HeaderSlice::from_slice(fragments.last().unwrap()).unwrap();
        assert!(!last.more_fragments(), "the last fragment ends the packet");
        payload
    }

    #[test]
    fn splits_into_eight_byte_aligned_fragments_within_the_mtu() {
        let original = udp(3000, false);
        let packet = IpPacket::parse(&original).unwrap();
        let mut out = Vec::new();
        fragment_ipv4(&packet, 1376, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|f| f.len() <= 1376));
        for f in &out[..2] {
            assert!(Ipv4HeaderSlice::from_slice(f).unwrap().more_fragments());
            assert_eq!((f.len() - 20) % 8, 0);
        }
        assert_eq!(reassemble(&out), original[20..]);
    }

    #[test]
    fn refuses_what_must_not_or_cannot_be_fragmented() {
        let mut out = Vec::new();
        let df = udp(3000, true);
        assert_eq!(
            fragment_ipv4(&IpPacket::parse(&df).unwrap(), 1376, &mut out),
            Err(FragmentError::DontFragment)
        );
        let small = udp(100, true);
        fragment_ipv4(&IpPacket::parse(&small).unwrap(), 1376, &mut out).unwrap();
        assert_eq!(
            out,
            vec![small],
            "a packet that fits passes whole, DF or not"
        );
        let big = udp(3000, false);
        assert_eq!(
            fragment_ipv4(&IpPacket::parse(&big).unwrap(), 27, &mut out),
            Err(FragmentError::MtuTooSmall(27))
        );
    }

    #[test]
    fn a_fragment_is_fragmented_further_keeping_its_offset_and_flag() {
        let original = udp(4000, false);
        let mut first = Vec::new();
        fragment_ipv4(&IpPacket::parse(&original).unwrap(), 2000, &mut first).unwrap();
        let mut again = Vec::new();
        for f in &first {
            fragment_ipv4(&IpPacket::parse(f).unwrap(), 600, &mut again).unwrap();
        }
        assert_eq!(reassemble(&again), original[20..]);
    }

    proptest! {
        #[test]
        fn reassembles_to_the_original(len in 0usize..9000, mtu in 28u16..9000) {
            let original = udp(len, false);
            let mut out = Vec::new();
            fragment_ipv4(&IpPacket::parse(&original).unwrap(), mtu, &mut out).unwrap();
            prop_assert!(out.iter().all(|f| f.len() <= usize::from(mtu)));
            if out.len() == 1 {
                prop_assert_eq!(&out[0], &original);
            } else {
                prop_assert_eq!(reassemble(&out), original[20..].to_vec());
            }
        }
    }
}
