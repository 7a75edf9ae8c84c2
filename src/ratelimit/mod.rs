//! Rate limits (DESIGN §4.5, G11): on the primary tier every check is one atomic Redis step on
//! Redis's clock that charges its limits only if all admit the cost, so no window ever admits
//! more than the policy allows and a refusal consumes nothing. While the active tier is SQL,
//! checks run in each instance's memory at its share of the degraded limit, and SQL sees no
//! write per check.

pub mod local;
pub mod outcome;
pub mod policy;
pub mod rules;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use outcome::{
    Checked, LimitMode, LimitReport, Looked, OverrideSaved, PolicyRead, PolicySaved, Report,
};
pub use policy::{Algorithm, Limit, OnUnavailable, Policy};

use crate::audit::Audit;
use crate::config::RateLimitSettings;
use crate::key::{for_operator, Key, TENANT_SEP};
use crate::metrics_names as m;
use crate::runtime::correlation::instance_id;
use crate::store::copy;
pub use crate::store::ratelimit::Expect;
use crate::store::ratelimit::OverrideWrite;
use crate::store::ratelimit::{Applied, Counted, LimitCopy, Step};
use crate::store::StoreError;
use crate::tier::{Blocked, Primary, Tier};
use local::LocalBuckets;

/// A policy as this instance holds it, with its overrides.
struct Loaded {
    policy: Policy,
    revision: i64,
    overrides: HashMap<String, Vec<Limit>>,
}

impl Loaded {
    fn limits_for(&self, subject: &str) -> &[Limit] {
        self.overrides
            .get(subject)
            .map_or(&self.policy.limits, |l| l.as_slice())
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The rate-limit service of one instance.
pub struct RateLimits {
    tier: Arc<Tier>,
    cfg: RateLimitSettings,
    policies: RwLock<HashMap<String, Arc<Loaded>>>,
    local: LocalBuckets,
    /// Live instances sharing the database (at least 1), from the instance lease table.
    live: AtomicI64,
    /// Whether the last decision was taken in `local` mode.
    was_local: AtomicBool,
    /// `local` decisions per policy not flushed to SQL yet: (allowed, limited).
    usage: Mutex<HashMap<String, (i64, i64)>>,
}

/// The rate-limit part of `/v1/status`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LimitsStatus {
    /// Where checks are decided now: `primary`, `local` or `none`.
    pub mode: &'static str,
    /// Live instances dividing each limit in `local` mode.
    pub live_instances: i64,
    /// Share of each limit applied now, per policy held here (`tenant/policy`): the degraded
    /// factor divided by the live instances in `local` mode, the ramp after a fail-back, else 1.
    pub factors: HashMap<String, f64>,
}

impl RateLimits {
    /// The service over `tier`.
    pub fn new(tier: Arc<Tier>, cfg: &RateLimitSettings) -> Arc<Self> {
        Arc::new(Self {
            local: LocalBuckets::new(cfg.local_max_buckets),
            tier,
            cfg: cfg.clone(),
            policies: RwLock::new(HashMap::new()),
            live: AtomicI64::new(1),
            was_local: AtomicBool::new(false),
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// Checks `cost` units for `subject` under `policy` (the in-process API: Rust callers skip
    /// HTTP). The answer is counted in `/metrics` by policy, state and mode.
    pub async fn check(&self, policy: &Key, subject: &Key, cost: i64) -> Checked {
        let started = Instant::now();
        let checked = self.decide(policy, subject, cost).await;
        let mode = match &checked {
            Checked::Allowed(r) | Checked::Limited(r) | Checked::ShadowLimited(r) => r.mode,
            _ => LimitMode::None,
        };
        if mode == LimitMode::Local {
            let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
            let row = usage.entry(policy.as_str().to_owned()).or_default();
            match checked {
                Checked::Allowed(_) => row.0 += 1,
                _ => row.1 += 1,
            }
        }
        let state = crate::outcome::Terminal::state(&checked);
        metrics::counter!(m::RL_DECISIONS, "policy" => for_operator(policy.as_str()),
            "state" => state, "mode" => mode.as_str())
        .increment(1);
        metrics::histogram!(m::RL_CHECK_SECONDS, "mode" => mode.as_str())
            .record(started.elapsed().as_secs_f64());
        checked
    }

    async fn decide(&self, policy: &Key, subject: &Key, cost: i64) -> Checked {
        let loaded = match self.loaded(policy).await {
            Ok(Some(l)) => l,
            Ok(None) => return Checked::UnknownPolicy,
            Err(b) => return Checked::SafeBlock(b),
        };
        let limits = loaded.limits_for(subject.name());
        if let Some(l) = limits.iter().find(|l| cost > l.capacity()) {
            return Checked::CostExceedsCapacity {
                limit: l.name.clone(),
                capacity: l.capacity(),
            };
        }
        let counted = match self.tier.effects_allowed() {
            Ok(()) => {
                self.count(policy, subject, &loaded, limits, Step::Check, cost)
                    .await
            }
            Err(b) => Err(b),
        };
        match counted {
            Ok(r) if r.retry_after_ms == 0 => Checked::Allowed(r),
            Ok(r) if loaded.policy.shadow => Checked::ShadowLimited(r),
            Ok(r) => Checked::Limited(r),
            Err(b) => {
                tracing::warn!(reason = b.reason(), policy = %for_operator(policy.as_str()),
                    "rate limit not counted: no tier");
                match loaded.policy.on_unavailable {
                    OnUnavailable::FailOpen => Checked::AllowedUnchecked(b),
                    OnUnavailable::FailClosed => Checked::SafeBlock(b),
                }
            }
        }
    }

    /// What is left for `subject` under `policy`; nothing is written.
    pub async fn peek(&self, policy: &Key, subject: &Key) -> Result<Looked, Blocked> {
        self.look(policy, subject, Step::Peek, 1).await
    }

    /// Gives `cost` units back to each of `subject`'s limits, never above capacity.
    pub async fn refund(&self, policy: &Key, subject: &Key, cost: i64) -> Result<Looked, Blocked> {
        self.look(policy, subject, Step::Refund, cost).await
    }

    async fn look(
        &self,
        policy: &Key,
        subject: &Key,
        step: Step,
        cost: i64,
    ) -> Result<Looked, Blocked> {
        let Some(loaded) = self.loaded(policy).await? else {
            return Ok(Looked::UnknownPolicy);
        };
        let limits = loaded.limits_for(subject.name());
        let r = self
            .count(policy, subject, &loaded, limits, step, cost)
            .await?;
        Ok(match step {
            Step::Refund => Looked::Refunded(r),
            _ => Looked::Status(r),
        })
    }

    /// Forgets `subject`'s counts under `policy`: its next check starts afresh.
    pub async fn reset(&self, policy: &Key, subject: &Key) -> Result<Looked, Blocked> {
        let Some(loaded) = self.loaded(policy).await? else {
            return Ok(Looked::UnknownPolicy);
        };
        let limits = loaded.limits_for(subject.name());
        if let Some(primary) = self.primary()? {
            let keys = redis_keys(policy, subject, limits);
            if primary.call(|s| s.clear(&keys)).await.is_ok() {
                self.local.clear(&local_key(policy, subject));
                return Ok(Looked::Reset(LimitMode::Primary));
            }
        }
        self.local.clear(&local_key(policy, subject));
        Ok(Looked::Reset(LimitMode::Local))
    }

    /// The primary tier when it is the one to count on; `None` for `local` mode.
    fn primary(&self) -> Result<Option<Primary<'_>>, Blocked> {
        match self.tier.active(false) {
            Ok(active) => Ok(active.primary()),
            // The breaker is open but the switch to SQL not made yet: Redis is known bad.
            Err(Blocked::RedisUnavailable) => Ok(None),
            Err(b) => Err(b),
        }
    }

    async fn count(
        &self,
        policy: &Key,
        subject: &Key,
        loaded: &Loaded,
        limits: &[Limit],
        step: Step,
        cost: i64,
    ) -> Result<Report, Blocked> {
        if let Some(primary) = self.primary()? {
            let (share, fresh_after_us) = self.ramp(loaded.policy.degraded_factor);
            let applied: Vec<Applied> = limits.iter().map(|l| rules::primary(l, share)).collect();
            let keys = redis_keys(policy, subject, limits);
            let counted = primary
                .call(|s| s.count(step, &keys, &applied, cost, fresh_after_us))
                .await;
            match counted {
                Ok(c) => {
                    self.was_local.store(false, Ordering::Relaxed);
                    return Ok(report(LimitMode::Primary, limits, &applied, &c));
                }
                Err(e) => {
                    let kind = match &e {
                        StoreError::Timeout => "timeout",
                        StoreError::Corrupt(_) => "bad_reply",
                        _ => "error",
                    };
                    metrics::counter!(m::RL_SCRIPT_ERRORS, "kind" => kind).increment(1);
                    tracing::warn!(error = %e, "rate-limit step failed on redis; counting locally");
                }
            }
        }
        if !self.was_local.swap(true, Ordering::Relaxed) {
            // Buckets of an earlier spell have drained meanwhile: they would release a burst.
            self.local.clear_all();
            tracing::warn!(
                live_instances = self.live.load(Ordering::Relaxed),
                "rate limits counted in local mode"
            );
        }
        // A local check awaits nothing: without this, a caller checking in a tight loop
        // would keep its worker thread from the tier lease renewal and every other task.
        tokio::task::consume_budget().await;
        let live = self.live.load(Ordering::Relaxed);
        let factor = loaded.policy.degraded_factor;
        let applied: Vec<Applied> = limits
            .iter()
            .map(|l| rules::local(l, factor, live))
            .collect();
        let c = self
            .local
            .count(&local_key(policy, subject), step, &applied, cost, now_us());
        Ok(report(LimitMode::Local, limits, &applied, &c))
    }

    /// The share of each rate applied on Redis now, and the instant (Redis clock, µs) before
    /// which state counts as full: both only while a fail-back ramps up.
    fn ramp(&self, factor: f64) -> (f64, i64) {
        let ramp_ms = self.cfg.ramp_ms as i64;
        match self.tier.fail_back_at() {
            Some(at) if self.tier.now() - at < ramp_ms => (
                rules::ramp_share(factor, self.tier.now() - at, ramp_ms),
                at * 1000,
            ),
            _ => (1.0, 0),
        }
    }

    /// This instance's copy of `policy`. Every saved policy is held in memory and refreshed
    /// in the background every `ratelimit.policy_cache_ms` ([`Self::sync_policies`]), so a
    /// check never waits on SQL for a policy it holds, and the fail mode of every saved policy
    /// holds through an outage of both tiers. A policy not held yet (saved on another instance
    /// since the last refresh) is read from SQL once.
    async fn loaded(&self, policy: &Key) -> Result<Option<Arc<Loaded>>, Blocked> {
        let name = policy.as_str();
        match self.held(name) {
            Some(held) => Ok(Some(held)),
            None => self.reload(name, None).await,
        }
    }

    /// This instance's copy of policy `name`, if it holds one.
    fn held(&self, name: &str) -> Option<Arc<Loaded>> {
        self.policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// One background refresh: reads every policy's revision and reloads the ones that
    /// changed, forgets deleted ones, and publishes how many are held. While SQL cannot
    /// answer, the copies held keep serving.
    pub(crate) async fn sync_policies(&self) {
        let sql = self.tier.durable();
        let revisions = match self.tier.on_durable(sql.rl_revisions()).await {
            Ok(r) => r,
            Err(b) => {
                tracing::debug!(
                    reason = b.reason(),
                    "policies not refreshed; the copies held serve"
                );
                return;
            }
        };
        let saved: std::collections::HashSet<&str> =
            revisions.iter().map(|(n, _)| n.as_str()).collect();
        self.policies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| saved.contains(name.as_str()));
        for (name, revision) in &revisions {
            let held = self.held(name);
            if held.as_ref().is_some_and(|h| h.revision == *revision) {
                continue;
            }
            if let Err(b) = self.reload(name, held.as_deref()).await {
                tracing::debug!(
                    reason = b.reason(),
                    "policy not reloaded; the copy held serves"
                );
                break;
            }
        }
        let held = self
            .policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        metrics::gauge!(m::RL_POLICIES_HELD).set(held as f64);
    }

    async fn reload(
        &self,
        name: &str,
        held: Option<&Loaded>,
    ) -> Result<Option<Arc<Loaded>>, Blocked> {
        let sql = self.tier.durable();
        let revision = self.tier.on_durable(sql.rl_revision(name)).await?;
        let map_guard = || self.policies.write().unwrap_or_else(|p| p.into_inner());
        let Some(revision) = revision else {
            map_guard().remove(name);
            return Ok(None);
        };
        if held.is_some_and(|h| h.revision == revision) {
            return Ok(map_guard().get(name).cloned());
        }
        let Some(row) = self.tier.on_durable(sql.rl_policy(name)).await? else {
            map_guard().remove(name);
            return Ok(None);
        };
        let max = self.cfg.max_overrides as i64;
        let rows = self.tier.on_durable(sql.rl_overrides(name, max)).await?;
        let corrupt = |e: serde_json::Error| Blocked::database(&StoreError::Corrupt(e.to_string()));
        let policy: Policy = serde_json::from_str(&row.body).map_err(corrupt)?;
        let mut overrides = HashMap::with_capacity(rows.len());
        for (subject, body) in rows {
            overrides.insert(subject, serde_json::from_str(&body).map_err(corrupt)?);
        }
        let loaded = Arc::new(Loaded {
            policy,
            revision: row.revision,
            overrides,
        });
        map_guard().insert(name.to_owned(), loaded.clone());
        Ok(Some(loaded))
    }

    /// Saves `policy` as `name` if its version is what `expect` allows; this instance applies
    /// it from its next check, the others from their next background refresh (within
    /// `ratelimit.policy_cache_ms`).
    pub async fn save_policy(
        &self,
        name: &Key,
        policy: &Policy,
        expect: Expect,
        actor: &str,
    ) -> Result<PolicySaved, Blocked> {
        let body = serde_json::to_string(policy).unwrap_or_default();
        let audit = Audit::new(
            self.tier.now(),
            actor,
            "ratelimit.policy_save",
            &for_operator(name.as_str()),
            body.clone(),
        );
        let sql = self.tier.durable();
        let saved = self
            .tier
            .on_durable(sql.rl_save_policy(name.as_str(), &body, expect, &audit))
            .await?;
        self.forget(name);
        Ok(match saved {
            Ok(version) => PolicySaved::Saved(version),
            Err(current) => PolicySaved::VersionMismatch(current),
        })
    }

    /// Saves `limits` for `subject` under policy `name`.
    pub async fn save_override(
        &self,
        name: &Key,
        subject: &Key,
        limits: &[Limit],
        actor: &str,
    ) -> Result<OverrideSaved, Blocked> {
        let body = serde_json::to_string(limits).unwrap_or_default();
        let target = format!("{} {}", for_operator(name.as_str()), subject.name());
        let audit = Audit::new(
            self.tier.now(),
            actor,
            "ratelimit.override_save",
            &target,
            body.clone(),
        );
        let sql = self.tier.durable();
        let max = self.cfg.max_overrides as i64;
        let saved = self
            .tier
            .on_durable(sql.rl_save_override(name.as_str(), subject.name(), &body, max, &audit))
            .await?;
        self.forget(name);
        Ok(match saved {
            OverrideWrite::Saved => OverrideSaved::Saved,
            OverrideWrite::NoPolicy => OverrideSaved::UnknownPolicy,
            OverrideWrite::Full => OverrideSaved::TooMany,
        })
    }

    /// Policy `name` as saved, read from SQL.
    pub async fn policy(&self, name: &Key) -> Result<PolicyRead, Blocked> {
        let sql = self.tier.durable();
        let Some(row) = self.tier.on_durable(sql.rl_policy(name.as_str())).await? else {
            return Ok(PolicyRead::Unknown);
        };
        let policy: Policy = serde_json::from_str(&row.body)
            .map_err(|e| Blocked::database(&StoreError::Corrupt(e.to_string())))?;
        Ok(PolicyRead::Found(Box::new(policy), row.version))
    }

    fn forget(&self, name: &Key) {
        self.policies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name.as_str());
    }

    /// Where checks are decided now, and the share of each limit applied.
    pub fn status(&self) -> LimitsStatus {
        let mode = match self.primary() {
            Ok(Some(_)) => LimitMode::Primary,
            Ok(None) => LimitMode::Local,
            Err(_) => LimitMode::None,
        };
        let live = self.live.load(Ordering::Relaxed);
        let factors = self
            .policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, l)| {
                let factor = l.policy.degraded_factor;
                let share = match mode {
                    LimitMode::Local => factor / live as f64,
                    _ => self.ramp(factor).0,
                };
                (for_operator(name), share)
            })
            .collect();
        LimitsStatus {
            mode: mode.as_str(),
            live_instances: live,
            factors,
        }
    }

    async fn flush(&self, period: Duration) {
        let sql = self.tier.durable();
        let now = self.tier.now();
        let live_after = now - 3 * period.as_millis() as i64;
        match self
            .tier
            .on_durable(sql.heartbeat(instance_id(), now, live_after))
            .await
        {
            Ok(live) => {
                metrics::counter!(m::RL_SQL_WRITES, "kind" => "heartbeat").increment(1);
                if self.live.swap(live, Ordering::Relaxed) != live {
                    tracing::info!(live_instances = live, "live instances changed");
                }
            }
            Err(b) => tracing::debug!(reason = b.reason(), "instance lease not renewed"),
        }
        let pending: Vec<(String, (i64, i64))> = {
            let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
            usage.drain().collect()
        };
        for (policy, (allowed, limited)) in pending {
            let flushed = self
                .tier
                .on_durable(sql.rl_flush_usage(&policy, instance_id(), allowed, limited, now))
                .await;
            match flushed {
                Ok(()) => metrics::counter!(m::RL_SQL_WRITES, "kind" => "usage").increment(1),
                Err(b) => tracing::debug!(reason = b.reason(), "local usage not flushed"),
            }
        }
        for (name, share) in self.status().factors {
            metrics::gauge!(m::RL_FACTOR, "policy" => name).set(share);
        }
    }
}

/// The Redis keys of `subject`'s limits: one slot (the hash tag is policy and subject), and
/// the algorithm in the name, so a limit that changes algorithm starts a new key.
fn redis_keys(policy: &Key, subject: &Key, limits: &[Limit]) -> Vec<String> {
    let tag = format!("rl{TENANT_SEP}{}", local_key(policy, subject));
    limits
        .iter()
        .map(|l| copy::copy_key(&tag, &format!("{}:{}", l.name, l.algorithm.code())))
        .collect()
}

fn local_key(policy: &Key, subject: &Key) -> String {
    format!("{}{TENANT_SEP}{}", policy.as_str(), subject.name())
}

/// The answer's view of a count.
fn report(mode: LimitMode, limits: &[Limit], applied: &[Applied], c: &Counted) -> Report {
    let limits = limits
        .iter()
        .zip(applied)
        .zip(&c.limits)
        .map(|((l, a), left)| LimitReport {
            name: l.name.clone(),
            quota: (a.rate.floor() as i64).max(1),
            window_ms: l.period_ms,
            capacity: a.capacity,
            remaining: left.remaining,
            reset_ms: (left.reset_us + 999) / 1000,
        })
        .collect();
    Report {
        mode,
        limits,
        retry_after_ms: if c.admitted {
            0
        } else {
            ((c.retry_us + 999) / 1000).max(1)
        },
    }
}

impl crate::runtime::tasks::Scheduled for Arc<RateLimits> {
    /// `ratelimit_policies`: every saved policy held from the start (before the first check
    /// needs it), then refreshed every `ratelimit.policy_cache_ms`; `ratelimit_flush`: this
    /// instance's heartbeat and usage, every `ratelimit.flush_every_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        use tracing::Instrument;
        let refresh = Duration::from_millis(self.cfg.policy_cache_ms);
        let limits = self.clone();
        s.run("ratelimit_policies", move |stop| async move {
            limits
                .sync_policies()
                .instrument(crate::runtime::correlation::task_span("ratelimit_policies"))
                .await;
            crate::runtime::periodic::every("ratelimit_policies", refresh, stop, || {
                limits.sync_policies()
            })
            .await
        });
        let period = Duration::from_millis(self.cfg.flush_every_ms);
        let limits = self.clone();
        s.every("ratelimit_flush", period, move || {
            let limits = limits.clone();
            async move { limits.flush(period).await }
        });
    }
}
