//! SQL stream steps. A batch locks its streams' rows (sorted, so batches never deadlock), loads
//! the intents and review items its rules need (PostgreSQL locks those intents too, so dispatch
//! skips them), lets the rules change a [`Book`], and writes the changes back — all in one
//! transaction. Sequences are assigned inside it, so a failed batch assigns nothing.

use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe};

use super::{classify, col, padded, rows_sql, SqlStore};
use crate::store::stream::{
    Book, Changes, Counters, Intent, IntentState, ReviewFilter, ReviewItem, ReviewState, Wanted,
};
use crate::store::StoreError;

const INTENT_COLS: &str = "stream, commit_sequence, intent_id, dispatch_priority, intent_type, \
    payload, arrived_at, state, worker, lease_until, expected_version, waiting_since, \
    committed_version, committed_at, replays";
const REVIEW_COLS: &str = "id, created_at, reason, stream, intent_id, commit_sequence, detail, \
    state, action, actor, note, resolved_at";

/// Leases the first ready intents (priority, then arrival). `{lock}` is `FOR UPDATE SKIP
/// LOCKED` on PostgreSQL, so concurrent claims take different intents; SQLite serialises.
const CLAIM: &str = "UPDATE warden_intents SET state = 'leased', worker = $1, lease_until = $2
WHERE (stream, commit_sequence) IN (
    SELECT stream, commit_sequence FROM warden_intents
    WHERE state IN ('ready', 'leased') AND (state = 'ready' OR lease_until <= $3)
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
    (SELECT COUNT(*) FROM warden_intents WHERE state IN ('ready', 'leased'))";

/// A bind value of a dynamically built statement.
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

fn query<'q>(
    sql: String,
    args: &'q [Arg<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(*s),
            Arg::Int(n) => q.bind(*n),
        };
    }
    q
}

/// `$n` placeholders for `args` as they grow.
struct Params<'a> {
    args: Vec<Arg<'a>>,
}

impl<'a> Params<'a> {
    fn new() -> Self {
        Self { args: Vec::new() }
    }

    fn text(&mut self, s: &'a str) -> String {
        self.args.push(Arg::Text(s));
        format!("${}", self.args.len())
    }

    fn int(&mut self, n: i64) -> String {
        self.args.push(Arg::Int(n));
        format!("${}", self.args.len())
    }
}

fn counters(row: &AnyRow) -> Result<(String, Counters), StoreError> {
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
    let state: String = col(row, 7)?;
    Ok(Intent {
        stream: col(row, 0)?,
        seq: col(row, 1)?,
        intent_id: col(row, 2)?,
        priority: col(row, 3)?,
        intent_type: col(row, 4)?,
        payload: col(row, 5)?,
        arrived_at: col(row, 6)?,
        state: IntentState::parse(&state)
            .ok_or_else(|| StoreError::Unavailable(format!("unknown intent state {state}")))?,
        worker: col(row, 8)?,
        lease_until: col(row, 9)?,
        expected_version: col(row, 10)?,
        waiting_since: col(row, 11)?,
        committed_version: col(row, 12)?,
        committed_at: col(row, 13)?,
        replays: col(row, 14)?,
    })
}

fn review(row: &AnyRow) -> Result<ReviewItem, StoreError> {
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

type Tx = sqlx::Transaction<'static, Any>;

impl SqlStore {
    fn for_update(&self) -> &'static str {
        if self.sqlite {
            ""
        } else {
            " FOR UPDATE"
        }
    }

    /// Runs one batch: locks and loads what `wanted` names, lets `apply` change the book, and
    /// writes the changes back, in one transaction. Returns `apply`'s result and the changes
    /// (durable once this returns `Ok`).
    pub async fn stream_batch<R>(
        &self,
        wanted: &Wanted,
        apply: impl FnOnce(&mut Book) -> R,
    ) -> Result<(R, Changes), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut book = Book::default();
        self.lock_streams(&mut tx, wanted, &mut book).await?;
        self.load_intents(&mut tx, wanted, &mut book).await?;
        load_reviews(&mut tx, wanted, &mut book).await?;
        let out = apply(&mut book);
        let changes = book.changes();
        write_back(&mut tx, &changes).await?;
        tx.commit().await.map_err(classify)?;
        Ok((out, changes))
    }

    /// Locks every wanted stream row in sorted order, creating the missing ones intakes need.
    async fn lock_streams(
        &self,
        tx: &mut Tx,
        wanted: &Wanted,
        book: &mut Book,
    ) -> Result<(), StoreError> {
        if wanted.streams.is_empty() {
            return Ok(());
        }
        let mut p = Params::new();
        let streams: Vec<&String> = wanted.streams.iter().collect();
        let list: Vec<String> = padded(&streams).map(|s| p.text(s)).collect();
        let sql = format!(
            "SELECT stream, assigned, last_committed, version FROM warden_streams \
             WHERE stream IN ({}) ORDER BY stream{}",
            list.join(","),
            self.for_update()
        );
        for row in query(sql, &p.args)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?
        {
            let (s, c) = counters(&row)?;
            book.load_stream(s, c);
        }
        let missing: Vec<&String> = wanted
            .create
            .iter()
            .filter(|s| book.stream(s).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // Created (or, if another batch just created them, locked) in sorted order too.
        let sql = format!(
            "INSERT INTO warden_streams (stream) VALUES {} ON CONFLICT (stream) DO UPDATE \
             SET assigned = warden_streams.assigned \
             RETURNING stream, assigned, last_committed, version",
            rows_sql(missing.len(), 1)
        );
        let args: Vec<Arg> = missing.iter().map(|s| Arg::Text(s)).collect();
        for row in query(sql, &args)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?
        {
            let (s, c) = counters(&row)?;
            book.load_stream(s, c);
        }
        Ok(())
    }

    async fn load_intents(
        &self,
        tx: &mut Tx,
        wanted: &Wanted,
        book: &mut Book,
    ) -> Result<(), StoreError> {
        let mut p = Params::new();
        let mut or = Vec::new();
        for (s, id) in &wanted.by_id {
            or.push(format!(
                "(stream = {} AND intent_id = {})",
                p.text(s),
                p.text(id)
            ));
        }
        for (s, seq) in &wanted.by_seq {
            or.push(format!(
                "(stream = {} AND commit_sequence = {})",
                p.text(s),
                p.int(*seq)
            ));
        }
        for s in &wanted.parked {
            or.push(format!("(state = 'waiting' AND stream = {})", p.text(s)));
        }
        if or.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT {INTENT_COLS} FROM warden_intents WHERE {}{}",
            or.join(" OR "),
            self.for_update()
        );
        for row in query(sql, &p.args)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?
        {
            book.load_intent(intent(&row)?);
        }
        Ok(())
    }

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
    ) -> Result<Vec<Intent>, StoreError> {
        let lock = if self.sqlite {
            ""
        } else {
            "FOR UPDATE SKIP LOCKED"
        };
        let sql = CLAIM.replace("{lock}", lock).replace("{cols}", INTENT_COLS);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
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

    /// Review items, oldest first, after the item `after` (by creation, then id).
    pub async fn review_items(
        &self,
        filter: ReviewFilter,
        limit: i64,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let cond = match filter {
            ReviewFilter::Open => "WHERE state = 'open'",
            ReviewFilter::Resolved => "WHERE state = 'resolved'",
            ReviewFilter::All => "",
        };
        let sql = format!(
            "SELECT {REVIEW_COLS} FROM warden_review {cond} ORDER BY created_at, id LIMIT $1"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(limit)
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
    pub async fn stream_gauges(&self) -> Result<(i64, i64, i64), StoreError> {
        let row = sqlx::query(GAUGES)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok((col(&row, 0)?, col(&row, 1)?, col(&row, 2)?))
    }
}

async fn load_reviews(tx: &mut Tx, wanted: &Wanted, book: &mut Book) -> Result<(), StoreError> {
    let mut p = Params::new();
    let mut or = Vec::new();
    for id in &wanted.reviews {
        or.push(format!("id = {}", p.text(id)));
    }
    for (s, id) in &wanted.open_reviews {
        or.push(format!(
            "(state = 'open' AND stream = {} AND intent_id = {})",
            p.text(s),
            p.text(id)
        ));
    }
    if or.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT {REVIEW_COLS} FROM warden_review WHERE {}",
        or.join(" OR ")
    );
    for row in query(sql, &p.args)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?
    {
        book.load_review(review(&row)?);
    }
    Ok(())
}

/// Rows per multi-row statement (well under both databases' placeholder limits).
const CHUNK: usize = 500;

async fn write_back(tx: &mut Tx, c: &Changes) -> Result<(), StoreError> {
    // Updates and inserts are padded with repeated rows (an update repeated, or an insert
    // skipped as a duplicate, changes nothing), so they come in few shapes too.
    for chunk in c.streams.chunks(CHUNK) {
        let rows: Vec<_> = padded(chunk).collect();
        let sql = format!(
            "UPDATE warden_streams SET assigned = v.column2, last_committed = v.column3, \
             version = v.column4 FROM (VALUES {}) AS v WHERE warden_streams.stream = v.column1",
            rows_sql(rows.len(), 4)
        );
        let mut args = Vec::new();
        for (s, k) in rows {
            args.extend([
                Arg::Text(s),
                Arg::Int(k.assigned),
                Arg::Int(k.last_committed),
                Arg::Int(k.version),
            ]);
        }
        execute(tx, sql, &args).await?;
    }
    for chunk in c.new_intents.chunks(CHUNK) {
        let rows: Vec<_> = padded(chunk).collect();
        let sql = format!(
            "INSERT INTO warden_intents ({INTENT_COLS}) VALUES {} ON CONFLICT DO NOTHING",
            rows_sql(rows.len(), 15)
        );
        let mut args = Vec::new();
        for i in rows {
            args.extend([
                Arg::Text(&i.stream),
                Arg::Int(i.seq),
                Arg::Text(&i.intent_id),
                Arg::Int(i.priority),
                Arg::Text(&i.intent_type),
                Arg::Text(&i.payload),
                Arg::Int(i.arrived_at),
            ]);
            push_mutable(&mut args, i);
        }
        // Every new intent was checked absent under its stream's lock: a row not inserted
        // would be a bug, and must not be acknowledged.
        let inserted = query(sql, &args)
            .execute(&mut **tx)
            .await
            .map_err(classify)?
            .rows_affected();
        if inserted != chunk.len() as u64 {
            return Err(StoreError::Unavailable(format!(
                "{inserted} of {} new intents inserted",
                chunk.len()
            )));
        }
    }
    for chunk in c.intents.chunks(CHUNK) {
        let rows: Vec<_> = padded(chunk).collect();
        let sql = format!(
            "UPDATE warden_intents SET state = v.column3, worker = v.column4, \
             lease_until = v.column5, expected_version = v.column6, waiting_since = v.column7, \
             committed_version = v.column8, committed_at = v.column9, replays = v.column10 \
             FROM (VALUES {}) AS v \
             WHERE warden_intents.stream = v.column1 AND warden_intents.commit_sequence = v.column2",
            rows_sql(rows.len(), 10)
        );
        let mut args = Vec::new();
        for i in rows {
            args.extend([Arg::Text(&i.stream), Arg::Int(i.seq)]);
            push_mutable(&mut args, i);
        }
        execute(tx, sql, &args).await?;
    }
    for chunk in c.new_reviews.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO warden_review ({REVIEW_COLS}) VALUES {}",
            rows_sql(chunk.len(), 12)
        );
        let mut args = Vec::new();
        for r in chunk {
            args.extend([
                Arg::Text(&r.id),
                Arg::Int(r.created_at),
                Arg::Text(&r.reason),
                Arg::Text(&r.stream),
                Arg::Text(&r.intent_id),
                Arg::Int(r.seq),
                Arg::Text(&r.detail),
            ]);
            push_resolution(&mut args, r);
        }
        execute(tx, sql, &args).await?;
    }
    for chunk in c.reviews.chunks(CHUNK) {
        let sql = format!(
            "UPDATE warden_review SET state = v.column2, action = v.column3, actor = v.column4, \
             note = v.column5, resolved_at = v.column6 FROM (VALUES {}) AS v \
             WHERE warden_review.id = v.column1",
            rows_sql(chunk.len(), 6)
        );
        let mut args = Vec::new();
        for r in chunk {
            args.push(Arg::Text(&r.id));
            push_resolution(&mut args, r);
        }
        execute(tx, sql, &args).await?;
    }
    for chunk in c.audits.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO warden_audit (id, at, actor, action, subject, detail) VALUES {}",
            rows_sql(chunk.len(), 6)
        );
        let mut args = Vec::new();
        for a in chunk {
            args.extend([
                Arg::Text(&a.id),
                Arg::Int(a.at),
                Arg::Text(&a.actor),
                Arg::Text(&a.action),
                Arg::Text(&a.subject),
                Arg::Text(&a.detail),
            ]);
        }
        execute(tx, sql, &args).await?;
    }
    Ok(())
}

/// The columns an intent's lifecycle changes, in table order.
fn push_mutable<'a>(args: &mut Vec<Arg<'a>>, i: &'a Intent) {
    args.extend([
        Arg::Text(i.state.as_str()),
        Arg::Text(&i.worker),
        Arg::Int(i.lease_until),
        Arg::Int(i.expected_version),
        Arg::Int(i.waiting_since),
        Arg::Int(i.committed_version),
        Arg::Int(i.committed_at),
        Arg::Int(i.replays),
    ]);
}

/// The columns a review item's resolution changes, in table order.
fn push_resolution<'a>(args: &mut Vec<Arg<'a>>, r: &'a ReviewItem) {
    args.extend([
        Arg::Text(r.state.as_str()),
        Arg::Text(&r.action),
        Arg::Text(&r.actor),
        Arg::Text(&r.note),
        Arg::Int(r.resolved_at),
    ]);
}

async fn execute(tx: &mut Tx, sql: String, args: &[Arg<'_>]) -> Result<(), StoreError> {
    query(sql, args)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(classify)
}
