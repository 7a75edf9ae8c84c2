//! The audit trail is a SHA-256 hash chain: entry `n` hashes entry `n − 1`'s hash together with
//! its own number and fields, so editing, removing, inserting or reordering any entry changes
//! every hash after it, and [`Verifier`] names the first entry that no longer matches.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One audited action, as a caller writes it (numbered and hashed when appended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Id.
    pub id: String,
    /// When, epoch ms.
    pub at: i64,
    /// Who: a token's name, or `warden` for what Warden did on its own.
    pub actor: String,
    /// What, as `<area>.<verb>` (`guard.enter`, `incident.ack`, `token.create`, …).
    pub action: String,
    /// On what (an incident, a review item, a token id, an episode).
    pub subject: String,
    /// Details, for people.
    pub detail: String,
    /// The correlation id of the request or task that did it.
    pub correlation_id: String,
}

impl Audit {
    /// An entry made now in the current task or request: a fresh id, the current correlation
    /// id.
    pub fn new(at: i64, actor: &str, action: &str, subject: &str, detail: String) -> Self {
        Self {
            id: format!("au_{}", uuid::Uuid::new_v4().simple()),
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            detail,
            correlation_id: crate::runtime::correlation::current(),
        }
    }
}

/// An entry in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sealed {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The previous entry's hash (empty for the first).
    pub prev_hash: String,
    /// This entry's hash, hex.
    pub hash: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: Audit,
}

/// The hash of entry `seq` after `prev_hash`: SHA-256, hex, of the JSON array
/// `[seq, prev_hash, id, at, actor, action, subject, detail, correlation_id]`.
pub fn hash_of(seq: i64, prev_hash: &str, a: &Audit) -> String {
    let canonical = serde_json::json!([
        seq,
        prev_hash,
        a.id,
        a.at,
        a.actor,
        a.action,
        a.subject,
        a.detail,
        a.correlation_id
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Numbers and hashes `entries` after the chain's head (`head_seq`, `head_hash`).
pub fn seal(head_seq: i64, head_hash: &str, entries: &[Audit]) -> Vec<Sealed> {
    let mut prev = head_hash.to_owned();
    let mut out = Vec::with_capacity(entries.len());
    for (i, a) in entries.iter().enumerate() {
        let seq = head_seq + 1 + i as i64;
        let hash = hash_of(seq, &prev, a);
        out.push(Sealed {
            seq,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
            entry: a.clone(),
        });
    }
    out
}

/// The first entry that does not match the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// Where the chain breaks: the entry's number.
    pub seq: i64,
    /// That entry's id.
    pub id: String,
    /// What is wrong (`gap`, `prev_hash_mismatch`, `hash_mismatch`, `head_mismatch`).
    pub reason: &'static str,
}

/// Walks a chain in order, entry by entry.
#[derive(Debug, Default)]
pub struct Verifier {
    seq: i64,
    hash: String,
}

impl Verifier {
    /// Checks the next entry.
    pub fn push(&mut self, s: &Sealed) -> Result<(), Broken> {
        let broken = |reason| Broken {
            seq: s.seq,
            id: s.entry.id.clone(),
            reason,
        };
        if s.seq != self.seq + 1 {
            return Err(broken("gap"));
        }
        if s.prev_hash != self.hash {
            return Err(broken("prev_hash_mismatch"));
        }
        if hash_of(s.seq, &s.prev_hash, &s.entry) != s.hash {
            return Err(broken("hash_mismatch"));
        }
        self.seq = s.seq;
        self.hash = s.hash.clone();
        Ok(())
    }

    /// Entries checked so far, and the last one's hash.
    pub fn head(&self) -> (i64, &str) {
        (self.seq, &self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> Audit {
        Audit {
            id: format!("au_{n}"),
            at: n,
            actor: "ops".into(),
            action: "guard.enter".into(),
            subject: "g".into(),
            detail: String::new(),
            correlation_id: "c".into(),
        }
    }

    #[test]
    fn a_sealed_chain_verifies_and_any_edit_breaks_it_at_that_entry() {
        let first = seal(0, "", &[entry(1), entry(2)]);
        let more = seal(2, &first[1].hash, &[entry(3)]);
        let chain: Vec<Sealed> = first.into_iter().chain(more).collect();
        let mut v = Verifier::default();
        for s in &chain {
            v.push(s).unwrap();
        }
        assert_eq!(v.head(), (3, chain[2].hash.as_str()));

        let mut edited = chain.clone();
        edited[1].entry.detail = "changed".into();
        let mut v = Verifier::default();
        v.push(&edited[0]).unwrap();
        let err = v.push(&edited[1]).unwrap_err();
        assert_eq!((err.seq, err.reason), (2, "hash_mismatch"));

        let mut v = Verifier::default();
        v.push(&chain[0]).unwrap();
        assert_eq!(v.push(&chain[2]).unwrap_err().reason, "gap");
    }
}
