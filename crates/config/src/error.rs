//! What is wrong with a configuration file, where.

use std::fmt;

/// One thing wrong with the configuration file: the TOML key path it is about
/// (`routes[1].connections[0]`, `connections.zapier.auth`,
/// `enums."answers.size".map.small`), where (1-based line and column of the
/// offending key or value), and a sentence saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}: {}",
            self.line, self.column, self.key, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every error of one file, in file order (so an operator fixes them in one pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Byte offsets → 1-based line and column (columns count characters).
pub(crate) struct Lines<'s> {
    text: &'s str,
    starts: Vec<usize>,
}

impl<'s> Lines<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    pub(crate) fn locate(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncdé\n\nx";
        let l = Lines::new(text);
        assert_eq!(l.locate(0), (1, 1));
        assert_eq!(l.locate(1), (1, 2));
        assert_eq!(l.locate(2), (1, 3));
        assert_eq!(l.locate(3), (2, 1));
        assert_eq!(l.locate(7), (2, 4)); // after the two-byte é
        assert_eq!(l.locate(8), (3, 1));
        assert_eq!(l.locate(9), (4, 1));
        assert_eq!(l.locate(100), (4, 2));
    }

    #[test]
    fn errors_display_one_per_line() {
        let e = ConfigErrors(vec![
            ConfigError {
                key: "version".into(),
                line: 1,
                column: 11,
                message: "unsupported version 2".into(),
            },
            ConfigError {
                key: "routes[0].connections[0]".into(),
                line: 3,
                column: 1,
                message: "unknown connection".into(),
            },
        ]);
        assert_eq!(
            e.to_string(),
            "line 1, column 11: version: unsupported version 2\nline 3, column 1: routes[0].connections[0]: unknown connection"
        );
    }
}
