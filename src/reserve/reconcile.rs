//! Reconciliation: compares every SKU's hot copy on Redis with its durable counts in SQL. A
//! difference seen twice, a moment apart, is reported (metric and log line); with `fix`, the
//! copy is reseeded from SQL, which is always the truth.

use super::Reservations;
use crate::metrics_names as m;
use crate::store::reserve::{Stock, StockCopy};
use crate::store::StoreError;
use crate::tier::Blocked;

/// One SKU whose copies differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// SKU.
    pub sku: String,
    /// Counts on Redis.
    pub redis: Stock,
    /// Counts in SQL.
    pub sql: Stock,
    /// Whether the Redis copy was reseeded.
    pub fixed: bool,
}

impl Reservations {
    /// Compares every SKU seeded on Redis in this epoch with SQL; reseeds differing copies
    /// when `fix`. Nothing to compare when the active tier is SQL.
    pub async fn reconcile(&self, fix: bool) -> Result<Vec<Mismatch>, Blocked> {
        let active = self.tier.active(false)?;
        let Some(primary) = active.primary() else {
            return Ok(Vec::new());
        };
        let sql = self.tier.durable();
        let mut found = Vec::new();
        for sku in sql.skus().await? {
            let differs = || async {
                let hot = primary.call(|r| r.stock(&sku, active.epoch)).await?;
                let durable = sql.stock(&sku).await?.unwrap_or_default();
                Ok::<_, StoreError>(hot.filter(|h| *h != durable).map(|h| (h, durable)))
            };
            if differs().await?.is_none() {
                continue;
            }
            tokio::time::sleep(crate::config::ms(self.cfg.reconcile_settle_ms)).await;
            let Some((hot, durable)) = differs().await? else {
                continue;
            };
            let fixed = fix && self.seed(primary, &sku, active.epoch, true).await.is_ok();
            let label = if fixed { "true" } else { "false" };
            metrics::counter!(m::RECONCILE_MISMATCHES, "fixed" => label).increment(1);
            tracing::warn!(sku, ?hot, ?durable, fixed, "redis stock differs from sql");
            found.push(Mismatch {
                sku,
                redis: hot,
                sql: durable,
                fixed,
            });
        }
        Ok(found)
    }
}
