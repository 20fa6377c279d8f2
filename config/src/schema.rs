//! The JSON Schema of the configuration file, and the structural check built on it.
//!
//! serde stops at the first error it meets; the schema validator reports every wrong type,
//! unknown key, missing key and out-of-range number at once. Both come from the same types
//! in [`crate::file_model`], so `weft schema` is exactly what the loader enforces.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::file_model::OverlayFile;
use crate::key_path::{KeyPath, Segment};
use crate::source_map::{Anchor, SourceMap};

/// The JSON Schema (draft 2020-12) of a weft configuration file, with every subschema
/// inlined so editors and the error reporter can follow a key path without `$ref`s.
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<OverlayFile>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            Value::String("https://weft.dev/schema/weft.schema.json".into()),
        );
    }
    schema
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(schema()).expect("the schema derived from OverlayFile is valid")
    })
}

/// Checks the merged configuration against the schema and explains every violation. Also
/// returns the paths of the offending values, to be pruned before semantic validation.
pub(crate) fn check_structure(
    instance: &Value,
    sources: &SourceMap,
) -> (Diagnostics, Vec<KeyPath>) {
    let mut diagnostics = Diagnostics::default();
    let mut pruned = Vec::new();
    let errors: Vec<(KeyPath, _)> = validator()
        .iter_errors(instance)
        .map(|error| {
            let path: KeyPath = error
                .instance_path()
                .into_iter()
                .map(|segment| match segment {
                    LocationSegment::Property(key) => Segment::Key(key.to_string()),
                    LocationSegment::Index(i) => Segment::Index(i),
                })
                .collect();
            (path, error)
        })
        .collect();
    for (path, error) in &errors {
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                pruned.extend(unexpected.iter().map(|key| path.key(key.clone())));
            }
            ValidationErrorKind::Required { property } => {
                // The entity is left out as a whole. A misspelt key already says "did you
                // mean `property`?"; saying that `property` is missing too would be noise.
                let property = property.as_str().unwrap_or_default();
                let misspelt = errors.iter().any(|(p, e)| match e.kind() {
                    ValidationErrorKind::AdditionalProperties { unexpected } => {
                        p == path
                            && unexpected
                                .iter()
                                .any(|key| suggested_key(path, key).as_deref() == Some(property))
                    }
                    _ => false,
                });
                if misspelt {
                    continue;
                }
            }
            _ => pruned.push(path.clone()),
        }
        explain(
            path,
            error.kind(),
            error.instance(),
            sources,
            &mut diagnostics,
        );
    }
    (diagnostics, pruned)
}

/// The known key that an unknown key `unexpected` in the table at `table` is most likely a
/// misspelling of, if any.
pub(crate) fn suggested_key(table: &KeyPath, unexpected: &str) -> Option<String> {
    if looks_like_secret(unexpected) {
        return None;
    }
    let keys = known_keys(node_at(schema(), table));
    did_you_mean(unexpected, keys.iter().map(String::as_str)).map(str::to_owned)
}

/// The subschema that describes the value at `path`.
fn node_at<'a>(mut node: &'a Value, path: &KeyPath) -> Option<&'a Value> {
    for segment in path.segments() {
        node = match segment {
            Segment::Key(key) => concrete(node)
                .and_then(|n| n.get("properties").and_then(|p| p.get(key)))
                .or_else(|| {
                    concrete(node)
                        .and_then(|n| n.get("additionalProperties"))
                        .filter(|a| a.is_object())
                })?,
            Segment::Index(_) => concrete(node).and_then(|n| n.get("items"))?,
        };
    }
    Some(node)
}

/// Looks through `anyOf` / `oneOf` wrappers (such as an optional value) to the alternative
/// that has structure.
fn concrete(node: &Value) -> Option<&Value> {
    if node.get("properties").is_some()
        || node.get("additionalProperties").is_some()
        || node.get("items").is_some()
    {
        return Some(node);
    }
    ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| node.get(*k).and_then(Value::as_array))
        .flatten()
        .find_map(concrete)
        .or(Some(node))
}

fn description(node: Option<&Value>) -> Option<String> {
    node.and_then(|n| n.get("description"))
        .and_then(Value::as_str)
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The names a value may take when the schema lists them (`enum`, or `oneOf` of `const`s).
fn allowed_values(node: &Value) -> Vec<String> {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    node.get("oneOf")
        .and_then(Value::as_array)
        .map(|alternatives| {
            alternatives
                .iter()
                .filter_map(|a| a.get("const").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The keys a table may hold.
fn known_keys(node: Option<&Value>) -> Vec<String> {
    node.and_then(concrete)
        .and_then(|n| n.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// How a TOML date or time reaches the schema check: a table of this one key.
const TOML_DATETIME: &str = "$__toml_private_datetime";

fn is_toml_datetime(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key(TOML_DATETIME))
}

/// TOML's name for the type of a value.
fn toml_type(value: &Value) -> &'static str {
    match value {
        _ if is_toml_datetime(value) => "a date or time",
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a float",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn type_phrase(kind: &TypeKind) -> String {
    let names: Vec<&str> = match kind {
        TypeKind::Single(t) => vec![json_type_phrase(&t.to_string())],
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .filter(|t| t != "null")
            .map(|t| json_type_phrase(&t))
            .collect(),
    };
    names.join(" or ")
}

fn json_type_phrase(name: &str) -> &'static str {
    match name {
        "boolean" => "a boolean (true or false)",
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "array" => "an array",
        "object" => "a table",
        _ => "a value",
    }
}

/// Suggests the closest known name for a misspelt one. Jaro-Winkler finds most slips; one
/// typing mistake (a letter wrong, missing, extra or two swapped) in a short name, which
/// Jaro-Winkler scores low (`gpc` for `gcp`), counts as close too.
pub(crate) fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wrong = wrong.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let candidate = c.to_lowercase();
            let jaro_winkler = strsim::jaro_winkler(&wrong, &candidate);
            let one_slip =
                wrong.chars().count() >= 3 && strsim::osa_distance(&wrong, &candidate) <= 1;
            (
                if one_slip {
                    jaro_winkler.max(0.8)
                } else {
                    jaro_winkler
                },
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn looks_like_secret(key: &str) -> bool {
    let key = key.to_lowercase();
    [
        "secret",
        "password",
        "token",
        "private_key",
        "access_key",
        "client_key",
        "credential_value",
    ]
    .iter()
    .any(|s| key.contains(s))
        && !key.ends_with("_file")
}

fn explain(
    path: &KeyPath,
    kind: &ValidationErrorKind,
    instance: &Value,
    sources: &SourceMap,
    out: &mut Diagnostics,
) {
    let node = node_at(schema(), path);
    let what = description(node)
        .or_else(|| match path.segments().last() {
            // An array item: what its array holds.
            Some(Segment::Index(_)) => description(node_at(schema(), &path.parent()))
                .map(|d| format!("{d} This is one item of that list.")),
            _ => None,
        })
        .unwrap_or_else(|| "see `weft schema`".into());
    let at = |p: &KeyPath, anchor| sources.locate(p, anchor);
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let keys = known_keys(node);
            for key in unexpected {
                let key_path = path.key(key.clone());
                let hint = if looks_like_secret(key) {
                    "weft never takes secrets inline: name a credential source with \
                     `credentials` on the site, and the WireGuard key with `private_key_file`"
                        .to_owned()
                } else if let Some(close) = suggested_key(path, key) {
                    format!("did you mean `{close}`?")
                } else {
                    "remove it, or check the spelling against `weft schema`".to_owned()
                };
                out.push(Diagnostic {
                    location: at(&key_path, Anchor::Key),
                    key: key_path,
                    message: format!("unknown key `{key}`"),
                    expected: format!("one of: {}", keys.join(", ")),
                    hint,
                });
            }
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            let key_path = path.key(property);
            let property_node = node_at(schema(), &key_path);
            out.push(Diagnostic {
                location: at(&key_path, Anchor::Key),
                expected: description(property_node).unwrap_or(what),
                hint: format!("add `{property} = …` to {}", table_name(path)),
                message: format!("missing key `{property}`"),
                key: key_path,
            });
        }
        ValidationErrorKind::Type { kind } => {
            let wanted = type_phrase(kind);
            let hint = match (instance, wanted.as_str()) {
                (Value::String(s), w)
                    if w.starts_with("an integer") && s.trim().parse::<i64>().is_ok() =>
                {
                    format!("write the number without quotes: {}", s.trim())
                }
                (Value::Number(_) | Value::Bool(_), "a string") => {
                    "put the value in double quotes".to_owned()
                }
                (v, "a string") if is_toml_datetime(v) => {
                    "put the value in double quotes".to_owned()
                }
                (Value::String(_), "an array") => {
                    "write a list, even of one item: [\"…\"]".to_owned()
                }
                (_, "a table") => format!("write it as a table: [{path}]"),
                _ => format!("write {wanted} here"),
            };
            out.push(Diagnostic {
                location: at(path, Anchor::Value),
                key: path.clone(),
                message: format!("expected {wanted}, found {}", toml_type(instance)),
                expected: format!("{wanted}: {what}"),
                hint,
            });
        }
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. } => {
            let bound = |k: &str| node.and_then(|n| n.get(k)).map(Value::to_string);
            let range = match (bound("minimum"), bound("maximum")) {
                (Some(lo), Some(hi)) => format!("from {lo} to {hi}"),
                (Some(lo), None) => format!("of at least {lo}"),
                (None, Some(hi)) => format!("of at most {hi}"),
                (None, None) => "in range".to_owned(),
            };
            out.push(Diagnostic {
                location: at(path, Anchor::Value),
                key: path.clone(),
                message: format!("{instance} is out of range"),
                expected: format!("an integer {range}"),
                hint: what,
            });
        }
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::OneOfNotValid { .. }
            if node.is_some_and(|n| !allowed_values(n).is_empty()) =>
        {
            let allowed = allowed_values(node.expect("checked above"));
            let given = instance
                .as_str()
                .map_or_else(|| instance.to_string(), str::to_owned);
            let hint = did_you_mean(&given, allowed.iter().map(String::as_str)).map_or_else(
                || format!("use one of: {}", allowed.join(", ")),
                |close| format!("did you mean `{close}`?"),
            );
            out.push(Diagnostic {
                location: at(path, Anchor::Value),
                key: path.clone(),
                message: format!("`{given}` is not one of {}", allowed.join(", ")),
                expected: what,
                hint,
            });
        }
        other => out.push(Diagnostic {
            location: at(path, Anchor::Value),
            key: path.clone(),
            message: format!("does not match the schema ({})", other.keyword()),
            expected: what,
            hint: "compare with `weft schema` and the examples in config/examples".to_owned(),
        }),
    }
}

/// How to name a table in a hint: `[overlay]`, or "the top level".
fn table_name(path: &KeyPath) -> String {
    if path.segments().is_empty() {
        "the top level of the file".to_owned()
    } else {
        format!("[{path}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigates_to_descriptions() {
        let node = node_at(schema(), &KeyPath::of(&["networks", "shop/prod", "label"]));
        assert!(description(node).unwrap().contains("MPLS label"));
        let keys = known_keys(node_at(schema(), &KeyPath::of(&["sites", "x"])));
        assert!(keys.contains(&"region".to_owned()));
        let kind = node_at(schema(), &KeyPath::of(&["sites", "x", "kind"])).unwrap();
        assert_eq!(allowed_values(kind), ["aws", "azure", "gcp", "linux"]);
    }

    #[test]
    fn a_misspelt_required_key_is_not_also_missing() {
        let instance = serde_json::json!({
            "overlay": {"name": "x", "domain": "d", "infra_prfix": "100.64.0.0/24"},
            "sites": {"dc1": {"knd": "linux"}, "dc2": {"region": "eu-west-1", "zone": "b"}},
        });
        let (diagnostics, pruned) = check_structure(&instance, &SourceMap::default());
        let mut messages: Vec<String> = diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.key, d.message))
            .collect();
        messages.sort();
        assert_eq!(
            messages,
            [
                "overlay.infra_prfix: unknown key `infra_prfix`",
                "sites.dc1.knd: unknown key `knd`",
                // Nothing here looks like `kind`: that it is missing is news.
                "sites.dc2.kind: missing key `kind`",
                "sites.dc2.zone: unknown key `zone`",
            ]
        );
        assert!(pruned.contains(&KeyPath::of(&["sites", "dc1", "knd"])));
    }

    #[test]
    fn names_toml_dates_as_such() {
        let date = serde_json::json!({ TOML_DATETIME: "2024-05-01" });
        assert_eq!(toml_type(&date), "a date or time");
        assert_eq!(toml_type(&serde_json::json!({"a": 1})), "a table");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("lable", ["label", "like", "cidrs"]),
            Some("label")
        );
        assert_eq!(did_you_mean("zzz", ["label", "like", "cidrs"]), None);
        assert_eq!(
            did_you_mean("gpc", ["aws", "azure", "gcp", "linux"]),
            Some("gcp")
        );
        assert_eq!(
            did_you_mean("amazon", ["aws", "azure", "gcp", "linux"]),
            None
        );
    }
}
