//! Strict parsing of the key/value configuration a stage is given: unknown and repeated keys
//! are refused, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use crate::StageError;

/// A stage's configuration, checked against the keys it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairs<'a> {
    values: BTreeMap<&'a str, &'a str>,
}

impl<'a> Pairs<'a> {
    /// Checks `pairs` against `known` (the stage's keys, sorted, as shown in errors). Unknown or
    /// repeated keys are `invalid-input` errors.
    pub fn parse(pairs: &'a [(String, String)], known: &[&str]) -> Result<Self, StageError> {
        let mut values = BTreeMap::new();
        for (key, value) in pairs {
            if !known.contains(&key.as_str()) {
                return Err(StageError::invalid_input(format!(
                    "unknown config key `{key}`; known keys: {}",
                    known.join(", ")
                )));
            }
            if values.insert(key.as_str(), value.as_str()).is_some() {
                return Err(StageError::invalid_input(format!(
                    "config key `{key}` is given more than once"
                )));
            }
        }
        Ok(Self { values })
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.values.get(key).copied()
    }

    /// The whole number `key` holds, which must be in `range` (surrounding spaces allowed), or
    /// `default` when it is not given. `what` says what the number counts, for the error.
    pub fn u32_in(
        &self,
        key: &str,
        range: RangeInclusive<u32>,
        default: u32,
        what: &str,
    ) -> Result<u32, StageError> {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                StageError::invalid_input(format!(
                    "config key `{key}` is `{value}`; expected a whole number of {what} from {} \
                     to {}",
                    range.start(),
                    range.end()
                ))
            })
    }
}

/// The owned key/value pairs a stage's `run` is given, from borrowed ones; for tests.
pub fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_read_and_numbers_checked_against_their_range() {
        let given = owned(&[("width", " 320 "), ("name", "x")]);
        let config = Pairs::parse(&given, &["name", "width"]).expect("known keys");
        assert_eq!(config.get("name"), Some("x"));
        assert_eq!(config.u32_in("width", 16..=640, 1, "pixels"), Ok(320));
        assert_eq!(config.u32_in("height", 16..=640, 7, "pixels"), Ok(7));
        let error = config
            .u32_in("width", 16..=100, 1, "pixels")
            .expect_err("out of range");
        assert_eq!(
            error.message,
            "config key `width` is ` 320 `; expected a whole number of pixels from 16 to 100"
        );
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused() {
        let given = owned(&[("fps", "12")]);
        let error = Pairs::parse(&given, &["height", "width"]).expect_err("unknown");
        assert_eq!(
            error.message,
            "unknown config key `fps`; known keys: height, width"
        );
        let given = owned(&[("width", "1"), ("width", "2")]);
        let error = Pairs::parse(&given, &["width"]).expect_err("repeated");
        assert!(error.message.contains("more than once"));
    }
}
