//! SQL shared leases. A shared grant is one transaction holding the key's row: it checks the
//! tier epoch (on PostgreSQL under a share lock of the tier row, so a switch waits for it and
//! arming sees the lease), that no exclusive lease is live and no writer waits, draws a token
//! from the key's counter and raises `shared_until`, which the exclusive grant checks in its
//! own statement. Extends and releases hold the row too, so `shared_until` is raised or
//! recomputed after every change seen by the next exclusive grant. A tree key's grants of
//! both modes go through the same transaction (`grant_in`), drawing from its root's counter.

use super::{classify, col, SqlStore};
use crate::key::Key;
use crate::store::{AcquireReply, Holder, Lease, LeaseAsk, Step, StoreError};
use crate::token::{token_base, COUNTER_MAX};

/// A key's row, made empty if missing; `$2` is its tree's root ('' for a plain key).
pub(super) const ENSURE: &str = "
INSERT INTO warden_locks (lock_key, owner, counter, token, drawn, expires_at, hold_until, tree_root)
VALUES ($1, '', 0, 0, 0, 0, 0, $2)
ON CONFLICT (lock_key) DO NOTHING";

/// A key's row as a grant transaction reads it.
pub(super) const ROW: &str = "
SELECT owner, token, expires_at, hold_until, counter, drawn, writer_until, writer
FROM warden_locks WHERE lock_key = $1";

const SHARE_COLS: &str = "owner, token, expires_at";

const DRAW: &str = "UPDATE warden_locks SET counter = $2, drawn = $3 WHERE lock_key = $1";

const RAISE: &str = "
UPDATE warden_locks SET shared_until = CASE WHEN shared_until > $2 THEN shared_until ELSE $2 END
WHERE lock_key = $1";

const GRANT: &str = "
INSERT INTO warden_lock_shares (lock_key, token, owner, expires_at, tree_root)
VALUES ($1, $2, $3, $4, $5)";

/// An exclusive grant in a transaction (tree keys; a plain key's is one statement).
const TAKE: &str = "
UPDATE warden_locks SET owner = $2, token = $3, expires_at = $4, hold_until = $5,
    writer_until = 0
WHERE lock_key = $1";

/// The key's live shared leases, the first to expire first.
const LIVE: &str = "
SELECT owner, token, expires_at FROM warden_lock_shares
WHERE lock_key = $1 AND expires_at > $2 ORDER BY expires_at";

/// Where a grant transaction draws its token: the counter row's key and its `counter`,
/// `drawn` columns as read under the transaction's lock.
pub(super) struct Draw<'a> {
    /// The row holding the counter: the key's own, or its tree root's.
    pub key: &'a str,
    /// Grants drawn in the current epoch.
    pub counter: i64,
    /// The last token drawn.
    pub drawn: i64,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// `$4` is the new expiry, 0 for a release (the row stays, ended, until reaped).
const TOUCH: &str = "
UPDATE warden_lock_shares SET expires_at = $4
WHERE lock_key = $1 AND token = $2 AND owner = $3 AND expires_at > $5
  AND EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $6)";

/// After a share changed: the latest expiry of the key's live shared leases.
const RECOUNT: &str = "
UPDATE warden_locks SET shared_until = COALESCE(
    (SELECT MAX(expires_at) FROM warden_lock_shares WHERE lock_key = $1 AND expires_at > $2), 0)
WHERE lock_key = $1";

const LIVE_ALL: &str = "
SELECT owner, token, expires_at, lock_key FROM warden_lock_shares WHERE expires_at > $1";

const REAP: &str = "DELETE FROM warden_lock_shares WHERE expires_at < $1 AND token < $2";

fn share(row: &sqlx::any::AnyRow) -> Result<Lease, StoreError> {
    Ok(Lease {
        owner: col(row, 0)?,
        token: col(row, 1)?,
        expires_at: col(row, 2)?,
        hold_until: None,
        shared: true,
    })
}

impl SqlStore {
    /// Grants a shared lease (see the module's note).
    pub(super) async fn acquire_shared(
        &self,
        ask: &LeaseAsk<'_>,
        epoch: i64,
        now: i64,
    ) -> Result<AcquireReply, StoreError> {
        let key = ask.key.as_str();
        let mut tx = self.begin_write().await?;
        sqlx::query(ENSURE)
            .bind(key)
            .bind("")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let (row, found) = self.row_at_epoch(&mut tx, ROW, key).await?;
        if found != epoch {
            return Ok(AcquireReply::EpochMismatch { found: Some(found) });
        }
        if let Some(answer) = refusal_in(&mut tx, ask, &row, now).await? {
            tx.commit().await.map_err(classify)?;
            return Ok(answer);
        }
        let draw = Draw {
            key,
            counter: col(&row, 4)?,
            drawn: col(&row, 5)?,
        };
        draw_in(tx, ask, draw, epoch, now, "").await
    }
}

/// Marks the asker of refused exclusive `ask` as a writer waiting on its key, if it will wait
/// (`writer_mark_ms` > 0), on `db` (the pool, or a grant transaction).
pub(super) async fn mark_writer<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    ask: &LeaseAsk<'_>,
    now: i64,
) -> Result<(), StoreError> {
    if ask.writer_mark_ms <= 0 || ask.shared {
        return Ok(());
    }
    sqlx::query(super::lock::MARK_WRITER)
        .bind(ask.key.as_str())
        .bind(now + ask.writer_mark_ms)
        .bind(ask.owner)
        .execute(db)
        .await
        .map(drop)
        .map_err(classify)
}

/// In grant transaction `tx` (holding `row`: the key's `ROW`), what answers `ask` before any
/// grant, by the key-level rules of both modes: the owner's own live lease, or the live lease
/// or waiting writer in its way (a refused writer that will wait leaves its mark in `tx`,
/// which the caller commits). `None` when the key lets it through.
pub(super) async fn refusal_in(
    tx: &mut Tx,
    ask: &LeaseAsk<'_>,
    row: &sqlx::any::AnyRow,
    now: i64,
) -> Result<Option<AcquireReply>, StoreError> {
    let key = ask.key.as_str();
    let at = || ask.key.is_tree().then(|| ask.key.name().to_owned());
    if ask.shared {
        let mine = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLS} FROM warden_lock_shares
             WHERE lock_key = $1 AND owner = $2 AND expires_at > $3 ORDER BY token DESC"
        )))
        .bind(key)
        .bind(ask.owner)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
        if let Some(mine) = mine {
            return Ok(Some(AcquireReply::Held(share(&mine)?)));
        }
    }
    let exclusive = Lease {
        owner: col(row, 0)?,
        token: col(row, 1)?,
        expires_at: col(row, 2)?,
        hold_until: super::lock::hold_of(col(row, 3)?),
        shared: false,
    };
    if exclusive.expires_at > now {
        return Ok(Some(if exclusive.owner == ask.owner {
            AcquireReply::Held(exclusive)
        } else {
            AcquireReply::Busy {
                expires_at: exclusive.expires_at,
                blocked_by: exclusive.owner,
                blocked_at: at(),
            }
        }));
    }
    if ask.shared {
        let (writer_until, writer): (i64, String) = (col(row, 6)?, col(row, 7)?);
        if writer_until > now && writer != ask.owner {
            return Ok(Some(AcquireReply::Busy {
                expires_at: writer_until,
                blocked_by: writer,
                blocked_at: at(),
            }));
        }
    } else {
        let rows = sqlx::query(LIVE)
            .bind(key)
            .bind(now)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?;
        let shares = rows.iter().map(share).collect::<Result<Vec<_>, _>>()?;
        // As the plain exclusive grant: name a holder other than the asker if there is one.
        let other = shares
            .iter()
            .position(|l| l.owner != ask.owner)
            .unwrap_or(0);
        if let Some(first) = shares.into_iter().nth(other) {
            mark_writer(&mut **tx, ask, now).await?;
            return Ok(Some(AcquireReply::Busy {
                expires_at: first.expires_at,
                blocked_by: first.owner,
                blocked_at: at(),
            }));
        }
    }
    Ok(None)
}

/// In grant transaction `tx` (holding the counter row of `draw`), grants `ask`, which
/// [`refusal_in`] let through, and commits. `tree_root` is stored with a new shared lease.
pub(super) async fn draw_in(
    mut tx: Tx,
    ask: &LeaseAsk<'_>,
    draw: Draw<'_>,
    epoch: i64,
    now: i64,
    tree_root: &str,
) -> Result<AcquireReply, StoreError> {
    let key = ask.key.as_str();
    let base = token_base(epoch);
    let counter = if draw.drawn >= base {
        draw.counter + 1
    } else {
        1
    };
    if counter > COUNTER_MAX {
        return Ok(AcquireReply::CounterExhausted);
    }
    let lease = Lease {
        owner: ask.owner.to_owned(),
        token: base + counter,
        expires_at: now + ask.ttl_ms,
        hold_until: (!ask.shared)
            .then_some(ask.max_hold_ms)
            .flatten()
            .map(|h| now + h),
        shared: ask.shared,
    };
    sqlx::query(DRAW)
        .bind(draw.key)
        .bind(counter)
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    if ask.shared {
        sqlx::query(GRANT)
            .bind(key)
            .bind(lease.token)
            .bind(&lease.owner)
            .bind(lease.expires_at)
            .bind(tree_root)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(RAISE)
            .bind(key)
            .bind(lease.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    } else {
        sqlx::query(TAKE)
            .bind(key)
            .bind(&lease.owner)
            .bind(lease.token)
            .bind(lease.expires_at)
            .bind(super::lock::stored_hold(lease.hold_until))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    tx.commit().await.map_err(classify)?;
    Ok(AcquireReply::Granted(lease))
}

impl SqlStore {
    /// Runs `step` on the live shared lease `holder` as of `epoch`; answers the lease as it
    /// now stands, or `None` when `holder` is not a live shared lease here.
    pub(super) async fn touch_share(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let key = holder.key.as_str();
        let expires_at = match step {
            Step::Extend { ttl_ms } => now + ttl_ms,
            Step::Release => 0,
        };
        let mut tx = self.begin_write().await?;
        if !self.sqlite {
            sqlx::query("SELECT 1 FROM warden_locks WHERE lock_key = $1 FOR UPDATE")
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let done = sqlx::query(TOUCH)
            .bind(key)
            .bind(holder.token)
            .bind(holder.owner)
            .bind(expires_at)
            .bind(now)
            .bind(epoch)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(RECOUNT)
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(Lease {
            owner: holder.owner.to_owned(),
            token: holder.token,
            expires_at: expires_at.max(now),
            hold_until: None,
            shared: true,
        }))
    }

    /// The shared lease `token` of `key` under any owner (live or ended), else `owner`'s
    /// live one: what explains a step that found no live lease of the caller's.
    pub(super) async fn share_record(
        &self,
        holder: Holder<'_>,
        now: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLS} FROM warden_lock_shares
             WHERE lock_key = $1 AND (token = $2 OR (owner = $3 AND expires_at > $4))
             ORDER BY CASE WHEN token = $2 THEN 0 ELSE 1 END, token DESC"
        )))
        .bind(holder.key.as_str())
        .bind(holder.token)
        .bind(holder.owner)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(share).transpose()
    }

    /// The live shared leases of `key`, the first to expire first.
    pub(super) async fn live_shares(&self, key: &Key, now: i64) -> Result<Vec<Lease>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLS} FROM warden_lock_shares
             WHERE lock_key = $1 AND expires_at > $2 ORDER BY expires_at"
        )))
        .bind(key.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(share).collect()
    }

    /// Every shared lease live at `now`, with its key (copied into Redis at fail-back).
    pub async fn live_shares_all(&self, now: i64) -> Result<Vec<(String, Lease)>, StoreError> {
        let rows = sqlx::query(LIVE_ALL)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| Ok((col(row, 3)?, share(row)?)))
            .collect()
    }

    /// Deletes ended shared-lease rows of epochs before `epoch`.
    pub(super) async fn reap_shares(&self, epoch: i64, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(REAP)
            .bind(now)
            .bind(token_base(epoch))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
