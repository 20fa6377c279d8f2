//! Semantic validation: from the readable [`Sections`] of a configuration to an [`Intent`], or
//! every rule the file breaks, each pointing at its place.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::file_model::{
    AttachmentSection, DEFAULT_LISTEN_PORT, GatewaySection, SiteKindName, SiteSection,
};
use crate::intent::{
    Attachment, CredentialSource, Endpoint, EndpointHost, Gateway, Intent, Network, NetworkId,
    NextHop, Overlay, RouteTableRef, Site, SiteKind, Tenant,
};
use crate::key_path::{KeyPath, Segment};
use crate::keys::PublicKey;
use crate::label::Label;
use crate::names::{check_dns_name, check_interface, check_label};
use crate::partial::Sections;
use crate::schema::{did_you_mean, suggested_key};
use crate::source_map::{Anchor, SourceMap};

/// Checks every rule and builds the intent, or returns all violations at once.
pub(crate) fn validate(file: &Sections, sources: Arc<SourceMap>) -> Result<Intent, Diagnostics> {
    let mut checker = Checker {
        sources: &sources,
        file,
        diagnostics: Diagnostics::default(),
    };
    let overlay = checker.overlay(file);
    let tenants = checker.tenants(file);
    let sites = checker.sites(file, overlay.as_ref());
    let gateways = checker.gateways(file, &overlay_parts(file), &sites);
    let networks = checker.networks(file, &tenants, &sites);
    let diagnostics = checker.diagnostics;
    diagnostics.into_result(())?;
    // An unreadable [overlay] had its structural errors reported by the caller; it leaves
    // no intent to build, but every other entity has been checked above.
    let Some(overlay) = overlay else {
        return Err(Diagnostics::default());
    };
    Ok(Intent {
        overlay,
        tenants,
        networks,
        sites,
        gateways,
        sources,
    })
}

/// What gateways need of the overlay section, each part on its own so that a mistake in one
/// (or an unreadable section) does not stop the others from being checked.
struct OverlayParts {
    /// The default WireGuard port, when known.
    listen_port: Option<u16>,
    /// The infra prefix, when it is valid.
    infra_prefix: Option<Ipv4Net>,
}

/// The overlay settings gateways are checked against, read without reporting anything:
/// [`Checker::overlay`] reports their mistakes.
fn overlay_parts(file: &Sections) -> OverlayParts {
    let o = file.overlay.as_ref();
    OverlayParts {
        listen_port: o.and_then(|o| u16::try_from(o.listen_port).ok()),
        infra_prefix: o
            .and_then(|o| o.infra_prefix.parse::<Ipv4Net>().ok())
            .filter(|net| *net == net.trunc() && net.prefix_len() <= MAX_INFRA_PREFIX_LEN),
    }
}

/// The longest infra prefix: a /30 holds two gateways.
const MAX_INFRA_PREFIX_LEN: u8 = 30;

/// How the file names a kind of site.
fn kind_name(kind: SiteKindName) -> &'static str {
    match kind {
        SiteKindName::Aws => "aws",
        SiteKindName::Azure => "azure",
        SiteKindName::Gcp => "gcp",
        SiteKindName::Linux => "linux",
    }
}

/// The indefinite article and name of a kind of site: "an aws", "a gcp".
fn a_kind(kind: &SiteKind) -> String {
    let name = kind.name();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

struct Checker<'a> {
    sources: &'a SourceMap,
    file: &'a Sections,
    diagnostics: Diagnostics,
}

fn path(keys: &[&str]) -> KeyPath {
    KeyPath::of(keys)
}

impl Checker<'_> {
    fn error(
        &mut self,
        key: &KeyPath,
        anchor: Anchor,
        message: impl Into<String>,
        expected: impl Into<String>,
        hint: impl Into<String>,
    ) {
        if self.file.is_pruned(key) {
            return; // its structural error was reported already
        }
        self.diagnostics.push(Diagnostic {
            location: self.sources.locate(key, anchor),
            key: key.clone(),
            message: message.into(),
            expected: expected.into(),
            hint: hint.into(),
        });
    }

    fn name(&mut self, key: &KeyPath, name: &str, what: &str) -> bool {
        match check_label(name) {
            Ok(()) => true,
            Err(why) => {
                self.error(
                    key,
                    Anchor::Key,
                    format!("{what} name `{name}` {why}"),
                    "a DNS label: lowercase letters, digits and inner hyphens, at most 32 characters",
                    "names become DNS names and interface names; rename it, e.g. `aws-east`",
                );
                false
            }
        }
    }

    /// A reference to a name that must exist among `known`, found at the value of `key`.
    fn reference(
        &mut self,
        key: &KeyPath,
        name: &str,
        what: &str,
        known: &[&str],
        section: &str,
    ) -> bool {
        self.reference_at(key, Anchor::Value, name, what, known, section)
    }

    /// A reference to a name that must exist among `known`, found at `anchor` of `key` (the
    /// key when the name is part of a table's name, as the tenant in `[networks."t/n"]`).
    fn reference_at(
        &mut self,
        key: &KeyPath,
        anchor: Anchor,
        name: &str,
        what: &str,
        known: &[&str],
        section: &str,
    ) -> bool {
        if known.contains(&name) {
            return true;
        }
        if self.file.is_broken(section, name) {
            return false; // exists, but its own errors were reported already
        }
        let hint = match did_you_mean(name, known.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None if known.is_empty() => format!("declare it under [{section}]"),
            None => format!(
                "declare it under [{section}], or use one of: {}",
                known.join(", ")
            ),
        };
        self.error(
            key,
            anchor,
            format!("{what} `{name}` is not declared"),
            format!("the name of a {what} under [{section}]"),
            hint,
        );
        false
    }

    fn cidr(&mut self, key: &KeyPath, text: &str) -> Option<IpNet> {
        let expected = "a network address with its prefix length, such as 10.0.0.0/16 or fd00::/48";
        match text.parse::<IpNet>() {
            Ok(net) if net != net.trunc() => {
                self.error(
                    key,
                    Anchor::Value,
                    format!("`{text}` has host bits set"),
                    expected,
                    format!("did you mean `{}`?", net.trunc()),
                );
                None
            }
            Ok(net) => Some(net),
            Err(_) => {
                let hint = match text.parse::<IpAddr>() {
                    Ok(IpAddr::V4(ip)) => {
                        format!(
                            "add the prefix length: `{ip}/24` for 256 addresses, `{ip}/32` for this one alone"
                        )
                    }
                    Ok(IpAddr::V6(ip)) => {
                        format!(
                            "add the prefix length: `{ip}/64` for a subnet, `{ip}/128` for this address alone"
                        )
                    }
                    Err(_) => match text
                        .split_once('/')
                        .map(|(ip, len)| (ip.parse::<IpAddr>(), len))
                    {
                        Some((Ok(IpAddr::V4(_)), len)) => {
                            format!("`/{len}` is no IPv4 prefix length: use 0 to 32")
                        }
                        Some((Ok(IpAddr::V6(_)), len)) => {
                            format!("`/{len}` is no IPv6 prefix length: use 0 to 128")
                        }
                        _ => "write an address, a slash and a prefix length".to_owned(),
                    },
                };
                self.error(
                    key,
                    Anchor::Value,
                    format!("`{text}` is not a CIDR"),
                    expected,
                    hint,
                );
                None
            }
        }
    }

    fn overlay(&mut self, file: &Sections) -> Option<Overlay> {
        let o = file.overlay.as_ref()?;
        if let Err(why) = check_label(&o.name) {
            self.error(
                &path(&["overlay", "name"]),
                Anchor::Value,
                format!("overlay name `{}` {why}", o.name),
                "a DNS label: lowercase letters, digits and inner hyphens",
                "for example `acme`",
            );
        }
        if let Err(why) = check_dns_name(&o.domain) {
            self.error(
                &path(&["overlay", "domain"]),
                Anchor::Value,
                format!("domain `{}` {why}", o.domain),
                "a DNS domain for workload names",
                "for example `weft.internal`",
            );
        }
        let infra_key = path(&["overlay", "infra_prefix"]);
        let infra = match self.cidr(&infra_key, &o.infra_prefix)? {
            IpNet::V4(net) if net.prefix_len() <= MAX_INFRA_PREFIX_LEN => Some(net),
            IpNet::V4(net) => {
                self.error(
                    &infra_key,
                    Anchor::Value,
                    format!("`{net}` is too small to hold gateway addresses"),
                    format!("an IPv4 prefix of length /{MAX_INFRA_PREFIX_LEN} or shorter"),
                    "use a /24 such as 100.64.0.0/24",
                );
                None
            }
            IpNet::V6(_) => {
                self.error(
                    &infra_key,
                    Anchor::Value,
                    format!("`{}` is IPv6; infra addresses are IPv4", o.infra_prefix),
                    "an IPv4 prefix: infra addresses go in the IPv4 header that carries the MPLS label",
                    "use a private or shared range such as 100.64.0.0/24",
                );
                None
            }
        };
        Some(Overlay {
            name: o.name.clone(),
            domain: o.domain.trim_end_matches('.').to_owned(),
            infra_prefix: infra?,
            listen_port: u16::try_from(o.listen_port).ok()?,
            underlay_mtu: u16::try_from(o.underlay_mtu).ok()?,
        })
    }

    fn tenants(&mut self, file: &Sections) -> BTreeMap<String, Tenant> {
        let mut tenants = BTreeMap::new();
        for (name, t) in &file.tenants {
            if self.name(&path(&["tenants", name]), name, "tenant") {
                tenants.insert(
                    name.clone(),
                    Tenant {
                        name: name.clone(),
                        description: t.description.clone(),
                    },
                );
            }
        }
        tenants
    }

    fn sites(&mut self, file: &Sections, overlay: Option<&Overlay>) -> BTreeMap<String, Site> {
        let mut sites = BTreeMap::new();
        for (name, s) in &file.sites {
            let key = path(&["sites", name]);
            let named = self.name(&key, name, "site");
            let kind = self.site_kind(&key, s);
            let credentials = self.credentials(&key, s);
            if let Some(url) = &s.api_endpoint {
                let ok = ["http://", "https://"].iter().any(|scheme| {
                    url.strip_prefix(scheme)
                        .is_some_and(|rest| !rest.is_empty())
                });
                if !ok {
                    self.error(
                        &key.key("api_endpoint"),
                        Anchor::Value,
                        format!("`{url}` is not an http(s) URL"),
                        "a base URL such as https://ec2.eu-west-1.amazonaws.com",
                        "leave it out to use the cloud's public endpoint",
                    );
                }
            }
            let mtu = s
                .underlay_mtu
                .or(overlay.map(|o| u32::from(o.underlay_mtu)))
                .and_then(|m| u16::try_from(m).ok());
            if let (true, Some(kind), Some(credentials), Some(underlay_mtu)) =
                (named, kind, credentials, mtu)
            {
                sites.insert(
                    name.clone(),
                    Site {
                        name: name.clone(),
                        kind,
                        credentials,
                        underlay_mtu,
                        api_endpoint: s.api_endpoint.clone(),
                    },
                );
            }
        }
        sites
    }

    fn site_kind(&mut self, key: &KeyPath, s: &SiteSection) -> Option<SiteKind> {
        let kind_name = kind_name(s.kind);
        let fields: [(&str, &Option<String>, &[SiteKindName]); 4] = [
            ("region", &s.region, &[SiteKindName::Aws]),
            ("subscription", &s.subscription, &[SiteKindName::Azure]),
            ("resource_group", &s.resource_group, &[SiteKindName::Azure]),
            ("project", &s.project, &[SiteKindName::Gcp]),
        ];
        let mut ok = true;
        for (field, value, kinds) in fields {
            match (value, kinds.contains(&s.kind)) {
                (Some(_), false) => {
                    ok = false;
                    self.error(
                        &key.key(field),
                        Anchor::Key,
                        format!("`{field}` does not apply to {kind_name} sites"),
                        format!("only the keys of {kind_name} sites"),
                        "remove it, or correct `kind`",
                    );
                }
                (None, true) if self.misspelt(key, field) => ok = false,
                (None, true) => {
                    ok = false;
                    let example = match field {
                        "region" => "region = \"eu-west-1\"",
                        "subscription" => "subscription = \"00000000-0000-0000-0000-000000000000\"",
                        "resource_group" => "resource_group = \"weft-prod\"",
                        _ => "project = \"acme-net\"",
                    };
                    self.error(
                        &key.key(field),
                        Anchor::Key,
                        format!("`{field}` is required at {kind_name} sites"),
                        format!("`{field}`: where the {kind_name} route tables live"),
                        format!("add `{example}` to [{key}]"),
                    );
                }
                (Some(v), true) => ok &= self.cloud_field(&key.key(field), field, v),
                (None, false) => {}
            }
        }
        if !ok {
            return None;
        }
        let get = |v: &Option<String>| v.clone().unwrap_or_default();
        Some(match s.kind {
            SiteKindName::Aws => SiteKind::Aws {
                region: get(&s.region),
            },
            SiteKindName::Azure => SiteKind::Azure {
                subscription: get(&s.subscription).to_lowercase(),
                resource_group: get(&s.resource_group),
            },
            SiteKindName::Gcp => SiteKind::Gcp {
                project: get(&s.project),
            },
            SiteKindName::Linux => SiteKind::Linux,
        })
    }

    /// Whether the table at `key` holds an unknown key, already reported, that is most
    /// likely `field` misspelt (`regoin` for `region`).
    fn misspelt(&self, key: &KeyPath, field: &str) -> bool {
        self.file.pruned.iter().any(|p| {
            p.parent() == *key
                && p.last_key().and_then(|k| suggested_key(key, k)).as_deref() == Some(field)
        })
    }

    fn cloud_field(&mut self, key: &KeyPath, field: &str, value: &str) -> bool {
        let (valid, expected, example) = match field {
            "region" => (is_aws_region(value), "an AWS region code", "eu-west-1"),
            "subscription" => (
                is_guid(value),
                "an Azure subscription GUID",
                "00000000-0000-0000-0000-000000000000",
            ),
            "resource_group" => (
                is_resource_group(value),
                "an Azure resource group name",
                "weft-prod",
            ),
            _ => (
                is_gcp_project(value),
                "a GCP project id: 6 to 30 lowercase letters, digits or hyphens",
                "acme-net",
            ),
        };
        if !valid {
            self.error(
                key,
                Anchor::Value,
                format!("`{value}` is not a valid {field}"),
                expected,
                format!("for example `{example}`"),
            );
        }
        valid
    }

    fn credentials(&mut self, key: &KeyPath, s: &SiteSection) -> Option<CredentialSource> {
        let text = s.credentials.as_deref().unwrap_or("default");
        let parsed = match (s.kind, text) {
            (_, "default") => Some(CredentialSource::Default),
            (SiteKindName::Aws | SiteKindName::Azure, "env") => Some(CredentialSource::Env),
            (SiteKindName::Aws, "imds") => Some(CredentialSource::Imds),
            (SiteKindName::Aws, t) if t.strip_prefix("profile:").is_some_and(|p| !p.is_empty()) => {
                Some(CredentialSource::Profile(t["profile:".len()..].to_owned()))
            }
            (SiteKindName::Azure, "managed-identity") => Some(CredentialSource::ManagedIdentity),
            (SiteKindName::Azure, "workload-identity") => Some(CredentialSource::WorkloadIdentity),
            (SiteKindName::Azure, "cli") => Some(CredentialSource::AzureCli),
            (SiteKindName::Gcp, "metadata") => Some(CredentialSource::Metadata),
            (SiteKindName::Gcp, t) if t.strip_prefix("file:").is_some_and(|p| !p.is_empty()) => {
                Some(CredentialSource::File(PathBuf::from(&t["file:".len()..])))
            }
            _ => None,
        };
        if parsed.is_none() {
            let kind = kind_name(s.kind);
            let allowed = match s.kind {
                SiteKindName::Aws => "default, env, imds, profile:NAME",
                SiteKindName::Azure => "default, env, managed-identity, workload-identity, cli",
                SiteKindName::Gcp => "default, metadata, file:PATH",
                SiteKindName::Linux => "default",
            };
            self.error(
                &key.key("credentials"),
                Anchor::Value,
                format!("`{text}` is not a credential source of {kind} sites"),
                format!("one of: {allowed}"),
                "name where credentials come from, never the secret itself; `default` uses the \
                 cloud's standard chain",
            );
        }
        parsed
    }

    fn gateways(
        &mut self,
        file: &Sections,
        overlay: &OverlayParts,
        sites: &BTreeMap<String, Site>,
    ) -> BTreeMap<String, Gateway> {
        let site_names: Vec<&str> = file.sites.keys().map(String::as_str).collect();
        let mut gateways = BTreeMap::new();
        let mut by_site: HashMap<&str, &str> = HashMap::new();
        let mut by_key: HashMap<PublicKey, &str> = HashMap::new();
        let mut by_infra: HashMap<Ipv4Addr, &str> = HashMap::new();
        let mut by_endpoint: HashMap<Endpoint, &str> = HashMap::new();
        for (name, g) in &file.gateways {
            let key = path(&["gateways", name]);
            let named = self.name(&key, name, "gateway");
            let site_ok = self.reference(&key.key("site"), &g.site, "site", &site_names, "sites");
            if site_ok && let Some(other) = by_site.insert(&g.site, name) {
                self.error(
                    &key.key("site"),
                    Anchor::Value,
                    format!("site `{}` already has gateway `{other}`", g.site),
                    "one gateway per site",
                    "give this gateway its own site, or remove one of the two",
                );
            }
            // Without a readable overlay the default port is unknown: the endpoint is still
            // checked, but not compared with the others.
            let endpoint = self
                .endpoint(
                    &key.key("endpoint"),
                    &g.endpoint,
                    overlay.listen_port.unwrap_or(DEFAULT_LISTEN_PORT),
                )
                .filter(|_| overlay.listen_port.is_some());
            if let Some(e) = &endpoint
                && let Some(other) = by_endpoint.insert(e.clone(), name)
            {
                self.error(
                    &key.key("endpoint"),
                    Anchor::Value,
                    format!("endpoint {e} is also gateway `{other}`'s"),
                    "a distinct underlay endpoint per gateway",
                    "each gateway needs its own address or port",
                );
            }
            let public_key = self.public_key(&key.key("public_key"), g);
            if let Some(k) = public_key
                && let Some(other) = by_key.insert(k, name)
            {
                self.error(
                    &key.key("public_key"),
                    Anchor::Value,
                    format!("public key is also gateway `{other}`'s"),
                    "a distinct WireGuard key pair per gateway",
                    "make a new pair with `weft keygen FILE`",
                );
            }
            let infra = self.infra_address(
                &key.key("infra_address"),
                &g.infra_address,
                overlay.infra_prefix,
            );
            if let Some(ip) = infra
                && let Some(other) = by_infra.insert(ip, name)
            {
                self.error(
                    &key.key("infra_address"),
                    Anchor::Value,
                    format!("infra address {ip} is also gateway `{other}`'s"),
                    "a distinct infra address per gateway",
                    "pick a free address in overlay.infra_prefix",
                );
            }
            let infra = infra.filter(|_| overlay.infra_prefix.is_some());
            let key_file = self.key_file(&key.key("private_key_file"), &g.private_key_file);
            if let (
                true,
                true,
                Some(endpoint),
                Some(public_key),
                Some(infra_address),
                Some(private_key_file),
            ) = (
                named,
                site_ok && sites.contains_key(&g.site),
                endpoint,
                public_key,
                infra,
                key_file,
            ) {
                gateways.insert(
                    name.clone(),
                    Gateway {
                        name: name.clone(),
                        site: g.site.clone(),
                        endpoint,
                        public_key,
                        private_key_file,
                        infra_address,
                    },
                );
            }
        }
        gateways
    }

    fn endpoint(&mut self, key: &KeyPath, text: &str, default_port: u16) -> Option<Endpoint> {
        if let Some(endpoint) = parse_endpoint(text, default_port) {
            return Some(endpoint);
        }
        let message = match text.rsplit_once(':') {
            Some((host, "0")) if parse_endpoint(host.trim_matches(['[', ']']), 1).is_some() => {
                format!("`{text}` has port 0")
            }
            _ => format!("`{text}` is not an endpoint"),
        };
        self.error(
            key,
            Anchor::Value,
            message,
            "IP, IP:PORT, [IPv6]:PORT or host.name:PORT with a port from 1 to 65535",
            "for example `203.0.113.10:51820`",
        );
        None
    }

    fn public_key(&mut self, key: &KeyPath, g: &GatewaySection) -> Option<PublicKey> {
        match PublicKey::parse(&g.public_key) {
            Ok(k) => Some(k),
            Err(why) => {
                self.error(
                    key,
                    Anchor::Value,
                    format!("public key {why}"),
                    "a WireGuard public key: 44 characters of base64 encoding 32 bytes",
                    "copy it from the output of `weft keygen FILE` or `wg pubkey`",
                );
                None
            }
        }
    }

    /// An infra address, inside `prefix` when that is known (it is not when the prefix
    /// itself is wrong; that was reported on its own).
    fn infra_address(
        &mut self,
        key: &KeyPath,
        text: &str,
        prefix: Option<Ipv4Net>,
    ) -> Option<Ipv4Addr> {
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            let hint = match text.split_once('/') {
                Some((ip, _)) if ip.parse::<Ipv4Addr>().is_ok() => {
                    format!("write the bare address: `{ip}`")
                }
                _ => "write a bare IPv4 address, such as 100.64.0.1".to_owned(),
            };
            self.error(
                key,
                Anchor::Value,
                format!("`{text}` is not an IPv4 address"),
                match prefix {
                    Some(prefix) => {
                        format!("an IPv4 address inside overlay.infra_prefix ({prefix})")
                    }
                    None => "an IPv4 address inside overlay.infra_prefix".to_owned(),
                },
                hint,
            );
            return None;
        };
        let Some(prefix) = prefix else {
            return Some(ip);
        };
        if !prefix.contains(&ip) || ip == prefix.network() || ip == prefix.broadcast() {
            self.error(
                key,
                Anchor::Value,
                format!("{ip} is not a usable address of overlay.infra_prefix {prefix}"),
                format!("a host address of {prefix}"),
                format!(
                    "pick one from {} to {}",
                    prefix.hosts().next().unwrap_or(ip),
                    prefix.hosts().last().unwrap_or(ip)
                ),
            );
            return None;
        }
        Some(ip)
    }

    fn key_file(&mut self, key: &KeyPath, text: &str) -> Option<PathBuf> {
        if text.trim().is_empty() {
            self.error(
                key,
                Anchor::Value,
                "private key file is empty",
                "the path of a file holding the gateway's private key",
                "create one with `weft keygen FILE`",
            );
            return None;
        }
        let file = Path::new(text);
        if file.is_absolute() || self.sources.is_from_env(key) {
            return Some(file.to_owned());
        }
        let base = self
            .sources
            .defining_file(key)
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        Some(base.join(file))
    }

    fn networks(
        &mut self,
        file: &Sections,
        tenants: &BTreeMap<String, Tenant>,
        sites: &BTreeMap<String, Site>,
    ) -> BTreeMap<NetworkId, Network> {
        let tenant_names: Vec<&str> = file.tenants.keys().map(String::as_str).collect();
        let network_names: Vec<&str> = file.networks.keys().map(String::as_str).collect();
        // First pass: each network on its own.
        let mut drafts: BTreeMap<NetworkId, Draft> = BTreeMap::new();
        for (name, n) in &file.networks {
            let key = path(&["networks", name]);
            let id = match name.parse::<NetworkId>() {
                Ok(id) => id,
                Err(why) => {
                    self.error(
                        &key,
                        Anchor::Key,
                        format!("network name {why}"),
                        "tenant/name, both lowercase DNS labels",
                        "for example [networks.\"shop/prod\"]",
                    );
                    continue;
                }
            };
            let tenant_ok = tenants.contains_key(&id.tenant)
                || self.reference_at(
                    &key,
                    Anchor::Key,
                    &id.tenant,
                    "tenant",
                    &tenant_names,
                    "tenants",
                );
            let cidrs = n
                .cidrs
                .as_ref()
                .map(|list| self.cidr_list(&key.key("cidrs"), list));
            if tenant_ok {
                drafts.insert(
                    id,
                    Draft {
                        key,
                        cidrs_complete: cidrs.as_ref().is_none_or(|(_, complete)| *complete),
                        cidrs: cidrs.map(|(list, _)| list),
                        label: n.label,
                        like: n.like.clone(),
                        description: n.description.clone(),
                    },
                );
            }
        }
        // Second pass: `like`, then labels.
        let mut resolved: BTreeMap<NetworkId, Resolved> = BTreeMap::new();
        for (id, draft) in &drafts {
            let like = draft
                .like
                .as_ref()
                .and_then(|text| self.like(id, draft, text, &drafts, &network_names));
            let (cidrs, cidrs_complete) = match (&draft.cidrs, &like) {
                (Some(own), _) => (Some(own.clone()), draft.cidrs_complete),
                (None, Some(model)) => (drafts[model].cidrs.clone(), drafts[model].cidrs_complete),
                (None, None) => {
                    if draft.like.is_none() {
                        self.error(
                            &draft.key.key("cidrs"),
                            Anchor::Key,
                            format!("network `{id}` has no `cidrs`"),
                            "the network's address space, or `like` naming a network to copy it from",
                            "add `cidrs = [\"10.0.0.0/16\"]` or `like = \"tenant/network\"`",
                        );
                    }
                    (None, false)
                }
            };
            if let Some(cidrs) = cidrs {
                resolved.insert(
                    id.clone(),
                    Resolved {
                        cidrs,
                        cidrs_complete,
                        like,
                    },
                );
            }
        }
        let labels = self.labels(&drafts);
        let attachments = self.attachments(file, &drafts, &resolved, sites);
        resolved
            .into_iter()
            .filter_map(|(id, Resolved { cidrs, like, .. })| {
                let label = *labels.get(&id)?;
                let draft = &drafts[&id];
                Some((
                    id.clone(),
                    Network {
                        attachments: attachments.get(&id).cloned().unwrap_or_default(),
                        id,
                        label,
                        cidrs,
                        like,
                        description: draft.description.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Parses a list of prefixes and reports overlaps among them. Returns the good ones, and
    /// whether every item was good.
    fn cidr_list(&mut self, key: &KeyPath, list: &[String]) -> (Vec<IpNet>, bool) {
        let mut parsed: Vec<(usize, IpNet)> = Vec::new();
        let mut complete = true;
        for (i, text) in list.iter().enumerate() {
            let Some(net) = self.cidr(&key.index(i), text) else {
                complete = false;
                continue;
            };
            if let Some((j, other)) = parsed.iter().find(|(_, other)| overlaps(net, *other)) {
                let (message, hint) = if net == *other {
                    (
                        format!("{net} is listed twice (also item {j})"),
                        "remove one of them",
                    )
                } else {
                    (
                        format!("{net} overlaps {other} (item {j} of the same list)"),
                        "remove one of them, or merge them into one prefix",
                    )
                };
                self.error(
                    &key.index(i),
                    Anchor::Value,
                    message,
                    "prefixes that do not overlap",
                    hint,
                );
                complete = false;
                continue;
            }
            parsed.push((i, net));
        }
        (parsed.into_iter().map(|(_, net)| net).collect(), complete)
    }

    fn like(
        &mut self,
        id: &NetworkId,
        draft: &Draft,
        text: &str,
        drafts: &BTreeMap<NetworkId, Draft>,
        names: &[&str],
    ) -> Option<NetworkId> {
        let key = draft.key.key("like");
        let model: NetworkId = match text.parse() {
            Ok(model) => model,
            Err(why) => {
                self.error(
                    &key,
                    Anchor::Value,
                    why,
                    "the name of another network, tenant/name",
                    "for example like = \"shop/prod\"",
                );
                return None;
            }
        };
        if &model == id {
            self.error(
                &key,
                Anchor::Value,
                format!("network `{id}` is `like` itself"),
                "another network",
                "remove `like`, or name the network to copy",
            );
            return None;
        }
        let Some(model_draft) = drafts.get(&model) else {
            self.reference(&key, text, "network", names, "networks");
            return None;
        };
        if let Some(further) = &model_draft.like {
            self.error(
                &key,
                Anchor::Value,
                format!("`{model}` is itself `like` `{further}`; `like` does not chain"),
                "a network that declares its own shape",
                format!("write like = \"{further}\""),
            );
            return None;
        }
        Some(model)
    }

    fn labels(&mut self, drafts: &BTreeMap<NetworkId, Draft>) -> BTreeMap<NetworkId, Label> {
        let mut owners: HashMap<Label, (&NetworkId, bool)> = HashMap::new();
        let mut labels = BTreeMap::new();
        // Explicit labels first, so that a derived label never takes one a user chose.
        let explicit = drafts.iter().filter(|(_, d)| d.label.is_some());
        let derived = drafts.iter().filter(|(_, d)| d.label.is_none());
        for (id, draft) in explicit.chain(derived) {
            let (label, chosen) = match draft.label.and_then(Label::new) {
                Some(label) => (label, true),
                None if draft.label.is_some() => continue, // out of range: the schema said so
                None => (Label::derived(id), false),
            };
            if let Some((other, other_chosen)) = owners.get(&label) {
                let how = if *other_chosen {
                    "set on"
                } else {
                    "derived for"
                };
                let (key, anchor, message) = if chosen {
                    (
                        draft.key.key("label"),
                        Anchor::Value,
                        format!("label {label} is already {how} network `{other}`"),
                    )
                } else {
                    (
                        draft.key.clone(),
                        Anchor::Key,
                        format!(
                            "label {label} derived from the name collides with network `{other}`"
                        ),
                    )
                };
                self.error(
                    &key,
                    anchor,
                    message,
                    "a label no other network uses",
                    "set `label` explicitly to an unused value from 16 to 1048575",
                );
                continue;
            }
            owners.insert(label, (id, chosen));
            labels.insert(id.clone(), label);
        }
        labels
    }

    fn attachments(
        &mut self,
        file: &Sections,
        drafts: &BTreeMap<NetworkId, Draft>,
        resolved: &BTreeMap<NetworkId, Resolved>,
        sites: &BTreeMap<String, Site>,
    ) -> BTreeMap<NetworkId, BTreeMap<String, Attachment>> {
        let network_names: Vec<&str> = file.networks.keys().map(String::as_str).collect();
        let site_names: Vec<&str> = file.sites.keys().map(String::as_str).collect();
        // Prefixes each attachment declares itself, for `like` to copy.
        let mut own_prefixes: HashMap<(NetworkId, String), Vec<IpNet>> = HashMap::new();
        let mut valid: Vec<(NetworkId, String, &AttachmentSection)> = Vec::new();
        for (net_name, by_site) in &file.attachments {
            let net_key = path(&["attachments", net_name]);
            let Ok(id) = net_name.parse::<NetworkId>() else {
                self.reference_at(
                    &net_key,
                    Anchor::Key,
                    net_name,
                    "network",
                    &network_names,
                    "networks",
                );
                continue;
            };
            if !drafts.contains_key(&id) {
                if !file.networks.contains_key(net_name) {
                    self.reference_at(
                        &net_key,
                        Anchor::Key,
                        net_name,
                        "network",
                        &network_names,
                        "networks",
                    );
                }
                continue;
            }
            for (site_name, a) in by_site {
                let key = net_key.key(site_name);
                if !file.sites.contains_key(site_name) {
                    if file.is_broken("sites", site_name) {
                        continue;
                    }
                    let hint = did_you_mean(site_name, site_names.iter().copied()).map_or_else(
                        || "declare it under [sites]".to_owned(),
                        |c| format!("did you mean `{c}`?"),
                    );
                    self.error(
                        &key,
                        Anchor::Key,
                        format!("site `{site_name}` is not declared"),
                        "the name of a site under [sites]",
                        hint,
                    );
                    continue;
                }
                if let Some(list) = &a.prefixes {
                    let (prefixes, _) = self.cidr_list(&key.key("prefixes"), list);
                    own_prefixes.insert((id.clone(), site_name.clone()), prefixes);
                }
                valid.push((id.clone(), site_name.clone(), a));
            }
        }
        // Whether every gateway could be read and names a declared site. If not, a site may
        // well have a gateway that the mistakes already reported hide.
        let gateways_known = !file.is_misspelt_section("gateways")
            && !file.broken.iter().chain(&file.pruned).any(|p| {
                p.segments().first() == Some(&Segment::Key("gateways".into()))
                    && p.segments().len() <= 2
            })
            && file
                .gateways
                .values()
                .all(|g| file.sites.contains_key(&g.site) || file.is_broken("sites", &g.site));
        let mut result: BTreeMap<NetworkId, BTreeMap<String, Attachment>> = BTreeMap::new();
        let mut interfaces: HashMap<(String, String), NetworkId> = HashMap::new();
        for (id, site_name, a) in valid {
            let key = path(&["attachments", &id.to_string(), &site_name]);
            let Some(Resolved {
                cidrs,
                cidrs_complete,
                like,
            }) = resolved.get(&id)
            else {
                continue;
            };
            let prefixes = own_prefixes
                .get(&(id.clone(), site_name.clone()))
                .or_else(|| {
                    like.as_ref()
                        .and_then(|m| own_prefixes.get(&(m.clone(), site_name.clone())))
                })
                .cloned()
                .unwrap_or_default();
            let prefixes_key = key.key("prefixes");
            for (i, prefix) in prefixes.iter().enumerate() {
                if *cidrs_complete && !cidrs.iter().any(|c| c.contains(prefix)) {
                    let own = a.prefixes.is_some();
                    self.error(
                        &if own {
                            prefixes_key.index(i)
                        } else {
                            key.clone()
                        },
                        if own { Anchor::Value } else { Anchor::Key },
                        format!("{prefix} lies outside network `{id}` ({})", join(cidrs)),
                        "prefixes inside the network's CIDRs",
                        "correct the prefix, or add a CIDR that holds it to the network",
                    );
                }
            }
            if gateways_known && file.gateways.values().all(|g| g.site != site_name) {
                self.error(
                    &key,
                    Anchor::Key,
                    format!("site `{site_name}` has no gateway to serve network `{id}`"),
                    "a gateway at every site where a network is attached",
                    format!("add a [gateways.NAME] with site = \"{site_name}\""),
                );
            }
            let interface_ok = match check_interface(&a.interface) {
                Ok(()) => true,
                Err(why) => {
                    self.error(
                        &key.key("interface"),
                        Anchor::Value,
                        format!("interface name `{}` {why}", a.interface),
                        "a Linux interface name such as eth1",
                        "use the name `ip link` shows on the gateway",
                    );
                    false
                }
            };
            if interface_ok
                && let Some(other) =
                    interfaces.insert((site_name.clone(), a.interface.clone()), id.clone())
            {
                self.error(
                    &key.key("interface"),
                    Anchor::Value,
                    format!(
                        "interface `{}` at site `{site_name}` already carries network `{other}`",
                        a.interface
                    ),
                    "one interface per network at a site: the interface selects the network",
                    "give each network its own interface (VLAN, ENI or NIC)",
                );
            }
            let Some(site) = sites.get(&site_name) else {
                continue;
            };
            let route_tables: Vec<RouteTableRef> = a
                .route_tables
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    self.route_table(&key.key("route_tables").index(i), t, &site.kind)
                })
                .collect();
            if !a.route_table_tags.is_empty() && !matches!(site.kind, SiteKind::Aws { .. }) {
                self.error(
                    &key.key("route_table_tags"),
                    Anchor::Key,
                    format!(
                        "route table tags select AWS route tables; `{site_name}` is {} site",
                        a_kind(&site.kind)
                    ),
                    "route_table_tags only at aws sites",
                    "list the route tables in `route_tables` instead",
                );
            }
            let next_hop = a
                .next_hop
                .as_ref()
                .and_then(|t| self.next_hop(&key.key("next_hop"), t, &site.kind));
            let next_hop_ipv6 = a
                .next_hop_ipv6
                .as_ref()
                .and_then(|t| self.next_hop_ipv6(&key.key("next_hop_ipv6"), t));
            if a.next_hop.is_none()
                && (!a.route_tables.is_empty() || !a.route_table_tags.is_empty())
            {
                self.error(
                    &key.key("next_hop"),
                    Anchor::Key,
                    "route tables are listed but no `next_hop` to point them at",
                    next_hop_expected(&site.kind),
                    "add `next_hop`: the gateway's interface (or address) in this network",
                );
            }
            result.entry(id.clone()).or_default().insert(
                site_name.clone(),
                Attachment {
                    site: site_name.clone(),
                    prefixes,
                    interface: a.interface.clone(),
                    addresses: self.interface_addresses(&key.key("addresses"), &a.addresses),
                    local_router: self.local_router(&key, a),
                    local_router_ipv6: a.local_router_ipv6.as_ref().and_then(|t| {
                        self.ip_of_family(&key.key("local_router_ipv6"), t, false)
                            .and_then(|ip| match ip {
                                IpAddr::V6(v6) => Some(v6),
                                IpAddr::V4(_) => None,
                            })
                    }),
                    route_tables,
                    route_table_tags: a.route_table_tags.clone(),
                    next_hop,
                    next_hop_ipv6,
                    takeover: a.takeover,
                },
            );
        }
        for (id, attachments) in &result {
            self.prefix_claims(id, attachments, &own_prefixes);
            self.next_hop_families(id, attachments);
        }
        result
    }

    /// No prefix of a network may be claimed by two sites: traffic for it would have two
    /// destinations.
    fn prefix_claims(
        &mut self,
        id: &NetworkId,
        attachments: &BTreeMap<String, Attachment>,
        own_prefixes: &HashMap<(NetworkId, String), Vec<IpNet>>,
    ) {
        let mut seen: Vec<(IpNet, &str)> = Vec::new();
        for (site, attachment) in attachments {
            let own = own_prefixes.contains_key(&(id.clone(), site.clone()));
            for (i, prefix) in attachment.prefixes.iter().enumerate() {
                if let Some((other, other_site)) = seen
                    .iter()
                    .find(|(p, s)| s != site && overlaps(*p, *prefix))
                {
                    let base = path(&["attachments", &id.to_string(), site]);
                    let (key, anchor) = if own {
                        (base.key("prefixes").index(i), Anchor::Value)
                    } else {
                        (base, Anchor::Key)
                    };
                    self.error(
                        &key,
                        anchor,
                        format!("{prefix} at site `{site}` overlaps {other} at site `{other_site}` in network `{id}`"),
                        "each prefix of a network at exactly one site",
                        "a prefix can live at one site only; split or move one of them",
                    );
                }
            }
            seen.extend(attachment.prefixes.iter().map(|p| (*p, site.as_str())));
        }
    }

    /// Every destination an attachment writes into its route tables (the network's prefixes
    /// at the other sites) needs a next hop of its address family.
    fn next_hop_families(&mut self, id: &NetworkId, attachments: &BTreeMap<String, Attachment>) {
        for (site, attachment) in attachments {
            let Some(hop) = &attachment.next_hop else {
                continue;
            };
            let unserved = attachments
                .iter()
                .filter(|(other, _)| *other != site)
                .flat_map(|(_, other)| &other.prefixes)
                .find(|d| attachment.next_hop_for(d).is_none());
            let Some(destination) = unserved else {
                continue;
            };
            let key = path(&["attachments", &id.to_string(), site]);
            if self.diagnostics.iter().any(|d| d.key.starts_with(&key)) {
                continue; // a bad next hop of this attachment was reported already
            }
            let (family, hint) = match destination {
                IpNet::V6(_) => (
                    "IPv6",
                    "add `next_hop_ipv6`: the gateway's IPv6 address in this network".to_owned(),
                ),
                IpNet::V4(_) => (
                    "IPv4",
                    "write the gateway's IPv4 address in `next_hop` and its IPv6 address in \
                     `next_hop_ipv6`"
                        .to_owned(),
                ),
            };
            self.error(
                &key.key("next_hop"),
                Anchor::Value,
                format!(
                    "{family} destinations of network `{id}` such as {destination} have no next hop: `{hop}` is not an {family} next hop"
                ),
                "a next hop for every address family the network's remote prefixes use",
                hint,
            );
        }
    }

    /// The gateway's addresses on an interface: an address with its prefix length, where
    /// host bits are the point.
    fn interface_addresses(&mut self, key: &KeyPath, list: &[String]) -> Vec<IpNet> {
        let mut parsed: Vec<IpNet> = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match text.parse::<IpNet>() {
                Ok(net) if parsed.iter().any(|p| p.addr() == net.addr()) => self.error(
                    &key.index(i),
                    Anchor::Value,
                    format!("address {} is listed twice", net.addr()),
                    "each address once",
                    "remove one of them",
                ),
                Ok(net) => parsed.push(net),
                Err(_) => self.error(
                    &key.index(i),
                    Anchor::Value,
                    format!("`{text}` is not an address with a prefix length"),
                    "the gateway's address on the interface and its subnet's length, such as 169.254.100.1/30",
                    "write ADDRESS/LENGTH",
                ),
            }
        }
        parsed
    }

    /// An address of one family: IPv4 when `v4`, else IPv6.
    fn ip_of_family(&mut self, key: &KeyPath, text: &str, v4: bool) -> Option<IpAddr> {
        let family = if v4 { "IPv4" } else { "IPv6" };
        match text.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv4() == v4 => Some(ip),
            _ => {
                self.error(
                    key,
                    Anchor::Value,
                    format!("`{text}` is not an {family} address"),
                    format!("a bare {family} address"),
                    if v4 {
                        "for example 10.10.1.1; IPv6 goes in local_router_ipv6"
                    } else {
                        "for example fe80::1"
                    },
                );
                None
            }
        }
    }

    /// The IPv4 router towards the site's prefixes, which must be on-link: inside one of the
    /// interface's IPv4 subnets when the configuration gives them.
    fn local_router(&mut self, key: &KeyPath, a: &AttachmentSection) -> Option<Ipv4Addr> {
        let text = a.local_router.as_ref()?;
        let router_key = key.key("local_router");
        let IpAddr::V4(router) = self.ip_of_family(&router_key, text, true)? else {
            return None;
        };
        let subnets: Vec<Ipv4Net> = a
            .addresses
            .iter()
            .filter_map(|t| t.parse::<Ipv4Net>().ok())
            .collect();
        if !subnets.is_empty() && !subnets.iter().any(|s| s.contains(&router)) {
            self.error(
                &router_key,
                Anchor::Value,
                format!("router {router} is not on-link: outside every IPv4 subnet of `addresses`"),
                "a router inside one of the interface's subnets",
                "correct the router, or the address's prefix length",
            );
            return None;
        }
        Some(router)
    }

    fn next_hop_ipv6(&mut self, key: &KeyPath, text: &str) -> Option<Ipv6Addr> {
        let parsed = text.parse::<Ipv6Addr>().ok();
        if parsed.is_none() {
            self.error(
                key,
                Anchor::Value,
                format!("`{text}` is not an IPv6 address"),
                "the gateway's IPv6 address in this network",
                "write a bare IPv6 address such as fd10:10:0:2::4",
            );
        }
        parsed
    }

    fn route_table(&mut self, key: &KeyPath, text: &str, kind: &SiteKind) -> Option<RouteTableRef> {
        let parsed = parse_route_table(text, kind);
        if parsed.is_none() {
            let (expected, example) = match kind {
                SiteKind::Aws { .. } => (
                    "an AWS route table id, rtb- and 8 or 17 hex digits",
                    "rtb-0a1b2c3d4e5f60718",
                ),
                SiteKind::Azure { .. } => (
                    "an Azure route table name or resource id",
                    "/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Network/routeTables/NAME",
                ),
                SiteKind::Gcp { .. } => (
                    "a GCP VPC network name or projects/P/global/networks/N",
                    "prod-vpc",
                ),
                SiteKind::Linux => (
                    "a kernel table: main, a number from 1 to 252 or 256 and up, or NETNS:TABLE",
                    "main",
                ),
            };
            self.error(
                key,
                Anchor::Value,
                format!("`{text}` is not {} route table", a_kind(kind)),
                expected,
                format!("for example `{example}`"),
            );
        }
        parsed
    }

    fn next_hop(&mut self, key: &KeyPath, text: &str, kind: &SiteKind) -> Option<NextHop> {
        let parsed = parse_next_hop(text, kind);
        if parsed.is_none() {
            self.error(
                key,
                Anchor::Value,
                format!("`{text}` is not a next hop for {} site", a_kind(kind)),
                next_hop_expected(kind),
                "name the gateway's own interface or address in this network",
            );
        }
        parsed
    }
}

fn next_hop_expected(kind: &SiteKind) -> &'static str {
    match kind {
        SiteKind::Aws { .. } => "an ENI id (eni-…) or an instance id (i-…)",
        SiteKind::Azure { .. } => "the IP address of the gateway's NIC",
        SiteKind::Gcp { .. } => "an IP address or zones/ZONE/instances/NAME",
        SiteKind::Linux => "an IP address of the gateway",
    }
}

struct Draft {
    key: KeyPath,
    cidrs: Option<Vec<IpNet>>,
    /// False when some of the CIDRs were wrong (and reported): prefixes outside the rest
    /// may well be inside the CIDR meant.
    cidrs_complete: bool,
    label: Option<u32>,
    like: Option<String>,
    description: Option<String>,
}

/// A network's address space once `like` is resolved.
struct Resolved {
    cidrs: Vec<IpNet>,
    /// Whether all of the CIDRs were valid; see [`Draft::cidrs_complete`].
    cidrs_complete: bool,
    like: Option<NetworkId>,
}

fn join(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn parse_endpoint(text: &str, default_port: u16) -> Option<Endpoint> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return (addr.port() != 0).then(|| Endpoint {
            host: EndpointHost::Ip(addr.ip()),
            port: addr.port(),
        });
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Endpoint {
            host: EndpointHost::Ip(ip),
            port: default_port,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (text, default_port),
    };
    if host.parse::<IpAddr>().is_ok()
        || check_dns_name(host).is_err()
        || host.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    Some(Endpoint {
        host: EndpointHost::Name(host.to_lowercase()),
        port,
    })
}

fn is_hex_id(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn is_aws_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_resource_group(text: &str) -> bool {
    (1..=90).contains(&text.len())
        && !text.ends_with('.')
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
}

fn is_gcp_name(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && !text.ends_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_gcp_project(text: &str) -> bool {
    text.len() >= 6 && is_gcp_name(text, 30)
}

fn parse_route_table(text: &str, kind: &SiteKind) -> Option<RouteTableRef> {
    match kind {
        SiteKind::Aws { .. } => is_hex_id(text, "rtb-").then(|| RouteTableRef::Aws {
            id: text.to_owned(),
        }),
        SiteKind::Azure {
            subscription,
            resource_group,
        } => {
            if !text.contains('/') && is_resource_group(text) {
                return Some(RouteTableRef::Azure {
                    id: format!(
                        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Network/routeTables/{text}"
                    ),
                });
            }
            let parts: Vec<&str> = text.split('/').collect();
            let ok = parts.len() == 9
                && parts[0].is_empty()
                && parts[1].eq_ignore_ascii_case("subscriptions")
                && is_guid(parts[2])
                && parts[3].eq_ignore_ascii_case("resourceGroups")
                && is_resource_group(parts[4])
                && parts[5].eq_ignore_ascii_case("providers")
                && parts[6].eq_ignore_ascii_case("Microsoft.Network")
                && parts[7].eq_ignore_ascii_case("routeTables")
                && is_resource_group(parts[8]);
            ok.then(|| RouteTableRef::Azure {
                id: text.to_owned(),
            })
        }
        SiteKind::Gcp { project } => {
            if is_gcp_name(text, 63) {
                return Some(RouteTableRef::Gcp {
                    network: format!("projects/{project}/global/networks/{text}"),
                });
            }
            let rest = text
                .strip_prefix("https://www.googleapis.com/compute/v1/")
                .unwrap_or(text);
            let parts: Vec<&str> = rest.split('/').collect();
            let ok = parts.len() == 5
                && parts[0] == "projects"
                && is_gcp_project(parts[1])
                && parts[2] == "global"
                && parts[3] == "networks"
                && is_gcp_name(parts[4], 63);
            ok.then(|| RouteTableRef::Gcp {
                network: rest.to_owned(),
            })
        }
        SiteKind::Linux => {
            let (netns, table) = match text.rsplit_once(':') {
                Some((ns, table)) if !ns.is_empty() && !ns.contains('/') && ns.len() <= 64 => {
                    (Some(ns.to_owned()), table)
                }
                Some(_) => return None,
                None => (None, text),
            };
            let table = match table {
                "main" => 254,
                n => n
                    .parse::<u32>()
                    .ok()
                    .filter(|n| !matches!(n, 0 | 253..=255))?,
            };
            Some(RouteTableRef::Linux { netns, table })
        }
    }
}

fn parse_next_hop(text: &str, kind: &SiteKind) -> Option<NextHop> {
    match kind {
        SiteKind::Aws { .. } if is_hex_id(text, "eni-") => Some(NextHop::AwsEni(text.to_owned())),
        SiteKind::Aws { .. } if is_hex_id(text, "i-") => {
            Some(NextHop::AwsInstance(text.to_owned()))
        }
        SiteKind::Aws { .. } => None,
        SiteKind::Gcp { .. } if text.contains("/instances/") => {
            let rest = text.split_once("zones/").map(|(_, r)| r)?;
            let parts: Vec<&str> = rest.split('/').collect();
            (parts.len() == 3
                && parts[1] == "instances"
                && is_gcp_name(parts[0], 63)
                && is_gcp_name(parts[2], 63))
            .then(|| NextHop::GcpInstance(format!("zones/{rest}")))
        }
        _ => text.parse::<IpAddr>().ok().map(NextHop::Ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = |t| parse_endpoint(t, 51820).map(|e| e.to_string());
        assert_eq!(e("203.0.113.1"), Some("203.0.113.1:51820".into()));
        assert_eq!(e("203.0.113.1:1000"), Some("203.0.113.1:1000".into()));
        assert_eq!(e("[2001:db8::1]:1000"), Some("[2001:db8::1]:1000".into()));
        assert_eq!(e("2001:db8::1"), Some("[2001:db8::1]:51820".into()));
        assert_eq!(e("gw.example.com:443"), Some("gw.example.com:443".into()));
        assert_eq!(e("203.0.113.1:0"), None);
        assert_eq!(e("203.0.113.300:1"), None);
        assert_eq!(e("bad host:1"), None);
    }

    #[test]
    fn route_tables() {
        let aws = SiteKind::Aws {
            region: "eu-west-1".into(),
        };
        assert!(parse_route_table("rtb-0123456789abcdef0", &aws).is_some());
        assert!(parse_route_table("rtb-0123", &aws).is_none());
        let azure = SiteKind::Azure {
            subscription: "00000000-0000-0000-0000-000000000001".into(),
            resource_group: "rg".into(),
        };
        assert_eq!(
            parse_route_table("rt-prod", &azure).unwrap().to_string(),
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt-prod"
        );
        let gcp = SiteKind::Gcp {
            project: "acme-net".into(),
        };
        assert_eq!(
            parse_route_table("prod", &gcp).unwrap().to_string(),
            "projects/acme-net/global/networks/prod"
        );
        assert!(parse_route_table("projects/x/global/networks/prod", &gcp).is_none());
        assert_eq!(
            parse_route_table("lab-ns:100", &SiteKind::Linux),
            Some(RouteTableRef::Linux {
                netns: Some("lab-ns".into()),
                table: 100
            })
        );
        assert_eq!(
            parse_route_table("main", &SiteKind::Linux),
            Some(RouteTableRef::Linux {
                netns: None,
                table: 254
            })
        );
        assert!(parse_route_table("255", &SiteKind::Linux).is_none());
    }

    #[test]
    fn next_hops() {
        let aws = SiteKind::Aws {
            region: "eu-west-1".into(),
        };
        assert_eq!(
            parse_next_hop("eni-0123456789abcdef0", &aws),
            Some(NextHop::AwsEni("eni-0123456789abcdef0".into()))
        );
        assert!(parse_next_hop("10.0.0.1", &aws).is_none());
        let gcp = SiteKind::Gcp {
            project: "acme-net".into(),
        };
        assert_eq!(
            parse_next_hop("projects/acme-net/zones/europe-west1-b/instances/gw", &gcp),
            Some(NextHop::GcpInstance(
                "zones/europe-west1-b/instances/gw".into()
            ))
        );
        assert!(parse_next_hop("10.0.0.1", &SiteKind::Linux).is_some());
    }

    #[test]
    fn articles() {
        assert_eq!(
            a_kind(&SiteKind::Aws {
                region: "eu-west-1".into()
            }),
            "an aws"
        );
        assert_eq!(
            a_kind(&SiteKind::Gcp {
                project: "acme-net".into()
            }),
            "a gcp"
        );
        assert_eq!(a_kind(&SiteKind::Linux), "a linux");
    }

    #[test]
    fn cloud_names() {
        assert!(is_aws_region("eu-west-1"));
        assert!(is_aws_region("us-gov-west-1"));
        assert!(!is_aws_region("europe"));
        assert!(is_guid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_guid("0f8fad5b-d9cb-469f-a165"));
        assert!(is_gcp_project("acme-net"));
        assert!(!is_gcp_project("acme"));
    }
}
