//! The supervisor: renews the tier lease, fails over when the breaker opens, probes Redis and
//! fails back, and arms Redis for a new epoch once its grace is over.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{reason, BreakerState, Mode, Tier, TierName};
use crate::metrics_names as m;
use crate::runtime::correlation::task_span;
use tracing::Instrument;

impl Tier {
    /// Runs until `shutdown` completes. Ticks at a quarter of the tier lease, and at once when
    /// the breaker opens.
    pub async fn supervise(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let tick = (self.cfg.tier_lease / 4).max(Duration::from_millis(20));
        let mut next_reap = Instant::now() + self.cfg.lease_reap_every;
        // The lease is renewed on its own schedule: a tick that waits on the switch lock
        // (another request arming 16 384 slots) must not let the lease run out meanwhile.
        let renew = async {
            loop {
                tokio::time::sleep(tick).await;
                let renewal = self.refresh().instrument(task_span("tier_lease"));
                if let Err(e) = renewal.await {
                    task_span("tier_lease").in_scope(|| {
                        tracing::warn!(error = %e, "tier lease not renewed: database unreachable")
                    });
                }
            }
        };
        let supervise = async {
            tokio::pin!(shutdown);
            loop {
                self.tick().instrument(task_span("tier_supervisor")).await;
                if Instant::now() >= next_reap {
                    next_reap = Instant::now() + self.cfg.lease_reap_every;
                    self.reap().instrument(task_span("lease_reaper")).await;
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(tick) => {}
                    _ = self.wake.notified() => {}
                }
            }
        };
        tokio::select! {
            _ = renew => {}
            _ = supervise => {}
        }
    }

    /// Deletes expired SQL lease rows of earlier epochs, expired permit rows, semaphore rows
    /// left with none and expired lock group records (bounded table growth).
    async fn reap(&self) {
        let Some(epoch) = self.status().epoch else {
            return;
        };
        let now = self.now();
        let reaped = [
            self.sql.reap_leases(epoch, now).await,
            self.sql.reap_permits(epoch, now).await,
            self.sql.reap_groups(now).await,
        ];
        for r in reaped {
            match r {
                Ok(n) => metrics::counter!(m::LEASES_REAPED).increment(n),
                Err(e) => tracing::warn!(error = %e, "lease reaper failed"),
            }
        }
    }

    /// Brings a starting instance to where it can serve, before it answers anything: one
    /// supervision step (so the first instance on a fresh database with Redis reachable
    /// switches to Redis and arms it here, without a grace), then, while another instance is
    /// arming Redis for the current epoch, a wait for it (at most the arming window). An
    /// instance that joins running ones finds Redis armed and serves at once.
    pub async fn start_up(&self) {
        self.tick().await;
        let deadline = Instant::now() + Duration::from_millis(self.arming_window() as u64);
        while Instant::now() < deadline {
            match self.cached() {
                Some(c) if c.row.tier == TierName::Redis && self.arming_elsewhere(&c.row) => {}
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "tier lease not renewed: database unreachable");
            }
        }
    }

    /// One supervision step.
    pub async fn tick(&self) {
        let row = match self.refresh().await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "tier lease not renewed: database unreachable");
                return;
            }
        };
        let Some(redis) = &self.redis else {
            if row.tier == TierName::Redis {
                // An instance without Redis cannot serve the Redis tier: it moves every
                // instance to SQL (with the full failover grace) rather than stall forever.
                let _guard = self.switching.lock().await;
                let detail = "this instance has no redis_url";
                self.switch(&row, TierName::Sql, reason::REDIS_UNREACHABLE, detail)
                    .await;
            }
            return;
        };
        let on_redis = row.tier == TierName::Redis;
        let state = self.breaker.state();
        if on_redis && state == BreakerState::Closed {
            // Checks the epoch gate even without traffic: arms a new epoch, detects data loss.
            let gate = redis.gate_epoch(None).await;
            self.record(Mode::Primary, &gate);
            let armed = row.redis_armed_epoch >= row.epoch;
            match gate {
                Ok(found) if found == Some(row.epoch) && armed => {
                    self.verify_redis(&row, redis).await
                }
                Ok(_) if self.now() >= row.grants_from => {
                    self.on_epoch_mismatch(row.epoch, None).await;
                }
                _ => {}
            }
            return;
        }
        let _guard = self.switching.lock().await;
        if state == BreakerState::Open {
            if on_redis {
                let detail = self.breaker.last_error();
                self.switch(&row, TierName::Sql, reason::REDIS_UNREACHABLE, &detail)
                    .await;
            }
            return;
        }
        // Fail-back waits until SQL has served for the breaker's open period after its grace:
        // a fail-back as soon as the grace ends (a Redis that only this instance can reach,
        // a long TTL) would leave SQL never granting at all.
        let serving_since = row.changed_at.max(row.grants_from);
        let damped = row.reason != "init"
            && self.now() - serving_since < self.cfg.breaker_open.as_millis() as i64;
        if !on_redis && damped {
            return;
        }
        let probe = redis.gate_epoch(None).await;
        self.record(Mode::Primary, &probe);
        if probe.is_ok() && !on_redis {
            self.switch(
                &row,
                TierName::Redis,
                reason::REDIS_RECOVERED,
                "probe succeeded",
            )
            .await;
        }
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Tier> {
    /// `tier_supervisor`: the tier lease, failover and fail-back (see [`Tier::supervise`]);
    /// `planner_stats`: PostgreSQL's planner statistics kept in step with table growth, every
    /// `database.planner_stats_every_ms` (a database that refuses, say a role that may not
    /// analyze, is reported once; the loop goes on, in case that changes).
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let tier = self.clone();
        s.run("tier_supervisor", move |stop| tier.supervise(stop));
        let sql = self.durable().clone();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        s.every("planner_stats", self.cfg.planner_stats_every, move || {
            let (sql, failing) = (sql.clone(), failing.clone());
            async move {
                use std::sync::atomic::Ordering;
                match sql.refresh_planner_stats().await {
                    Ok(tables) => {
                        for table in tables {
                            tracing::info!(
                                table,
                                "planner statistics refreshed: the table doubled"
                            );
                        }
                        failing.store(false, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if !failing.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "planner statistics not refreshed");
                        }
                    }
                }
            }
        });
    }
}
