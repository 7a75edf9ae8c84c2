//! SQL lock steps (exclusive leases; shared ones in `lock_share.rs`). Acquire, extend and
//! release are each one conditional statement that also checks the tier epoch, so an instance acting on a stale view of the tier changes no lease
//! (fail-back copies SQL leases into Redis knowing none changes behind it), and two grants of
//! one key serialize on its row. The per-key counter restarts at each epoch; rows of older
//! epochs are reaped once expired.

use super::{classify, col, SqlStore};
use crate::key::Key;
use crate::store::{AcquireReply, Holder, Lease, LeaseAsk, LockStore, Step, StoreError, Touched};
use crate::token::{token_base, token_parts, COUNTER_MAX};

const ACQUIRE: &str = "
INSERT INTO warden_locks (lock_key, owner, counter, token, drawn, expires_at, hold_until)
SELECT $1, $2, 1, $3 + 1, $3 + 1, $4, $8
WHERE EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $5)
ON CONFLICT (lock_key) DO UPDATE SET
    owner = excluded.owner,
    counter = CASE WHEN warden_locks.drawn >= $3 THEN warden_locks.counter + 1 ELSE 1 END,
    token = $3 + CASE WHEN warden_locks.drawn >= $3 THEN warden_locks.counter + 1 ELSE 1 END,
    drawn = $3 + CASE WHEN warden_locks.drawn >= $3 THEN warden_locks.counter + 1 ELSE 1 END,
    expires_at = excluded.expires_at,
    hold_until = excluded.hold_until,
    writer_until = 0
WHERE warden_locks.expires_at <= $6
  AND warden_locks.shared_until <= $6
  AND (warden_locks.drawn < $3 OR warden_locks.counter < $7)
  AND EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $5)
RETURNING owner, token, expires_at, hold_until";

/// A refused exclusive ask that will wait marks a writer waiting until `$2`.
pub(super) const MARK_WRITER: &str = "
UPDATE warden_locks SET writer_until = $2, writer = $3
WHERE lock_key = $1 AND (writer_until < $2 OR writer = $3)";

const CURRENT: &str = "
SELECT owner, token, expires_at, hold_until, drawn FROM warden_locks WHERE lock_key = $1";

const EPOCH: &str = "SELECT epoch FROM warden_tier WHERE id = 1";

/// `$4` is the new expiry (0 for a release), never past the lease's max_hold deadline.
const TOUCH: &str = "
UPDATE warden_locks SET expires_at = $4
WHERE lock_key = $1 AND owner = $2 AND token = $3 AND expires_at > $5
  AND (hold_until = 0 OR $4 <= hold_until)
  AND EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $6)
RETURNING hold_until";

/// After a touch changed nothing: the tier's epoch and the key's lease record, if any.
const MISSED: &str = "
SELECT t.epoch, l.owner, l.token, l.expires_at, l.hold_until
FROM warden_tier t LEFT JOIN warden_locks l ON l.lock_key = $1
WHERE t.id = 1";

const LIVE: &str = "
SELECT owner, token, expires_at, hold_until, lock_key FROM warden_locks WHERE expires_at > $1";

/// The stored form of a max_hold deadline: 0 for none.
pub(super) fn stored_hold(hold_until: Option<i64>) -> i64 {
    hold_until.unwrap_or(0)
}

/// The deadline a stored `hold_until` means.
pub(super) fn hold_of(stored: i64) -> Option<i64> {
    (stored > 0).then_some(stored)
}

/// A lease from `owner, token, expires_at, hold_until` starting at column `at`.
fn lease_from(row: &sqlx::any::AnyRow, at: usize) -> Result<Lease, StoreError> {
    Ok(Lease {
        owner: col(row, at)?,
        token: col(row, at + 1)?,
        expires_at: col(row, at + 2)?,
        hold_until: hold_of(col(row, at + 3)?),
        shared: false,
    })
}

fn lease(row: &sqlx::any::AnyRow) -> Result<Lease, StoreError> {
    lease_from(row, 0)
}

/// Rows whose leases all ended, and whose counter belongs to an earlier epoch.
const REAP: &str = "
DELETE FROM warden_locks WHERE expires_at < $1 AND shared_until < $1 AND drawn < $2";

impl SqlStore {
    /// Deletes expired lease rows granted before `epoch`: a later grant of their key draws a
    /// token of `epoch` or later, so forgetting their counters cannot lower a token.
    pub async fn reap_leases(&self, epoch: i64, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(REAP)
            .bind(now)
            .bind(token_base(epoch))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() + self.reap_shares(epoch, now).await?)
    }

    /// Every lease still live at `now`, with its key (copied into Redis at fail-back).
    pub async fn live_leases(&self, now: i64) -> Result<Vec<(String, Lease)>, StoreError> {
        let rows = sqlx::query(LIVE)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| Ok((col(row, 4)?, lease(row)?)))
            .collect()
    }

    /// The key's exclusive lease record and the last token drawn for the key.
    async fn current(&self, key: &Key) -> Result<Option<(Lease, i64)>, StoreError> {
        let row = sqlx::query(CURRENT)
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref()
            .map(|r| Ok((lease(r)?, col(r, 4)?)))
            .transpose()
    }
}

impl LockStore for SqlStore {
    async fn acquire(
        &self,
        ask: &LeaseAsk<'_>,
        epoch: i64,
        now: i64,
    ) -> Result<AcquireReply, StoreError> {
        if ask.key.is_tree() {
            return self.acquire_tree(ask, epoch, now).await;
        }
        if ask.shared {
            return self.acquire_shared(ask, epoch, now).await;
        }
        let (key, owner) = (ask.key, ask.owner);
        let granted = sqlx::query(ACQUIRE)
            .bind(key.as_str())
            .bind(owner)
            .bind(token_base(epoch))
            .bind(now + ask.ttl_ms)
            .bind(epoch)
            .bind(now)
            .bind(COUNTER_MAX)
            .bind(stored_hold(ask.max_hold_ms.map(|h| now + h)))
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        if let Some(row) = granted {
            return Ok(AcquireReply::Granted(lease(&row)?));
        }
        let current = self.current(key).await?;
        match &current {
            Some((l, _)) if l.expires_at > now && l.owner == owner => {
                return Ok(AcquireReply::Held(l.clone()))
            }
            Some((l, _)) if l.expires_at > now => {
                return Ok(AcquireReply::Busy {
                    expires_at: l.expires_at,
                    blocked_by: l.owner.clone(),
                    blocked_at: None,
                })
            }
            _ => {}
        }
        let shares = self.live_shares(key, now).await?;
        // Name a holder other than the asker when there is one (the asker's own shared lease
        // blocks it only when it is alone: an upgrade).
        let other = shares.iter().position(|l| l.owner != owner).unwrap_or(0);
        if let Some(first) = shares.into_iter().nth(other) {
            super::lock_share::mark_writer(&self.pool, ask, now).await?;
            return Ok(AcquireReply::Busy {
                expires_at: first.expires_at,
                blocked_by: first.owner,
                blocked_at: None,
            });
        }
        match current {
            Some((_, drawn)) if token_parts(drawn) == (epoch, COUNTER_MAX) => {
                Ok(AcquireReply::CounterExhausted)
            }
            _ => {
                let found: Option<i64> = sqlx::query_scalar(EPOCH)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(classify)?;
                Ok(AcquireReply::EpochMismatch { found })
            }
        }
    }

    /// One conditional statement sets the expiry of the live lease `holder` (0 for a release)
    /// as of `epoch`; when it changes nothing, a read says why.
    async fn touch(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        let expires_at = match step {
            Step::Extend { ttl_ms } => now + ttl_ms,
            Step::Release => 0,
        };
        let done = sqlx::query(TOUCH)
            .bind(holder.key.as_str())
            .bind(holder.owner)
            .bind(holder.token)
            .bind(expires_at)
            .bind(now)
            .bind(epoch)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        if let Some(row) = done {
            return Ok(Touched::Done(Lease {
                owner: holder.owner.to_owned(),
                token: holder.token,
                expires_at: expires_at.max(now),
                hold_until: hold_of(col(&row, 0)?),
                shared: false,
            }));
        }
        if let Some(lease) = self.touch_share(holder, step, epoch, now).await? {
            return Ok(Touched::Done(lease));
        }
        let row = sqlx::query(MISSED)
            .bind(holder.key.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let found: i64 = col(&row, 0)?;
        if found != epoch {
            return Ok(Touched::EpochMismatch);
        }
        let owner: Option<String> = col(&row, 1)?;
        let exclusive = match owner {
            Some(_) => Some(lease_from(&row, 1)?),
            None => None,
        };
        // That token as a shared lease (under any owner) explains the miss first; then the
        // exclusive lease record; then the owner's other live shared lease.
        let share = self.share_record(holder, now).await?;
        let current = match share {
            Some(s) if s.token == holder.token => Some(s),
            share => exclusive.filter(|l| !l.owner.is_empty()).or(share),
        };
        Ok(Touched::Missed { current })
    }

    async fn get(&self, key: &Key, now: i64) -> Result<Vec<Lease>, StoreError> {
        match self.current(key).await? {
            Some((l, _)) if l.expires_at > now => Ok(vec![l]),
            _ => self.live_shares(key, now).await,
        }
    }
}
