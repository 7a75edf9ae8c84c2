//! SQL tier (PostgreSQL or SQLite through one `sqlx::Any` pool): the durable memory of Warden.
//! Schema changes are migrations run at start-up; every statement is portable across both.

mod audit;
mod cache;
mod evidence;
mod fence;
mod guard;
mod idem;
mod idem_sql;
mod incidents;
mod kv;
mod lock;
mod lock_group;
mod lock_share;
mod lock_tree;
mod lock_wait;
mod outbox;
mod params;
mod planner_stats;
mod ratelimit;
mod reserve;
mod reserve_batch;
mod semaphore;
mod session;
mod session_change;
mod session_create;
mod session_feed;
mod stream;
mod stream_batch;
mod stream_cache;
mod stream_occ;
mod tier_state;
mod tokens;

pub use cache::CacheInvalidation;
pub use evidence::{ReadingRow, RefusalRow};
pub use guard::GuardTx;
pub use kv::{KvExpect, KvJob, KvWritten};
pub use lock_group::GroupRecord;
pub use lock_wait::WaitEdge;
pub use outbox::Settle;
pub use ratelimit::{Expect, OverrideWrite, PolicyRow};
pub use reserve_batch::ReserveAsk;
pub use tier_state::TierRow;
pub use tokens::StoredToken;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

use super::StoreError;

/// The SQL tier.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// Connections reserved for the tier row and the database clock, so a burst of requests
    /// holding every pooled connection can never starve the tier-lease renewal (G2).
    control: AnyPool,
    timeout: Duration,
    sqlite: bool,
    /// PostgreSQL streams as this instance's batches last left them.
    stream_cache: std::sync::Arc<stream_cache::StreamCache>,
}

impl SqlStore {
    /// Connects and runs pending migrations. A `sqlite:` database file is created if missing.
    /// `timeout` bounds each call made on a request path ([`SqlStore::timeout`]).
    pub async fn connect(url: &str, pool_size: u32, timeout: Duration) -> Result<Self, StoreError> {
        Self::connect_pinging(url, pool_size, timeout, PING_IF_IDLE).await
    }

    /// [`SqlStore::connect`], pinging a connection idle for `ping_if_idle` before its use.
    pub async fn connect_pinging(
        url: &str,
        pool_size: u32,
        timeout: Duration,
        ping_if_idle: Duration,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = with_param(url, is_sqlite);
        let size = if is_sqlite {
            pool_size.min(4)
        } else {
            pool_size
        };
        let pool = open_pool(&url, size, timeout, is_sqlite, ping_if_idle).await?;
        let control =
            open_pool(&url, CONTROL_CONNECTIONS, timeout, is_sqlite, ping_if_idle).await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Sql(Arc::new(sqlx::Error::Migrate(Box::new(e)))))?;
        Ok(Self {
            pool,
            control,
            timeout,
            sqlite: is_sqlite,
            stream_cache: Default::default(),
        })
    }

    /// The per-call limit for request paths.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The database's clock, epoch milliseconds: the one clock every instance can agree on.
    pub async fn db_now(&self) -> Result<i64, StoreError> {
        let sql = if self.sqlite {
            "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
        } else {
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
        };
        sqlx::query_scalar(sql)
            .fetch_one(&self.control)
            .await
            .map_err(classify)
    }

    /// Health probe: `SELECT 1`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(classify)
    }

    /// Begins a transaction that will write. SQLite takes its write lock up front (`BEGIN
    /// IMMEDIATE`), so a transaction that reads first never fails with "database is locked"
    /// when it later writes: it waits its turn under `busy_timeout` instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        }
        .map_err(classify)
    }

    /// In write transaction `tx`, reads the row `sql` selects with `key` as `$1` (locked for
    /// update on PostgreSQL; SQLite's write transaction holds the whole database) and the
    /// tier's epoch (share-locked on PostgreSQL, so a tier switch waits for `tx` and arming
    /// sees what it grants).
    pub(crate) async fn row_at_epoch(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        sql: &str,
        key: &str,
    ) -> Result<(sqlx::any::AnyRow, i64), StoreError> {
        let (row_lock, tier_lock) = if self.sqlite {
            ("", "")
        } else {
            (" FOR UPDATE", " FOR SHARE")
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{sql}{row_lock}")))
            .bind(key)
            .fetch_one(&mut **tx)
            .await
            .map_err(classify)?;
        let epoch = format!("SELECT epoch FROM warden_tier WHERE id = 1{tier_lock}");
        let epoch: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(epoch))
            .fetch_one(&mut **tx)
            .await
            .map_err(classify)?;
        Ok((row, epoch))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
        self.control.close().await;
    }
}

/// SQLite files are created if missing; PostgreSQL connections cache more prepared statements
/// than sqlx's default 100, since batched statements come in a few dozen shapes (see
/// [`bucket`]) and a cache miss costs a parse and an extra round trip.
fn with_param(url: &str, sqlite: bool) -> String {
    let (key, param) = if sqlite {
        ("mode=", "mode=rwc")
    } else {
        ("statement-cache-capacity=", "statement-cache-capacity=1024")
    };
    if url.contains(key) {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// The size a list of `n` items is padded to in a statement (the next power of two), so
/// statements built for batches come in few shapes and their prepared forms are reused.
pub(crate) fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// `items` followed by repeats of its last item up to [`bucket`]`(items.len())` (nothing for
/// an empty list). Only for statements where a repeated row changes nothing.
pub(crate) fn padded<T>(items: &[T]) -> impl Iterator<Item = &T> {
    let extra = items
        .last()
        .map_or(0, |_| bucket(items.len()) - items.len());
    items
        .iter()
        .chain(items.last().into_iter().cycle().take(extra))
}

/// `($1,$2),($3,$4)`-style rows of numbered placeholders.
pub(crate) fn rows_sql(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..width {
            if c > 0 {
                out.push(',');
            }
            out.push_str(&format!("${}", r * width + c + 1));
        }
        out.push(')');
    }
    out
}

/// A pooled connection idle at least this long is pinged before use, unless
/// `database.ping_if_idle_ms` says otherwise.
const PING_IF_IDLE: Duration = Duration::from_millis(250);

/// When a statement last lost its connection, as [`process_ms`] + 1 (0: never).
static BROKEN_AT: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since this process first asked.
fn process_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Whether a connection idle for `idle_for` went idle before the last lost connection.
fn idle_since_a_break(idle_for: Duration) -> bool {
    let broken = BROKEN_AT.load(Ordering::Relaxed);
    broken > 0 && process_ms().saturating_sub(idle_for.as_millis() as u64) < broken
}

/// The connection itself failed (I/O, protocol, or the server ending the session: SQLSTATE
/// classes 08 and 57P), as opposed to a statement's own error.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| session_ended(&c)),
        _ => false,
    }
}

/// SQLSTATE classes of a connection refused or ended by the server (08, 57P).
fn session_ended(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

/// Whether `e` says the database is out of reach for now: a refused or broken connection, a
/// server starting up, shutting down or out of connection slots.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| session_ended(&c) || c == "53300"),
        _ => false,
    }
}

/// Connections of the control pool (tier row and clock).
const CONTROL_CONNECTIONS: u32 = 2;

/// Opens a pool; SQLite connections get WAL, a busy timeout and `synchronous = NORMAL`.
async fn open_pool(
    url: &str,
    size: u32,
    timeout: Duration,
    sqlite: bool,
    ping_if_idle: Duration,
) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(timeout)
        // No ping before every query (sqlx's default): it doubled the round trips of every
        // statement. A connection is pinged (and replaced if dead) only when it may be stale:
        // idle for a while, or idle since before a statement last lost its connection (the
        // database restarted or failed over). Under load neither happens; after a restart the
        // connections left from before it are replaced before use instead of each failing a
        // request once the database is back.
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_if_idle || idle_since_a_break(meta.idle_for) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let settings: &[&'static str] = if sqlite {
                    &[
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA synchronous = NORMAL",
                    ]
                } else {
                    // Every statement is an index lookup or a keyed update whose plan does not
                    // depend on its values: plan each prepared statement once, not per call.
                    // A plan made while a table was a few pages would be a sequential scan,
                    // and would stay while the table grows (until an analyze): Warden's
                    // statements all have an index path, so the planner is told to prefer it.
                    // No JIT: Warden's statements touch few rows, but one whose only path is a
                    // scan (a sweep, a catalog read) is costed as disabled, far above
                    // `jit_above_cost`, and PostgreSQL compiled it on every execution (libLLVM
                    // took 1–1.7 % of the machine in the KV and session profiles).
                    &[
                        "SET plan_cache_mode = force_generic_plan",
                        "SET enable_seqscan = off",
                        "SET jit = off",
                    ]
                };
                for &setting in settings {
                    sqlx::query(setting).execute(&mut *conn).await?;
                }

                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(classify)
}

/// Maps a database error. Everything sqlx reports here is infrastructure: domain answers are
/// expressed by statements that affect no row, never by errors.
fn classify(e: sqlx::Error) -> StoreError {
    if connection_lost(&e) {
        BROKEN_AT.fetch_max(process_ms() + 1, Ordering::Relaxed);
    }
    match e {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        other => StoreError::Sql(Arc::new(other)),
    }
}

/// Reads column `i` of a row, mapping a type mismatch to an infrastructure error.
fn col<'r, T>(row: &'r AnyRow, i: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(i).map_err(classify)
}
