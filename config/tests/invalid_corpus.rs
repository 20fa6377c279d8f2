//! Runs every configuration under `tests/invalid/` and compares what weft reports with the
//! `.expected` file beside it: one line per diagnostic, `LINE:COLUMN KEY: MESSAGE`.
//!
//! `WEFT_BLESS=1 cargo test -p weft-config --test invalid_corpus` rewrites the expected
//! files from the current output; review the diff before committing it.

use std::path::{Path, PathBuf};

use weft_config::{LoadError, Loader, Location};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn report(path: &Path) -> Vec<String> {
    let result = Loader::new().env_prefix(None).file(path).load();
    let diagnostics = match result {
        Err(LoadError::Invalid(d)) => d,
        Err(other) => panic!("{}: not a configuration error: {other}", path.display()),
        Ok(_) => panic!(
            "{}: loaded without error, but it is in the invalid corpus",
            path.display()
        ),
    };
    diagnostics
        .iter()
        .map(|d| {
            assert!(
                !d.expected.is_empty(),
                "{}: `{d}` says nothing of what was expected",
                path.display()
            );
            assert!(!d.hint.is_empty(), "{}: `{d}` has no hint", path.display());
            match &d.location {
                Location::File {
                    path: file,
                    line,
                    column,
                } => {
                    assert_eq!(file, path, "diagnostic points into another file");
                    format!("{line}:{column} {}: {}", d.key, d.message)
                }
                other => panic!(
                    "{}: `{d}` has no file position but {other:?}",
                    path.display()
                ),
            }
        })
        .collect()
}

fn expected(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path.with_extension("expected"))
        .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_invalid_config_reports_exactly_its_expected_errors() {
    let files = corpus();
    assert!(
        files.len() >= 40,
        "the corpus holds {} configs; keep at least 40",
        files.len()
    );
    let bless = std::env::var_os("WEFT_BLESS").is_some();
    let mut failures = Vec::new();
    for file in &files {
        let actual = report(file);
        if bless {
            std::fs::write(file.with_extension("expected"), actual.join("\n") + "\n").unwrap();
            continue;
        }
        let wanted = expected(file);
        if actual != wanted {
            failures.push(format!(
                "{}\n  expected:\n    {}\n  actual:\n    {}",
                file.display(),
                wanted.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
