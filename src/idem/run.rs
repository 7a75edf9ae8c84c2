//! In-process idempotent execution: `run` begins the key, runs the work only on `started`
//! (renewing the claim's lease while it runs, so live work is never taken over), completes with
//! its result or fails the claim if it errs, and replays the saved result otherwise.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{BeginRequest, Begun, Finished, Idempotency, DEFAULT_LEASE_MS, DEFAULT_TTL_MS};
use crate::key::Key;
use crate::tier::{Blocked, Mode};

/// Options of [`Idempotency::run_with`].
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Claim lease, ms; renewed every third of it while the work runs.
    pub lease_ms: i64,
    /// Record lifetime, ms.
    pub ttl_ms: i64,
    /// How long to wait for another executor's claim to finish, ms.
    pub wait_ms: i64,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            lease_ms: DEFAULT_LEASE_MS,
            ttl_ms: DEFAULT_TTL_MS,
            wait_ms: 0,
        }
    }
}

/// The claim handed to the work: its token fences the side effect (e.g. `/v1/fences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Claim token, larger for every later claim of the key.
    pub token: i64,
}

/// A successful run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran<T> {
    /// The work ran here and its result is recorded.
    Executed(T),
    /// The work had already run: this is its recorded result.
    Replayed(T),
}

impl<T> Ran<T> {
    /// The result, executed or replayed.
    pub fn into_inner(self) -> T {
        match self {
            Self::Executed(v) | Self::Replayed(v) => v,
        }
    }
}

/// How one idempotent execution went ([`Idempotency::once`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The work ran here. `recorded` is `Err(reason)` when its result could not be recorded
    /// (the claim was taken over, or no tier was reachable): its effect happened anyway.
    Executed {
        /// The work's result.
        value: T,
        /// Whether the result is recorded under the key.
        recorded: Result<(), &'static str>,
    },
    /// The work had already run: its recorded result, as recorded.
    Replayed(String),
    /// Another executor holds a live claim.
    InProgress {
        /// When its lease ends at the latest.
        retry_after_ms: i64,
    },
    /// The key was used with another fingerprint.
    FingerprintMismatch,
}

/// Why a run produced no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    /// The key is not a valid key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Another executor holds a live claim.
    #[error("in progress elsewhere; retry after {retry_after_ms} ms")]
    InProgress {
        /// When its lease ends at the latest.
        retry_after_ms: i64,
    },
    /// The key was used with another fingerprint.
    #[error("fingerprint mismatch")]
    FingerprintMismatch,
    /// No tier could record anything (G7): nothing ran.
    #[error("blocked: {}", .0.reason())]
    Blocked(Blocked),
    /// The work failed; the claim was released so a later run may try again.
    #[error("work failed")]
    Failed(E),
    /// The work ran but its result could not be recorded: the claim was lost to another
    /// executor, or no tier was reachable. Its effect happened; fence it with the claim token.
    #[error("result not recorded: {reason}")]
    NotRecorded {
        /// Why.
        reason: &'static str,
    },
    /// A recorded result does not decode as `T`, or `T` does not encode.
    #[error("result encoding: {0}")]
    Encoding(String),
}

impl Idempotency {
    /// [`Idempotency::run_with`] with default options (30 s lease renewed while running,
    /// 24 h record, no waiting).
    pub async fn run<T, E, F, Fut>(
        &self,
        key: &str,
        fingerprint: &str,
        work: F,
    ) -> Result<Ran<T>, RunError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Claim) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_with(key, fingerprint, RunOptions::default(), work)
            .await
    }

    /// Runs `work` at most once per `key` (G4): begins, runs it on `started` while renewing
    /// the lease, completes with its result, or fails the claim when it errs. A completed key
    /// replays the recorded result without running anything.
    pub async fn run_with<T, E, F, Fut>(
        &self,
        key: &str,
        fingerprint: &str,
        opts: RunOptions,
        work: F,
    ) -> Result<Ran<T>, RunError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Claim) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = Key::parse(key).map_err(|e| RunError::InvalidKey(e.to_string()))?;
        let req = BeginRequest {
            key,
            fingerprint: fingerprint.to_owned(),
            lease_ms: opts.lease_ms,
            ttl_ms: opts.ttl_ms.max(opts.lease_ms),
            wait_ms: opts.wait_ms,
        };
        let encode = |v: &T| serde_json::to_string(v).map_err(|e| e.to_string());
        match self.once(&req, encode, work).await?.0 {
            Once::Executed {
                value,
                recorded: Ok(()),
            } => Ok(Ran::Executed(value)),
            Once::Executed {
                recorded: Err(reason),
                ..
            } => Err(RunError::NotRecorded { reason }),
            Once::Replayed(raw) => decode(&raw).map(Ran::Replayed),
            Once::InProgress { retry_after_ms } => Err(RunError::InProgress { retry_after_ms }),
            Once::FingerprintMismatch => Err(RunError::FingerprintMismatch),
        }
    }

    /// The workflow under [`Idempotency::run_with`], for callers that answer every case
    /// themselves and record their result in their own form (`encode`): begins `req`, runs
    /// `work` on `started` while renewing the lease, then completes with `encode`'s text, or
    /// fails the claim when the work errs. The mode is the one the begin answered in.
    pub async fn once<T, E, F, Fut>(
        &self,
        req: &BeginRequest,
        encode: impl FnOnce(&T) -> Result<String, String>,
        work: F,
    ) -> Result<(Once<T>, Mode), RunError<E>>
    where
        F: FnOnce(Claim) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (begun, mode) = self.begin(req).await.map_err(RunError::Blocked)?;
        let token = match begun {
            Begun::Started { token, .. } => token,
            Begun::Completed { response, .. } => return Ok((Once::Replayed(response), mode)),
            Begun::InProgress { retry_after_ms } => {
                return Ok((Once::InProgress { retry_after_ms }, mode))
            }
            Begun::FingerprintMismatch => return Ok((Once::FingerprintMismatch, mode)),
        };
        let key = &req.key;
        let result = {
            let work = work(Claim { token });
            tokio::pin!(work);
            let beat = Duration::from_millis((req.lease_ms / 3).max(1) as u64);
            loop {
                tokio::select! {
                    out = &mut work => break out,
                    _ = tokio::time::sleep(beat) => {
                        if let Ok((Finished::Conflict, _)) = self.extend(key, token, req.lease_ms).await {
                            tracing::warn!(key = %key.as_str(), token, "claim lost while running");
                        }
                    }
                }
            }
        };
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                if let Err(b) = self.fail(key, token).await {
                    tracing::warn!(reason = %b.reason(), "claim not released; it lapses with its lease");
                }
                return Err(RunError::Failed(e));
            }
        };
        let text = encode(&value).map_err(RunError::Encoding)?;
        let recorded = match self.complete(key, token, text).await {
            Ok((Finished::Completed { .. }, _)) => Ok(()),
            Ok(_) => Err("the claim was taken over"),
            Err(b) => Err(b.reason()),
        };
        if let Err(reason) = recorded {
            tracing::warn!(key = %key.as_str(), token, reason, "result not recorded under its key");
        }
        Ok((Once::Executed { value, recorded }, mode))
    }
}

fn decode<T: DeserializeOwned, E>(raw: &str) -> Result<T, RunError<E>> {
    serde_json::from_str(raw).map_err(|e| RunError::Encoding(e.to_string()))
}
