//! Key paths: where in the configuration tree a value lives, written the way TOML spells it.

use std::fmt;

/// One step of a [`KeyPath`]: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A key of a table, such as `overlay` or `shop/prod`.
    Key(String),
    /// A position in an array, counted from zero.
    Index(usize),
}

/// The path from the root of the configuration to one value, such as
/// `networks."shop/prod".cidrs[1]`.
///
/// Every diagnostic carries one, so an SRE can find the value even when it came from an
/// environment override rather than a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The root of the configuration (the empty path).
    pub fn root() -> Self {
        Self::default()
    }

    /// Builds a path of table keys, e.g. `KeyPath::of(&["overlay", "name"])`.
    pub fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Segment::Key((*k).to_owned())).collect())
    }

    /// This path extended by a table key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The steps of the path, from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The path without its last step; the root stays the root.
    pub fn parent(&self) -> Self {
        let mut segments = self.0.clone();
        segments.pop();
        Self(segments)
    }

    /// The last table key of the path, if it ends in one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl FromIterator<Segment> for KeyPath {
    fn from_iter<I: IntoIterator<Item = Segment>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_key(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_toml() {
        let path = KeyPath::of(&["networks", "shop/prod", "cidrs"]).index(1);
        assert_eq!(path.to_string(), r#"networks."shop/prod".cidrs[1]"#);
        assert_eq!(KeyPath::root().to_string(), "(root)");
        assert_eq!(
            KeyPath::of(&["sites", "aws-east"]).to_string(),
            "sites.aws-east"
        );
    }

    #[test]
    fn prefixes() {
        let parent = KeyPath::of(&["a", "b"]);
        assert!(parent.key("c").starts_with(&parent));
        assert!(!KeyPath::of(&["a"]).starts_with(&parent));
        assert_eq!(parent.key("c").parent(), parent);
    }
}
