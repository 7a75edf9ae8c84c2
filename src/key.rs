//! Key validation and tenancy: a key is 1–512 bytes of UTF-8 without control characters,
//! checked once at the edge so no store ever sees anything else. A key belongs to a tenant:
//! stores see it as `<tenant>\x1f<key>`, so the same name in two tenants is two objects (and
//! stays one Redis hash tag, so per-slot tokens stay monotonic). The separator is a control
//! character, which no key may hold, so no tenant's key can pass for another's. The default
//! tenant's keys are stored as named, unprefixed: objects made before tenants existed are its.
//! A tree key (`tree: true`, levels split by `/`) is stored as `<tenant>\x1f\x1e<name>`: a
//! namespace of its own, never the same object as the plain key of that name.

use std::fmt;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Separates a tenant from a key as stored.
pub const TENANT_SEP: char = '\u{1f}';
/// Marks a tree key as stored, after the tenant prefix.
pub const TREE_MARK: char = '\u{1e}';
/// Separates the levels of a tree key.
pub const TREE_SEP: char = '/';
/// Most levels a tree key may have.
pub const MAX_TREE_DEPTH: usize = 16;

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
    /// A tree key with an empty level (a leading, trailing or doubled `/`).
    #[error("tree key has an empty level (a leading, trailing or doubled '/')")]
    EmptyLevel,
    /// A tree key deeper than [`MAX_TREE_DEPTH`].
    #[error("tree key has {0} levels; the limit is {MAX_TREE_DEPTH}")]
    TooDeep(usize),
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
        let rest = &stored[prefix.len()..];
        match rest.strip_prefix(TREE_MARK) {
            Some(name) => Self::parse(name)?.within(prefix).into_tree(),
            None => Ok(Self::parse(rest)?.within(prefix)),
        }
    }

    /// The same name as a tree key: levels split by `/`, none empty, at most
    /// [`MAX_TREE_DEPTH`] of them.
    pub fn into_tree(self) -> Result<Self, KeyError> {
        if self.is_tree() {
            return Ok(self);
        }
        let levels = self.name().split(TREE_SEP).count();
        if self.name().split(TREE_SEP).any(str::is_empty) {
            return Err(KeyError::EmptyLevel);
        }
        if levels > MAX_TREE_DEPTH {
            return Err(KeyError::TooDeep(levels));
        }
        let prefix = self.prefix().to_owned();
        Ok(Self {
            text: format!("{prefix}{TREE_MARK}{}", self.name()),
            name_at: prefix.len() + TREE_MARK.len_utf8(),
        })
    }

    /// Whether this is a tree key.
    pub fn is_tree(&self) -> bool {
        self.text[..self.name_at].ends_with(TREE_MARK)
    }

    /// A tree key's ancestors, the root first (none for a root or a plain key).
    pub fn ancestors(&self) -> Vec<Self> {
        if !self.is_tree() {
            return Vec::new();
        }
        let name = self.name();
        name.match_indices(TREE_SEP)
            .map(|(at, _)| Self {
                text: format!("{}{}", &self.text[..self.name_at], &name[..at]),
                name_at: self.name_at,
            })
            .collect()
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
        let head = &self.text[..self.name_at];
        head.strip_suffix(TREE_MARK).unwrap_or(head)
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
        Some((tenant, name)) => format!("{tenant}/{}", name_of(name)),
        None => name_of(stored).to_owned(),
    }
}

/// A stored name (a key, or an id made for a tenant) as its tenant sees it.
pub fn name_of(stored: &str) -> &str {
    let name = stored
        .split_once(TENANT_SEP)
        .map_or(stored, |(_, name)| name);
    name.strip_prefix(TREE_MARK).unwrap_or(name)
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

    #[test]
    fn tree_keys_are_a_namespace_of_their_own_with_their_ancestors() {
        let k = Key::scoped("clinic", "c:7/contact:42/x").unwrap();
        let t = k.clone().into_tree().unwrap();
        assert_ne!(t.as_str(), k.as_str());
        assert_eq!(t.as_str(), "clinic\u{1f}\u{1e}c:7/contact:42/x");
        assert_eq!((t.name(), t.prefix()), ("c:7/contact:42/x", "clinic\u{1f}"));
        assert!(t.is_tree() && !k.is_tree());
        let up: Vec<_> = t.ancestors().iter().map(|a| a.name().to_owned()).collect();
        assert_eq!(up, ["c:7", "c:7/contact:42"]);
        assert!(t.ancestors().iter().all(Key::is_tree));
        assert_eq!(Key::from_stored(t.as_str()).unwrap(), t);
        assert_eq!(
            Key::from_stored(t.ancestors()[0].as_str()).unwrap(),
            t.ancestors()[0]
        );
        assert_eq!(name_of(t.as_str()), "c:7/contact:42/x");
        assert_eq!(for_operator(t.as_str()), "clinic/c:7/contact:42/x");
        let d = Key::parse("root").unwrap().into_tree().unwrap();
        assert_eq!((d.as_str(), d.prefix()), ("\u{1e}root", ""));
        assert!(d.ancestors().is_empty() && k.ancestors().is_empty());
        for bad in ["/a", "a/", "a//b", "/"] {
            let e = Key::parse(bad).unwrap().into_tree();
            assert_eq!(e, Err(KeyError::EmptyLevel), "{bad}");
        }
        let deep = vec!["l"; 17].join("/");
        assert_eq!(
            Key::parse(&deep).unwrap().into_tree(),
            Err(KeyError::TooDeep(17))
        );
        assert!(Key::parse(&vec!["l"; 16].join("/"))
            .unwrap()
            .into_tree()
            .is_ok());
    }
}
