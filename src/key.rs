//! Key validation and tenancy: a key is 1–512 bytes of UTF-8 without control characters,
//! checked once at the edge so no store ever sees anything else. A key belongs to a tenant:
//! stores see it as `<tenant>\x1f<key>`, so the same name in two tenants is two objects (and
//! stays one Redis hash tag, so per-slot tokens stay monotonic). The separator is a control
//! character, which no key may hold, so no tenant's key can pass for another's. The default
//! tenant's keys are stored as named, unprefixed: objects made before tenants existed are its.

use std::fmt;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Separates a tenant from a key as stored.
pub const TENANT_SEP: char = '\u{1f}';
/// The tenant whose keys are stored unprefixed.
pub const DEFAULT_TENANT: &str = "default";

/// A validated key (lock key, fence resource, …) of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// As stored: `<tenant>\x1f<name>`, or the name alone for the default tenant.
    text: String,
    /// Where the name starts in `text`.
    name_at: usize,
}

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
        Ok(Self {
            text: raw.to_owned(),
            name_at: 0,
        })
    }

    /// Validates `raw` as a key of `tenant` (a valid tenant name).
    pub fn scoped(tenant: &str, raw: &str) -> Result<Self, KeyError> {
        let key = Self::parse(raw)?;
        Ok(key.within(&prefix(tenant)))
    }

    /// The key a store holds as `stored` (`<tenant>\x1f<name>`, or a default-tenant name),
    /// if its name is a valid key.
    pub fn from_stored(stored: &str) -> Result<Self, KeyError> {
        let prefix = prefix_of(stored);
        Ok(Self::parse(&stored[prefix.len()..])?.within(prefix))
    }

    /// Validates `raw` as a key of the same tenant as `self`.
    pub fn sibling(&self, raw: &str) -> Result<Self, KeyError> {
        Ok(Self::parse(raw)?.within(self.prefix()))
    }

    fn within(self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        Self {
            text: format!("{prefix}{}", self.text),
            name_at: prefix.len(),
        }
    }

    /// The key as stored (tenant included).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key as its tenant named it.
    pub fn name(&self) -> &str {
        &self.text[self.name_at..]
    }

    /// The tenant's prefix as stored (`""` for the default tenant).
    pub fn prefix(&self) -> &str {
        &self.text[..self.name_at]
    }
}

/// The prefix of `tenant`'s keys as stored (`""` for the default tenant).
pub fn prefix(tenant: &str) -> String {
    if tenant == DEFAULT_TENANT {
        String::new()
    } else {
        format!("{tenant}{TENANT_SEP}")
    }
}

/// The tenant prefix of a stored name (`""` for the default tenant's).
pub fn prefix_of(stored: &str) -> &str {
    stored
        .find(TENANT_SEP)
        .map_or("", |at| &stored[..at + TENANT_SEP.len_utf8()])
}

/// A stored name for an operator: `tenant/name`, or the name alone for the default tenant.
pub fn for_operator(stored: &str) -> String {
    match stored.split_once(TENANT_SEP) {
        Some((tenant, name)) => format!("{tenant}/{name}"),
        None => stored.to_owned(),
    }
}

/// A stored name (a key, or an id made for a tenant) as its tenant sees it.
pub fn name_of(stored: &str) -> &str {
    stored
        .split_once(TENANT_SEP)
        .map_or(stored, |(_, name)| name)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

    #[test]
    fn tenants_scope_keys_and_the_default_tenant_keeps_them_as_named() {
        let a = Key::scoped("clinic", "k").unwrap();
        let b = Key::scoped("shop", "k").unwrap();
        let d = Key::scoped(DEFAULT_TENANT, "k").unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(d.as_str(), "k");
        assert_eq!((a.name(), b.name(), d.name()), ("k", "k", "k"));
        assert_eq!(a.as_str(), "clinic\u{1f}k");
        assert_eq!(name_of(a.as_str()), "k");
        assert_eq!(for_operator(a.as_str()), "clinic/k");
        assert_eq!(for_operator(d.as_str()), "k");
        assert_eq!(a.sibling("j").unwrap().as_str(), "clinic\u{1f}j");
        assert_eq!(d.sibling("j").unwrap().as_str(), "j");
        // A default-tenant key can never be a scoped one: keys hold no control character.
        assert_eq!(Key::parse("clinic\u{1f}k"), Err(KeyError::Control));
    }
}
