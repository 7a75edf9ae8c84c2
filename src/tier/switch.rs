//! Failover and fail-back are decided here: when the shared tier moves to a new epoch, how long
//! that epoch waits before it grants (only as long as leases it cannot see may be live), and how
//! Redis is armed so it never grants over a live SQL lease (G1–G3).

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::{reason, Mode, Tier, TierName};
use crate::key::Key;
use crate::metrics_names as m;
use crate::store::semaphore::PermitCopy;
use crate::store::sql::TierRow;
use crate::store::{bounded, LeaseCopy, StoreError};

impl Tier {
    /// Handles a Redis gate that is not at `epoch` for `key`'s slot (or a fixed slot): refreshes
    /// a stale cache, arms Redis for the current epoch, waits for another instance that is
    /// arming it, or — when Redis lost a gate it had been armed with — switches to a new epoch
    /// so no token can repeat (G1).
    ///
    /// Concurrent callers are coalesced: while one handles a mismatch (or a switch is under
    /// way), the others wait for it and return, to retry against what it found. A burst of
    /// requests meeting an unarmed gate then costs one check, not one check each in turn
    /// (measured: begin p95 about 40 ms for the seconds after Redis came back empty).
    pub async fn on_epoch_mismatch(&self, epoch: i64, key: Option<&Key>) {
        let Some(redis) = &self.redis else { return };
        let Ok(_guard) = self.switching.try_lock() else {
            drop(self.switching.lock().await);
            return;
        };
        let row = match self.refresh().await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reread tier state");
                return;
            }
        };
        if row.epoch != epoch || row.tier != TierName::Redis {
            return;
        }
        // Reread under the lock: another request may have armed the gate meanwhile.
        let found = match redis.gate_epoch(key.map(Key::as_str)).await {
            Ok(found) => found,
            Err(e) => {
                self.record(Mode::Primary, &Err::<(), _>(e));
                return;
            }
        };
        match found {
            // Armed, or being armed: this slot's gate is up. A gate up in an epoch not recorded
            // as armed is an arming that failed after raising it (or whose answer was lost):
            // it is armed again below, which copies nothing twice and lowers no gate.
            Some(f) if f == row.epoch && row.redis_armed_epoch >= row.epoch => {}
            Some(f) if f > row.epoch => {
                // The database is behind Redis (restored from a backup?): move the epoch past
                // the gate one switch at a time; Redis grants nothing until it catches up.
                tracing::error!(
                    redis_epoch = f,
                    sql_epoch = row.epoch,
                    "database epoch behind redis"
                );
                let detail = format!("redis gate {f} ahead of database epoch {}", row.epoch);
                self.switch(&row, TierName::Redis, reason::EPOCH_BEHIND, &detail)
                    .await;
            }
            // Another instance is still writing this epoch's gates: a missing one is not
            // evidence of data loss. Wait for it (the request retries once it is done); an
            // arming that never finishes (its instance died) counts as lost after the window.
            _ if self.arming_elsewhere(&row) => self.await_arming(epoch).await,
            _ if row.redis_armed_epoch >= row.epoch => {
                let detail = format!("epoch gate {found:?}, armed for {}", row.epoch);
                self.switch(&row, TierName::Redis, reason::REDIS_DATA_LOSS, &detail)
                    .await;
            }
            _ if self.now() >= row.grants_from => self.arm(row.epoch).await,
            _ => {}
        }
    }

    /// Whether `row` shows an arming of its epoch begun by some instance and not finished,
    /// within the window an arming may take.
    pub(super) fn arming_elsewhere(&self, row: &TierRow) -> bool {
        row.redis_armed_epoch >= row.epoch
            && row.redis_arming_since > 0
            && self.now() - row.redis_arming_since < self.arming_window()
    }

    /// Waits (at most one tier lease) until the arming of `epoch` begun by another instance is
    /// finished, or the epoch moved on.
    async fn await_arming(&self, epoch: i64) {
        let deadline = Instant::now() + self.cfg.tier_lease;
        while Instant::now() < deadline {
            tokio::time::sleep(self.cfg.arming_poll).await;
            match self.refresh().await {
                Ok(row) if row.epoch == epoch && self.arming_elsewhere(&row) => {}
                _ => return,
            }
        }
    }

    /// Moves the active tier to a new epoch because `epoch` ran out of counter values, so no
    /// token ever spills into the next epoch's range (G1).
    pub async fn on_counter_exhausted(&self, epoch: i64) {
        let _guard = self.switching.lock().await;
        match self.refresh().await {
            Ok(row) if row.epoch == epoch => {
                let tier = row.tier;
                let detail = "2^32 - 1 grants in one epoch";
                self.switch(&row, tier, reason::COUNTER_EXHAUSTED, detail)
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reread tier state"),
        }
    }

    /// Arms Redis for `epoch`: records it in SQL, copies every live SQL lease and permit into
    /// Redis so no SQL grant is ignored, then raises the gate that lets Redis grant. SQL grants
    /// and extends check the epoch in their own statement, so once the switch to `epoch` has
    /// committed no SQL lease appears or grows behind the copy; a release racing the copy
    /// leaves a marker in Redis that keeps the copy from bringing the lease back.
    pub(super) async fn arm(&self, epoch: i64) {
        let Some(redis) = &self.redis else { return };
        let started = Instant::now();
        let since = self.now();
        let limit = self.sql.timeout();
        let result: Result<Option<(usize, usize)>, StoreError> = async {
            if !bounded(limit, self.sql.mark_redis_armed(epoch, since)).await? {
                return Ok(None); // another instance arms this epoch
            }
            let now = self.now();
            let mut leases = bounded(limit, self.sql.live_leases(now)).await?;
            leases.extend(bounded(limit, self.sql.live_shares_all(now)).await?);
            let copied = self
                .copy_all(leases, |(key, lease)| async move {
                    redis.seed_lease(&key, &lease, now).await
                })
                .await?;
            let permits = bounded(limit, self.sql.live_permits(now)).await?;
            let copied_permits = self
                .copy_all(permits, |(name, permit, cap)| async move {
                    redis.seed_permit(&name, &permit, cap, now).await
                })
                .await?;
            let run_id = redis.run_id().await?.unwrap_or_default();
            redis.arm_epoch(epoch).await?;
            bounded(limit, self.sql.finish_arming(epoch, &run_id)).await?;
            Ok(Some((copied, copied_permits)))
        }
        .await;
        match result {
            Ok(None) => {}
            Ok(Some((copied, copied_permits))) => {
                // Every call of the arming reached one process, the one whose run id it
                // recorded (a broken connection in between would have failed it).
                self.set_redis_verified(true);
                tracing::info!(
                    epoch,
                    copied_sql_leases = copied,
                    copied_sql_permits = copied_permits,
                    took_ms = started.elapsed().as_millis() as u64,
                    "redis armed for epoch"
                );
                // Arming all slots can outlast the tier lease while the supervisor waits on
                // the switch lock: renew it now rather than at the next tick. The next tick
                // checks that Redis is still the process armed (the run id read above).
                let _ = self.refresh().await;
            }
            Err(e) => {
                // Left as begun, a failed arming would hold every instance back for the whole
                // arming window and then read as data loss (a new epoch, with its grace).
                let abandoned = bounded(limit, self.sql.abandon_arming(epoch, since)).await;
                tracing::warn!(
                    epoch,
                    error = %e,
                    abandoned = abandoned.is_ok(),
                    "arming redis failed; it is retried at the next supervision step"
                );
                self.record(Mode::Primary, &Err::<(), _>(e));
            }
        }
    }

    /// Copies `items` into Redis with `seed`, `seed_concurrency` at once; answers how many
    /// were written.
    async fn copy_all<T, F, Fut>(&self, items: Vec<T>, seed: F) -> Result<usize, StoreError>
    where
        F: FnMut(T) -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        stream::iter(items)
            .map(seed)
            .buffer_unordered(self.cfg.seed_concurrency)
            .try_fold(0, |n, written| async move { Ok(n + usize::from(written)) })
            .await
    }

    /// [`super::TierConfig::arming_window`], in ms.
    pub(super) fn arming_window(&self) -> i64 {
        self.cfg.arming_window().as_millis() as i64
    }

    /// How long a new epoch reached for reason `why` grants nothing.
    fn grace_for(&self, why: &str, row: &TierRow) -> Duration {
        let lease = self.cfg.tier_lease;
        match why {
            // Fail-back, and the first start on Redis: SQL grants, extends and releases check
            // the epoch in their own statement, so no SQL lease changes once the switch has
            // committed, and arming copies every live one into Redis before Redis grants.
            reason::REDIS_RECOVERED => Duration::ZERO,
            // The same store goes on: its old-epoch leases stay visible to the new epoch. Only
            // instances still acting on the old epoch must see the switch.
            reason::COUNTER_EXHAUSTED | reason::EPOCH_BEHIND | reason::COPY_UNSETTLED => lease,
            // Old leases may be live where the new epoch cannot see them. An instance that has
            // not seen the switch yet may still grant or extend one for up to its tier lease,
            // each for up to the longest TTL.
            _ => {
                let longest = self
                    .cfg
                    .failover_grace
                    .unwrap_or(Duration::from_millis(row.max_ttl_ms.max(0) as u64));
                lease + longest
            }
        }
    }

    /// Switches the shared tier to `to` with a new epoch, unless another instance already
    /// moved past `row.epoch`. A switch to Redis without a grace arms it at once.
    pub(super) async fn switch(
        &self,
        row: &TierRow,
        to: TierName,
        why: &'static str,
        detail: &str,
    ) {
        let now = self.now();
        let grace = self.grace_for(why, row);
        let grants_from = now + grace.as_millis() as i64;
        let started = Instant::now();
        match self
            .sql
            .switch_tier(row.epoch, to, why, now, grants_from)
            .await
        {
            Ok(Some(new)) => {
                tracing::warn!(
                    from = row.tier.as_str(),
                    to = to.as_str(),
                    reason = why,
                    detail,
                    old_epoch = row.epoch,
                    epoch = new.epoch,
                    grace_ms = grace.as_millis() as u64,
                    "tier switch"
                );
                metrics::counter!(m::TIER_SWITCHES, "reason" => why).increment(1);
                // For the evidence pack: switches are in the audit chain (after the switch
                // itself, which must not wait on it).
                let entry = crate::audit::Audit::new(
                    now,
                    "warden",
                    "tier.switch",
                    &format!("epoch {}", new.epoch),
                    format!(
                        "{} -> {} ({why}): {detail}; grace {} ms",
                        row.tier.as_str(),
                        to.as_str(),
                        grace.as_millis()
                    ),
                );
                if let Err(e) = self.sql.audit(&[entry]).await {
                    tracing::warn!(error = %e, "tier switch not audited");
                }
                let epoch = new.epoch;
                self.install(new, started);
                if to == TierName::Redis && grace.is_zero() {
                    self.arm(epoch).await;
                }
            }
            Ok(None) => {
                let _ = self.refresh().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, to = to.as_str(), reason = why, "tier switch failed")
            }
        }
    }
}
