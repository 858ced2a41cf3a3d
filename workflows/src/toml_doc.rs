//! Reading a TOML file of ours (a workflow definition, a scenario) so
//! that every wrong key or type is told, with its place: the document is
//! parsed once into spanned values (which collects every syntax error),
//! then its top level and each item of its arrays of tables are
//! deserialised on their own. Deserialising the whole file at once would
//! stop at its first such problem.

use crate::definition::Problem;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

fn problem(e: toml::de::Error) -> Problem {
    Problem { span: e.span().unwrap_or(0..0), message: e.message().trim().to_string() }
}

/// A parsed document, and the problems found reading it so far.
pub(crate) struct Doc<'i> {
    root: Spanned<DeTable<'i>>,
    pub problems: Vec<Problem>,
}

impl<'i> Doc<'i> {
    /// Parses `source`; `Err` holds every syntax error.
    pub fn parse(source: &'i str) -> Result<Doc<'i>, Vec<Problem>> {
        let (root, errors) = DeTable::parse_recoverable(source);
        match errors.is_empty() {
            true => Ok(Doc { root, problems: Vec::new() }),
            false => Err(errors.into_iter().map(problem).collect()),
        }
    }

    /// The top level as `T`, whose arrays of tables are skipped with
    /// [`later`] and read with [`Doc::items`].
    pub fn top<T: DeserializeOwned>(&mut self) -> Option<T> {
        T::deserialize(toml::de::Deserializer::from(self.root.clone())).map_err(|e| self.problems.push(problem(e))).ok()
    }

    /// Each item of the array of tables `key` (`[[key]]`) as `T`, those that
    /// read; the others' problems are kept.
    pub fn items<T: DeserializeOwned>(&mut self, key: &str) -> Vec<Spanned<T>> {
        let Some((_, value)) = self.root.get_ref().iter().find(|(k, _)| k.get_ref() == key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!("{key} is an array of tables: [[{key}]]");
            self.problems.push(Problem { span: value.span(), message });
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match Spanned::<T>::deserialize(toml::de::ValueDeserializer::from(item.clone())) {
                Ok(t) => out.push(t),
                Err(e) => self.problems.push(problem(e)),
            }
        }
        out
    }
}

/// For an array of tables of the top level: skipped there, and read item
/// by item with [`Doc::items`].
pub(crate) fn later<'de, D: serde::Deserializer<'de>, T>(d: D) -> Result<Vec<T>, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| Vec::new())
}
