//! Keeping tenant packets within a network's MTU.
//!
//! Between gateways every tenant packet grows by WireGuard's overhead and weft's 24 bytes of
//! labels, so a network's MTU is smaller than the underlay's. A packet that does not fit is
//! not fragmented: for IPv6 (which routers never fragment) and for IPv4 with Don't Fragment,
//! the gateway drops it and answers with the ICMP error that drives path MTU discovery
//! (RFC 1191 "fragmentation needed", RFC 8201 / RFC 4443 "packet too big"). Because ICMP is
//! filtered often enough to break discovery, TCP connections are also told the right segment
//! size up front by clamping the MSS option of their SYNs.
//!
//! All functions are pure, never panic, and allocate only by growing the caller's reply
//! buffer (which can be reused from packet to packet).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header, Ipv6ExtensionsSlice,
    Ipv6FlowLabel, Ipv6Header, TcpHeaderSlice, icmpv4::DestUnreachableHeader, ip_number,
};

use crate::packet::IpPacket;

/// The TTL / hop limit of the ICMP errors built here.
const REPLY_HOP_LIMIT: u8 = 64;
/// The IPv4 TOS of the ICMP errors: precedence 6, "internetwork control" (RFC 1812 4.3.2.5).
const REPLY_TOS_V4: u8 = 0xc0;
/// The largest ICMPv6 error (RFC 4443 2.4 (c)): the IPv6 minimum MTU.
const IPV6_MIN_MTU: usize = 1280;
/// How much of the offending IPv4 payload an ICMPv4 error quotes (RFC 792).
const V4_QUOTED_PAYLOAD: usize = 8;
/// ICMPv4 types that are error messages (RFC 792, RFC 1122 3.2.2).
const ICMPV4_ERROR_TYPES: [u8; 5] = [3, 4, 5, 11, 12];
/// TCP option kinds.
const TCP_OPTION_END: u8 = 0;
const TCP_OPTION_NOP: u8 = 1;
const TCP_OPTION_MSS: u8 = 2;
/// Offset of the checksum in a TCP header.
const TCP_CHECKSUM_OFFSET: usize = 16;
/// Length of a TCP header without options.
const TCP_MIN_HEADER_LEN: usize = 20;

/// Whether `packet` may not be forwarded over a link of `mtu` bytes and must be answered
/// with an ICMP "too big" error instead: it is longer than `mtu` and is either IPv6 or IPv4
/// with Don't Fragment set.
pub fn needs_too_big(packet: &IpPacket, mtu: u16) -> bool {
    packet.len() > usize::from(mtu) && (packet.is_ipv6() || packet.dont_fragment())
}

/// Builds into `out` the ICMP error telling `packet`'s source that the path MTU is `mtu`,
/// sent from `from` (the gateway's address in the network): ICMPv4 destination unreachable /
/// fragmentation needed with the next-hop MTU (RFC 1191), quoting the IP header and the
/// first 8 bytes of payload; or ICMPv6 packet too big (RFC 4443), quoting as much of the
/// packet as keeps the reply within 1280 bytes.
///
/// `out` is cleared first. Returns false, leaving `out` empty, when no error may be sent:
/// `from` is not of the packet's family or not a unicast address; the packet's source is
/// unspecified, multicast, loopback or (IPv4) broadcast; an IPv4 packet is to a
/// multicast/broadcast destination or is a non-initial fragment (RFC 1122 3.2.2); the packet
/// is itself an ICMP error, or its ICMP/extension headers cannot be read.
///
/// Whether the packet is too big is the caller's decision ([`needs_too_big`]).
pub fn too_big_reply(packet: &IpPacket, mtu: u16, from: IpAddr, out: &mut Vec<u8>) -> bool {
    out.clear();
    match (packet.source(), packet.destination(), from) {
        (IpAddr::V4(source), IpAddr::V4(destination), IpAddr::V4(from)) => {
            if !reply_allowed_v4(packet, source, destination, from) {
                return false;
            }
            write_v4_reply(packet, mtu, source, from, out)
        }
        (IpAddr::V6(source), IpAddr::V6(_), IpAddr::V6(from)) => {
            if !reply_allowed_v6(packet, source, from) {
                return false;
            }
            write_v6_reply(packet, mtu, source, from, out)
        }
        _ => false,
    }
}

fn bad_v4_source(a: Ipv4Addr) -> bool {
    a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback()
}

fn bad_v6_source(a: Ipv6Addr) -> bool {
    a.is_unspecified() || a.is_multicast() || a.is_loopback()
}

fn reply_allowed_v4(
    packet: &IpPacket,
    source: Ipv4Addr,
    destination: Ipv4Addr,
    from: Ipv4Addr,
) -> bool {
    if bad_v4_source(source) || bad_v4_source(from) {
        return false;
    }
    if destination.is_multicast() || destination.is_broadcast() {
        return false;
    }
    if packet.fragment_offset() != 0 {
        return false;
    }
    if packet.protocol() == ip_number::ICMP.0 {
        // An ICMP message too short to have a type is not worth an answer either.
        return match packet.payload().first() {
            Some(kind) => !ICMPV4_ERROR_TYPES.contains(kind),
            None => false,
        };
    }
    true
}

fn reply_allowed_v6(packet: &IpPacket, source: Ipv6Addr, from: Ipv6Addr) -> bool {
    if bad_v6_source(source) || bad_v6_source(from) {
        return false;
    }
    // Find the upper-layer protocol behind any extension headers.
    let Ok((_, next, rest)) =
        Ipv6ExtensionsSlice::from_slice(IpNumber(packet.protocol()), packet.payload())
    else {
        return false;
    };
    if next == ip_number::IPV6_ICMP {
        // ICMPv6 types 0..=127 are errors (RFC 4443 2.1).
        return match rest.first() {
            Some(&kind) => kind >= 128,
            None => false,
        };
    }
    true
}

fn write_v4_reply(
    packet: &IpPacket,
    mtu: u16,
    destination: Ipv4Addr,
    from: Ipv4Addr,
    out: &mut Vec<u8>,
) -> bool {
    let quoted_len = packet.len().min(packet.header_len() + V4_QUOTED_PAYLOAD);
    let Some(quoted) = packet.bytes().get(..quoted_len) else {
        return false;
    };
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: mtu,
        }),
        quoted,
    );
    let Ok(payload_len) = u16::try_from(icmp.header_len() + quoted.len()) else {
        return false;
    };
    let Ok(mut ip) = Ipv4Header::new(
        payload_len,
        REPLY_HOP_LIMIT,
        ip_number::ICMP,
        from.octets(),
        destination.octets(),
    ) else {
        return false;
    };
    ip.dscp = etherparse::IpDscp::try_new(REPLY_TOS_V4 >> 2).unwrap_or(etherparse::IpDscp::ZERO);
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&icmp.to_bytes());
    out.extend_from_slice(quoted);
    true
}

fn write_v6_reply(
    packet: &IpPacket,
    mtu: u16,
    destination: Ipv6Addr,
    from: Ipv6Addr,
    out: &mut Vec<u8>,
) -> bool {
    let icmp_type = Icmpv6Type::PacketTooBig {
        mtu: u32::from(mtu),
    };
    let room = IPV6_MIN_MTU - Ipv6Header::LEN - icmp_type.header_len();
    let Some(quoted) = packet.bytes().get(..packet.len().min(room)) else {
        return false;
    };
    let Ok(icmp) =
        Icmpv6Header::with_checksum(icmp_type, from.octets(), destination.octets(), quoted)
    else {
        return false;
    };
    let Ok(payload_length) = u16::try_from(icmp.header_len() + quoted.len()) else {
        return false;
    };
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length,
        next_header: ip_number::IPV6_ICMP,
        hop_limit: REPLY_HOP_LIMIT,
        source: from.octets(),
        destination: destination.octets(),
    };
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&icmp.to_bytes());
    out.extend_from_slice(quoted);
    true
}

/// Lowers the MSS option of a TCP SYN (with or without ACK) in `packet` to `max_mss`, and
/// fixes the TCP checksum incrementally (RFC 1624). Returns whether the packet changed.
///
/// Only IPv4 packets that are not non-initial fragments and IPv6 packets whose Next Header
/// is TCP directly are looked at. Anything else — not TCP, not a SYN, no MSS option, an MSS
/// already at most `max_mss`, a malformed IP header, TCP header or option list before the MSS
/// option — is left alone. An IPv4 header checksum is not affected (only TCP bytes change).
pub fn clamp_mss(packet: &mut [u8], max_mss: u16) -> bool {
    let Some((tcp_start, tcp_end)) = tcp_segment(packet) else {
        return false;
    };
    let Some(segment) = packet.get_mut(tcp_start..tcp_end) else {
        return false;
    };
    let Some(value_at) = mss_value_offset(segment) else {
        return false;
    };
    let Some(&[hi, lo]) = segment.get(value_at..value_at + 2) else {
        return false;
    };
    if u16::from_be_bytes([hi, lo]) <= max_mss {
        return false;
    }

    // The 16-bit words (aligned to the segment start) that the two MSS bytes touch: one
    // word when the value is aligned, two when it is not (e.g. after a single NOP).
    let words_start = value_at & !1;
    let words_end = (value_at + 3) & !1;
    let Some(old_words) = segment.get(words_start..words_end) else {
        return false;
    };
    let mut old = [0u8; 4];
    old[..old_words.len()].copy_from_slice(old_words);
    let words_len = old_words.len();

    segment[value_at..value_at + 2].copy_from_slice(&max_mss.to_be_bytes());

    let mut checksum = u16::from_be_bytes([
        segment[TCP_CHECKSUM_OFFSET],
        segment[TCP_CHECKSUM_OFFSET + 1],
    ]);
    for i in (0..words_len).step_by(2) {
        let at = words_start + i;
        let old_word = u16::from_be_bytes([old[i], old[i + 1]]);
        let new_word = u16::from_be_bytes([segment[at], segment[at + 1]]);
        checksum = checksum_update(checksum, old_word, new_word);
    }
    segment[TCP_CHECKSUM_OFFSET..TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&checksum.to_be_bytes());
    true
}

/// Where the TCP segment of `packet` lies, if it carries one from its first byte.
fn tcp_segment(packet: &[u8]) -> Option<(usize, usize)> {
    let ip = IpPacket::parse(packet).ok()?;
    if ip.protocol() != ip_number::TCP.0 || ip.fragment_offset() != 0 {
        return None;
    }
    Some((ip.header_len(), ip.len()))
}

/// The offset of the MSS value in a TCP SYN segment carrying a well-formed MSS option.
fn mss_value_offset(segment: &[u8]) -> Option<usize> {
    let tcp = TcpHeaderSlice::from_slice(segment).ok()?;
    if !tcp.syn() {
        return None;
    }
    let options = tcp.options();
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        match kind {
            TCP_OPTION_END => return None,
            TCP_OPTION_NOP => at += 1,
            _ => {
                let len = usize::from(*options.get(at + 1)?);
                if len < 2 || at + len > options.len() {
                    return None;
                }
                if kind == TCP_OPTION_MSS {
                    return (len == 4).then_some(TCP_MIN_HEADER_LEN + at + 2);
                }
                at += len;
            }
        }
    }
    None
}

/// RFC 1624 equation 3: the checksum after a 16-bit word changed from `old` to `new`,
/// HC' = ~(~HC + ~m + m').
fn checksum_update(checksum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The MSS that fills but does not exceed an MTU of `mtu`: `mtu` − 40 for IPv4 (20 IP + 20
/// TCP) and `mtu` − 60 for IPv6 (40 + 20); 0 if `mtu` is smaller than that.
pub fn mss_for_mtu(mtu: u16, v6: bool) -> u16 {
    mtu.saturating_sub(if v6 { 60 } else { 40 })
}

#[cfg(test)]
mod tests {
    use etherparse::{
        Icmpv4Slice, Icmpv6Slice, Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder,
        TcpOptionElement, icmpv4,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::packet::tests::{fix_ipv4_checksum, udp_v4, udp_v6};

    const SRC4: [u8; 4] = [10, 1, 0, 5];
    const DST4: [u8; 4] = [10, 2, 0, 9];
    const GW4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 5);
    const DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 9);
    const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

    fn tcp_v4(options: &[TcpOptionElement], syn: bool, ack: bool, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(SRC4, DST4, 64).tcp(40000, 443, 1234, 64240);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(99);
        }
        let b = b.options(options).unwrap();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn tcp_v6(options: &[TcpOptionElement], syn: bool, ack: bool, payload: &[u8]) -> Vec<u8> {
        let mut b =
            PacketBuilder::ipv6(SRC6.octets(), DST6.octets(), 64).tcp(40000, 443, 1234, 64240);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(99);
        }
        let b = b.options(options).unwrap();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// The MSS option and whether the TCP checksum is right, recomputed in full by etherparse.
    fn mss_and_checksum_ok(packet: &[u8]) -> (Option<u16>, bool) {
        let ip = IpPacket::parse(packet).unwrap();
        let tcp = TcpHeaderSlice::from_slice(ip.payload()).unwrap();
        let data = &ip.payload()[tcp.slice().len()..];
        let expected = match (ip.source(), ip.destination()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp
                .to_header()
                .calc_checksum_ipv4_raw(s.octets(), d.octets(), data)
                .unwrap(),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp
                .to_header()
                .calc_checksum_ipv6_raw(s.octets(), d.octets(), data)
                .unwrap(),
            _ => unreachable!(),
        };
        let mss = tcp.options_iterator().find_map(|o| match o {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        });
        (mss, tcp.checksum() == expected)
    }

    const TYPICAL: [TcpOptionElement; 5] = [
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(0x11223344, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ];

    #[test]
    fn clamps_ipv4_syn() {
        let mut p = tcp_v4(&TYPICAL, true, false, &[]);
        assert_eq!(mss_and_checksum_ok(&p), (Some(1460), true));
        let before = p.clone();
        assert!(clamp_mss(&mut p, 1380));
        assert_eq!(mss_and_checksum_ok(&p), (Some(1380), true));
        // Only the MSS value and the checksum changed; the IPv4 header is still valid.
        let changed: Vec<_> = (0..p.len()).filter(|&i| p[i] != before[i]).collect();
        assert!(
            changed.iter().all(|&i| [36, 37, 42, 43].contains(&i)),
            "{changed:?}"
        );
        assert!(IpPacket::parse(&p).is_ok());
    }

    #[test]
    fn clamps_ipv6_syn_ack() {
        let mut p = tcp_v6(&TYPICAL, true, true, &[]);
        assert!(clamp_mss(&mut p, 1220));
        assert_eq!(mss_and_checksum_ok(&p), (Some(1220), true));
    }

    #[test]
    fn clamps_unaligned_mss_option() {
        // A NOP first puts the MSS value at an odd offset of the TCP header.
        let options = [
            TcpOptionElement::Noop,
            TcpOptionElement::MaximumSegmentSize(0xfedc),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
        ];
        for build in [tcp_v4, tcp_v6] {
            let mut p = build(&options, true, false, b"odd");
            assert!(clamp_mss(&mut p, 0x1234));
            assert_eq!(mss_and_checksum_ok(&p), (Some(0x1234), true));
        }
    }

    #[test]
    fn leaves_small_mss_and_non_syn_alone() {
        let mut p = tcp_v4(&TYPICAL, true, false, &[]);
        let before = p.clone();
        assert!(!clamp_mss(&mut p, 1460));
        assert!(!clamp_mss(&mut p, 9000));
        assert_eq!(p, before);

        let mut ack_only = tcp_v4(&TYPICAL, false, true, &[]);
        assert!(!clamp_mss(&mut ack_only, 500));
        let mut no_mss = tcp_v4(&[TcpOptionElement::WindowScale(3)], true, false, &[]);
        assert!(!clamp_mss(&mut no_mss, 500));
        let mut no_options = tcp_v6(&[], true, false, &[]);
        assert!(!clamp_mss(&mut no_options, 500));
        let mut udp = udp_v4(b"not tcp at all, but long enough");
        assert!(!clamp_mss(&mut udp, 500));
        let mut udp = udp_v6(b"not tcp at all, but long enough");
        assert!(!clamp_mss(&mut udp, 500));
        assert!(!clamp_mss(&mut [], 500));
        assert!(!clamp_mss(&mut [0x45; 3], 500));
    }

    #[test]
    fn stops_at_end_of_option_list() {
        let mut p = tcp_v4(
            &[
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::MaximumSegmentSize(1460),
            ],
            true,
            false,
            &[],
        );
        p[40] = TCP_OPTION_END;
        assert!(!clamp_mss(&mut p, 1000));
    }

    #[test]
    fn malformed_options_are_left_alone() {
        let base = tcp_v4(&TYPICAL, true, false, &[]);
        // Option bytes are at 40..60 (IPv4 20 + TCP 20); MSS kind/len at 40/41.
        for (at, value) in [(41, 0u8), (41, 1), (41, 3), (41, 5), (41, 200)] {
            let mut p = base.clone();
            p[at] = value;
            let before = p.clone();
            assert!(!clamp_mss(&mut p, 1000), "len {value}");
            assert_eq!(p, before);
        }
        // An unknown option whose length runs past the header, before the MSS.
        let mut p = tcp_v4(
            &[
                TcpOptionElement::WindowScale(1),
                TcpOptionElement::Noop,
                TcpOptionElement::MaximumSegmentSize(1460),
            ],
            true,
            false,
            &[],
        );
        p[41] = 40;
        assert!(!clamp_mss(&mut p, 1000));
        // Data offset past the end of the segment, or below 5.
        let mut p = base.clone();
        p[32] = 0xf0;
        assert!(!clamp_mss(&mut p, 1000));
        let mut p = base.clone();
        p[32] = 0x40;
        assert!(!clamp_mss(&mut p, 1000));
    }

    #[test]
    fn ipv4_fragments_are_left_alone() {
        let mut p = tcp_v4(&TYPICAL, true, false, &[]);
        p[6] = 0x00;
        p[7] = 0x10; // offset 16 × 8 bytes
        fix_ipv4_checksum(&mut p);
        assert!(!clamp_mss(&mut p, 1000));
        // A first fragment still has the TCP header: it is clamped.
        let mut p = tcp_v4(&TYPICAL, true, false, &[]);
        p[6] = 0x20;
        fix_ipv4_checksum(&mut p);
        assert!(clamp_mss(&mut p, 1000));
    }

    #[test]
    fn ipv6_extension_headers_before_tcp_are_left_alone() {
        let mut p = tcp_v6(&TYPICAL, true, false, &[]);
        // Insert an empty destination options header (8 bytes) in front of TCP.
        p.splice(40..40, [6u8, 0, 1, 4, 0, 0, 0, 0]);
        p[6] = 60; // next header: destination options
        let payload = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        assert!(!clamp_mss(&mut p, 1000));
    }

    #[test]
    fn checksum_update_matches_rfc_1624_example() {
        // RFC 1624 section 4: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives 0x0000, not 0xFFFF.
        assert_eq!(checksum_update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn mss_for_mtu_values() {
        assert_eq!(mss_for_mtu(1500, false), 1460);
        assert_eq!(mss_for_mtu(1500, true), 1440);
        assert_eq!(mss_for_mtu(1380, false), 1340);
        assert_eq!(mss_for_mtu(1280, true), 1220);
        assert_eq!(mss_for_mtu(30, false), 0);
        assert_eq!(mss_for_mtu(59, true), 0);
    }

    fn big_v4(df: bool, len: usize) -> Vec<u8> {
        let mut p = udp_v4(&vec![0xab; len - 28]);
        if !df {
            p[6] &= !0x40;
            fix_ipv4_checksum(&mut p);
        }
        p
    }

    #[test]
    fn needs_too_big_rules() {
        let df = big_v4(true, 1400);
        let p = IpPacket::parse(&df).unwrap();
        assert!(needs_too_big(&p, 1399));
        assert!(!needs_too_big(&p, 1400));
        let no_df = big_v4(false, 1400);
        assert!(!needs_too_big(&IpPacket::parse(&no_df).unwrap(), 1000));
        let v6 = udp_v6(&[0; 1400 - 48]);
        let p = IpPacket::parse(&v6).unwrap();
        assert!(needs_too_big(&p, 1380));
        assert!(!needs_too_big(&p, 1400));
    }

    #[test]
    fn icmpv4_fragmentation_needed() {
        let packet = big_v4(true, 1400);
        let p = IpPacket::parse(&packet).unwrap();
        let mut out = vec![1, 2, 3];
        assert!(too_big_reply(&p, 1380, GW4.into(), &mut out));

        let reply = IpPacket::parse(&out).unwrap();
        assert_eq!(reply.source(), IpAddr::from(GW4));
        assert_eq!(reply.destination(), IpAddr::from(SRC_OF_UDP_V4));
        assert_eq!(reply.protocol(), 1);
        assert_eq!(reply.len(), out.len());
        assert_eq!(out.len(), 20 + 8 + 20 + 8);
        let ip = Ipv4HeaderSlice::from_slice(&out).unwrap();
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());

        let icmp = Icmpv4Slice::from_slice(reply.payload()).unwrap();
        assert_eq!(icmp.type_u8(), 3);
        assert_eq!(icmp.code_u8(), 4);
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1380 }
            )
        );
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );
        assert_eq!(icmp.payload(), &packet[..28]);
    }

    const SRC_OF_UDP_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const SRC_OF_UDP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    #[test]
    fn icmpv4_quotes_options_and_short_payloads() {
        // Header with one word of options, payload of 3 bytes: all of it is quoted.
        let mut packet = vec![0x46, 0, 0, 27, 0, 0, 0x40, 0, 64, 253, 0, 0];
        packet.extend_from_slice(&SRC4);
        packet.extend_from_slice(&DST4);
        packet.extend_from_slice(&[1, 1, 1, 0, 7, 8, 9]);
        fix_ipv4_checksum(&mut packet);
        let p = IpPacket::parse(&packet).unwrap();
        let mut out = Vec::new();
        assert!(too_big_reply(&p, 576, GW4.into(), &mut out));
        let reply = IpPacket::parse(&out).unwrap();
        let icmp = Icmpv4Slice::from_slice(reply.payload()).unwrap();
        assert_eq!(icmp.payload(), &packet[..]);
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );
    }

    #[test]
    fn icmpv6_packet_too_big() {
        let packet = udp_v6(&[0x5a; 1400 - 48]);
        let p = IpPacket::parse(&packet).unwrap();
        let mut out = Vec::new();
        assert!(too_big_reply(&p, 1380, GW6.into(), &mut out));
        assert_eq!(out.len(), 1280);

        let reply = IpPacket::parse(&out).unwrap();
        assert_eq!(reply.len(), 1280);
        assert_eq!(reply.source(), IpAddr::from(GW6));
        assert_eq!(reply.destination(), IpAddr::from(SRC_OF_UDP_V6));
        assert_eq!(reply.protocol(), 58);
        let ip = Ipv6HeaderSlice::from_slice(&out).unwrap();
        let icmp = Icmpv6Slice::from_slice(reply.payload()).unwrap();
        assert_eq!(icmp.type_u8(), 2);
        assert_eq!(icmp.code_u8(), 0);
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1380 });
        assert!(icmp.is_checksum_valid(ip.source(), ip.destination()));
        assert_eq!(icmp.payload(), &packet[..1280 - 48]);
    }

    #[test]
    fn icmpv6_quotes_small_packets_whole() {
        let packet = tcp_v6(&TYPICAL, true, false, b"data");
        let p = IpPacket::parse(&packet).unwrap();
        let mut out = Vec::new();
        assert!(too_big_reply(&p, 1280, GW6.into(), &mut out));
        let reply = IpPacket::parse(&out).unwrap();
        let ip = Ipv6HeaderSlice::from_slice(&out).unwrap();
        let icmp = Icmpv6Slice::from_slice(reply.payload()).unwrap();
        assert!(icmp.is_checksum_valid(ip.source(), ip.destination()));
        assert_eq!(icmp.payload(), &packet[..]);
        assert_eq!(out.len(), 48 + packet.len());
    }

    #[test]
    fn no_reply_across_families() {
        let v4 = big_v4(true, 1400);
        let mut out = vec![9];
        assert!(!too_big_reply(
            &IpPacket::parse(&v4).unwrap(),
            1280,
            GW6.into(),
            &mut out
        ));
        assert!(out.is_empty());
        let v6 = udp_v6(&[0; 1400]);
        assert!(!too_big_reply(
            &IpPacket::parse(&v6).unwrap(),
            1280,
            GW4.into(),
            &mut out
        ));
        assert!(out.is_empty());
    }

    fn v4_with(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut p = big_v4(true, 1400);
        edit(&mut p);
        fix_ipv4_checksum(&mut p);
        p
    }

    fn no_reply(packet: &[u8], from: IpAddr) -> bool {
        let mut out = Vec::new();
        let sent = too_big_reply(&IpPacket::parse(packet).unwrap(), 1280, from, &mut out);
        assert_eq!(sent, !out.is_empty());
        !sent
    }

    #[test]
    fn no_reply_to_bad_sources_or_destinations_v4() {
        for source in [
            [0, 0, 0, 0],
            [224, 0, 0, 5],
            [239, 1, 2, 3],
            [255, 255, 255, 255],
            [127, 0, 0, 1],
        ] {
            let p = v4_with(|p| p[12..16].copy_from_slice(&source));
            assert!(no_reply(&p, GW4.into()), "{source:?}");
        }
        for destination in [[224, 0, 0, 5], [255, 255, 255, 255]] {
            let p = v4_with(|p| p[16..20].copy_from_slice(&destination));
            assert!(no_reply(&p, GW4.into()), "{destination:?}");
        }
        let ok = big_v4(true, 1400);
        assert!(!no_reply(&ok, GW4.into()));
        assert!(no_reply(&ok, Ipv4Addr::UNSPECIFIED.into()));
        assert!(no_reply(&ok, Ipv4Addr::new(224, 0, 0, 1).into()));
    }

    #[test]
    fn no_reply_to_bad_sources_v6() {
        for source in [
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::LOCALHOST,
            "ff02::1".parse().unwrap(),
        ] {
            let mut p = udp_v6(&[0; 1400]);
            p[8..24].copy_from_slice(&source.octets());
            assert!(no_reply(&p, GW6.into()), "{source}");
        }
        let ok = udp_v6(&[0; 1400]);
        assert!(no_reply(&ok, Ipv6Addr::UNSPECIFIED.into()));
        // A multicast destination does get a packet too big (RFC 4443 2.4 (e.2)).
        let mut to_group = udp_v6(&[0; 1400]);
        to_group[24..40].copy_from_slice(&"ff0e::1".parse::<Ipv6Addr>().unwrap().octets());
        assert!(!no_reply(&to_group, GW6.into()));
    }

    #[test]
    fn no_reply_to_non_initial_ipv4_fragments() {
        let p = v4_with(|p| p[7] = 4);
        assert!(no_reply(&p, GW4.into()));
        let first = v4_with(|p| p[6] = 0x20);
        assert!(!no_reply(&first, GW4.into()));
    }

    fn icmpv4(icmp_type: Icmpv4Type, payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(SRC4, DST4, 64)
            .icmpv4(icmp_type)
            .write(&mut out, &vec![0; payload_len])
            .unwrap();
        out
    }

    fn icmpv6(icmp_type: Icmpv6Type, payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6(SRC6.octets(), DST6.octets(), 64)
            .icmpv6(icmp_type)
            .write(&mut out, &vec![0; payload_len])
            .unwrap();
        out
    }

    #[test]
    fn no_reply_to_icmp_errors() {
        use etherparse::{IcmpEchoHeader, icmpv6};
        let echo = IcmpEchoHeader { id: 1, seq: 2 };
        let errors = [
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host),
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1300 },
            ),
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
            Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::PointerIndicatesError(3)),
            Icmpv4Type::Redirect(icmpv4::RedirectHeader {
                code: icmpv4::RedirectCode::RedirectForHost,
                gateway_internet_address: [10, 0, 0, 1],
            }),
            Icmpv4Type::Unknown {
                type_u8: 4, // source quench
                code_u8: 0,
                bytes5to8: [0; 4],
            },
        ];
        for t in errors {
            assert!(no_reply(&icmpv4(t.clone(), 1400), GW4.into()), "{t:?}");
        }
        assert!(!no_reply(
            &icmpv4(Icmpv4Type::EchoRequest(echo), 1400),
            GW4.into()
        ));
        assert!(!no_reply(
            &icmpv4(Icmpv4Type::EchoReply(echo), 1400),
            GW4.into()
        ));

        let errors = [
            Icmpv6Type::PacketTooBig { mtu: 1280 },
            Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::NoRoute),
            Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded),
            Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader {
                code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                pointer: 0,
            }),
        ];
        for t in errors {
            assert!(no_reply(&icmpv6(t, 1400), GW6.into()), "{t:?}");
        }
        assert!(!no_reply(
            &icmpv6(Icmpv6Type::EchoRequest(echo), 1400),
            GW6.into()
        ));
    }

    #[test]
    fn no_reply_to_icmpv6_error_behind_extension_header() {
        let mut p = icmpv6(Icmpv6Type::PacketTooBig { mtu: 1280 }, 1400);
        p.splice(40..40, [58u8, 0, 1, 4, 0, 0, 0, 0]); // destination options -> ICMPv6
        p[6] = 60;
        let payload = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        assert!(no_reply(&p, GW6.into()));
        // Unreadable extension headers: no reply either.
        let mut p = udp_v6(&[0; 8]);
        p[6] = 60;
        p[41] = 200; // extension header length past the end
        assert!(no_reply(&p, GW6.into()));
    }

    #[test]
    fn no_reply_to_truncated_icmp() {
        let mut p = udp_v4(b"");
        p.truncate(20);
        p[2..4].copy_from_slice(&20u16.to_be_bytes());
        p[9] = 1;
        fix_ipv4_checksum(&mut p);
        assert!(no_reply(&p, GW4.into()));
        let mut p = udp_v6(b"");
        p.truncate(40);
        p[4..6].copy_from_slice(&0u16.to_be_bytes());
        p[6] = 58;
        assert!(no_reply(&p, GW6.into()));
    }

    fn syn_strategy() -> impl Strategy<Value = (Vec<u8>, u16)> {
        (
            any::<bool>(),
            any::<bool>(),
            0usize..4,
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<u16>(),
        )
            .prop_map(|(v6, ack, nops, mss, payload, max)| {
                let mut options = vec![TcpOptionElement::Noop; nops];
                options.push(TcpOptionElement::MaximumSegmentSize(mss));
                options.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
                let p = if v6 {
                    tcp_v6(&options, true, ack, &payload)
                } else {
                    tcp_v4(&options, true, ack, &payload)
                };
                (p, max)
            })
    }

    proptest! {
        #[test]
        fn clamp_keeps_checksums_valid((mut p, max) in syn_strategy()) {
            let (mss, ok) = mss_and_checksum_ok(&p);
            prop_assert!(ok);
            let mss = mss.unwrap();
            let changed = clamp_mss(&mut p, max);
            prop_assert_eq!(changed, mss > max);
            let (after, ok) = mss_and_checksum_ok(&p);
            prop_assert!(ok);
            prop_assert_eq!(after, Some(mss.min(max)));
            prop_assert!(IpPacket::parse(&p).is_ok());
        }

        #[test]
        fn clamp_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 0..120), max in any::<u16>()) {
            clamp_mss(&mut buf, max);
        }

        #[test]
        fn clamp_never_panics_on_mangled_syns(
            (p, max) in syn_strategy(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut p = p;
            let ip_len = if p[0] >> 4 == 4 { 20 } else { 40 };
            // Mangle the TCP header (options especially), keeping the IP header valid.
            for (i, x) in flips {
                let tcp_len = p.len() - ip_len;
                let i = ip_len + i.index(tcp_len);
                p[i] ^= x;
            }
            let mut p = p[..cut.index(p.len() + 1)].to_vec();
            clamp_mss(&mut p, max);
        }

        #[test]
        fn replies_always_parse(
            v6 in any::<bool>(),
            len in 60usize..3000,
            mtu in 576u16..9000,
        ) {
            let packet = if v6 { udp_v6(&vec![1; len]) } else { udp_v4(&vec![1; len]) };
            let p = IpPacket::parse(&packet).unwrap();
            let from = if v6 { IpAddr::from(GW6) } else { IpAddr::from(GW4) };
            let mut out = Vec::new();
            prop_assert!(too_big_reply(&p, mtu, from, &mut out));
            let reply = IpPacket::parse(&out).unwrap();
            prop_assert_eq!(reply.len(), out.len());
            prop_assert!(out.len() <= 1280);
            prop_assert_eq!(reply.destination(), p.source());
        }
    }
}
