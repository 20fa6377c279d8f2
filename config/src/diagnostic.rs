//! Configuration errors as an SRE reads them: where, which key, what is wrong, what was
//! expected and what to do about it.

use std::fmt;

use serde::Serialize;

use crate::key_path::KeyPath;
use crate::source_map::Location;

/// One mistake in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Where the mistake is: a file position or an environment variable.
    pub location: Location,
    /// The key path of the value in question.
    #[serde(serialize_with = "serialize_display")]
    pub key: KeyPath,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What weft expected at this place.
    pub expected: String,
    /// How to fix it.
    pub hint: String,
}

fn serialize_display<S: serde::Serializer>(key: &KeyPath, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(key)
}

impl fmt::Display for Diagnostic {
    /// The one-line form `file:line:col: key: message`, which editors and `grep` understand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.key, self.message)
    }
}

impl Diagnostic {
    /// The multi-line form the CLI prints: location, key, message, expected and hint.
    pub fn render(&self) -> String {
        format!(
            "error: {}\n  --> {}\n   key:      {}\n   expected: {}\n   hint:     {}\n",
            self.message, self.location, self.key, self.expected, self.hint
        )
    }
}

/// Every mistake found in one configuration, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many mistakes were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The diagnostics in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Sorts by location and drops exact repeats, so output is stable and readable.
    pub(crate) fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (&a.location, a.key.to_string(), &a.message).cmp(&(
                &b.location,
                b.key.to_string(),
                &b.message,
            ))
        });
        self.0.dedup();
        self
    }

    /// `Ok(value)` when nothing was found, else these diagnostics.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.sorted())
        }
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<I: IntoIterator<Item = Diagnostic>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} configuration error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.0 {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}
