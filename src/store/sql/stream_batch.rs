//! One batch of stream writes. The rules change a [`Book`] of the rows the batch needs, and
//! the changes are written back atomically; sequences are assigned in that write, so a failed
//! batch assigns nothing. Two strategies, one per database:
//! - SQLite (in-process: statements cost no round trips): one `BEGIN IMMEDIATE` transaction
//!   that excludes every other writer while it reads, decides and writes.
//! - PostgreSQL (every statement is a round trip): optimistic — read in one statement, decide,
//!   write in one statement that applies only if every stream it changes is still at the
//!   revision read (and every intent in the state read), else retry (`stream_occ`).
//!
//! Lists are padded to powers of two (repeats change nothing), so statements come in few
//! shapes and stay prepared.

use sqlx::Any;

use super::params::{query, values, Arg, Params};
use super::stream::{counters, intent_from, review, INTENT_COLS, REVIEW_COLS};
use super::{classify, padded, rows_sql, SqlStore};
use crate::store::stream::{Book, Changes, Intent, ReviewItem, StreamChange, Wanted};
use crate::store::StoreError;

type Tx = sqlx::Transaction<'static, Any>;

/// Rows per multi-row statement on SQLite (well under its placeholder limit).
const CHUNK: usize = 500;

impl SqlStore {
    /// Runs one batch: loads what `wanted` names, lets `apply` change the book, and writes
    /// the changes back atomically (`apply` may run again on fresh rows if a concurrent batch
    /// changed them first). Returns `apply`'s last result and the changes, durable once this
    /// returns `Ok`.
    pub async fn stream_batch<R>(
        &self,
        wanted: &Wanted,
        apply: impl FnMut(&mut Book) -> R,
    ) -> Result<(R, Changes), StoreError> {
        if self.sqlite {
            self.stream_batch_locked(wanted, apply).await
        } else {
            self.stream_batch_optimistic(wanted, apply).await
        }
    }

    /// SQLite: read, decide and write inside one write transaction.
    async fn stream_batch_locked<R>(
        &self,
        wanted: &Wanted,
        mut apply: impl FnMut(&mut Book) -> R,
    ) -> Result<(R, Changes), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut book = Book::default();
        self.lock_streams(&mut tx, wanted, &mut book).await?;
        self.create_streams(&mut tx, wanted, &mut book).await?;
        self.load_intents(&mut tx, wanted, &mut book).await?;
        load_reviews(&mut *tx, wanted, &mut book).await?;
        let out = apply(&mut book);
        let changes = book.changes();
        write_each(&mut tx, &changes).await?;
        tx.commit().await.map_err(classify)?;
        Ok((out, changes))
    }

    /// Reads the wanted stream rows that exist.
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
        let names: Vec<&String> = wanted.streams.iter().collect();
        let list: Vec<String> = padded(&names).map(|s| p.text(s)).collect();
        let sql = format!(
            "SELECT stream, assigned, last_committed, version FROM warden_streams \
             WHERE stream IN ({})",
            list.join(",")
        );
        load_counters(tx, sql, &p.args, book).await
    }

    /// Reads the wanted intents.
    async fn load_intents(
        &self,
        tx: &mut Tx,
        wanted: &Wanted,
        book: &mut Book,
    ) -> Result<(), StoreError> {
        let mut p = Params::new();
        let Some(filter) = intent_filter(&mut p, wanted) else {
            return Ok(());
        };
        let sql = format!("SELECT {INTENT_COLS} FROM warden_intents WHERE {filter}");
        for row in query(sql, &p.args)
            .fetch_all(&mut **tx)
            .await
            .map_err(classify)?
        {
            book.load_intent(intent_from(&row, 0)?);
        }
        Ok(())
    }

    /// Creates the missing streams intakes need.
    async fn create_streams(
        &self,
        tx: &mut Tx,
        wanted: &Wanted,
        book: &mut Book,
    ) -> Result<(), StoreError> {
        let missing: Vec<&String> = wanted
            .create
            .iter()
            .filter(|s| book.stream(s).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO warden_streams (stream) VALUES {} \
             RETURNING stream, assigned, last_committed, version",
            rows_sql(missing.len(), 1)
        );
        let args: Vec<Arg> = missing.iter().map(|s| Arg::Text(s)).collect();
        load_counters(tx, sql, &args, book).await
    }
}

/// Runs `sql`, which returns stream rows (`stream, assigned, last_committed, version`), into
/// the book.
async fn load_counters(
    tx: &mut Tx,
    sql: String,
    args: &[Arg<'_>],
    book: &mut Book,
) -> Result<(), StoreError> {
    for row in query(sql, args)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?
    {
        let (s, c) = counters(&row)?;
        book.load_stream(s, c, 0);
    }
    Ok(())
}

/// The `OR` of index lookups for the wanted intents (each group padded), if any are wanted.
pub(super) fn intent_filter<'a>(p: &mut Params<'a>, wanted: &'a Wanted) -> Option<String> {
    let mut or = Vec::new();
    let by_id: Vec<_> = wanted.by_id.union(&wanted.new_ids).collect();
    for (s, id) in padded(&by_id) {
        or.push(format!(
            "(stream = {} AND intent_id = {})",
            p.text(s),
            p.text(id)
        ));
    }
    let by_seq: Vec<_> = wanted.by_seq.iter().collect();
    for (s, seq) in padded(&by_seq) {
        let (s, seq) = (p.text(s), p.int(*seq));
        or.push(format!("(stream = {s} AND commit_sequence = {seq})"));
    }
    let parked: Vec<_> = wanted.parked.iter().collect();
    for s in padded(&parked) {
        or.push(format!("(state = 'waiting' AND stream = {})", p.text(s)));
    }
    (!or.is_empty()).then(|| or.join(" OR "))
}

/// Reads the review items `wanted` names (replays and resolutions only).
pub(super) async fn load_reviews<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    wanted: &Wanted,
    book: &mut Book,
) -> Result<(), StoreError> {
    let mut p = Params::new();
    let mut or = Vec::new();
    for id in &wanted.reviews {
        or.push(format!("id = {}", p.text(id)));
    }
    for (s, id) in &wanted.open_reviews {
        let (s, id) = (p.text(s), p.text(id));
        or.push(format!(
            "(state = 'open' AND stream = {s} AND intent_id = {id})"
        ));
    }
    if or.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT {REVIEW_COLS} FROM warden_review WHERE {}",
        or.join(" OR ")
    );
    for row in query(sql, &p.args).fetch_all(db).await.map_err(classify)? {
        book.load_review(review(&row)?);
    }
    Ok(())
}

/// The placeholders of the columns an intent's lifecycle changes, in table order.
pub(super) fn mutable<'a>(p: &mut Params<'a>, i: &'a Intent) -> Vec<String> {
    vec![
        p.text(i.state.as_str()),
        p.text(&i.worker),
        p.int(i.lease_until),
        p.int(i.expected_version),
        p.int(i.waiting_since),
        p.int(i.committed_version),
        p.int(i.committed_at),
        p.int(i.replays),
    ]
}

fn streams_update<'a>(p: &mut Params<'a>, rows: &'a [StreamChange]) -> String {
    let v = values(p, padded(rows), |p, s| {
        let c = &s.counters;
        vec![
            p.text(&s.stream),
            p.int(c.assigned),
            p.int(c.last_committed),
            p.int(c.version),
        ]
    });
    format!(
        "UPDATE warden_streams SET assigned = v.column2, last_committed = v.column3, \
         version = v.column4 FROM (VALUES {v}) AS v WHERE warden_streams.stream = v.column1"
    )
}

pub(super) fn intents_insert<'a>(p: &mut Params<'a>, rows: &'a [Intent]) -> String {
    let v = values(p, padded(rows), |p, i| {
        let mut r = vec![
            p.text(&i.stream),
            p.int(i.seq),
            p.text(&i.intent_id),
            p.int(i.priority),
            p.text(&i.intent_type),
            p.text(&i.payload),
            p.int(i.arrived_at),
        ];
        r.extend(mutable(p, i));
        r.extend([
            p.text(&i.correlation.id),
            p.text(&i.correlation.traceparent),
            p.int(i64::from(i.sensitive)),
        ]);
        r
    });
    format!("INSERT INTO warden_intents ({INTENT_COLS}) VALUES {v} ON CONFLICT DO NOTHING")
}

fn intents_update<'a>(p: &mut Params<'a>, rows: &'a [Intent]) -> String {
    let v = values(p, padded(rows), |p, i| {
        let mut r = vec![p.text(&i.stream), p.int(i.seq)];
        r.extend(mutable(p, i));
        r
    });
    format!(
        "UPDATE warden_intents SET state = v.column3, worker = v.column4, \
         lease_until = v.column5, expected_version = v.column6, waiting_since = v.column7, \
         committed_version = v.column8, committed_at = v.column9, replays = v.column10 \
         FROM (VALUES {v}) AS v \
         WHERE warden_intents.stream = v.column1 AND warden_intents.commit_sequence = v.column2"
    )
}

/// Every new intent was checked absent under its stream's lock: one not inserted would be a
/// bug, and must not be acknowledged.
fn check_inserted(inserted: u64, expected: usize) -> Result<(), StoreError> {
    if inserted == expected as u64 {
        Ok(())
    } else {
        Err(StoreError::Lost(format!(
            "{inserted} of {expected} new intents inserted"
        )))
    }
}

/// SQLite: one statement per kind and chunk (in-process: no round trips to save).
async fn write_each(tx: &mut Tx, c: &Changes) -> Result<(), StoreError> {
    for chunk in c.streams.chunks(CHUNK) {
        let mut p = Params::new();
        let sql = streams_update(&mut p, chunk);
        execute(tx, sql, &p.args).await?;
    }
    for chunk in c.new_intents.chunks(CHUNK) {
        let mut p = Params::new();
        let sql = intents_insert(&mut p, chunk);
        check_inserted(execute(tx, sql, &p.args).await?, chunk.len())?;
    }
    for chunk in c.intents.chunks(CHUNK) {
        let mut p = Params::new();
        let sql = intents_update(&mut p, chunk);
        execute(tx, sql, &p.args).await?;
    }
    for (sql, args) in review_writes(c) {
        execute(tx, sql, &args).await?;
    }
    super::audit::append(tx, true, &c.audits).await
}

/// The placeholders of a review item's resolution, in table order.
fn resolution<'a>(p: &mut Params<'a>, r: &'a ReviewItem) -> Vec<String> {
    vec![
        p.text(r.state.as_str()),
        p.text(&r.action),
        p.text(&r.actor),
        p.text(&r.note),
        p.int(r.resolved_at),
    ]
}

/// The statements (with their bind values) that insert new review items and resolve review
/// items still open; none when there are none. Audit rows are appended to the chain apart
/// ([`super::audit::append`]), in the same transaction.
pub(super) fn review_writes(c: &Changes) -> Vec<(String, Vec<Arg<'_>>)> {
    let mut out = Vec::new();
    if !c.new_reviews.is_empty() {
        let mut p = Params::new();
        let v = values(&mut p, c.new_reviews.iter(), |p, r| {
            let mut row = vec![
                p.text(&r.id),
                p.int(r.created_at),
                p.text(&r.reason),
                p.text(&r.stream),
                p.text(&r.intent_id),
                p.int(r.seq),
                p.text(&r.detail),
            ];
            row.extend(resolution(p, r));
            row
        });
        let sql = format!("INSERT INTO warden_review ({REVIEW_COLS}) VALUES {v}");
        out.push((sql, p.args));
    }
    if !c.reviews.is_empty() {
        let mut p = Params::new();
        let v = values(&mut p, c.reviews.iter(), |p, r| {
            let mut row = vec![p.text(&r.id)];
            row.extend(resolution(p, r));
            row
        });
        let sql = format!(
            "UPDATE warden_review SET state = v.column2, action = v.column3, actor = v.column4, \
             note = v.column5, resolved_at = v.column6 FROM (VALUES {v}) AS v \
             WHERE warden_review.id = v.column1 AND warden_review.state = 'open'"
        );
        out.push((sql, p.args));
    }
    out
}

/// Runs one statement; how many rows it changed.
async fn execute(tx: &mut Tx, sql: String, args: &[Arg<'_>]) -> Result<u64, StoreError> {
    query(sql, args)
        .execute(&mut **tx)
        .await
        .map(|r| r.rows_affected())
        .map_err(classify)
}
