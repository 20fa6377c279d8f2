//! Loading a configuration: TOML files in order, then `WEFT_SECTION__KEY` environment
//! overrides, merged by figment, checked against the schema, then validated.

use std::path::PathBuf;
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Serialized};
use toml::de::DeTable;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::intent::Intent;
use crate::key_path::KeyPath;
use crate::partial::Sections;
use crate::schema::check_structure;
use crate::source_map::{Location, SourceFile, SourceMap};
use crate::syntax::syntax_diagnostics;
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
            if !errors.is_empty() {
                syntax.extend(syntax_diagnostics(path, &text, &errors));
                continue;
            }
            // The file is handed to figment already parsed, by the same parser (TOML 1.1)
            // that found it free of syntax errors and that indexes its positions; figment's
            // own TOML parser (1.0) would reject some of what this one accepts, and say so
            // without a position.
            match toml::from_str::<toml::Table>(&text) {
                Ok(values) => {
                    figment = figment.merge(Serialized::defaults(values));
                    sources.push(SourceFile::new(path.clone(), text.clone(), &table));
                }
                Err(e) => syntax.extend(syntax_diagnostics(path, &text, &[e])),
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
                if diagnostics.is_empty() {
                    // Validation found the configuration unusable yet named no reason: a
                    // gap in the checks, reported rather than hidden.
                    diagnostics.push(Diagnostic {
                        location: Location::Unknown,
                        key: KeyPath::of(&["overlay"]),
                        message: "the [overlay] section could not be read".to_owned(),
                        expected: "an [overlay] table with name, domain and infra_prefix"
                            .to_owned(),
                        hint: "compare it with config/examples/lab.toml".to_owned(),
                    });
                }
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
            let rest = var
                .get(..prefix.len())?
                .eq_ignore_ascii_case(prefix)
                .then(|| &var[prefix.len()..])?;
            rest.contains("__").then(|| {
                let path = rest
                    .to_lowercase()
                    .split("__")
                    .map(|k| crate::key_path::Segment::Key(k.to_owned()))
                    .collect();
                (path, var.clone())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const VALID: &str = r#"
[overlay]
name = "lab"
domain = "lab.internal"
infra_prefix = "100.64.0.0/24"

[tenants.shop]

[networks."shop/prod"]
cidrs = ["10.10.0.0/16"]

[sites.dc1]
kind = "linux"

[gateways.dc1-gw]
site = "dc1"
endpoint = "192.0.2.1:51820"
public_key = "6JYxBVz/fIw9vLsYVjYvhXiP/h7JFRJSAGaOznd8RwQ="
private_key_file = "dc1.key"
infra_address = "100.64.0.1"

[attachments."shop/prod".dc1]
prefixes = ["10.10.1.0/24"]
interface = "eth1"
"#;

    /// Loads `text` and returns `LINE:COLUMN KEY: MESSAGE` per diagnostic.
    fn report(text: &str) -> Result<Intent, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, text).unwrap();
        Loader::new()
            .env_prefix(None)
            .file(&path)
            .load()
            .map_err(|e| match e {
                LoadError::Invalid(all) => all
                    .iter()
                    .map(|d| match &d.location {
                        Location::File { line, column, .. } => {
                            format!("{line}:{column} {}: {}", d.key, d.message)
                        }
                        other => format!("{other} {}: {}", d.key, d.message),
                    })
                    .collect(),
                other => panic!("{other}"),
            })
    }

    #[test]
    fn the_base_config_and_the_examples_are_valid() {
        report(VALID).unwrap();
        for example in ["lab.toml", "multicloud.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(example);
            let intent = Loader::new().env_prefix(None).file(&path).load();
            assert!(intent.is_ok(), "{example}: {}", intent.unwrap_err());
        }
    }

    #[test]
    fn toml_1_1_syntax_is_accepted_throughout() {
        // A multi-line inline table with a trailing comma: TOML 1.1, which the positions
        // parser accepts; figment's own TOML 1.0 parser used to fail it without a position.
        let text = VALID.replace(
            "interface = \"eth1\"\n",
            "interface = \"eth1\"\nroute_tables = [\"main\"]\nnext_hop = \"10.10.1.1\"\n",
        ) + "route_table_tags = {\n  a = \"b\",\n}\n";
        let errors = report(&text).unwrap_err();
        assert_eq!(
            errors,
            [
                "27:1 attachments.\"shop/prod\".dc1.route_table_tags: route table tags select AWS route tables; `dc1` is a linux site"
            ]
        );
    }

    #[test]
    fn an_unreadable_overlay_is_reported_with_the_rest_and_does_not_panic() {
        let text = VALID
            .replace("name = \"lab\"\n", "")
            .replace("192.0.2.1:51820", "192.0.2.1:0");
        assert_eq!(
            report(&text).unwrap_err(),
            [
                "2:2 overlay.name: missing key `name`",
                "16:12 gateways.dc1-gw.endpoint: `192.0.2.1:0` has port 0"
            ]
        );
        let text = VALID.replace("[overlay]", "[overlays]");
        assert_eq!(
            report(&text).unwrap_err(),
            ["2:2 overlays: unknown key `overlays`"]
        );
    }

    #[test]
    fn a_bad_cidr_raises_no_follow_up_about_prefixes() {
        let text = VALID.replace("\"10.10.0.0/16\"", "\"10.10.0.1/16\"");
        assert_eq!(
            report(&text).unwrap_err(),
            ["10:10 networks.\"shop/prod\".cidrs[0]: `10.10.0.1/16` has host bits set"]
        );
    }

    #[test]
    fn references_to_entities_already_reported_raise_nothing() {
        // The site has the wrong type; the gateway and attachment naming it are not "dangling".
        let text = VALID.replace("[sites.dc1]\nkind = \"linux\"", "[sites]\ndc1 = \"linux\"");
        assert_eq!(
            report(&text).unwrap_err(),
            ["13:7 sites.dc1: expected a table, found a string"]
        );
        // The gateways section is misspelt: the attachment does not lack a gateway.
        let text = VALID.replace("[gateways.", "[gateway.");
        assert_eq!(
            report(&text).unwrap_err(),
            ["15:2 gateway: unknown key `gateway`"]
        );
        // The gateway names a site that does not exist: the site it was meant for does not
        // lack a gateway.
        let text = VALID.replace("site = \"dc1\"", "site = \"dc2\"");
        assert_eq!(
            report(&text).unwrap_err(),
            ["16:8 gateways.dc1-gw.site: site `dc2` is not declared"]
        );
    }

    #[test]
    fn a_misspelt_required_key_is_reported_once() {
        let text = VALID.replace("public_key =", "publickey =");
        assert_eq!(
            report(&text).unwrap_err(),
            ["18:1 gateways.dc1-gw.publickey: unknown key `publickey`"]
        );
        let text = VALID.replace("kind = \"linux\"", "kind = \"aws\"\nregoin = \"eu-west-1\"");
        assert_eq!(
            report(&text).unwrap_err(),
            ["14:1 sites.dc1.regoin: unknown key `regoin`"]
        );
    }

    #[test]
    fn syntax_errors_are_reported_without_their_echoes() {
        let unclosed = VALID.replace("cidrs = [\"10.10.0.0/16\"]", "cidrs = [\"10.10.0.0/16\"");
        assert_eq!(
            report(&unclosed).unwrap_err(),
            ["10:9 (root): TOML syntax: this array is never closed"]
        );
        let twice = VALID.to_owned() + "\n[sites.dc1]\nkind = \"linux\"\n";
        assert_eq!(
            report(&twice).unwrap_err(),
            ["26:8 (root): TOML syntax: table `[sites.dc1]` is defined twice"]
        );
        let no_value = VALID.replace("name = \"lab\"", "name =");
        assert_eq!(
            report(&no_value).unwrap_err(),
            ["3:7 (root): TOML syntax: no value after `name =`"]
        );
        let key_twice = VALID.replace("kind = \"linux\"", "kind = \"linux\"\nkind = \"aws\"");
        assert_eq!(
            report(&key_twice).unwrap_err(),
            ["14:1 (root): TOML syntax: duplicate key `kind`"]
        );
    }
}
