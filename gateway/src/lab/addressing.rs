//! Address arithmetic of the lab: which host of a prefix a router or workload holds, and how
//! large the shared underlay subnet must be. Pure functions, so every rule is unit tested.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The host number a VPC router holds in each workload prefix (its first host).
pub const ROUTER_HOST: u128 = 1;
/// The host number a workload holds in an IPv4 prefix (its 10th host: `10.10.1.10`), when
/// the prefix is large enough; smaller prefixes fall back to their last host.
pub const WORKLOAD_HOST_V4: u128 = 10;
/// The host number a workload holds in an IPv6 prefix: the one spelled like its IPv4 twin
/// (`fd10:10:0:1::10` beside `10.10.1.10`), so a person types the same digits in both
/// families.
pub const WORKLOAD_HOST_V6: u128 = 0x10;

/// The `n`th host of `prefix` (network address + `n`), if it is a usable host: inside the
/// prefix, not the network address itself and, for IPv4, not the broadcast address.
pub fn nth_host(prefix: IpNet, n: u128) -> Option<IpAddr> {
    if n == 0 {
        return None;
    }
    match prefix {
        IpNet::V4(p) => {
            let base = u32::from(p.network()) as u128;
            let size = 1u128 << (32 - p.prefix_len());
            // A /31 and a /32 have no broadcast address but no room for a router and a
            // workload either; only prefixes with a broadcast address are used.
            if size < 4 || n >= size - 1 {
                return None;
            }
            Some(IpAddr::V4(Ipv4Addr::from((base + n) as u32)))
        }
        IpNet::V6(p) => {
            let base = u128::from(p.network());
            let bits = 128 - u32::from(p.prefix_len());
            if bits < 2 {
                return None;
            }
            // 2^128 does not fit; any n below 2^bits is inside when bits == 128.
            if bits < 128 && n >= (1u128 << bits) {
                return None;
            }
            Some(IpAddr::V6(Ipv6Addr::from(base + n)))
        }
    }
}

/// The last usable host of `prefix`: the one before the broadcast address for IPv4, the last
/// address for IPv6.
fn last_host(prefix: IpNet) -> Option<IpAddr> {
    match prefix {
        IpNet::V4(p) => {
            let size = 1u128 << (32 - p.prefix_len());
            nth_host(prefix, size.checked_sub(2)?)
        }
        IpNet::V6(p) => {
            let bits = 128 - u32::from(p.prefix_len());
            let last = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            nth_host(prefix, last)
        }
    }
}

/// The address a VPC router holds in `prefix`, with the prefix's length: its first host.
pub fn router_address(prefix: IpNet) -> Option<IpNet> {
    let host = nth_host(prefix, ROUTER_HOST)?;
    IpNet::new(host, prefix.prefix_len()).ok()
}

/// The address a workload holds in `prefix`, with the prefix's length: the 10th host
/// (`.10`, and `::10` in IPv6), or the last host of a prefix too small for it; `None` when
/// the prefix has no room for both a router and a workload.
pub fn workload_address(prefix: IpNet) -> Option<IpNet> {
    let router = nth_host(prefix, ROUTER_HOST)?;
    let n = match prefix {
        IpNet::V4(_) => WORKLOAD_HOST_V4,
        IpNet::V6(_) => WORKLOAD_HOST_V6,
    };
    let host = nth_host(prefix, n)
        .or_else(|| last_host(prefix))
        .filter(|h| *h != router)?;
    IpNet::new(host, prefix.prefix_len()).ok()
}

/// The length of the longest prefix shared by all `addresses` (all of one family); `None`
/// when there are none or the families are mixed.
pub fn common_prefix_len(addresses: &[IpAddr]) -> Option<u8> {
    let first = *addresses.first()?;
    let (bits, width): (fn(IpAddr) -> Option<u128>, u32) = match first {
        IpAddr::V4(_) => (
            |a| match a {
                IpAddr::V4(v) => Some(u128::from(u32::from(v)) << 96),
                IpAddr::V6(_) => None,
            },
            32,
        ),
        IpAddr::V6(_) => (
            |a| match a {
                IpAddr::V6(v) => Some(u128::from(v)),
                IpAddr::V4(_) => None,
            },
            128,
        ),
    };
    let base = bits(first)?;
    let mut len = width;
    for a in &addresses[1..] {
        let differing = base ^ bits(*a)?;
        len = len.min(differing.leading_zeros());
    }
    u8::try_from(len.min(width)).ok()
}

/// The subnet a gateway's underlay address gets on the lab's shared underlay bridge: a /24
/// (IPv4) or /64 (IPv6), widened when the endpoints of the configuration do not all share
/// one, so that every gateway reaches every other on-link.
pub fn underlay_address(address: IpAddr, all_endpoints: &[IpAddr]) -> IpNet {
    let same_family: Vec<IpAddr> = all_endpoints
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == address.is_ipv4())
        .chain(std::iter::once(address))
        .collect();
    let common = common_prefix_len(&same_family).unwrap_or(0);
    match address {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, common.min(24)).expect("length <= 32")),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, common.min(64)).expect("length <= 128")),
    }
}

/// The entry of `addresses` whose subnet holds `host` (same family), for the length a
/// neighbour on the same link must use.
pub fn subnet_of(addresses: &[IpNet], host: IpAddr) -> Option<IpNet> {
    addresses
        .iter()
        .find(|a| a.contains(&host) && a.addr() != host)
        .copied()
}

/// The first of `addresses` of the family of `like`: where a VPC router sends that family.
pub fn first_of_family(addresses: &[IpNet], like: &IpNet) -> Option<IpAddr> {
    addresses
        .iter()
        .find(|a| a.addr().is_ipv4() == like.addr().is_ipv4())
        .map(IpNet::addr)
}

/// `"IPv4"` or `"IPv6"`, for tables and messages.
pub fn family_name(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_tenth_host_of_a_prefix() {
        assert_eq!(nth_host(net("10.10.1.0/24"), 10), Some(ip("10.10.1.10")));
        // Arithmetic, not spelling: the 10th IPv6 host is ::a.
        assert_eq!(
            nth_host(net("fd10:10:0:1::/64"), 10),
            Some(ip("fd10:10:0:1::a"))
        );
        assert_eq!(nth_host(net("10.10.1.0/24"), 1), Some(ip("10.10.1.1")));
    }

    #[test]
    fn hosts_outside_the_prefix_or_special_are_refused() {
        assert_eq!(nth_host(net("10.0.0.0/24"), 0), None);
        assert_eq!(nth_host(net("10.0.0.0/24"), 255), None, "broadcast");
        assert_eq!(nth_host(net("10.0.0.0/24"), 254), Some(ip("10.0.0.254")));
        assert_eq!(nth_host(net("10.0.0.0/29"), 10), None);
        assert_eq!(nth_host(net("10.0.0.0/31"), 1), None);
        assert_eq!(nth_host(net("fd00::/127"), 1), None);
        assert_eq!(nth_host(net("fd00::/126"), 3), Some(ip("fd00::3")));
        assert_eq!(nth_host(net("fd00::/126"), 4), None);
        assert_eq!(
            nth_host(net("::/0"), u128::MAX),
            Some(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
    }

    #[test]
    fn routers_take_the_first_host_and_workloads_the_tenth_or_the_last() {
        assert_eq!(
            router_address(net("10.10.1.0/24")),
            Some(net("10.10.1.1/24"))
        );
        assert_eq!(
            router_address(net("fd10:10:0:1::/64")),
            Some(net("fd10:10:0:1::1/64"))
        );
        assert_eq!(
            workload_address(net("10.10.1.0/24")),
            Some(net("10.10.1.10/24"))
        );
        assert_eq!(
            workload_address(net("fd10:10:0:1::/64")),
            Some(net("fd10:10:0:1::10/64"))
        );
        assert_eq!(
            workload_address(net("10.0.0.0/29")),
            Some(net("10.0.0.6/29"))
        );
        assert_eq!(
            workload_address(net("10.0.0.0/30")),
            Some(net("10.0.0.2/30"))
        );
        assert_eq!(workload_address(net("10.0.0.0/31")), None);
        assert_eq!(
            workload_address(net("fd00::/126")),
            Some(net("fd00::3/126"))
        );
        assert_eq!(
            workload_address(net("fd00::/124")),
            Some(net("fd00::f/124"))
        );
        assert_eq!(
            workload_address(net("fd00::/123")),
            Some(net("fd00::10/123"))
        );
        assert_eq!(workload_address(net("fd00::/127")), None);
    }

    #[test]
    fn the_underlay_is_a_slash_24_unless_the_endpoints_need_more() {
        let lab = [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")];
        assert_eq!(underlay_address(ip("192.0.2.1"), &lab), net("192.0.2.1/24"));
        let wide = [ip("192.0.2.1"), ip("192.0.3.1")];
        assert_eq!(
            underlay_address(ip("192.0.2.1"), &wide),
            net("192.0.2.1/23")
        );
        let v6 = [ip("2001:db8::1"), ip("2001:db8::2"), ip("192.0.2.1")];
        assert_eq!(
            underlay_address(ip("2001:db8::1"), &v6),
            net("2001:db8::1/64")
        );
        assert_eq!(common_prefix_len(&[ip("10.0.0.1"), ip("fd00::1")]), None);
        assert_eq!(common_prefix_len(&[ip("10.0.0.1")]), Some(32));
        assert_eq!(common_prefix_len(&[]), None);
    }

    #[test]
    fn the_router_uses_the_length_of_the_gateway_address_on_its_link() {
        let addresses = [net("169.254.100.1/30"), net("fe80::1/64")];
        assert_eq!(
            subnet_of(&addresses, ip("169.254.100.2")),
            Some(net("169.254.100.1/30"))
        );
        assert_eq!(
            subnet_of(&addresses, ip("fe80::2")),
            Some(net("fe80::1/64"))
        );
        assert_eq!(subnet_of(&addresses, ip("169.254.100.5")), None);
        assert_eq!(
            first_of_family(&addresses, &net("10.10.2.0/24")),
            Some(ip("169.254.100.1"))
        );
        assert_eq!(
            first_of_family(&addresses, &net("fd10:10:0:2::/64")),
            Some(ip("fe80::1"))
        );
    }
}
