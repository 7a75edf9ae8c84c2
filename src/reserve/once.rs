//! Reservations made at most once per `Idempotency-Key` (G4 over G6): a retry with the same
//! key and request gets the first answer back, byte for byte, and a reserve runs only under a
//! live claim of its key, built on [`Idempotency::once`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Reservations, ReserveRequest, Reserved};
use crate::idem::{BeginRequest, Idempotency, Once, RunError};
use crate::key::KeyError;
use crate::outcome::{StateDoc, Terminal};
use crate::tier::{Blocked, Mode};

/// How long an `Idempotency-Key` of a reservation is remembered, ms.
pub const KEY_TTL_MS: i64 = 86_400_000;
/// The claim lease of a reservation in progress, ms (a reserve takes milliseconds).
const CLAIM_LEASE_MS: i64 = 10_000;
/// How long a retry waits for the first request with its key to finish, ms.
const CLAIM_WAIT_MS: i64 = 2_000;

/// The claim a reservation request makes under its `Idempotency-Key` value: the key is scoped
/// to the SKU, and the fingerprint names the request (user, quantity, hold length), so the
/// same key sent with another request is refused rather than replayed.
pub fn claim_for(key_value: &str, req: &ReserveRequest) -> Result<BeginRequest, KeyError> {
    let key = req
        .sku
        .sibling(&format!("reservation:{}:{key_value}", req.sku.name()))?;
    let request = format!("{}\u{0}{}\u{0}{}", req.user_id, req.quantity, req.ttl_ms);
    let fingerprint =
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, request.as_bytes()).to_string();
    Ok(BeginRequest {
        key,
        fingerprint,
        lease_ms: CLAIM_LEASE_MS,
        ttl_ms: KEY_TTL_MS,
        wait_ms: CLAIM_WAIT_MS,
    })
}

/// An answer as recorded under its key: the HTTP status and the JSON body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Recorded {
    /// HTTP status of the first answer.
    pub status: u16,
    /// Its body, as sent.
    pub body: Box<RawValue>,
}

/// The answer to a reservation sent with an `Idempotency-Key`.
#[derive(Debug)]
pub enum ReservedOnce {
    /// The reserve ran for this request; its outcome and the body answered (and recorded).
    Ran(Reserved, String),
    /// A retry: the first answer as recorded.
    Replayed(Recorded),
    /// The first request with this key is still running.
    InProgress {
        /// When its claim runs out at the latest, ms.
        retry_after_ms: i64,
    },
    /// The key was used with another reservation request.
    FingerprintMismatch,
}

impl Terminal for ReservedOnce {
    const STATES: &'static [StateDoc] = &[
        Reserved::STATES[0],
        Reserved::STATES[1],
        Reserved::STATES[2],
        StateDoc::json(
            "in_progress",
            409,
            "the first request with this Idempotency-Key is still running; `retry_after_ms`",
        ),
        StateDoc::problem(
            "fingerprint_mismatch",
            422,
            "this Idempotency-Key was used with a different reservation request",
        ),
    ];

    /// `replayed` for a retry (its status is the recorded one).
    fn state(&self) -> &'static str {
        match self {
            Self::Ran(r, _) => r.state(),
            Self::Replayed(_) => "replayed",
            Self::InProgress { .. } => "in_progress",
            Self::FingerprintMismatch => "fingerprint_mismatch",
        }
    }

    fn status(&self) -> u16 {
        match self {
            Self::Replayed(r) => r.status,
            Self::Ran(r, _) => r.status(),
            Self::InProgress { .. } => 409,
            Self::FingerprintMismatch => 422,
        }
    }
}

impl Reservations {
    /// Reserves under `claim` ([`claim_for`]): at most once per key. `answer` renders the
    /// outcome as the body sent now and recorded for retries. A block before the reserve ran
    /// releases the claim, so a retry may run it. The mode is the reserve's, or the claim's.
    pub async fn reserve_once(
        &self,
        idem: &Idempotency,
        claim: &BeginRequest,
        req: &ReserveRequest,
        answer: impl FnOnce(&Reserved, Mode) -> String,
    ) -> Result<(ReservedOnce, Mode), Blocked> {
        let mut ran_in = None;
        let work = |_| async {
            let (reserved, mode) = self.reserve(req).await?;
            ran_in = Some(mode);
            let body = answer(&reserved, mode);
            Ok::<_, Blocked>((reserved, body))
        };
        let encode = |(reserved, body): &(Reserved, String)| {
            let body = RawValue::from_string(body.clone()).map_err(|e| e.to_string())?;
            let status = reserved.status();
            serde_json::to_string(&Recorded { status, body }).map_err(|e| e.to_string())
        };
        let (once, claimed_in) = match idem.once(claim, encode, work).await {
            Ok(done) => done,
            Err(RunError::Blocked(b) | RunError::Failed(b)) => return Err(b),
            Err(e) => {
                tracing::error!(error = %e, "reservation answer could not be encoded");
                return Err(Blocked::DatabaseUnavailable);
            }
        };
        let mode = ran_in.unwrap_or(claimed_in);
        let answered = match once {
            // Not recorded: the reservation stands and is answered (the claim lapses with
            // its lease; `once` logged why).
            Once::Executed {
                value: (reserved, body),
                ..
            } => ReservedOnce::Ran(reserved, body),
            Once::Replayed(raw) => match serde_json::from_str::<Recorded>(&raw) {
                Ok(r) => ReservedOnce::Replayed(r),
                Err(e) => {
                    tracing::error!(error = %e, "recorded reservation answer unreadable");
                    return Err(Blocked::DatabaseUnavailable);
                }
            },
            Once::InProgress { retry_after_ms } => ReservedOnce::InProgress { retry_after_ms },
            Once::FingerprintMismatch => ReservedOnce::FingerprintMismatch,
        };
        Ok((answered, mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;
    use crate::outcome::assert_listed;

    fn req(user: &str, quantity: i64) -> ReserveRequest {
        ReserveRequest {
            sku: Key::parse("sku-1").unwrap(),
            user_id: user.into(),
            quantity,
            ttl_ms: 1_000,
        }
    }

    #[test]
    fn every_first_answer_has_a_listed_state_and_a_replay_its_recorded_status() {
        let ran = |r| ReservedOnce::Ran(r, String::new());
        assert_listed(&[
            ran(Reserved::Reserved {
                id: "r".into(),
                expires_at: 1,
                remaining: 1,
            }),
            ran(Reserved::OutOfStock { remaining: 0 }),
            ran(Reserved::AlreadyReserved { id: "r".into() }),
            ReservedOnce::InProgress { retry_after_ms: 1 },
            ReservedOnce::FingerprintMismatch,
        ]);
        let replayed = ReservedOnce::Replayed(Recorded {
            status: 409,
            body: RawValue::from_string("{}".into()).unwrap(),
        });
        assert_eq!((replayed.state(), replayed.status()), ("replayed", 409));
        assert_eq!(ReservedOnce::FingerprintMismatch.status(), 422);
    }

    #[test]
    fn a_key_is_scoped_to_its_sku_and_fingerprints_its_request() {
        let a = claim_for("k1", &req("u", 1)).unwrap();
        assert_eq!(a.key.as_str(), "reservation:sku-1:k1");
        assert_eq!(
            a.fingerprint,
            claim_for("k1", &req("u", 1)).unwrap().fingerprint
        );
        assert_ne!(
            a.fingerprint,
            claim_for("k1", &req("u", 2)).unwrap().fingerprint
        );
        assert_ne!(
            a.fingerprint,
            claim_for("k1", &req("v", 1)).unwrap().fingerprint
        );
    }
}
