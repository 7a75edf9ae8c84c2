//! The terminal states of the KV operations, each with its HTTP status, in one place.

use crate::outcome::{StateDoc, Terminal};
use crate::store::kv::KvRecord;

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvRead {
    /// The live record.
    Found(KvRecord),
    /// No live record (never written, deleted or expired).
    NotFound,
}

impl Terminal for KvRead {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("found", 200, "`value`, `version`, `expires_at`"),
        StateDoc::problem(
            "not_found",
            404,
            "no live record (never written, deleted or expired)",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Found(_) => "found",
            Self::NotFound => "not_found",
        }
    }
}

const CONFLICT: StateDoc = StateDoc::problem(
    "version_conflict",
    409,
    "`expected_version` is not the live record's version (`current_version`, absent when there is no live record); nothing written",
);

/// The answer to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvPut {
    /// Stored, durable in SQL: the record as it now stands.
    Stored(KvRecord),
    /// The expected version did not hold: the live version, if any. Nothing written.
    Conflict(Option<i64>),
}

impl Terminal for KvPut {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("stored", 200, "durable; `version`"),
        CONFLICT,
        StateDoc::problem("value_too_large", 413, "the value's JSON is above 1 MiB"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Stored(_) => "stored",
            Self::Conflict(_) => "version_conflict",
        }
    }
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvDelete {
    /// No live record any more: the tombstone's version, if one was written (none when there
    /// was nothing live).
    Deleted(Option<i64>),
    /// The expected version did not hold: the live version, if any. Nothing written.
    Conflict(Option<i64>),
}

impl Terminal for KvDelete {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "deleted",
            200,
            "no live record any more (also when there was none); `version` of the tombstone",
        ),
        CONFLICT,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Deleted(_) => "deleted",
            Self::Conflict(_) => "version_conflict",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_state_is_listed() {
        let r = KvRecord {
            value: "1".into(),
            version: 1,
            expires_at: 0,
            deleted: false,
        };
        assert_listed(&[KvRead::Found(r.clone()), KvRead::NotFound]);
        let value_too_large = KvPut::STATES[2];
        assert_eq!(value_too_large.status, 413);
        for d in KvPut::STATES.iter().take(2) {
            assert!([KvPut::Stored(r.clone()), KvPut::Conflict(None)]
                .iter()
                .any(|e| e.state() == d.state));
        }
        assert_listed(&[KvDelete::Deleted(None), KvDelete::Conflict(None)]);
    }
}
