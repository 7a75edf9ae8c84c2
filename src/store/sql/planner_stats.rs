//! On PostgreSQL, every table Warden grows has planner statistics taken at no less than half
//! its current size. Statements are planned once per connection (`force_generic_plan`), so a
//! plan made while a table was tiny — a join that reads the whole table, cheapest at that size
//! — would otherwise run on as the table grows, until autovacuum's next analyze (a minute or
//! more; measured: a fresh database ran begin+complete at 5 018 pairs/s against 8 499 with
//! this). An analyze invalidates the plans that read the table, so they are made again at the
//! new size. Analyzing at each doubling costs a handful of analyzes over a table's life.

use super::{classify, SqlStore};
use crate::metrics_names as m;
use crate::store::StoreError;

/// The tables Warden's requests grow. Static names: they are spliced into `ANALYZE`.
const TABLES: [&str; 8] = [
    "warden_locks",
    "warden_fences",
    "warden_idem",
    "warden_holds",
    "warden_streams",
    "warden_intents",
    "warden_review",
    "warden_audit",
];

/// Statistics are stale once a table has more than twice the pages they were taken at (and
/// at least this many: below it any plan is cheap).
const MIN_PAGES: i64 = 8;

impl SqlStore {
    /// Analyzes each of Warden's tables whose size has more than doubled since its planner
    /// statistics were taken; returns the tables analyzed. Does nothing on SQLite.
    pub async fn refresh_planner_stats(&self) -> Result<Vec<&'static str>, StoreError> {
        if self.sqlite {
            return Ok(Vec::new());
        }
        let list: Vec<String> = TABLES
            .iter()
            .map(|t| format!("to_regclass('{t}')"))
            .collect();
        let sql = format!(
            "SELECT c.relname::text FROM pg_class c WHERE c.oid IN ({})
               AND pg_relation_size(c.oid) > 2 * current_setting('block_size')::bigint
                   * GREATEST(c.relpages, {MIN_PAGES})",
            list.join(", ")
        );
        let stale: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let mut done = Vec::new();
        for table in TABLES.into_iter().filter(|t| stale.iter().any(|s| s == t)) {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            metrics::counter!(m::SQL_ANALYZED, "table" => table).increment(1);
            done.push(table);
        }
        Ok(done)
    }
}
