//! Names of everything a lab creates. Every namespace starts with the lab's random prefix so
//! that `down` can find all of it (even without a state file, by `--prefix`) and two labs on
//! one host never collide; interface names stay within Linux's 15 bytes.

use ipnet::IpNet;

/// The start of every lab prefix: `wl` (weft lab) then four hex digits then `-`.
pub const PREFIX_HEAD: &str = "wl";
/// The bridge in the underlay namespace that every gateway's `ul0` is a port of.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// A gateway's interface on the underlay.
pub const GATEWAY_UNDERLAY_INTERFACE: &str = "ul0";
/// A VPC router's interface towards its gateway.
pub const ROUTER_UPLINK: &str = "gw";
/// A workload's only interface.
pub const WORKLOAD_INTERFACE: &str = "eth0";

/// Why a lab prefix given by a person is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lab prefix: expected `wl`, four hex digits and `-`, e.g. `wl3f9a-`")]
pub struct BadPrefix(pub String);

/// A lab prefix from 2 random bytes, e.g. `wl3f9a-`.
pub fn prefix_from_bytes(bytes: [u8; 2]) -> String {
    format!("{PREFIX_HEAD}{:02x}{:02x}-", bytes[0], bytes[1])
}

/// A fresh random lab prefix.
pub fn random_prefix() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes)?;
    Ok(prefix_from_bytes(bytes))
}

/// Checks that `prefix` has the shape of a lab prefix, so that a sweep by prefix can never
/// match namespaces the lab did not make (an empty prefix would match them all).
pub fn parse_prefix(prefix: &str) -> Result<&str, BadPrefix> {
    let bad = || BadPrefix(prefix.to_owned());
    let hex = prefix
        .strip_prefix(PREFIX_HEAD)
        .and_then(|r| r.strip_suffix('-'))
        .ok_or_else(bad)?;
    if hex.len() == 4
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(prefix)
    } else {
        Err(bad())
    }
}

/// The namespace holding the underlay bridge.
pub fn underlay_namespace(prefix: &str) -> String {
    format!("{prefix}ul")
}

/// The namespace of gateway `gateway`: `<prefix>gw-<gateway>`.
pub fn gateway_namespace(prefix: &str, gateway: &str) -> String {
    format!("{prefix}gw-{gateway}")
}

/// The `tenant.name.site` part naming a network at a site. Dots separate the parts
/// because configuration names are DNS labels, which never contain one, so two different
/// (network, site) pairs never share a name.
pub fn attachment_name(network: &str, site: &str) -> String {
    format!("{}.{site}", network.replace('/', "."))
}

/// The namespace of the VPC router of `network` at `site`.
pub fn router_namespace(prefix: &str, network: &str, site: &str) -> String {
    format!("{prefix}rt-{}", attachment_name(network, site))
}

/// A workload's name, unique in the lab: `tenant.network.site.v4` for the first IPv4 prefix
/// of the attachment, `.v4-2` for a second one, and `.v6`, `.v6-2` alike.
pub fn workload_name(network: &str, site: &str, prefix: &IpNet, nth_of_family: usize) -> String {
    let family = match prefix {
        IpNet::V4(_) => "v4",
        IpNet::V6(_) => "v6",
    };
    let base = format!("{}.{family}", attachment_name(network, site));
    if nth_of_family == 0 {
        base
    } else {
        format!("{base}-{}", nth_of_family + 1)
    }
}

/// The namespace of workload `workload`.
pub fn workload_namespace(prefix: &str, workload: &str) -> String {
    format!("{prefix}wl-{workload}")
}

/// The underlay bridge port of the `index`th gateway, inside the underlay namespace.
pub fn underlay_port(index: usize) -> String {
    format!("g{index}")
}

/// The VPC router's interface towards its `index`th workload (the attachment's `index`th
/// prefix).
pub fn router_workload_interface(index: usize) -> String {
    format!("p{index}")
}

/// The WireGuard UAPI name of the `index`th gateway, unique on the host (the UAPI sockets
/// live in the host-wide `/var/run/wireguard`) and at most 15 bytes: `<prefix><index>`.
pub fn uapi_name(prefix: &str, index: usize) -> String {
    format!("{prefix}{index}")
}

#[cfg(test)]
mod tests {
    use weft_dataplane::linux::is_valid_interface_name;

    use super::*;

    #[test]
    fn prefixes_are_short_and_recognisable() {
        let p = prefix_from_bytes([0x3f, 0x9a]);
        assert_eq!(p, "wl3f9a-");
        assert_eq!(parse_prefix(&p), Ok("wl3f9a-"));
        let random = random_prefix().unwrap();
        assert_eq!(parse_prefix(&random), Ok(random.as_str()));
        for bad in [
            "", "wl", "wl3f9a", "wl3F9A-", "xx3f9a-", "wl3f9-", "wl3f9ab-", "wlzzzz-",
        ] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn namespaces_carry_the_prefix_and_say_what_they_are() {
        let p = "wl3f9a-";
        assert_eq!(underlay_namespace(p), "wl3f9a-ul");
        assert_eq!(gateway_namespace(p, "aws-gw"), "wl3f9a-gw-aws-gw");
        assert_eq!(
            router_namespace(p, "shop/prod", "aws-lab"),
            "wl3f9a-rt-shop.prod.aws-lab"
        );
        let v4: IpNet = "10.10.1.0/24".parse().unwrap();
        let v6: IpNet = "fd10:10:0:1::/64".parse().unwrap();
        assert_eq!(
            workload_name("shop/prod", "aws-lab", &v4, 0),
            "shop.prod.aws-lab.v4"
        );
        assert_eq!(
            workload_name("shop/prod", "aws-lab", &v6, 1),
            "shop.prod.aws-lab.v6-2"
        );
        assert_eq!(
            workload_namespace(p, "shop.prod.aws-lab.v4"),
            "wl3f9a-wl-shop.prod.aws-lab.v4"
        );
    }

    #[test]
    fn hyphenated_names_never_collide() {
        // `a-b/c` at `d` and `a/b-c` at `d` would both be `a-b-c-d` with hyphens.
        assert_ne!(attachment_name("a-b/c", "d"), attachment_name("a/b-c", "d"));
        assert_ne!(attachment_name("a/b", "c-d"), attachment_name("a/b-c", "d"));
    }

    #[test]
    fn interface_names_fit_linux() {
        assert_eq!(uapi_name("wl3f9a-", 3), "wl3f9a-3");
        assert!(is_valid_interface_name(&uapi_name("wl3f9a-", 99_999_999)));
        assert!(!is_valid_interface_name(&uapi_name("wl3f9a-", 100_000_000)));
        assert!(is_valid_interface_name("shop-staging"));
        assert!(!is_valid_interface_name(""));
        assert!(!is_valid_interface_name("a/b"));
        assert!(!is_valid_interface_name("sixteen-chars-xx"));
        assert_eq!(underlay_port(2), "g2");
        assert_eq!(router_workload_interface(0), "p0");
    }
}
