//! Key validation: a key is 1–512 bytes of UTF-8 without control characters, checked once at the
//! edge so no store ever sees anything else.

use std::fmt;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// A validated key (lock key, fence resource, …).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key(String);

/// Why a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Zero bytes long.
    #[error("key must not be empty")]
    Empty,
    /// Longer than [`MAX_KEY_BYTES`].
    #[error("key is {0} bytes; the limit is {MAX_KEY_BYTES}")]
    TooLong(usize),
    /// Holds a control character.
    #[error("key must not contain control characters")]
    Control,
}

impl Key {
    /// Validates `raw` as a key.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong(raw.len()));
        }
        if raw.chars().any(char::is_control) {
            return Err(KeyError::Control);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(Key::parse(""), Err(KeyError::Empty));
        assert_eq!(Key::parse(&"k".repeat(513)), Err(KeyError::TooLong(513)));
        assert!(Key::parse(&"k".repeat(512)).is_ok());
        assert_eq!(Key::parse("a\nb"), Err(KeyError::Control));
        assert_eq!(Key::parse("a\u{7f}b"), Err(KeyError::Control));
        assert_eq!(Key::parse("ключ/{x}").unwrap().as_str(), "ключ/{x}");
    }
}
