//! weft's wire format between gateways: MPLS-in-IP inside WireGuard.
//!
//! Two gateways share one WireGuard session for all networks, so each tenant packet needs a
//! tag naming its network (VRF). weft uses standard encodings rather than its own so that
//! Wireshark (and anyone debugging with `tcpdump`) can read a decrypted capture:
//!
//! ```text
//! +----------------------------+  IPv4 header, 20 bytes, no options (RFC 791):
//! | outer IPv4                 |    source/destination = the two gateways' infra addresses,
//! |                            |    protocol 137 = MPLS-in-IP (RFC 4023), DF, TTL 64, ID 0,
//! |                            |    TOS = the inner packet's DSCP + ECN
//! +----------------------------+  one MPLS label stack entry, 4 bytes (RFC 3032):
//! | label:20 | TC:3 | S:1 | TTL:8 |  label = the network's label, TC 0, S = 1,
//! +----------------------------+    TTL = the inner TTL / hop limit
//! | tenant IPv4 or IPv6 packet |
//! +----------------------------+
//! ```
//!
//! [`encode`] writes into a caller's buffer and [`encode_in_place`] writes the 24 bytes in
//! front of a packet already sitting at offset [`LABEL_OVERHEAD`] of a buffer, so neither
//! allocates. [`decode`] is strict: whatever a peer sends that weft itself would not have
//! sent is an error, one [`DecodeError`] variant per reason so the core can count drops.

use std::net::Ipv4Addr;

use etherparse::{IpDscp, IpEcn, IpNumber, Ipv4Header};

use crate::packet::{IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, IpPacket, PacketError};

/// The IP protocol number of MPLS-in-IP (RFC 4023).
pub const IPPROTO_MPLS_IN_IP: u8 = 137;

/// Bytes weft adds in front of a tenant packet: a 20-byte IPv4 header and a 4-byte label
/// stack entry.
pub const LABEL_OVERHEAD: usize = OUTER_HEADER_LEN + LSE_LEN;

/// The smallest label weft uses: 0 to 15 are reserved by RFC 3032.
pub const MIN_LABEL: u32 = 16;

/// The largest label: labels are 20 bits wide.
pub const MAX_LABEL: u32 = (1 << 20) - 1;

const OUTER_HEADER_LEN: usize = 20;
const LSE_LEN: usize = 4;
const OUTER_TTL: u8 = 64;
const LSE_BOTTOM_OF_STACK: u32 = 1 << 8;

/// Why a tenant packet could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    /// The label is reserved (0–15) or wider than 20 bits.
    #[error("label outside 16..=1048575")]
    LabelOutOfRange,
    /// The inner packet's version nibble is neither 4 nor 6 (or it is empty).
    #[error("inner packet is neither IPv4 nor IPv6")]
    NotIp,
    /// The inner packet is shorter than its fixed IP header.
    #[error("inner packet shorter than its IP header")]
    InnerTruncated,
    /// The inner packet's own length field does not match the slice given.
    #[error("inner packet length field does not match its length")]
    InnerLengthMismatch,
    /// The encoded packet would be longer than an IPv4 total length can say (65535).
    #[error("inner packet too long to encapsulate")]
    InnerTooLong,
    /// The output buffer cannot hold the encoded packet.
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl EncodeError {
    /// A short stable name for the reason, usable as a counter label.
    pub fn reason(self) -> &'static str {
        match self {
            EncodeError::LabelOutOfRange => "label_out_of_range",
            EncodeError::NotIp => "not_ip",
            EncodeError::InnerTruncated => "inner_truncated",
            EncodeError::InnerLengthMismatch => "inner_length_mismatch",
            EncodeError::InnerTooLong => "inner_too_long",
            EncodeError::BufferTooSmall => "buffer_too_small",
        }
    }
}

/// Why a packet from a gateway peer is not a valid weft labelled packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than an IPv4 header, or empty.
    #[error("shorter than an IPv4 header")]
    TooShort,
    /// The outer packet is not IPv4.
    #[error("outer packet is not IPv4")]
    NotIpv4,
    /// The outer IHL is not 5: weft never sends IPv4 options, and IHL < 5 is malformed.
    #[error("outer IPv4 header length is not 20")]
    BadHeaderLength,
    /// The outer total length is smaller than the outer header.
    #[error("outer total length smaller than its header")]
    BadTotalLength,
    /// The outer total length is larger than the buffer.
    #[error("outer packet shorter than its total length")]
    Truncated,
    /// The outer header checksum is wrong.
    #[error("outer IPv4 header checksum mismatch")]
    BadChecksum,
    /// The outer packet is a fragment (MF set or a non-zero offset).
    #[error("outer packet is a fragment")]
    Fragment,
    /// The outer protocol is not 137 (MPLS-in-IP).
    #[error("outer protocol is not MPLS-in-IP (137)")]
    NotMplsInIp,
    /// No room for a label stack entry after the outer header.
    #[error("no MPLS label stack entry")]
    MissingLabel,
    /// The label stack entry does not have the bottom-of-stack bit: weft sends exactly one.
    #[error("more than one MPLS label stack entry")]
    LabelStackTooDeep,
    /// The label is one of the reserved labels 0–15.
    #[error("reserved MPLS label")]
    ReservedLabel,
    /// Nothing, or less than the inner packet's fixed header, follows the label.
    #[error("inner packet truncated")]
    InnerTruncated,
    /// The inner packet's version nibble is neither 4 nor 6.
    #[error("inner packet is neither IPv4 nor IPv6")]
    InnerNotIp,
    /// The inner IPv4 total length is smaller than an IPv4 header.
    #[error("inner IPv4 total length smaller than a header")]
    InnerBadLength,
    /// Bytes follow the inner packet's declared length inside the outer packet.
    #[error("trailing bytes after the inner packet")]
    InnerTrailingBytes,
}

impl DecodeError {
    /// A short stable name for the reason, usable as a counter label.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::TooShort => "too_short",
            DecodeError::NotIpv4 => "not_ipv4",
            DecodeError::BadHeaderLength => "bad_header_length",
            DecodeError::BadTotalLength => "bad_total_length",
            DecodeError::Truncated => "truncated",
            DecodeError::BadChecksum => "bad_checksum",
            DecodeError::Fragment => "fragment",
            DecodeError::NotMplsInIp => "not_mpls_in_ip",
            DecodeError::MissingLabel => "missing_label",
            DecodeError::LabelStackTooDeep => "label_stack_too_deep",
            DecodeError::ReservedLabel => "reserved_label",
            DecodeError::InnerTruncated => "inner_truncated",
            DecodeError::InnerNotIp => "inner_not_ip",
            DecodeError::InnerBadLength => "inner_bad_length",
            DecodeError::InnerTrailingBytes => "inner_trailing_bytes",
        }
    }
}

/// A decoded labelled packet, borrowing the tenant packet from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Labelled<'a> {
    /// The outer source: the sending gateway's infra address.
    pub source: Ipv4Addr,
    /// The outer destination: the receiving gateway's infra address.
    pub destination: Ipv4Addr,
    /// The MPLS label naming the network (16..=1048575).
    pub label: u32,
    /// The tenant packet (IPv4 or IPv6), exactly as long as its own header declares.
    pub inner: &'a [u8],
}

/// What the tenant packet tells the outer headers, and the length its header declares.
struct InnerFacts {
    /// The inner DSCP + ECN byte.
    traffic_class: u8,
    /// The inner TTL / hop limit.
    ttl: u8,
    /// The inner packet's length according to its own header.
    declared_len: usize,
}

enum InnerError {
    NotIp,
    Truncated,
    BadLength,
}

/// Reads the version, traffic class, TTL and declared length of the IP packet at the start
/// of `inner`, checking only what is needed to read them.
fn inner_facts(inner: &[u8]) -> Result<InnerFacts, InnerError> {
    let first = *inner.first().ok_or(InnerError::Truncated)?;
    match first >> 4 {
        4 => {
            let header = inner
                .get(..IPV4_MIN_HEADER_LEN)
                .ok_or(InnerError::Truncated)?;
            let declared_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            if declared_len < IPV4_MIN_HEADER_LEN {
                return Err(InnerError::BadLength);
            }
            Ok(InnerFacts {
                traffic_class: header[1],
                ttl: header[8],
                declared_len,
            })
        }
        6 => {
            let header = inner.get(..IPV6_HEADER_LEN).ok_or(InnerError::Truncated)?;
            Ok(InnerFacts {
                traffic_class: (header[0] << 4) | (header[1] >> 4),
                ttl: header[7],
                declared_len: IPV6_HEADER_LEN
                    + usize::from(u16::from_be_bytes([header[4], header[5]])),
            })
        }
        _ => Err(InnerError::NotIp),
    }
}

/// Encodes `inner` for the gateway at `destination`: writes the outer IPv4 header, the label
/// stack entry and a copy of `inner` to the start of `out` and returns the number of bytes
/// written (`inner.len() + LABEL_OVERHEAD`).
///
/// `inner` must be exactly one IPv4 or IPv6 packet: its own length field must equal
/// `inner.len()` (as [`IpPacket::bytes`] guarantees). Nothing is written on error.
pub fn encode(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    label: u32,
    inner: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let facts = check_encode(label, inner)?;
    let out = out
        .get_mut(..LABEL_OVERHEAD + inner.len())
        .ok_or(EncodeError::BufferTooSmall)?;
    let (head, body) = out.split_at_mut(LABEL_OVERHEAD);
    body.copy_from_slice(inner);
    write_head(source, destination, label, &facts, head)?;
    Ok(out.len())
}

/// Like [`encode`], without a copy: the tenant packet already sits at
/// `buf[LABEL_OVERHEAD..]` (a shell reads it there, leaving headroom) and the outer header
/// and label are written into `buf[..LABEL_OVERHEAD]`. Returns `buf.len()`.
///
/// `buf[LABEL_OVERHEAD..]` must be exactly the tenant packet (see [`encode`]); a `buf`
/// shorter than [`LABEL_OVERHEAD`] is [`EncodeError::BufferTooSmall`]. Nothing is written on
/// error.
pub fn encode_in_place(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    label: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let (head, inner) = buf
        .split_at_mut_checked(LABEL_OVERHEAD)
        .ok_or(EncodeError::BufferTooSmall)?;
    let facts = check_encode(label, inner)?;
    write_head(source, destination, label, &facts, head)?;
    Ok(buf.len())
}

/// Checks the label and the tenant packet and reads what the outer headers copy from it.
fn check_encode(label: u32, inner: &[u8]) -> Result<InnerFacts, EncodeError> {
    if !(MIN_LABEL..=MAX_LABEL).contains(&label) {
        return Err(EncodeError::LabelOutOfRange);
    }
    let facts = inner_facts(inner).map_err(|e| match e {
        InnerError::NotIp => EncodeError::NotIp,
        InnerError::Truncated => EncodeError::InnerTruncated,
        InnerError::BadLength => EncodeError::InnerLengthMismatch,
    })?;
    if facts.declared_len != inner.len() {
        return Err(EncodeError::InnerLengthMismatch);
    }
    if inner.len() + LABEL_OVERHEAD > usize::from(u16::MAX) {
        return Err(EncodeError::InnerTooLong);
    }
    Ok(facts)
}

/// Writes the outer IPv4 header and the label stack entry into `head`
/// (`LABEL_OVERHEAD` bytes) for a checked tenant packet.
fn write_head(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    label: u32,
    facts: &InnerFacts,
    head: &mut [u8],
) -> Result<(), EncodeError> {
    let payload_len =
        u16::try_from(LSE_LEN + facts.declared_len).map_err(|_| EncodeError::InnerTooLong)?;
    let mut outer = Ipv4Header::new(
        payload_len,
        OUTER_TTL,
        IpNumber(IPPROTO_MPLS_IN_IP),
        source.octets(),
        destination.octets(),
    )
    .map_err(|_| EncodeError::InnerTooLong)?;
    // Both conversions cannot fail: 6 and 2 bits.
    outer.dscp = IpDscp::try_new(facts.traffic_class >> 2).unwrap_or(IpDscp::ZERO);
    outer.ecn = IpEcn::try_new(facts.traffic_class & 0b11).unwrap_or(IpEcn::ZERO);
    outer.identification = 0;
    outer.dont_fragment = true;
    outer.header_checksum = outer.calc_header_checksum();
    let (ip, lse_bytes) = head
        .split_first_chunk_mut::<OUTER_HEADER_LEN>()
        .ok_or(EncodeError::BufferTooSmall)?;
    ip.copy_from_slice(&outer.to_bytes());

    // TC 0, bottom of stack, TTL copied from the tenant packet (uniform model, RFC 3443).
    let lse = (label << 12) | LSE_BOTTOM_OF_STACK | u32::from(facts.ttl);
    lse_bytes
        .get_mut(..LSE_LEN)
        .ok_or(EncodeError::BufferTooSmall)?
        .copy_from_slice(&lse.to_be_bytes());
    Ok(())
}

/// Decodes a packet received from a gateway peer (after WireGuard decryption).
///
/// Accepts exactly what [`encode`] produces, up to the outer addresses, TOS, TTL, DF,
/// identification and the label's TC and TTL, which are not checked (the core checks the
/// source against the peer's infra address). Bytes after the outer total length (padding)
/// are ignored; bytes inside it after the inner packet are an error.
pub fn decode(packet: &[u8]) -> Result<Labelled<'_>, DecodeError> {
    let outer = IpPacket::parse(packet).map_err(|e| match e {
        PacketError::Empty | PacketError::TooShort => DecodeError::TooShort,
        PacketError::UnknownVersion => DecodeError::NotIpv4,
        PacketError::BadHeaderLength => DecodeError::BadHeaderLength,
        PacketError::BadTotalLength => DecodeError::BadTotalLength,
        PacketError::Truncated => DecodeError::Truncated,
        PacketError::BadChecksum => DecodeError::BadChecksum,
    })?;
    let header = outer.ipv4_header().ok_or(DecodeError::NotIpv4)?;
    if header.ihl() != 5 {
        return Err(DecodeError::BadHeaderLength);
    }
    if outer.is_fragment() {
        return Err(DecodeError::Fragment);
    }
    if outer.protocol() != IPPROTO_MPLS_IN_IP {
        return Err(DecodeError::NotMplsInIp);
    }
    let (lse, inner) = outer
        .payload()
        .split_first_chunk::<LSE_LEN>()
        .ok_or(DecodeError::MissingLabel)?;
    let lse = u32::from_be_bytes(*lse);
    if lse & LSE_BOTTOM_OF_STACK == 0 {
        return Err(DecodeError::LabelStackTooDeep);
    }
    let label = lse >> 12;
    if label < MIN_LABEL {
        return Err(DecodeError::ReservedLabel);
    }
    let facts = inner_facts(inner).map_err(|e| match e {
        InnerError::NotIp => DecodeError::InnerNotIp,
        InnerError::Truncated => DecodeError::InnerTruncated,
        InnerError::BadLength => DecodeError::InnerBadLength,
    })?;
    if facts.declared_len > inner.len() {
        return Err(DecodeError::InnerTruncated);
    }
    if facts.declared_len < inner.len() {
        return Err(DecodeError::InnerTrailingBytes);
    }
    Ok(Labelled {
        source: header.source_addr(),
        destination: header.destination_addr(),
        label,
        inner,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use etherparse::{Ipv4HeaderSlice, PacketBuilder};
    use proptest::prelude::*;

    use super::*;
    use crate::packet::tests::{fix_ipv4_checksum, udp_v4, udp_v6};

    const A: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

    fn encoded(label: u32, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![0; inner.len() + LABEL_OVERHEAD];
        let n = encode(A, B, label, inner, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn overhead_is_24() {
        assert_eq!(LABEL_OVERHEAD, 24);
        assert_eq!(IPPROTO_MPLS_IN_IP, 137);
    }

    /// The exact bytes, worked out by hand from RFC 791, RFC 4023 and RFC 3032.
    #[test]
    fn golden_bytes() {
        let mut inner = udp_v4(b"hi");
        inner[1] = 0xb9; // DSCP EF, ECN ECT(1)
        fix_ipv4_checksum(&mut inner);
        let out = encoded(0x12345, &inner);
        let total = (inner.len() + 24) as u16;
        let mut expected: Vec<u8> = vec![
            0x45, 0xb9, // version 4, IHL 5; TOS copied from the inner packet
        ];
        expected.extend_from_slice(&total.to_be_bytes());
        expected.extend_from_slice(&[
            0x00, 0x00, // identification 0
            0x40, 0x00, // DF, offset 0
            64, 137, // TTL 64, protocol MPLS-in-IP
            0x00, 0x00, // checksum, filled in below
            100, 64, 0, 1, // source
            100, 64, 0, 2, // destination
            // label 0x12345, TC 0, S 1, TTL 61 (the inner TTL)
            0x12, 0x34, 0x51, 61,
        ]);
        // The RFC 1071 checksum computed independently of etherparse.
        let mut sum: u32 = expected[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        expected[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        expected.extend_from_slice(&inner);
        assert_eq!(out, expected);
    }

    #[test]
    fn outer_header_is_valid_for_etherparse() {
        let inner = udp_v6(b"payload");
        let out = encoded(4242, &inner);
        let h = Ipv4HeaderSlice::from_slice(&out).unwrap();
        assert_eq!(h.ihl(), 5);
        assert_eq!(usize::from(h.total_len()), out.len());
        assert_eq!(h.protocol(), IpNumber(137));
        assert_eq!(h.ttl(), 64);
        assert!(h.dont_fragment() && !h.more_fragments());
        assert_eq!(h.fragments_offset().value(), 0);
        assert_eq!(h.identification(), 0);
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        assert_eq!(h.source_addr(), A);
        assert_eq!(h.destination_addr(), B);
        let lse = u32::from_be_bytes(out[20..24].try_into().unwrap());
        assert_eq!(lse >> 12, 4242);
        assert_eq!((lse >> 9) & 0b111, 0, "TC");
        assert_eq!((lse >> 8) & 1, 1, "S");
        assert_eq!(lse & 0xff, 17, "TTL = inner hop limit");
        assert_eq!(&out[24..], &inner[..]);
    }

    #[test]
    fn ipv6_traffic_class_goes_to_outer_tos() {
        let mut inner = udp_v6(b"x");
        inner[0] = 0x6b; // traffic class 0xb9 ...
        inner[1] = 0x90; // ... split over two bytes
        let out = encoded(16, &inner);
        assert_eq!(out[1], 0xb9);
        assert!(IpPacket::parse(&out).is_ok(), "checksum still valid");
    }

    #[test]
    fn round_trip_both_versions() {
        for inner in [udp_v4(b"four"), udp_v6(b"six")] {
            let out = encoded(MAX_LABEL, &inner);
            let l = decode(&out).unwrap();
            assert_eq!(
                l,
                Labelled {
                    source: A,
                    destination: B,
                    label: MAX_LABEL,
                    inner: &inner
                }
            );
        }
    }

    #[test]
    fn encode_in_place_matches_encode() {
        let inner = udp_v4(b"in place");
        let copied = encoded(777, &inner);
        let mut buf = vec![0xaa; LABEL_OVERHEAD];
        buf.extend_from_slice(&inner);
        assert_eq!(encode_in_place(A, B, 777, &mut buf), Ok(buf.len()));
        assert_eq!(buf, copied);
    }

    #[test]
    fn encode_errors() {
        let inner = udp_v4(b"x");
        let mut out = vec![0u8; 2000];
        for label in [0, 1, 15, MAX_LABEL + 1, u32::MAX] {
            assert_eq!(
                encode(A, B, label, &inner, &mut out),
                Err(EncodeError::LabelOutOfRange)
            );
        }
        assert_eq!(
            encode(A, B, 16, &[], &mut out),
            Err(EncodeError::InnerTruncated)
        );
        let mut not_ip = inner.clone();
        not_ip[0] = 0x55;
        assert_eq!(encode(A, B, 16, &not_ip, &mut out), Err(EncodeError::NotIp));
        assert_eq!(
            encode(A, B, 16, &inner[..19], &mut out),
            Err(EncodeError::InnerTruncated)
        );
        let v6 = udp_v6(b"");
        assert_eq!(
            encode(A, B, 16, &v6[..39], &mut out),
            Err(EncodeError::InnerTruncated)
        );
        // Length field disagreeing with the slice: shorter, longer, and below a header.
        assert_eq!(
            encode(A, B, 16, &inner[..inner.len() - 1], &mut out),
            Err(EncodeError::InnerLengthMismatch)
        );
        let mut padded = inner.clone();
        padded.push(0);
        assert_eq!(
            encode(A, B, 16, &padded, &mut out),
            Err(EncodeError::InnerLengthMismatch)
        );
        let mut tiny = inner.clone();
        tiny[2..4].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            encode(A, B, 16, &tiny, &mut out),
            Err(EncodeError::InnerLengthMismatch)
        );
        // Too small an output: one byte short, and nothing written.
        let mut small = vec![0u8; inner.len() + LABEL_OVERHEAD - 1];
        assert_eq!(
            encode(A, B, 16, &inner, &mut small),
            Err(EncodeError::BufferTooSmall)
        );
        assert!(small.iter().all(|&b| b == 0));
        assert_eq!(
            encode_in_place(A, B, 16, &mut [0u8; 23]),
            Err(EncodeError::BufferTooSmall)
        );
    }

    #[test]
    fn encode_error_inner_too_long() {
        // Largest IPv4 inner packet: 65535 bytes; 65535 + 24 does not fit.
        let mut big = vec![0u8; 65535];
        big[0] = 0x45;
        big[2..4].copy_from_slice(&65535u16.to_be_bytes());
        let mut out = vec![0u8; 70000];
        assert_eq!(
            encode(A, B, 16, &big, &mut out),
            Err(EncodeError::InnerTooLong)
        );
        // The largest that fits.
        let fits = 65535 - LABEL_OVERHEAD;
        let mut ok = vec![0u8; fits];
        ok[0] = 0x45;
        ok[2..4].copy_from_slice(&(fits as u16).to_be_bytes());
        assert_eq!(encode(A, B, 16, &ok, &mut out), Ok(65535));
        assert_eq!(decode(&out[..65535]).unwrap().inner.len(), fits);
    }

    /// A valid encoded packet after `edit`, with the outer checksum fixed up again.
    fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = encoded(100, &udp_v4(b"abcdef"));
        edit(&mut out);
        fix_ipv4_checksum(&mut out);
        out
    }

    fn set_total(buf: &mut [u8], total: usize) {
        buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    }

    #[test]
    fn decode_error_too_short() {
        assert_eq!(decode(&[]), Err(DecodeError::TooShort));
        let ok = encoded(100, &udp_v4(b""));
        assert_eq!(decode(&ok[..19]), Err(DecodeError::TooShort));
    }

    #[test]
    fn decode_error_not_ipv4() {
        assert_eq!(decode(&udp_v6(b"")), Err(DecodeError::NotIpv4));
        let mut bad = encoded(100, &udp_v4(b""));
        bad[0] = 0x55;
        assert_eq!(decode(&bad), Err(DecodeError::NotIpv4));
    }

    #[test]
    fn decode_error_bad_header_length() {
        let ihl_4 = edited(|b| b[0] = 0x44);
        assert_eq!(decode(&ihl_4), Err(DecodeError::BadHeaderLength));
        // IHL 6: a well-formed header with options, which weft never sends.
        let ihl_6 = edited(|b| {
            b.splice(20..20, [1u8, 1, 1, 1]);
            b[0] = 0x46;
            let len = b.len();
            set_total(b, len);
        });
        assert!(IpPacket::parse(&ihl_6).is_ok());
        assert_eq!(decode(&ihl_6), Err(DecodeError::BadHeaderLength));
    }

    #[test]
    fn decode_error_bad_total_length() {
        let bad = edited(|b| set_total(b, 19));
        assert_eq!(decode(&bad), Err(DecodeError::BadTotalLength));
    }

    #[test]
    fn decode_error_truncated() {
        let bad = edited(|b| {
            let len = b.len();
            set_total(b, len + 1);
        });
        assert_eq!(decode(&bad), Err(DecodeError::Truncated));
    }

    #[test]
    fn decode_error_bad_checksum() {
        let mut bad = encoded(100, &udp_v4(b""));
        bad[10] ^= 0x80;
        assert_eq!(decode(&bad), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn decode_error_fragment() {
        let mf = edited(|b| b[6] |= 0x20);
        assert_eq!(decode(&mf), Err(DecodeError::Fragment));
        let offset = edited(|b| b[7] = 1);
        assert_eq!(decode(&offset), Err(DecodeError::Fragment));
    }

    #[test]
    fn decode_error_not_mpls_in_ip() {
        assert_eq!(decode(&udp_v4(b"abcdefgh")), Err(DecodeError::NotMplsInIp));
        let ip_in_ip = edited(|b| b[9] = 4);
        assert_eq!(decode(&ip_in_ip), Err(DecodeError::NotMplsInIp));
    }

    #[test]
    fn decode_error_missing_label() {
        for keep in 20..24 {
            let bad = edited(|b| {
                b.truncate(keep);
                set_total(b, keep);
            });
            assert_eq!(decode(&bad), Err(DecodeError::MissingLabel));
        }
    }

    #[test]
    fn decode_error_label_stack_too_deep() {
        let bad = edited(|b| b[22] &= !1);
        assert_eq!(decode(&bad), Err(DecodeError::LabelStackTooDeep));
    }

    #[test]
    fn decode_error_reserved_label() {
        for label in [0u32, 3, 15] {
            let bad = edited(|b| {
                let lse = (label << 12) | LSE_BOTTOM_OF_STACK | 64;
                b[20..24].copy_from_slice(&lse.to_be_bytes());
            });
            assert_eq!(decode(&bad), Err(DecodeError::ReservedLabel));
        }
        let sixteen = edited(|b| {
            let lse = (16 << 12) | LSE_BOTTOM_OF_STACK | 64;
            b[20..24].copy_from_slice(&lse.to_be_bytes());
        });
        assert_eq!(decode(&sixteen).unwrap().label, 16);
    }

    #[test]
    fn decode_error_inner_truncated() {
        // Nothing after the label.
        let empty = edited(|b| {
            b.truncate(24);
            set_total(b, 24);
        });
        assert_eq!(decode(&empty), Err(DecodeError::InnerTruncated));
        // Less than an inner IPv4 header.
        let short = edited(|b| {
            b.truncate(24 + 19);
            set_total(b, 24 + 19);
        });
        assert_eq!(decode(&short), Err(DecodeError::InnerTruncated));
        // Inner length field larger than what remains, v4 and v6.
        let longer = edited(|b| {
            let inner_len = u16::from_be_bytes([b[26], b[27]]);
            b[26..28].copy_from_slice(&(inner_len + 1).to_be_bytes());
        });
        assert_eq!(decode(&longer), Err(DecodeError::InnerTruncated));
        let mut v6 = encoded(100, &udp_v6(b"abc"));
        v6[24 + 5] += 1;
        assert_eq!(decode(&v6), Err(DecodeError::InnerTruncated));
        let v6_short = {
            let mut b = encoded(100, &udp_v6(b""));
            b.truncate(24 + 39);
            set_total(&mut b, 24 + 39);
            fix_ipv4_checksum(&mut b);
            b
        };
        assert_eq!(decode(&v6_short), Err(DecodeError::InnerTruncated));
    }

    #[test]
    fn decode_error_inner_not_ip() {
        for first in [0x00u8, 0x45 | 0x10, 0x50, 0xf0] {
            let bad = edited(|b| b[24] = first);
            assert_eq!(decode(&bad), Err(DecodeError::InnerNotIp));
        }
    }

    #[test]
    fn decode_error_inner_bad_length() {
        let bad = edited(|b| b[26..28].copy_from_slice(&19u16.to_be_bytes()));
        assert_eq!(decode(&bad), Err(DecodeError::InnerBadLength));
    }

    #[test]
    fn decode_error_inner_trailing_bytes() {
        let bad = edited(|b| {
            b.push(0);
            let len = b.len();
            set_total(b, len);
        });
        assert_eq!(decode(&bad), Err(DecodeError::InnerTrailingBytes));
        let mut v6 = encoded(100, &udp_v6(b"abc"));
        v6[24 + 5] -= 1;
        assert_eq!(decode(&v6), Err(DecodeError::InnerTrailingBytes));
    }

    #[test]
    fn decode_ignores_padding_after_outer_packet() {
        let inner = udp_v4(b"abc");
        let mut out = encoded(100, &inner);
        out.extend_from_slice(&[0; 13]);
        assert_eq!(decode(&out).unwrap().inner, &inner[..]);
    }

    #[test]
    fn reasons_are_distinct() {
        use DecodeError::*;
        let all = [
            TooShort,
            NotIpv4,
            BadHeaderLength,
            BadTotalLength,
            Truncated,
            BadChecksum,
            Fragment,
            NotMplsInIp,
            MissingLabel,
            LabelStackTooDeep,
            ReservedLabel,
            InnerTruncated,
            InnerNotIp,
            InnerBadLength,
            InnerTrailingBytes,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(names.len(), all.len());
        use EncodeError as E;
        let all = [
            E::LabelOutOfRange,
            E::NotIp,
            E::InnerTruncated,
            E::InnerLengthMismatch,
            E::InnerTooLong,
            E::BufferTooSmall,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(names.len(), all.len());
    }

    fn inner_packet() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(v6, tc, ttl, payload)| {
                let mut out = Vec::new();
                if v6 {
                    PacketBuilder::ipv6(
                        Ipv6Addr::LOCALHOST.octets(),
                        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9).octets(),
                        ttl,
                    )
                    .udp(7, 9)
                    .write(&mut out, &payload)
                    .unwrap();
                    out[0] = 0x60 | (tc >> 4);
                    out[1] = (tc << 4) | (out[1] & 0x0f);
                } else {
                    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], ttl)
                        .udp(7, 9)
                        .write(&mut out, &payload)
                        .unwrap();
                    out[1] = tc;
                    fix_ipv4_checksum(&mut out);
                }
                out
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            source in any::<[u8; 4]>(),
            destination in any::<[u8; 4]>(),
            label in MIN_LABEL..=MAX_LABEL,
            inner in inner_packet(),
            slack in 0usize..16,
        ) {
            let (source, destination) = (Ipv4Addr::from(source), Ipv4Addr::from(destination));
            let mut out = vec![0u8; inner.len() + LABEL_OVERHEAD + slack];
            let n = encode(source, destination, label, &inner, &mut out).unwrap();
            prop_assert_eq!(n, inner.len() + LABEL_OVERHEAD);
            let l = decode(&out[..n]).unwrap();
            prop_assert_eq!(l, Labelled { source, destination, label, inner: &inner });
            // The outer packet is a valid IP packet carrying the inner traffic class and TTL.
            let outer = IpPacket::parse(&out[..n]).unwrap();
            let inner_view = IpPacket::parse(&inner).unwrap();
            prop_assert_eq!(outer.traffic_class(), inner_view.traffic_class());
            prop_assert_eq!(u32::from(inner_view.hop_limit()), u32::from(out[23]));
        }

        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = decode(&buf);
        }

        #[test]
        fn decode_never_panics_on_mutated_valid_packets(
            inner in inner_packet(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            fix in any::<bool>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut out = encoded(100, &inner);
            for (i, x) in flips {
                let i = i.index(out.len());
                out[i] ^= x;
            }
            if fix && out[0] == 0x45 {
                fix_ipv4_checksum(&mut out);
            }
            let cut = cut.index(out.len() + 1);
            if let Ok(l) = decode(&out[..cut]) {
                prop_assert!(l.label >= MIN_LABEL);
                prop_assert!(!l.inner.is_empty());
            }
        }

        #[test]
        fn encode_never_panics(
            label in any::<u32>(),
            inner in proptest::collection::vec(any::<u8>(), 0..100),
            out_len in 0usize..140,
        ) {
            let mut out = vec![0u8; out_len];
            if let Ok(n) = encode(A, B, label, &inner, &mut out) {
                prop_assert_eq!(decode(&out[..n]).map(|l| l.inner), Ok(&inner[..]));
            }
        }
    }
}
