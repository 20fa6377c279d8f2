//! A configuration read entity by entity, so that one broken gateway or site does not hide
//! the mistakes in all the others.
//!
//! Structural errors have already been reported; their values are pruned from the merged
//! tree first. Each entity (the overlay section, a tenant, a network, a site, a gateway, an
//! attachment) is then deserialized on its own: those that still fail lack a required key
//! and are remembered as broken, so that references to them raise no second error.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::file_model::{
    AttachmentSection, GatewaySection, NetworkSection, OverlaySection, SiteSection, TenantSection,
};
use crate::key_path::{KeyPath, Segment};
use crate::schema::suggested_key;

/// The entities of a configuration that could be read.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    pub overlay: Option<OverlaySection>,
    pub tenants: BTreeMap<String, TenantSection>,
    pub networks: BTreeMap<String, NetworkSection>,
    pub sites: BTreeMap<String, SiteSection>,
    pub gateways: BTreeMap<String, GatewaySection>,
    pub attachments: BTreeMap<String, BTreeMap<String, AttachmentSection>>,
    /// Entities present but unreadable, such as `sites.aws-east`.
    pub broken: BTreeSet<KeyPath>,
    /// Values removed because they were structurally wrong (already reported).
    pub pruned: Vec<KeyPath>,
}

impl Sections {
    /// Reads `merged` after removing the values at `pruned`.
    pub(crate) fn read(mut merged: Value, pruned: Vec<KeyPath>) -> Self {
        let pruned: Vec<KeyPath> = pruned.iter().map(up_to_array).collect();
        for path in &pruned {
            remove(&mut merged, path);
        }
        let mut sections = Sections {
            pruned,
            ..Sections::default()
        };
        let section = |name: &str| merged.get(name).cloned();
        match section("overlay").map(serde_json::from_value::<OverlaySection>) {
            Some(Ok(overlay)) => sections.overlay = Some(overlay),
            _ => {
                sections.broken.insert(KeyPath::of(&["overlay"]));
            }
        }
        let broken = &mut sections.broken;
        sections.tenants = entities(section("tenants"), &KeyPath::of(&["tenants"]), broken);
        sections.networks = entities(section("networks"), &KeyPath::of(&["networks"]), broken);
        sections.sites = entities(section("sites"), &KeyPath::of(&["sites"]), broken);
        sections.gateways = entities(section("gateways"), &KeyPath::of(&["gateways"]), broken);
        if let Some(Value::Object(by_network)) = section("attachments") {
            for (network, by_site) in by_network {
                let path = KeyPath::of(&["attachments", &network]);
                let read = entities(Some(by_site), &path, broken);
                sections.attachments.insert(network, read);
            }
        }
        sections
    }

    /// Whether the entity `section.name` may exist in the file but could not be read: it
    /// lacks a required key, it (or its whole section) has the wrong type, or the section's
    /// name is misspelt. Its mistakes were reported already, so references to it raise none.
    pub(crate) fn is_broken(&self, section: &str, name: &str) -> bool {
        let path = KeyPath::of(&[section, name]);
        self.broken.contains(&path) || self.is_pruned(&path) || self.is_misspelt_section(section)
    }

    /// Whether a top-level key was reported as unknown that is most likely `section`
    /// misspelt, such as `[gateway.x]` for `[gateways.x]`: whatever it holds is unknown.
    pub(crate) fn is_misspelt_section(&self, section: &str) -> bool {
        self.pruned.iter().any(|p| match p.segments() {
            [Segment::Key(key)] => {
                key != section && suggested_key(&KeyPath::root(), key).as_deref() == Some(section)
            }
            _ => false,
        })
    }

    /// Whether `path` is at or below a value that was already reported and removed.
    pub(crate) fn is_pruned(&self, path: &KeyPath) -> bool {
        self.pruned.iter().any(|p| path.starts_with(p))
    }
}

fn entities<T: DeserializeOwned>(
    table: Option<Value>,
    path: &KeyPath,
    broken: &mut BTreeSet<KeyPath>,
) -> BTreeMap<String, T> {
    let Some(Value::Object(map)) = table else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(name, value)| match serde_json::from_value(value) {
            Ok(entity) => Some((name, entity)),
            Err(_) => {
                broken.insert(path.key(name));
                None
            }
        })
        .collect()
}

/// An array element cannot be removed alone (the indices of the others would shift), so a
/// bad element takes its whole array with it: the path is cut before the first index.
fn up_to_array(path: &KeyPath) -> KeyPath {
    path.segments()
        .iter()
        .take_while(|s| matches!(s, Segment::Key(_)))
        .cloned()
        .collect()
}

/// Removes the value at `path`, a path of table keys only.
fn remove(root: &mut Value, path: &KeyPath) {
    let Some((last, parents)) = path.segments().split_last() else {
        return;
    };
    let mut node = root;
    for segment in parents {
        let Segment::Key(key) = segment else { return };
        let Some(child) = node.get_mut(key) else {
            return;
        };
        node = child;
    }
    if let (Segment::Key(key), Value::Object(map)) = (last, node) {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_and_marks_broken_entities() {
        let merged = json!({
            "overlay": {"name": "x", "domain": "d", "infra_prefix": "100.64.0.0/24", "listen_port": "bad"},
            "sites": {"good": {"kind": "linux"}, "bad": {"region": "eu-west-1"}},
            "networks": {"a/b": {"cidrs": ["10.0.0.0/8", 5]}},
        });
        let pruned = vec![
            KeyPath::of(&["overlay", "listen_port"]),
            KeyPath::of(&["networks", "a/b", "cidrs"]).index(1),
        ];
        let s = Sections::read(merged, pruned);
        assert_eq!(
            s.overlay.as_ref().unwrap().listen_port,
            51820,
            "pruned value falls back to its default"
        );
        assert!(s.sites.contains_key("good"));
        assert!(s.is_broken("sites", "bad"));
        assert!(
            s.networks["a/b"].cidrs.is_none(),
            "an array with a bad element goes whole"
        );
        assert!(s.is_pruned(&KeyPath::of(&["networks", "a/b", "cidrs"])));
    }

    #[test]
    fn entities_reported_as_a_whole_count_as_broken() {
        let merged = json!({
            "overlay": {"name": "x", "domain": "d", "infra_prefix": "100.64.0.0/24"},
            "sites": {"dc1": "linux"},
            "gateway": {"gw": {"site": "dc1"}},
        });
        let pruned = vec![KeyPath::of(&["sites", "dc1"]), KeyPath::of(&["gateway"])];
        let s = Sections::read(merged, pruned);
        assert!(s.is_broken("sites", "dc1"), "a site of the wrong type");
        assert!(!s.is_broken("sites", "dc2"));
        assert!(
            s.is_misspelt_section("gateways"),
            "[gateway] is [gateways] misspelt"
        );
        assert!(s.is_broken("gateways", "gw"));
        assert!(!s.is_misspelt_section("networks"));
    }
}
