//! Token text: `wdn_<id>_<secret>`, a 64-bit public id and a 256-bit secret, both hex. Only the
//! SHA-256 of the secret is ever stored, and hashes are compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "wdn_";
/// Hex digits of the public id (64 random bits).
const ID_HEX: usize = 16;
/// Hex digits of the secret (256 random bits).
const SECRET_HEX: usize = 64;

/// A token as presented: its public id and its secret.
pub struct Presented<'a> {
    /// Public id.
    pub id: &'a str,
    secret: &'a str,
}

impl<'a> Presented<'a> {
    /// Splits `wdn_<id>_<secret>`; `None` for anything else.
    pub fn parse(text: &'a str) -> Option<Self> {
        let (id, secret) = text.strip_prefix(PREFIX)?.split_once('_')?;
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some(Self { id, secret })
    }

    /// Whether the secret hashes to `stored` (hex), compared in constant time.
    pub fn matches(&self, stored: &str) -> bool {
        let presented = hash(self.secret);
        presented.as_bytes().ct_eq(stored.as_bytes()).into()
    }
}

/// A new token: its public id, the full text to hand out once, and the hash to store.
pub struct Minted {
    /// Public id.
    pub id: String,
    /// `wdn_<id>_<secret>`: shown once, never stored or logged.
    pub text: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
}

/// Draws a new token from the operating system's random source.
pub fn mint() -> Result<Minted, getrandom::Error> {
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    Ok(Minted {
        text: format!("{PREFIX}{id}_{secret}"),
        hash: hash(&secret),
        id,
    })
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_and_matches_only_its_own_hash() {
        let t = mint().unwrap();
        let p = Presented::parse(&t.text).expect("parses");
        assert_eq!(p.id, t.id);
        assert!(p.matches(&t.hash));
        let other = mint().unwrap();
        assert!(!p.matches(&other.hash));
        assert_ne!(t.id, other.id);
        assert!(
            !t.hash.contains(&t.text[4 + ID_HEX + 1..]),
            "the secret is not in its hash"
        );
    }

    #[test]
    fn anything_but_the_format_is_refused() {
        let t = mint().unwrap();
        for bad in [
            "",
            "wdn_",
            &t.text[4..],
            &t.text[..t.text.len() - 1],
            &format!("{}0", t.text),
            &t.text.replace("wdn_", "wdx_"),
            &t.text
                .to_uppercase()
                .replace("WDN_", "wdn_")
                .replacen('_', "-", 2),
        ] {
            assert!(Presented::parse(bad).is_none(), "{bad}");
        }
    }
}
