//! SQL stream reads and the dispatch queue; batches of stream writes are in `stream_batch`.
//! Every read here is of committed rows: nothing read outside a batch's locks decides anything
//! (the rules re-read what they decide on, under the locks).

use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::{classify, col, SqlStore};
use crate::runtime::correlation::Correlation;
use crate::store::stream::{Counters, Intent, IntentState, ReviewFilter, ReviewItem, ReviewState};
use crate::store::StoreError;

pub(super) const INTENT_COLS: &str =
    "stream, commit_sequence, intent_id, dispatch_priority, intent_type, \
    payload, arrived_at, state, worker, lease_until, expected_version, waiting_since, \
    committed_version, committed_at, replays, correlation_id, traceparent, sensitive";
pub(super) const REVIEW_COLS: &str =
    "id, created_at, reason, stream, intent_id, commit_sequence, detail, \
    state, action, actor, note, resolved_at";

/// Rows of one tenant, by their `column`: `$p` is the tenant's prefix as stored (empty for the
/// default tenant, whose names hold no separator: `$sep`), `$n` its length in characters.
fn of_tenant(column: &str, p: usize, n: usize, sep: usize) -> String {
    format!(
        "((${p} = '' AND REPLACE({column}, ${sep}, '') = {column}) \
         OR (${p} <> '' AND SUBSTR({column}, 1, CAST(${n} AS INTEGER)) = ${p}))"
    )
}

/// Leases the first ready intents (priority, then arrival). `{lock}` is `FOR UPDATE SKIP
/// LOCKED` on PostgreSQL, so concurrent claims take different intents; SQLite serialises.
const CLAIM: &str = "UPDATE warden_intents SET state = 'leased', worker = $1, lease_until = $2
WHERE (stream, commit_sequence) IN (
    SELECT stream, commit_sequence FROM warden_intents
    WHERE state IN ('ready', 'leased') AND (state = 'ready' OR lease_until <= $3)
      AND {tenant}
    ORDER BY dispatch_priority DESC, arrived_at, stream, commit_sequence
    LIMIT $4 {lock})
  AND (state = 'ready' OR (state = 'leased' AND lease_until <= $3))
RETURNING {cols}";
const OVERDUE: &str = "SELECT stream, commit_sequence FROM warden_intents
WHERE state = 'waiting' AND waiting_since <= $1 ORDER BY waiting_since LIMIT $2";
const COUNTERS: &str =
    "SELECT stream, assigned, last_committed, version FROM warden_streams WHERE stream = $1";
const GAUGES: &str = "SELECT
    (SELECT COUNT(*) FROM warden_intents WHERE state = 'waiting'),
    (SELECT COUNT(*) FROM warden_review WHERE state = 'open'),
    (SELECT COUNT(*) FROM warden_intents WHERE state IN ('ready', 'leased')),
    (SELECT CAST(COALESCE(MIN(arrived_at), 0) AS BIGINT) FROM warden_intents
        WHERE state = 'ready'),
    (SELECT CAST(COALESCE(MIN(lease_until), 0) AS BIGINT) FROM warden_intents
        WHERE state = 'leased' AND lease_until <= $1),
    (SELECT COUNT(*) FROM warden_review WHERE state = 'open' AND reason = 'expired_replay')";

/// The stream queue gauges, read in one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamGauges {
    /// Commits parked for their predecessor.
    pub waiting: i64,
    /// Open review items.
    pub review_open: i64,
    /// Intents ready or leased.
    pub backlog: i64,
    /// Arrival of the oldest intent not yet claimed (0: none): the intake→claim gap.
    pub oldest_ready_at: i64,
    /// End of the oldest dispatch lease that expired and was not claimed again (0: none):
    /// the takeover in progress.
    pub oldest_expired_lease: i64,
    /// Expired replays waiting in review.
    pub replays_in_review: i64,
}

pub(super) fn counters(row: &AnyRow) -> Result<(String, Counters), StoreError> {
    Ok((
        col(row, 0)?,
        Counters {
            assigned: col(row, 1)?,
            last_committed: col(row, 2)?,
            version: col(row, 3)?,
        },
    ))
}

fn intent(row: &AnyRow) -> Result<Intent, StoreError> {
    intent_from(row, 0)
}

/// The intent in the columns of `row` from `at` on.
pub(super) fn intent_from(row: &AnyRow, at: usize) -> Result<Intent, StoreError> {
    let c = |i: usize| i + at;
    let state: String = col(row, c(7))?;
    Ok(Intent {
        stream: col(row, c(0))?,
        seq: col(row, c(1))?,
        intent_id: col(row, c(2))?,
        priority: col(row, c(3))?,
        intent_type: col(row, c(4))?,
        payload: col(row, c(5))?,
        arrived_at: col(row, c(6))?,
        state: IntentState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown intent state {state}")))?,
        worker: col(row, c(8))?,
        lease_until: col(row, c(9))?,
        expected_version: col(row, c(10))?,
        waiting_since: col(row, c(11))?,
        committed_version: col(row, c(12))?,
        committed_at: col(row, c(13))?,
        replays: col(row, c(14))?,
        correlation: Correlation {
            id: col(row, c(15))?,
            traceparent: col(row, c(16))?,
        },
        sensitive: col::<i64>(row, c(17))? != 0,
    })
}

pub(super) fn review(row: &AnyRow) -> Result<ReviewItem, StoreError> {
    let state: String = col(row, 7)?;
    Ok(ReviewItem {
        id: col(row, 0)?,
        created_at: col(row, 1)?,
        reason: col(row, 2)?,
        stream: col(row, 3)?,
        intent_id: col(row, 4)?,
        seq: col(row, 5)?,
        detail: col(row, 6)?,
        state: if state == "resolved" {
            ReviewState::Resolved
        } else {
            ReviewState::Open
        },
        action: col(row, 8)?,
        actor: col(row, 9)?,
        note: col(row, 10)?,
        resolved_at: col(row, 11)?,
    })
}

impl SqlStore {
    /// The counters of `stream`, if it exists.
    pub async fn stream_counters(&self, stream: &str) -> Result<Option<Counters>, StoreError> {
        let row = sqlx::query(COUNTERS)
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(row.as_ref().map(counters).transpose()?.map(|(_, c)| c))
    }

    /// Up to `limit` parked commits of `stream`, in sequence order.
    pub async fn waiting_commits(
        &self,
        stream: &str,
        limit: i64,
    ) -> Result<Vec<Intent>, StoreError> {
        let sql = format!(
            "SELECT {INTENT_COLS} FROM warden_intents WHERE state = 'waiting' AND stream = $1 \
             ORDER BY commit_sequence LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(stream)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(intent).collect()
    }

    /// The intent at `(stream, seq)`.
    pub async fn intent_at(&self, stream: &str, seq: i64) -> Result<Option<Intent>, StoreError> {
        let sql = format!(
            "SELECT {INTENT_COLS} FROM warden_intents WHERE stream = $1 AND commit_sequence = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(stream)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(intent).transpose()
    }

    /// Leases up to `limit` dispatchable intents to `worker` until `lease_until`, in dispatch
    /// order (priority, highest first, then arrival).
    pub async fn claim_intents(
        &self,
        worker: &str,
        limit: i64,
        lease_until: i64,
        now: i64,
        tenant_prefix: &str,
    ) -> Result<Vec<Intent>, StoreError> {
        let lock = if self.sqlite {
            ""
        } else {
            "FOR UPDATE SKIP LOCKED"
        };
        let sql = CLAIM
            .replace("{lock}", lock)
            .replace("{cols}", INTENT_COLS)
            .replace("{tenant}", &of_tenant("stream", 5, 6, 7));
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .bind(tenant_prefix)
            .bind(tenant_prefix.chars().count() as i64)
            .bind(crate::key::TENANT_SEP.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let mut out = rows.iter().map(intent).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            (b.priority, a.arrived_at, &a.stream, a.seq).cmp(&(
                a.priority,
                b.arrived_at,
                &b.stream,
                b.seq,
            ))
        });
        Ok(out)
    }

    /// Parked commits waiting since `older_than` or earlier, oldest first.
    pub async fn overdue_commits(
        &self,
        older_than: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(OVERDUE)
            .bind(older_than)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    /// Up to `limit` review items, oldest first (by creation, then id).
    pub async fn review_items(
        &self,
        filter: ReviewFilter,
        limit: i64,
        tenant_prefix: &str,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let cond = match filter {
            ReviewFilter::Open => "state = 'open' AND",
            ReviewFilter::Resolved => "state = 'resolved' AND",
            ReviewFilter::All => "",
        };
        let tenant = of_tenant("stream", 2, 3, 4);
        let sql = format!(
            "SELECT {REVIEW_COLS} FROM warden_review WHERE {cond} {tenant} \
             ORDER BY created_at, id LIMIT $1"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(limit)
            .bind(tenant_prefix)
            .bind(tenant_prefix.chars().count() as i64)
            .bind(crate::key::TENANT_SEP.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(review).collect()
    }

    /// One review item.
    pub async fn review_item(&self, id: &str) -> Result<Option<ReviewItem>, StoreError> {
        let sql = format!("SELECT {REVIEW_COLS} FROM warden_review WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(review).transpose()
    }

    /// Parked commits, open review items and dispatchable intents, counted.
    pub async fn stream_gauges(&self, now: i64) -> Result<StreamGauges, StoreError> {
        let row = sqlx::query(GAUGES)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(StreamGauges {
            waiting: col(&row, 0)?,
            review_open: col(&row, 1)?,
            backlog: col(&row, 2)?,
            oldest_ready_at: col(&row, 3)?,
            oldest_expired_lease: col(&row, 4)?,
            replays_in_review: col(&row, 5)?,
        })
    }
}
