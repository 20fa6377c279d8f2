//! Loading a configuration: TOML files in order, then `WEFT_SECTION__KEY` environment
//! overrides, merged by figment, checked against the schema, then validated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use toml::de::DeTable;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::intent::Intent;
use crate::key_path::KeyPath;
use crate::partial::Sections;
use crate::schema::check_structure;
use crate::source_map::{Location, SourceFile, SourceMap, line_column};
use crate::validate::validate;

/// The prefix of environment variables that override the files.
pub const ENV_PREFIX: &str = "WEFT_";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The configuration was read but is wrong; every mistake is listed.
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Builds an [`Intent`] from configuration layers.
#[derive(Clone, Debug)]
pub struct Loader {
    files: Vec<PathBuf>,
    env_prefix: Option<String>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// A loader with no files that reads `WEFT_…__…` environment overrides.
    pub fn new() -> Self {
        Self {
            files: Vec::new(),
            env_prefix: Some(ENV_PREFIX.to_owned()),
        }
    }

    /// Adds a file layer; later files override earlier ones key by key.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Changes the environment prefix, or turns environment overrides off with `None`.
    pub fn env_prefix(mut self, prefix: Option<&str>) -> Self {
        self.env_prefix = prefix.map(str::to_owned);
        self
    }

    /// Loads, checks and validates; on failure reports every mistake found.
    pub fn load(&self) -> Result<Intent, LoadError> {
        let mut syntax = Diagnostics::default();
        let mut sources = Vec::new();
        let mut figment = Figment::new();
        for path in &self.files {
            let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
                path: path.clone(),
                source,
            })?;
            let (table, errors) = DeTable::parse_recoverable(&text);
            if errors.is_empty() {
                figment = figment.merge(Toml::string(&text));
                sources.push(SourceFile::new(path.clone(), text.clone(), &table));
            } else {
                syntax.extend(errors.iter().map(|e| syntax_diagnostic(path, &text, e)));
            }
        }
        if !syntax.is_empty() {
            return Err(LoadError::Invalid(syntax.sorted()));
        }
        let mut env_paths = Vec::new();
        if let Some(prefix) = &self.env_prefix {
            figment = figment.merge(env_provider(prefix));
            env_paths = env_overrides(prefix);
        }
        let sources = Arc::new(SourceMap::new(sources, env_paths));
        let merged: serde_json::Value = figment.extract().map_err(|e| {
            single(Diagnostic {
                location: Location::Unknown,
                key: KeyPath::root(),
                message: e.to_string(),
                expected: "TOML that figment can merge".to_owned(),
                hint: "check the files and WEFT_ environment variables named above".to_owned(),
            })
        })?;
        let (mut diagnostics, pruned) = check_structure(&merged, &sources);
        let sections = Sections::read(merged, pruned);
        match validate(&sections, sources) {
            Ok(intent) if diagnostics.is_empty() => Ok(intent),
            Ok(_) => Err(LoadError::Invalid(diagnostics.sorted())),
            Err(semantic) => {
                diagnostics.extend(semantic);
                Err(LoadError::Invalid(diagnostics.sorted()))
            }
        }
    }
}

fn single(diagnostic: Diagnostic) -> LoadError {
    let mut all = Diagnostics::default();
    all.push(diagnostic);
    LoadError::Invalid(all)
}

/// Only variables with a `__` after the prefix are configuration (`WEFT_OVERLAY__NAME`);
/// others, such as `WEFT_LOG`, belong to the process.
fn env_provider(prefix: &str) -> Env {
    Env::prefixed(prefix)
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

fn env_overrides(prefix: &str) -> Vec<(KeyPath, String)> {
    std::env::vars()
        .filter_map(|(var, _)| {
            let rest = var.get(..prefix.len())?.eq_ignore_ascii_case(prefix).then(|| &var[prefix.len()..])?;
            rest.contains("__").then(|| {
                let path = rest.to_lowercase().split("__").map(|k| crate::key_path::Segment::Key(k.to_owned())).collect();
                (path, var.clone())
            })
        })
        .collect()
}

fn syntax_diagnostic(path: &Path, text: &str, error: &toml::de::Error) -> Diagnostic {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let (line, column) = line_column(text, &line_starts, error.span().map_or(0, |s| s.start));
    Diagnostic {
        location: Location::File {
            path: path.to_owned(),
            line,
            column,
        },
        key: KeyPath::root(),
        message: format!("TOML syntax: {}", error.message().trim_end()),
        expected: "a valid TOML 1.0 document".to_owned(),
        hint: "check quotes, brackets, commas and repeated keys or tables at this place".to_owned(),
    }
}
