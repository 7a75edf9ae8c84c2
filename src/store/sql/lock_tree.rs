//! SQL grants of tree keys (`tree: true`). Every grant of a tree is one transaction holding the
//! root's row first, so the grants of one tree serialize, and its token comes from the root's
//! counter: tokens of one tree come from one counter, and a later parent holder's token is
//! larger than a stale child holder's. The transaction reads every live lease of the tree
//! (one index, `tree_root`) and refuses the ask on a conflict with another owner's lease: an
//! exclusive ask conflicts with any lease at an ancestor or below the key, a shared ask with an
//! exclusive lease there, and any ask with a waiting writer's mark at an ancestor, after the
//! key's own rules (`refusal_in`), as on Redis. An exclusive ask refused here that will wait
//! marks its key, so new leases below it queue behind it.

use super::lock_share::{draw_in, mark_writer, refusal_in, Draw, ENSURE, ROW};
use super::{classify, col, SqlStore};
use crate::key::Key;
use crate::store::{AcquireReply, LeaseAsk, StoreError};

/// Every live lease and waiting writer's mark of a tree held by another owner: key, owner,
/// expiry, and the kind — 0 an exclusive lease, 1 a waiting writer's mark, 2 a shared lease
/// (the order conflicts at one level are named in, as on Redis).
const TREE_LIVE: &str = "
SELECT lock_key, owner, expires_at, 0 FROM warden_locks
WHERE tree_root = $1 AND expires_at > $2 AND owner <> $3
UNION ALL
SELECT lock_key, writer, writer_until, 1 FROM warden_locks
WHERE tree_root = $1 AND writer_until > $2 AND writer <> $3
UNION ALL
SELECT lock_key, owner, expires_at, 2 FROM warden_lock_shares
WHERE tree_root = $1 AND expires_at > $2 AND owner <> $3";

/// A lease (or writer's mark) of another owner that an ask conflicts with.
struct Conflict {
    /// Where it is: an ancestor first (the root first), else below the key.
    rank: usize,
    /// Its kind, as `TREE_LIVE` numbers them.
    kind: i64,
    expires_at: i64,
    owner: String,
    key: String,
}

impl SqlStore {
    /// Grants a lease of a tree key (see the module's note).
    pub(super) async fn acquire_tree(
        &self,
        ask: &LeaseAsk<'_>,
        epoch: i64,
        now: i64,
    ) -> Result<AcquireReply, StoreError> {
        let up = ask.key.ancestors();
        let root = up.first().unwrap_or(ask.key).as_str();
        let key = ask.key.as_str();
        let mut tx = self.begin_write().await?;
        sqlx::query(ENSURE)
            .bind(root)
            .bind(root)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let (root_row, found) = self.row_at_epoch(&mut tx, ROW, root).await?;
        if found != epoch {
            return Ok(AcquireReply::EpochMismatch { found: Some(found) });
        }
        let row = if key == root {
            root_row.clone()
        } else {
            sqlx::query(ENSURE)
                .bind(key)
                .bind(root)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            let lock = if self.sqlite { "" } else { " FOR UPDATE" };
            sqlx::query(sqlx::AssertSqlSafe(format!("{ROW}{lock}")))
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?
        };
        if let Some(answer) = refusal_in(&mut tx, ask, &row, now).await? {
            tx.commit().await.map_err(classify)?;
            return Ok(answer);
        }
        let rows = sqlx::query(TREE_LIVE)
            .bind(root)
            .bind(now)
            .bind(ask.owner)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let below = format!("{key}{}", crate::key::TREE_SEP);
        let mut first: Option<Conflict> = None;
        for r in &rows {
            let (at, kind): (String, i64) = (col(r, 0)?, col(r, 3)?);
            let rank = match up.iter().position(|a| a.as_str() == at) {
                Some(level) => level,
                None if at.starts_with(&below) && kind != 1 => up.len(),
                None => continue,
            };
            // Shared with shared is the one compatible pair, at any level.
            if kind == 2 && ask.shared {
                continue;
            }
            let c = Conflict {
                rank,
                kind,
                expires_at: col(r, 2)?,
                owner: col(r, 1)?,
                key: at,
            };
            if first
                .as_ref()
                .is_none_or(|f| (c.rank, c.kind, c.expires_at) < (f.rank, f.kind, f.expires_at))
            {
                first = Some(c);
            }
        }
        if let Some(c) = first {
            mark_writer(&mut *tx, ask, now).await?;
            tx.commit().await.map_err(classify)?;
            return Ok(AcquireReply::Busy {
                expires_at: c.expires_at,
                blocked_by: c.owner,
                blocked_at: Some(
                    Key::from_stored(&c.key)
                        .map_or_else(|_| c.key.clone(), |k| k.name().to_owned()),
                ),
            });
        }
        let draw = Draw {
            key: root,
            counter: col(&root_row, 4)?,
            drawn: col(&root_row, 5)?,
        };
        draw_in(tx, ask, draw, epoch, now, root).await
    }
}
