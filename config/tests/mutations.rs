//! Whatever an SRE does to a valid file, loading never panics, and every error it reports
//! points at a real line of that file (or at nothing, never at a wrong place).

use std::path::Path;

use proptest::prelude::*;
use weft_config::{LoadError, Loader, Location};

fn lab() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab.toml"))
        .unwrap()
}

#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceChar(usize, char),
    InsertText(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippets = prop::sample::select(vec![
        "\"",
        "[",
        "]",
        "=",
        "\n",
        "x = 1\n",
        "[networks.\"a/b\"]\n",
        "label = 5\n",
        "0.0.0.0/0",
        "::",
        "-1",
        "é",
    ]);
    prop_oneof![
        any::<prop::sample::Index>().prop_map(|i| Edit::DeleteLine(i.index(1000))),
        any::<prop::sample::Index>().prop_map(|i| Edit::DuplicateLine(i.index(1000))),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Edit::SwapLines(a.index(1000), b.index(1000))),
        (any::<prop::sample::Index>(), prop::char::range(' ', '~'))
            .prop_map(|(i, c)| Edit::ReplaceChar(i.index(100_000), c)),
        (any::<prop::sample::Index>(), snippets)
            .prop_map(|(i, s)| Edit::InsertText(i.index(100_000), s)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len();
    match edit {
        Edit::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
        Edit::ReplaceChar(i, c) => {
            let mut chars: Vec<char> = text.chars().collect();
            let at = i % chars.len();
            chars[at] = *c;
            return chars.into_iter().collect();
        }
        Edit::InsertText(i, s) => {
            let mut chars: Vec<char> = text.chars().collect();
            let at = i % chars.len();
            chars.splice(at..at, s.chars());
            return chars.into_iter().collect();
        }
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn edited_configs_load_or_point_at_real_lines(edits in prop::collection::vec(edit(), 1..4)) {
        let text = edits.iter().fold(lab(), |t, e| apply(&t, e));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.toml");
        std::fs::write(&path, &text).unwrap();
        let lines = text.lines().count().max(1);
        match Loader::new().env_prefix(None).file(&path).load() {
            Ok(_) => {}
            Err(LoadError::Invalid(diagnostics)) => {
                prop_assert!(!diagnostics.is_empty());
                for d in &diagnostics {
                    prop_assert!(!d.message.is_empty() && !d.expected.is_empty() && !d.hint.is_empty());
                    match &d.location {
                        Location::File { path: p, line, column } => {
                            prop_assert_eq!(p, &path);
                            prop_assert!(*line >= 1 && *line <= lines + 1, "line {} of {}: {}", line, lines, d);
                            prop_assert!(*column >= 1);
                        }
                        other => prop_assert!(false, "{:?} for {}", other, d),
                    }
                }
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
    }
}
