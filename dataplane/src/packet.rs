//! A strict, zero-copy view of one IP packet.
//!
//! Every packet the dataplane touches — read from a network's TUN, or unwrapped from a
//! gateway or workload peer — is first checked here. The forwarder needs the version, the
//! addresses, the protocol and the exact extent of the packet, and it needs them from bytes
//! that anyone on the internet may have chosen. So the view is strict (a wrong IPv4 header
//! checksum, a header length below 5 words or a length field that disagrees with the
//! buffer is an error) and every check is a [`PacketError`] variant of its own, so the core
//! can count drops by reason. It never panics and never allocates.
//!
//! Header fields are read with etherparse; [`IpPacket::ipv4_header`] and
//! [`IpPacket::ipv6_header`] hand out its header slices for anything not covered here.

use std::net::IpAddr;

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, checksum::Sum16BitWords};

/// Length of an IPv4 header without options.
pub(crate) const IPV4_MIN_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub(crate) const IPV6_HEADER_LEN: usize = 40;

/// Why a buffer is not an acceptable IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PacketError {
    /// The buffer holds no byte at all.
    #[error("empty packet")]
    Empty,
    /// The version nibble is neither 4 nor 6.
    #[error("IP version is neither 4 nor 6")]
    UnknownVersion,
    /// The buffer is shorter than the fixed header, or than the IPv4 header its IHL declares.
    #[error("packet shorter than its IP header")]
    TooShort,
    /// The IPv4 IHL field is below 5 (20 bytes).
    #[error("IPv4 header length (IHL) below 5")]
    BadHeaderLength,
    /// The IPv4 total length field is smaller than the header itself.
    #[error("IPv4 total length smaller than its header")]
    BadTotalLength,
    /// The length the header declares (IPv4 total length, IPv6 40 + payload length) is
    /// more than the buffer holds.
    #[error("packet shorter than its declared length")]
    Truncated,
    /// The IPv4 header checksum is wrong.
    #[error("IPv4 header checksum mismatch")]
    BadChecksum,
}

impl PacketError {
    /// A short stable name for the reason, usable as a counter label.
    pub fn reason(self) -> &'static str {
        match self {
            PacketError::Empty => "empty",
            PacketError::UnknownVersion => "unknown_version",
            PacketError::TooShort => "too_short",
            PacketError::BadHeaderLength => "bad_header_length",
            PacketError::BadTotalLength => "bad_total_length",
            PacketError::Truncated => "truncated",
            PacketError::BadChecksum => "bad_checksum",
        }
    }
}

/// The IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4 (RFC 791).
    V4,
    /// IPv6 (RFC 8200).
    V6,
}

/// The validated header of an [`IpPacket`], as etherparse sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Header<'a> {
    V4(Ipv4HeaderSlice<'a>),
    V6(Ipv6HeaderSlice<'a>),
}

/// A validated IP packet borrowed from a buffer.
///
/// Covers exactly the length the header declares; bytes after it in the buffer (padding)
/// are not part of the packet. For IPv6, the "protocol" is the Next Header field of the fixed
/// header and the payload starts right after it, so both may be an extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket<'a> {
    bytes: &'a [u8],
    header: Header<'a>,
}

/// Whether an IPv4 header (including options) carries a correct header checksum.
pub(crate) fn ipv4_checksum_ok(header: &[u8]) -> bool {
    // The one's complement sum over a header with a correct checksum is all ones.
    Sum16BitWords::new().add_slice(header).ones_complement() == 0
}

impl<'a> IpPacket<'a> {
    /// Checks `buf` and returns a view of the IP packet at its start.
    ///
    /// IPv4: the version nibble, IHL >= 5, the whole header present, header checksum valid,
    /// total length at least the header length and at most `buf.len()`. IPv6: the version
    /// nibble, the 40-byte header present, 40 + payload length at most `buf.len()` (jumbograms
    /// are not supported). Bytes after the declared length are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<IpPacket<'a>, PacketError> {
        let first = *buf.first().ok_or(PacketError::Empty)?;
        match first >> 4 {
            4 => Self::parse_v4(buf),
            6 => Self::parse_v6(buf),
            _ => Err(PacketError::UnknownVersion),
        }
    }

    fn parse_v4(buf: &'a [u8]) -> Result<IpPacket<'a>, PacketError> {
        use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
        let header = Ipv4HeaderSlice::from_slice(buf).map_err(|e| match e {
            HeaderSliceError::Len(_) => PacketError::TooShort,
            HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { .. }) => {
                PacketError::BadHeaderLength
            }
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => {
                PacketError::UnknownVersion
            }
        })?;
        let header_len = header.slice().len();
        let total_len = usize::from(header.total_len());
        if total_len < header_len {
            return Err(PacketError::BadTotalLength);
        }
        let bytes = buf.get(..total_len).ok_or(PacketError::Truncated)?;
        if !ipv4_checksum_ok(header.slice()) {
            return Err(PacketError::BadChecksum);
        }
        Ok(IpPacket {
            bytes,
            header: Header::V4(header),
        })
    }

    fn parse_v6(buf: &'a [u8]) -> Result<IpPacket<'a>, PacketError> {
        use etherparse::err::ipv6::{HeaderError, HeaderSliceError};
        let header = Ipv6HeaderSlice::from_slice(buf).map_err(|e| match e {
            HeaderSliceError::Len(_) => PacketError::TooShort,
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => {
                PacketError::UnknownVersion
            }
        })?;
        let total_len = IPV6_HEADER_LEN + usize::from(header.payload_length());
        let bytes = buf.get(..total_len).ok_or(PacketError::Truncated)?;
        Ok(IpPacket {
            bytes,
            header: Header::V6(header),
        })
    }

    /// The IP version.
    pub fn version(&self) -> IpVersion {
        match self.header {
            Header::V4(_) => IpVersion::V4,
            Header::V6(_) => IpVersion::V6,
        }
    }

    /// Whether this is an IPv4 packet.
    pub fn is_ipv4(&self) -> bool {
        matches!(self.header, Header::V4(_))
    }

    /// Whether this is an IPv6 packet.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.header, Header::V6(_))
    }

    /// The source address.
    pub fn source(&self) -> IpAddr {
        match self.header {
            Header::V4(h) => h.source_addr().into(),
            Header::V6(h) => h.source_addr().into(),
        }
    }

    /// The destination address.
    pub fn destination(&self) -> IpAddr {
        match self.header {
            Header::V4(h) => h.destination_addr().into(),
            Header::V6(h) => h.destination_addr().into(),
        }
    }

    /// The IPv4 protocol, or the IPv6 Next Header of the fixed header (which may name an
    /// extension header).
    pub fn protocol(&self) -> u8 {
        match self.header {
            Header::V4(h) => h.protocol().0,
            Header::V6(h) => h.next_header().0,
        }
    }

    /// The IPv4 TTL or the IPv6 hop limit.
    pub fn hop_limit(&self) -> u8 {
        match self.header {
            Header::V4(h) => h.ttl(),
            Header::V6(h) => h.hop_limit(),
        }
    }

    /// The IPv4 TOS byte or the IPv6 traffic class: DSCP in the upper six bits, ECN in the
    /// lower two.
    pub fn traffic_class(&self) -> u8 {
        match self.header {
            Header::V4(h) => (h.dcp().value() << 2) | h.ecn().value(),
            Header::V6(h) => h.traffic_class(),
        }
    }

    /// Whether the IPv4 Don't Fragment flag is set; always false for IPv6 (which routers
    /// never fragment anyway).
    pub fn dont_fragment(&self) -> bool {
        match self.header {
            Header::V4(h) => h.dont_fragment(),
            Header::V6(_) => false,
        }
    }

    /// Whether this IPv4 packet is a fragment (More Fragments set or a non-zero offset).
    /// IPv6 fragment headers are not looked at: always false for IPv6.
    pub fn is_fragment(&self) -> bool {
        match self.header {
            Header::V4(h) => h.is_fragmenting_payload(),
            Header::V6(_) => false,
        }
    }

    /// The IPv4 fragment offset in 8-byte units; 0 for IPv6.
    pub fn fragment_offset(&self) -> u16 {
        match self.header {
            Header::V4(h) => h.fragments_offset().value(),
            Header::V6(_) => 0,
        }
    }

    /// The packet's length: the IPv4 total length, or 40 + the IPv6 payload length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a packet holds at least its header. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The length of the IP header: IHL × 4 for IPv4, 40 for IPv6 (extension headers are
    /// part of the payload).
    pub fn header_len(&self) -> usize {
        match self.header {
            Header::V4(h) => h.slice().len(),
            Header::V6(_) => IPV6_HEADER_LEN,
        }
    }

    /// The whole packet, exactly as long as its header declares.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The IP header (IPv4 with options; the fixed IPv6 header).
    pub fn header(&self) -> &'a [u8] {
        match self.header {
            Header::V4(h) => h.slice(),
            Header::V6(h) => h.slice(),
        }
    }

    /// Everything after the IP header: the L4 segment for IPv4, the extension headers and
    /// L4 segment for IPv6.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.header_len()..).unwrap_or_default()
    }

    /// The etherparse IPv4 header slice, for fields not exposed here.
    pub fn ipv4_header(&self) -> Option<Ipv4HeaderSlice<'a>> {
        match self.header {
            Header::V4(h) => Some(h),
            Header::V6(_) => None,
        }
    }

    /// The etherparse IPv6 header slice, for fields not exposed here.
    pub fn ipv6_header(&self) -> Option<Ipv6HeaderSlice<'a>> {
        match self.header {
            Header::V4(_) => None,
            Header::V6(h) => Some(h),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    use super::*;

    /// Recomputes the IPv4 header checksum of the header at the start of `buf`.
    pub(crate) fn fix_ipv4_checksum(buf: &mut [u8]) {
        let header_len = usize::from(buf[0] & 0x0f) * 4;
        buf[10] = 0;
        buf[11] = 0;
        // etherparse sums in native byte order.
        let sum = Sum16BitWords::new()
            .add_slice(&buf[..header_len])
            .ones_complement();
        buf[10..12].copy_from_slice(&sum.to_ne_bytes());
    }

    pub(crate) fn udp_v4(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 7], 61)
            .udp(4000, 53)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    pub(crate) fn udp_v6(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets(),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2).octets(),
            17,
        )
        .udp(4000, 53)
        .write(&mut out, payload)
        .unwrap();
        out
    }

    #[test]
    fn parses_ipv4() {
        let buf = udp_v4(b"hello");
        let p = IpPacket::parse(&buf).unwrap();
        assert_eq!(p.version(), IpVersion::V4);
        assert!(p.is_ipv4() && !p.is_ipv6());
        assert_eq!(p.source(), IpAddr::from(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            p.destination(),
            IpAddr::from(Ipv4Addr::new(198, 51, 100, 7))
        );
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.hop_limit(), 61);
        assert_eq!(p.len(), 20 + 8 + 5);
        assert!(!p.is_empty());
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.header(), &buf[..20]);
        assert_eq!(p.payload(), &buf[20..]);
        assert_eq!(&p.payload()[8..], b"hello");
        assert_eq!(p.bytes(), &buf[..]);
        // etherparse's builder sets DF.
        assert!(p.dont_fragment());
        assert!(!p.is_fragment());
        assert_eq!(p.fragment_offset(), 0);
        assert!(p.ipv4_header().is_some() && p.ipv6_header().is_none());
    }

    #[test]
    fn parses_ipv6() {
        let buf = udp_v6(b"hello");
        let p = IpPacket::parse(&buf).unwrap();
        assert_eq!(p.version(), IpVersion::V6);
        assert!(p.is_ipv6() && !p.is_ipv4());
        assert_eq!(
            p.source(),
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        );
        assert_eq!(
            p.destination(),
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2))
        );
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.hop_limit(), 17);
        assert_eq!(p.len(), 40 + 8 + 5);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.payload(), &buf[40..]);
        assert!(!p.dont_fragment());
        assert!(!p.is_fragment());
        assert!(p.ipv6_header().is_some() && p.ipv4_header().is_none());
    }

    #[test]
    fn traffic_class_of_both_versions() {
        let mut v4 = udp_v4(b"");
        v4[1] = 0xb9; // DSCP 46 (EF), ECN 01
        fix_ipv4_checksum(&mut v4);
        assert_eq!(IpPacket::parse(&v4).unwrap().traffic_class(), 0xb9);

        let mut v6 = udp_v6(b"");
        // version 6, traffic class 0xb9, flow label 0x12345
        v6[..4].copy_from_slice(&[0x6b, 0x91, 0x23, 0x45]);
        assert_eq!(IpPacket::parse(&v6).unwrap().traffic_class(), 0xb9);
    }

    #[test]
    fn ipv4_options_are_part_of_the_header() {
        let mut buf = udp_v4(b"data");
        // Grow the header by one word of NOP options.
        buf.splice(20..20, [1u8, 1, 1, 0]);
        buf[0] = 0x46;
        let total = buf.len() as u16;
        buf[2..4].copy_from_slice(&total.to_be_bytes());
        fix_ipv4_checksum(&mut buf);
        let p = IpPacket::parse(&buf).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.header(), &buf[..24]);
        assert_eq!(p.payload(), &buf[24..]);
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_packet() {
        let mut v4 = udp_v4(b"abc");
        let len = v4.len();
        v4.extend_from_slice(&[0xee; 7]);
        let p = IpPacket::parse(&v4).unwrap();
        assert_eq!(p.len(), len);
        assert_eq!(p.bytes(), &v4[..len]);
        assert_eq!(p.payload(), &v4[20..len]);

        let mut v6 = udp_v6(b"abc");
        let len = v6.len();
        v6.extend_from_slice(&[0xee; 7]);
        let p = IpPacket::parse(&v6).unwrap();
        assert_eq!(p.len(), len);
        assert_eq!(p.payload(), &v6[40..len]);
    }

    #[test]
    fn fragments_are_recognised() {
        let mut buf = udp_v4(b"abcdefgh");
        buf[6] = 0x20; // MF, offset 0, DF clear
        buf[7] = 0;
        fix_ipv4_checksum(&mut buf);
        let p = IpPacket::parse(&buf).unwrap();
        assert!(p.is_fragment() && !p.dont_fragment());
        assert_eq!(p.fragment_offset(), 0);

        buf[6] = 0x00;
        buf[7] = 0x03; // offset 3 (24 bytes), last fragment
        fix_ipv4_checksum(&mut buf);
        let p = IpPacket::parse(&buf).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.fragment_offset(), 3);
    }

    #[test]
    fn error_empty() {
        assert_eq!(IpPacket::parse(&[]), Err(PacketError::Empty));
    }

    #[test]
    fn error_unknown_version() {
        for first in [0x00u8, 0x15, 0x55, 0x75, 0xf5] {
            let mut buf = udp_v4(b"x");
            buf[0] = first;
            assert_eq!(IpPacket::parse(&buf), Err(PacketError::UnknownVersion));
        }
        assert_eq!(IpPacket::parse(&[0x00]), Err(PacketError::UnknownVersion));
    }

    #[test]
    fn error_too_short() {
        let v4 = udp_v4(b"");
        for len in 1..20 {
            assert_eq!(
                IpPacket::parse(&v4[..len]),
                Err(PacketError::TooShort),
                "{len}"
            );
        }
        let v6 = udp_v6(b"");
        for len in 1..40 {
            assert_eq!(
                IpPacket::parse(&v6[..len]),
                Err(PacketError::TooShort),
                "{len}"
            );
        }
        // IHL says 24 bytes of header, buffer has 22.
        let mut buf = udp_v4(b"");
        buf[0] = 0x46;
        assert_eq!(IpPacket::parse(&buf[..22]), Err(PacketError::TooShort));
    }

    #[test]
    fn error_bad_header_length() {
        for ihl in 0..5u8 {
            let mut buf = udp_v4(b"");
            buf[0] = 0x40 | ihl;
            assert_eq!(
                IpPacket::parse(&buf),
                Err(PacketError::BadHeaderLength),
                "{ihl}"
            );
        }
    }

    #[test]
    fn error_bad_total_length() {
        for total in [0u16, 1, 19] {
            let mut buf = udp_v4(b"abc");
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            fix_ipv4_checksum(&mut buf);
            assert_eq!(IpPacket::parse(&buf), Err(PacketError::BadTotalLength));
        }
        // Total length covers the fixed header but not the options.
        let mut buf = udp_v4(b"abcd");
        buf[0] = 0x46;
        buf[2..4].copy_from_slice(&22u16.to_be_bytes());
        fix_ipv4_checksum(&mut buf);
        assert_eq!(IpPacket::parse(&buf), Err(PacketError::BadTotalLength));
    }

    #[test]
    fn error_truncated() {
        let v4 = udp_v4(b"abc");
        assert_eq!(
            IpPacket::parse(&v4[..v4.len() - 1]),
            Err(PacketError::Truncated)
        );
        let v6 = udp_v6(b"abc");
        assert_eq!(
            IpPacket::parse(&v6[..v6.len() - 1]),
            Err(PacketError::Truncated)
        );
        assert_eq!(IpPacket::parse(&v6[..40]), Err(PacketError::Truncated));
    }

    #[test]
    fn error_bad_checksum() {
        let mut buf = udp_v4(b"abc");
        buf[11] ^= 1;
        assert_eq!(IpPacket::parse(&buf), Err(PacketError::BadChecksum));
        let mut buf = udp_v4(b"abc");
        buf[8] = buf[8].wrapping_sub(1); // TTL changed without fixing the checksum
        assert_eq!(IpPacket::parse(&buf), Err(PacketError::BadChecksum));
    }

    #[test]
    fn reasons_are_distinct() {
        let all = [
            PacketError::Empty,
            PacketError::UnknownVersion,
            PacketError::TooShort,
            PacketError::BadHeaderLength,
            PacketError::BadTotalLength,
            PacketError::Truncated,
            PacketError::BadChecksum,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(names.len(), all.len());
    }

    proptest! {
        #[test]
        fn parse_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(p) = IpPacket::parse(&buf) {
                prop_assert!(p.len() <= buf.len());
                prop_assert!(p.header_len() <= p.len());
                prop_assert_eq!(p.header().len() + p.payload().len(), p.len());
                let _ = (p.source(), p.destination(), p.protocol(), p.traffic_class());
            }
        }

        #[test]
        fn parse_never_panics_on_plausible_headers(
            first in prop_oneof![Just(0x45u8), Just(0x46), Just(0x4f), Just(0x60)],
            rest in proptest::collection::vec(any::<u8>(), 0..96),
            fix in any::<bool>(),
        ) {
            let mut buf = vec![first];
            buf.extend_from_slice(&rest);
            if fix && first >> 4 == 4 && buf.len() >= usize::from(first & 0x0f) * 4 {
                fix_ipv4_checksum(&mut buf);
            }
            if let Ok(p) = IpPacket::parse(&buf) {
                prop_assert!(p.len() <= buf.len());
                prop_assert_eq!(p.header().len() + p.payload().len(), p.len());
            }
        }

        #[test]
        fn etherparse_built_packets_parse(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            ttl in any::<u8>(),
            padding in 0usize..8,
        ) {
            let mut buf = Vec::new();
            PacketBuilder::ipv4(src, dst, ttl).udp(1, 2).write(&mut buf, &payload).unwrap();
            let len = buf.len();
            buf.resize(len + padding, 0);
            let p = IpPacket::parse(&buf).unwrap();
            prop_assert_eq!(p.len(), len);
            prop_assert_eq!(p.source(), IpAddr::from(src));
            prop_assert_eq!(p.destination(), IpAddr::from(dst));
            prop_assert_eq!(p.hop_limit(), ttl);
        }
    }
}
