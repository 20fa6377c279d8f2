//! TOML syntax errors explained: where, what, and how to fix it, without the echoes that
//! the recovering parser reports after one mistake.

use std::path::Path;

use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::source_map::{Location, line_column};

/// Explains the syntax errors of one file. The parser recovers and goes on after an error,
/// which finds independent mistakes but also reports the echoes of one: the keys of a table
/// defined twice, every line an unclosed array swallowed. Those are left out.
pub(crate) fn syntax_diagnostics(
    path: &Path,
    text: &str,
    errors: &[toml::de::Error],
) -> Vec<Diagnostic> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| line_starts.partition_point(|&start| start <= offset);
    let line_text = |line: usize| {
        let start = line_starts[line - 1];
        let end = line_starts.get(line).map_or(text.len(), |next| next - 1);
        &text[start..end]
    };
    let is_header = |line: usize| line_text(line).trim_start().starts_with('[');
    let mut errors: Vec<(usize, usize, &toml::de::Error)> = errors
        .iter()
        .map(|e| {
            let span = e.span().unwrap_or(0..0);
            (span.start, span.end, e)
        })
        .collect();
    errors.sort_by_key(|(start, end, _)| (*start, *end));

    let mut out: Vec<(usize, String, String)> = Vec::new();
    let unclosed = errors
        .iter()
        .any(|(_, _, e)| e.message().starts_with("unclosed array"))
        || errors
            .iter()
            .any(|(_, _, e)| e.message().starts_with("unclosed inline table"));
    if let Some(opener) = unclosed.then(|| unclosed_bracket(text)).flatten() {
        let opener_line = line_of(opener);
        errors.retain(|(start, _, e)| {
            *start < opener
                || (line_of(*start) == opener_line && e.message().starts_with("invalid"))
        });
        let (what, close) = if text[opener..].starts_with('{') {
            ("inline table", '}')
        } else {
            ("array", ']')
        };
        out.push((
            opener,
            format!("TOML syntax: this {what} is never closed"),
            format!(
                "close it with `{close}`; until then the lines after it are read as part of it"
            ),
        ));
    }
    // Lines whose duplicate keys only echo a table defined twice.
    let mut echo_lines = 0..0;
    for (start, end, error) in errors {
        let line = line_of(start);
        let message = error.message().trim_end();
        let here = text.get(start..end).unwrap_or_default();
        let (message, hint) = if message == "duplicate key" && is_header(line) {
            let header = line_text(line).trim();
            let header = header.find(']').map_or(header, |i| {
                let close = header[i..]
                    .find(|c| c != ']')
                    .map_or(header.len(), |n| i + n);
                &header[..close]
            });
            let next_header = (line + 1..=line_starts.len())
                .find(|&l| is_header(l))
                .unwrap_or(line_starts.len() + 1);
            echo_lines = line + 1..next_header;
            (
                format!("TOML syntax: table `{header}` is defined twice"),
                "merge the two tables into one".to_owned(),
            )
        } else if message == "duplicate key" {
            if echo_lines.contains(&line) {
                continue;
            }
            (
                format!("TOML syntax: duplicate key `{here}`"),
                "a key may appear once per table: remove or rename one of them".to_owned(),
            )
        } else if start == end
            && line_text(line)[..start - line_starts[line - 1]]
                .trim_end()
                .ends_with('=')
            && text[start..]
                .lines()
                .next()
                .is_none_or(|rest| rest.trim().is_empty() || rest.trim().starts_with('#'))
        {
            (
                format!("TOML syntax: no value after `{}`", line_text(line).trim()),
                "write a value after `=`: a \"string\", a number, true or false, or a [list]"
                    .to_owned(),
            )
        } else if message.starts_with("string values must be quoted") && !here.is_empty() {
            (
                format!("TOML syntax: the string `{here}` must be in quotes"),
                format!("write \"{here}\""),
            )
        } else if message.starts_with("unclosed table") {
            (
                "TOML syntax: the table header is missing its closing `]`".to_owned(),
                "write the header on one line as [section.name]".to_owned(),
            )
        } else if (message.starts_with("invalid basic string")
            || message.starts_with("invalid literal string"))
            && text[start..]
                .lines()
                .next()
                .is_none_or(|rest| rest.trim().is_empty())
        {
            let quote = if message.starts_with("invalid basic") {
                '"'
            } else {
                '\''
            };
            (
                "TOML syntax: the string on this line is not closed".to_owned(),
                format!("add the closing {quote}; a string spanning lines needs triple quotes"),
            )
        } else {
            (
                format!("TOML syntax: {message}"),
                "check quotes, brackets, commas and repeated keys or tables at this place"
                    .to_owned(),
            )
        };
        out.push((start, message, hint));
    }
    out.into_iter()
        .map(|(offset, message, hint)| {
            let (line, column) = line_column(text, &line_starts, offset);
            Diagnostic {
                location: Location::File {
                    path: path.to_owned(),
                    line,
                    column,
                },
                key: KeyPath::root(),
                message,
                expected: "a valid TOML document".to_owned(),
                hint,
            }
        })
        .collect()
}

/// The offset of the outermost `[` or `{` of a value that is never closed, if any. Strings
/// and comments are skipped; a `[` that starts a line outside any value opens a table header.
fn unclosed_bracket(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open: Vec<usize> = Vec::new();
    let mut line_start = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => i = text[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'[' if open.is_empty() && line_start => {
                // A table header: its brackets are not a value's. Skip it, quoted keys too.
                i += 1;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i = if matches!(bytes[i], b'"' | b'\'') {
                        skip_string(bytes, i)
                    } else {
                        i + 1
                    };
                }
            }
            b'"' | b'\'' => i = skip_string(bytes, i),
            b'[' | b'{' => {
                open.push(i);
                i += 1;
            }
            b']' | b'}' => {
                open.pop();
                i += 1;
            }
            _ => i += 1,
        }
        line_start = false;
    }
    open.first().copied()
}

/// The offset just after the string that starts at `start`; an unterminated one-line string
/// ends at the end of its line.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let escapes = quote == b'"';
    let triple = bytes[start..].starts_with(&[quote; 3]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 2,
            b'\n' if !triple => return i,
            q if q == quote && (!triple || bytes[i..].starts_with(&[quote; 3])) => {
                return if triple { i + 3 } else { i + 1 };
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bracket_never_closed() {
        assert_eq!(unclosed_bracket("[a]\nk = [1, [2]\n[b]\n"), Some(8));
        assert_eq!(unclosed_bracket("[a]\nk = { x = \"[\" \n"), Some(8));
        assert_eq!(
            unclosed_bracket("[a]\nk = [\"]\", '[', \"\"\"\n]\"\"\"] # [\n[\"b]\"]\n"),
            None
        );
    }
}
