//! Where each value of a loaded configuration came from: a file position or an environment
//! variable.
//!
//! figment merges the layers but keeps no line numbers, so every file is also parsed with
//! `toml`'s span-preserving parser and indexed by key path. Resolving a path asks the layers
//! from the last (highest precedence) to the first.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::de::{DeTable, DeValue};

use crate::key_path::KeyPath;

/// A place a diagnostic points at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A position in a configuration file; line and column count from 1, columns in characters.
    File {
        /// The file as the user named it.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column in characters, from 1.
        column: usize,
    },
    /// A `WEFT_…` environment variable that overrode the files.
    Env {
        /// The variable's name.
        var: String,
    },
    /// No layer set this value (a built-in default, or a key that is missing everywhere).
    Unknown,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Location::Env { var } => write!(f, "environment variable {var}"),
            Location::Unknown => f.write_str("<configuration>"),
        }
    }
}

/// Which part of an entry a diagnostic is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The key (unknown keys, missing keys below a table).
    Key,
    /// The value (wrong type, out of range, bad address).
    Value,
}

#[derive(Clone, Debug)]
struct Entry {
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// One configuration file: its text and the span of every key path in it.
#[derive(Clone, Debug)]
pub(crate) struct SourceFile {
    path: PathBuf,
    line_starts: Vec<usize>,
    text: String,
    entries: HashMap<KeyPath, Entry>,
}

impl SourceFile {
    /// Indexes a file that has already parsed without syntax errors.
    pub(crate) fn new(path: PathBuf, text: String, table: &toml::Spanned<DeTable<'_>>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut entries = HashMap::new();
        entries.insert(
            KeyPath::root(),
            Entry {
                key: None,
                value: table.span(),
            },
        );
        index_table(&KeyPath::root(), table.get_ref(), &mut entries);
        Self {
            path,
            line_starts,
            text,
            entries,
        }
    }

    /// The file's path as the user gave it.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Line and column (from 1, columns in characters) of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        line_column(&self.text, &self.line_starts, offset)
    }

    fn location(&self, offset: usize) -> Location {
        let (line, column) = self.line_column(offset);
        Location::File {
            path: self.path.clone(),
            line,
            column,
        }
    }

    /// The deepest prefix of `path` this file defines, with how many segments matched.
    fn deepest(&self, path: &KeyPath) -> Option<(usize, &Entry)> {
        let segments = path.segments();
        (0..=segments.len()).rev().find_map(|n| {
            let prefix: KeyPath = segments[..n].iter().cloned().collect();
            self.entries.get(&prefix).map(|entry| (n, entry))
        })
    }
}

/// Line and column of `offset` in `text` given the byte offsets where lines start.
pub(crate) fn line_column(text: &str, line_starts: &[usize], offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let line = line_starts.partition_point(|&start| start <= offset);
    let start = line_starts[line - 1];
    let column = text
        .get(start..offset)
        .map_or(offset - start, |s| s.chars().count())
        + 1;
    (line, column)
}

fn index_table(path: &KeyPath, table: &DeTable<'_>, entries: &mut HashMap<KeyPath, Entry>) {
    for (key, value) in table {
        let child = path.key(key.get_ref().as_ref());
        entries.insert(
            child.clone(),
            Entry {
                key: Some(key.span()),
                value: value.span(),
            },
        );
        index_value(&child, value.get_ref(), entries);
    }
}

fn index_value(path: &KeyPath, value: &DeValue<'_>, entries: &mut HashMap<KeyPath, Entry>) {
    match value {
        DeValue::Table(table) => index_table(path, table, entries),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let child = path.index(i);
                entries.insert(
                    child.clone(),
                    Entry {
                        key: None,
                        value: item.span(),
                    },
                );
                index_value(&child, item.get_ref(), entries);
            }
        }
        _ => {}
    }
}

/// All layers of one loaded configuration, in precedence order, able to say where any key
/// path was set.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    env: Vec<(KeyPath, String)>,
}

impl SourceMap {
    pub(crate) fn new(files: Vec<SourceFile>, env: Vec<(KeyPath, String)>) -> Self {
        Self { files, env }
    }

    /// Where the value at `path` was set. For a path no layer defines (a missing key), the
    /// position of the deepest enclosing table that exists.
    pub fn locate(&self, path: &KeyPath, anchor: Anchor) -> Location {
        if let Some((_, var)) = self
            .env
            .iter()
            .find(|(env_path, _)| path.starts_with(env_path))
        {
            return Location::Env { var: var.clone() };
        }
        // The layer with the deepest match wins; among equals the later layer (it overrides).
        let best = self
            .files
            .iter()
            .filter_map(|file| {
                file.deepest(path)
                    .map(|(depth, entry)| (depth, file, entry))
            })
            .max_by_key(|(depth, _, _)| *depth);
        let Some((depth, file, entry)) = best else {
            return Location::Unknown;
        };
        let exact = depth == path.segments().len();
        let offset = match (exact, anchor, &entry.key) {
            (true, Anchor::Value, _) | (_, _, None) => entry.value.start,
            (_, _, Some(key)) => key.start,
        };
        file.location(offset)
    }

    /// The file that set the value at `path`, if a file did; relative paths inside the
    /// configuration (key files) are resolved against its directory.
    pub fn defining_file(&self, path: &KeyPath) -> Option<&Path> {
        self.files
            .iter()
            .rev()
            .find(|file| file.entries.contains_key(path))
            .map(SourceFile::path)
    }

    /// Whether `path` lies in a table that an environment override set.
    pub(crate) fn is_from_env(&self, path: &KeyPath) -> bool {
        self.env
            .iter()
            .any(|(env_path, _)| path.starts_with(env_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> SourceMap {
        let table = DeTable::parse(text).expect("parses");
        let file = SourceFile::new(PathBuf::from("t.toml"), text.to_owned(), &table);
        SourceMap::new(vec![file], vec![])
    }

    fn at(line: usize, column: usize) -> Location {
        Location::File {
            path: PathBuf::from("t.toml"),
            line,
            column,
        }
    }

    #[test]
    fn locates_keys_values_and_missing_keys() {
        let m =
            map("[overlay]\nname = \"x\"\n\n[networks.\"shop/prod\"]\ncidrs = [\"a\", \"b\"]\n");
        let name = KeyPath::of(&["overlay", "name"]);
        assert_eq!(m.locate(&name, Anchor::Key), at(2, 1));
        assert_eq!(m.locate(&name, Anchor::Value), at(2, 8));
        let second = KeyPath::of(&["networks", "shop/prod", "cidrs"]).index(1);
        assert_eq!(m.locate(&second, Anchor::Value), at(5, 15));
        // A missing key points at the table that should hold it.
        let missing = KeyPath::of(&["networks", "shop/prod", "label"]);
        assert_eq!(m.locate(&missing, Anchor::Value), at(4, 11));
    }

    #[test]
    fn columns_count_characters() {
        let m = map("name = \"é\"\nx = 1\n");
        assert_eq!(m.locate(&KeyPath::of(&["x"]), Anchor::Value), at(2, 5));
    }

    #[test]
    fn env_overrides_win() {
        let mut m = map("[overlay]\nlisten_port = 1\n");
        m.env.push((
            KeyPath::of(&["overlay", "listen_port"]),
            "WEFT_OVERLAY__LISTEN_PORT".into(),
        ));
        assert_eq!(
            m.locate(&KeyPath::of(&["overlay", "listen_port"]), Anchor::Value),
            Location::Env {
                var: "WEFT_OVERLAY__LISTEN_PORT".into()
            }
        );
    }
}
