//! PostgreSQL stream batches, optimistic: one statement reads the batch's stream rows (with
//! their revisions) and intents from one snapshot — or none, for streams this instance's last
//! batch left in its [`StreamCache`] — the rules decide, and one statement writes every change:
//! streams at `rev + 1` only where `rev` is still the one read, intents only where they are
//! still in the state read (a dispatch lease counting as `ready`: leases are kept, not
//! overwritten, unless the batch changes them), new streams and intents only if absent, and
//! streams taken from the cache but only read only if still at their revision. It fails as a
//! whole (a division by zero) unless every row was written and checked. A failed write changed
//! nothing: the batch is read and decided again. One or two round trips per batch instead of
//! a locking transaction's six.

use sqlx::Any;

use super::params::{query, values, Params};
use super::stream::{intent_from, INTENT_COLS};
use super::stream_batch::{intent_filter, intents_insert, load_reviews, mutable, review_writes};
use super::stream_cache::Served;
use super::{classify, col, padded, SqlStore};
use crate::metrics_names as m;
use crate::store::stream::{Book, Changes, Counters, StreamChange, Wanted};
use crate::store::StoreError;

/// Reads and decisions of one batch, at most, before it gives up.
const ATTEMPTS: usize = 8;

/// The stream rows of the read, in the intent rows' column shape (`rev` where `lease_until`
/// is).
/// Stream rows shaped as intent rows (a marker column, then one column per intent column), so
/// both come back from one `UNION ALL`.
const STREAM_ROWS: &str = "SELECT CAST(0 AS BIGINT), stream, assigned, '', last_committed, '',
    '', version, '', '', rev, 0, 0, 0, 0, 0, '', '', 0 FROM s";

/// A random pause before reading again after the `attempt`-th lost race: under 0.5 ms, the
/// bound doubling per attempt (under 64 ms at most), so writers that keep colliding on one stream spread out instead
/// of retrying in lockstep until one gives up.
fn backoff(attempt: usize) -> std::time::Duration {
    use std::hash::BuildHasher;
    let ceiling_us = 250u64 << attempt.clamp(1, 8);
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    std::time::Duration::from_micros(random % ceiling_us)
}

/// Intent updates that keep the row's lease (worker, end) where the batch did not change it,
/// and its state too where the batch changed neither: a dispatch may have leased the intent
/// since it was read, or since the cache saw it.
const INTENTS_UPDATE: &str = "UPDATE warden_intents SET \
    state = CASE WHEN v.column12 = 1 THEN warden_intents.state ELSE v.column3 END, \
    worker = CASE WHEN v.column13 = 1 THEN warden_intents.worker ELSE v.column4 END, \
    lease_until = CASE WHEN v.column13 = 1 THEN warden_intents.lease_until ELSE v.column5 END, \
    expected_version = v.column6, waiting_since = v.column7, committed_version = v.column8, \
    committed_at = v.column9, replays = v.column10";

/// Only intents still in the state read; `ready` and `leased` count as one, since dispatch
/// moves intents between them without a stream revision and the rules treat them alike.
const INTENTS_GUARD: &str = "WHERE warden_intents.stream = v.column1 \
    AND warden_intents.commit_sequence = v.column2 \
    AND (warden_intents.state = v.column11 \
      OR (warden_intents.state IN ('ready', 'leased') AND v.column11 IN ('ready', 'leased'))) \
    RETURNING 1";

/// SQLSTATEs of a write that lost a race: the guard's division by zero, a deadlock between
/// two batches' updates, a serialization failure.
const LOST: [&str; 3] = ["22012", "40P01", "40001"];

enum Written {
    Done,
    Lost,
}

impl SqlStore {
    /// PostgreSQL: read (what the cache does not hold), decide, write-if-unchanged; again on
    /// a lost race.
    pub(super) async fn stream_batch_optimistic<R>(
        &self,
        wanted: &Wanted,
        mut apply: impl FnMut(&mut Book) -> R,
    ) -> Result<(R, Changes), StoreError> {
        // What the last attempt took from the cache, if it lost.
        let mut lost = Served::default();
        for attempt in 1..=ATTEMPTS {
            let mut book = Book::default();
            let (served, rest) = self.stream_cache.serve(wanted, &mut book);
            let tried = self.try_batch(wanted, &rest, (&served, &lost), &mut book, &mut apply);
            // After an error the database may not be the one the cache saw.
            match tried.await.inspect_err(|_| self.stream_cache.clear())? {
                Some(done) => return Ok(done),
                None => {
                    metrics::counter!(m::STREAM_BATCH_RETRIES).increment(1);
                    tracing::debug!(attempt, "stream batch lost a race; reading again");
                    self.stream_cache.forget(&wanted.streams);
                    // A batch that took streams from the cache may have lost to its own stale
                    // entries: that one reads them again at once.
                    if served.is_empty() && attempt < ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    lost = served;
                }
            }
        }
        Err(StoreError::Lost(format!(
            "stream batch lost {ATTEMPTS} races in a row"
        )))
    }

    /// One attempt: reads `rest`, decides on the book, writes; `None` if the write lost a race.
    /// `served` is what it took from the cache, `lost` what the attempt before took (if it
    /// lost).
    async fn try_batch<R>(
        &self,
        wanted: &Wanted,
        rest: &Wanted,
        (served, lost): (&Served, &Served),
        book: &mut Book,
        apply: &mut impl FnMut(&mut Book) -> R,
    ) -> Result<Option<(R, Changes)>, StoreError> {
        self.read_snapshot(rest, book).await?;
        self.stream_cache.mark_moved(lost, book);
        load_reviews(&self.pool, rest, book).await?;
        for s in &wanted.create {
            if book.stream(s).is_none() {
                book.new_stream(s.clone());
            }
        }
        let out = apply(book);
        let changes = book.changes();
        let unchanged = served.unchanged(&changes);
        let written = if changes.audits.is_empty() {
            write_guarded(&self.pool, &changes, &unchanged).await?
        } else {
            // Audited changes (operator actions, rare) also append to the audit chain, in one
            // transaction with the guarded write.
            let mut tx = self.begin_write().await?;
            super::audit::append(&mut tx, false, &changes.audits).await?;
            let written = write_guarded(&mut *tx, &changes, &unchanged).await?;
            if let Written::Done = written {
                tx.commit().await.map_err(classify)?;
            }
            written
        };
        match written {
            Written::Done => {
                self.stream_cache.remember(book, &changes, served, wanted);
                Ok(Some((out, changes)))
            }
            Written::Lost => Ok(None),
        }
    }

    /// The wanted stream rows and intents, from one snapshot.
    async fn read_snapshot(&self, wanted: &Wanted, book: &mut Book) -> Result<(), StoreError> {
        let mut p = Params::new();
        let (mut ctes, mut parts) = (Vec::new(), Vec::new());
        let names: Vec<&String> = wanted.streams.iter().collect();
        if !names.is_empty() {
            let list: Vec<String> = padded(&names).map(|s| p.text(s)).collect();
            ctes.push(format!(
                "s AS (SELECT stream, assigned, last_committed, version, rev \
                 FROM warden_streams WHERE stream IN ({}))",
                list.join(",")
            ));
            parts.push(STREAM_ROWS.to_owned());
        }
        if let Some(filter) = intent_filter(&mut p, wanted) {
            ctes.push(format!(
                "i AS (SELECT {INTENT_COLS} FROM warden_intents WHERE {filter})"
            ));
            parts.push(format!("SELECT CAST(1 AS BIGINT), {INTENT_COLS} FROM i"));
        }
        if parts.is_empty() {
            return Ok(());
        }
        let sql = format!("WITH {} {}", ctes.join(", "), parts.join(" UNION ALL "));
        let rows = query(sql, &p.args)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        for row in rows {
            if col::<i64>(&row, 0)? == 0 {
                let c = Counters {
                    assigned: col(&row, 2)?,
                    last_committed: col(&row, 4)?,
                    version: col(&row, 7)?,
                };
                book.load_stream(col(&row, 1)?, c, col(&row, 10)?);
            } else {
                book.load_intent(intent_from(&row, 1)?);
            }
        }
        Ok(())
    }
}

/// Every change in one statement that writes all of it or nothing, and only if every stream
/// of `unchanged` is still at its revision.
async fn write_guarded<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    c: &Changes,
    unchanged: &[(&str, i64)],
) -> Result<Written, StoreError> {
    // Declared before the placeholders that borrow from them.
    let (old, new): (Vec<&StreamChange>, Vec<&StreamChange>) =
        c.streams.iter().partition(|s| s.rev.is_some());
    let pairs: Vec<_> = c.intents.iter().zip(&c.before).collect();
    let mut p = Params::new();
    let mut ctes = Vec::new();
    let mut checks = Vec::new();
    if !old.is_empty() {
        let v = values(&mut p, padded(&old), counter_row);
        ctes.push(format!(
            "s AS (UPDATE warden_streams SET assigned = v.column2, last_committed = v.column3, \
             version = v.column4, rev = v.column5 + 1 FROM (VALUES {v}) AS v \
             WHERE warden_streams.stream = v.column1 AND warden_streams.rev = v.column5 \
             RETURNING 1)"
        ));
        checks.push(("s", old.len()));
    }
    if !new.is_empty() {
        let v = values(&mut p, padded(&new), counter_row);
        ctes.push(format!(
            "c AS (INSERT INTO warden_streams (stream, assigned, last_committed, version, rev) \
             SELECT column1, column2, column3, column4, 1 FROM (VALUES {v}) AS v \
             ON CONFLICT DO NOTHING RETURNING 1)"
        ));
        checks.push(("c", new.len()));
    }
    if !unchanged.is_empty() {
        let v = values(&mut p, padded(unchanged), |p, (s, rev)| {
            vec![p.text(s), p.int(*rev)]
        });
        ctes.push(format!(
            "k AS (SELECT 1 FROM warden_streams WHERE (stream, rev) IN (VALUES {v}))"
        ));
        checks.push(("k", unchanged.len()));
    }
    if !c.new_intents.is_empty() {
        let insert = intents_insert(&mut p, &c.new_intents);
        ctes.push(format!("n AS ({insert} RETURNING 1)"));
        checks.push(("n", c.new_intents.len()));
    }
    if !c.intents.is_empty() {
        let v = values(&mut p, padded(&pairs), |p, (now, before)| {
            let mut r = vec![p.text(&now.stream), p.int(now.seq)];
            r.extend(mutable(p, now));
            let lease_kept = (&now.worker, now.lease_until) == (&before.worker, before.lease_until);
            let state_kept = lease_kept && now.state == before.state;
            r.extend([
                p.text(before.state.as_str()),
                p.int(i64::from(state_kept)),
                p.int(i64::from(lease_kept)),
            ]);
            r
        });
        ctes.push(format!(
            "u AS ({INTENTS_UPDATE} FROM (VALUES {v}) AS v {INTENTS_GUARD})"
        ));
        checks.push(("u", c.intents.len()));
    }
    if ctes.is_empty() {
        return Ok(Written::Done);
    }
    // Review items ride along (their stream's revision guards them).
    let mut args = p.args;
    for (i, (sql, extra)) in review_writes(c).into_iter().enumerate() {
        let sql = renumber(&sql, args.len());
        ctes.push(format!("r{i} AS ({sql} RETURNING 1)"));
        args.extend(extra);
    }
    let all_written = checks
        .iter()
        .map(|(cte, n)| format!("(SELECT COUNT(*) FROM {cte}) = {n}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "WITH {} SELECT 1 / (CASE WHEN {all_written} THEN 1 ELSE 0 END)",
        ctes.join(", ")
    );
    match query(sql, &args).fetch_one(db).await {
        Ok(_) => Ok(Written::Done),
        Err(sqlx::Error::Database(e)) if e.code().is_some_and(|c| LOST.contains(&&*c)) => {
            Ok(Written::Lost)
        }
        Err(e) => Err(classify(e)),
    }
}

/// A stream row's placeholders: stream, assigned, last_committed, version, and for a row that
/// exists, the revision read.
fn counter_row<'a>(p: &mut Params<'a>, s: &'a &StreamChange) -> Vec<String> {
    let k = &s.counters;
    let mut row = vec![
        p.text(&s.stream),
        p.int(k.assigned),
        p.int(k.last_committed),
        p.int(k.version),
    ];
    row.extend(s.rev.map(|rev| p.int(rev)));
    row
}

/// `sql` with every `$n` placeholder moved up by `by`.
fn renumber(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        out.push(ch);
        if ch != '$' {
            continue;
        }
        let mut n = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            n.push(*d);
            chars.next();
        }
        match n.parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&n),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_is_random_and_bounded_by_a_doubling_ceiling() {
        use std::time::Duration;
        let first: Vec<Duration> = (0..50).map(|_| super::backoff(1)).collect();
        assert!(first.iter().all(|d| *d < Duration::from_micros(500)));
        assert!(
            first.iter().any(|d| *d != first[0]),
            "not random: {first:?}"
        );
        assert!((0..50).all(|_| super::backoff(100) < Duration::from_millis(64)));
    }

    #[test]
    fn renumber_moves_every_placeholder() {
        assert_eq!(super::renumber("($1,$2),($10)", 5), "($6,$7),($15)");
    }
}
