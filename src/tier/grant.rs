//! The grant loop, written once for every kind of grant — a lock lease, a lock group taken in
//! one step, a semaphore permit: safe mode is checked first; each try acts on the active tier
//! at its epoch, after noting the TTL the failover grace must cover; a step the store refused
//! for the tier's sake is tried again once the tier has acted on it (a used-up counter ends
//! the epoch, an epoch mismatch arms or switches), at most [`EPOCH_RETRIES`] times; and no
//! fencing token past 2^53 is ever handed out.

use std::future::Future;

use super::{Backend, Blocked, Mode, Tier};
use crate::key::Key;
use crate::store::StoreError;
use crate::token::MAX_TOKEN;

/// How many times one grant follows an epoch change before giving up (`epoch_changing`).
pub const EPOCH_RETRIES: usize = 3;

/// How a grant step's reply reads to the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An answer for the caller (a grant, a refusal of its own).
    Answer,
    /// The epoch used all its counter values for the key's slot: the epoch must end.
    CounterExhausted,
    /// The store is not at the caller's epoch: the tier must arm or switch.
    EpochMismatch,
}

/// One try of a grant on a backend, at an epoch and an instant.
pub trait GrantStep: Sync {
    /// The store's reply.
    type Reply: GrantReply + Send;
    /// Runs the step on `backend`.
    fn run<'a>(
        &'a self,
        backend: Backend<'a>,
        epoch: i64,
        now: i64,
    ) -> impl Future<Output = Result<Self::Reply, StoreError>> + Send + 'a;
}

/// A grant step's reply, as the loop reads it.
pub trait GrantReply {
    /// What the reply means for the loop.
    fn verdict(&self) -> Verdict;
    /// The largest fencing token it hands out, if it grants any.
    fn token(&self) -> Option<i64>;
}

impl Tier {
    /// Runs grant `step` (given the active backend, the epoch and the instant) for `key`, a
    /// grant of `ttl_ms`, as the module says: the reply with the instant and the mode it was
    /// made in, or why nothing could be granted.
    pub async fn grant<S: GrantStep>(
        &self,
        ttl_ms: i64,
        key: &Key,
        step: &S,
    ) -> Result<(S::Reply, i64, Mode), Blocked> {
        self.effects_allowed()?;
        for _ in 0..EPOCH_RETRIES {
            let active = self.active(true)?;
            // A later failover's grace covers this grant's TTL.
            if let Err(e) = self.note_ttl(ttl_ms).await {
                return Err(Blocked::database(&e));
            }
            let (mode, now, epoch) = (active.mode(), self.now(), active.epoch);
            let reply = active.settle(|b| step.run(*b, epoch, now)).await?;
            match reply.verdict() {
                Verdict::Answer => {
                    if let Some(token) = reply.token().filter(|t| *t > MAX_TOKEN) {
                        tracing::error!(token, "fencing token beyond 2^53; refusing grant");
                        return Err(Blocked::TokenSpaceExhausted);
                    }
                    return Ok((reply, now, mode));
                }
                Verdict::CounterExhausted => self.on_counter_exhausted(epoch).await,
                Verdict::EpochMismatch => self.on_epoch_mismatch(epoch, Some(key)).await,
            }
        }
        Err(Blocked::EpochChanging)
    }
}
