//! Idempotency keys with exactly-once results (G4): at most one completion is recorded per key,
//! and every later `begin` gets it back until it expires. Every claim and every completion is a
//! conditional SQL write, group-committed, made before the answer — so SQL arbitrates between
//! tiers and instances, and Redis is only the hot copy that answers repeats in one round trip.

mod copies;
mod outcome;
pub mod rules;
mod run;

pub use run::{Claim, Once, Ran, RunError, RunOptions};

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::config::{ms, IdempotencySettings};
use crate::key::Key;
use crate::metrics_names as m;
use crate::runtime::correlation::{self, Correlation};
use crate::runtime::group_commit::GroupCommit;
use crate::runtime::waiters::Waiters;
use crate::store::idem::{IdemCopy, IdemRecord, IdemState, IdemWrite, IdemWritten};
use crate::store::StoreError;
use crate::tier::{Blocked, Mode, Primary, Tier};
use crate::token::token_base;
use copies::KnownCopies;

/// Longest claim lease, ms.
pub const MAX_LEASE_MS: i64 = 3_600_000;
/// Longest record lifetime, ms (30 days).
pub const MAX_TTL_MS: i64 = 30 * 86_400_000;
/// Record lifetime when none is given, ms (24 h).
pub const DEFAULT_TTL_MS: i64 = 86_400_000;
/// Claim lease when none is given, ms.
pub const DEFAULT_LEASE_MS: i64 = 30_000;
/// Longest `wait_ms` on begin.
pub const MAX_WAIT_MS: i64 = 60_000;
/// Longest fingerprint, bytes.
pub const MAX_FINGERPRINT: usize = 512;

/// A validated `begin`.
#[derive(Debug, Clone)]
pub struct BeginRequest {
    /// The idempotency key.
    pub key: Key,
    /// Request fingerprint, `""` for none.
    pub fingerprint: String,
    /// Claim lease, 1..=[`MAX_LEASE_MS`].
    pub lease_ms: i64,
    /// Record lifetime, `lease_ms..=`[`MAX_TTL_MS`].
    pub ttl_ms: i64,
    /// How long to wait for a claim in progress to finish, 0..=[`MAX_WAIT_MS`].
    pub wait_ms: i64,
}

/// The answer to a `begin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The caller holds the claim: run the effect, then complete or fail with `token`.
    Started {
        /// Claim token (a fencing token: larger for every later claim of the key).
        token: i64,
        /// Lease end, epoch ms.
        lease_until: i64,
        /// Record expiry, epoch ms.
        expires_at: i64,
    },
    /// Already done: the saved response, byte for byte.
    Completed {
        /// Raw JSON response.
        response: String,
        /// The correlation of the request that claimed the key (carry it on).
        correlation: Correlation,
    },
    /// Someone else holds a live claim.
    InProgress {
        /// When its lease runs out at the latest, ms.
        retry_after_ms: i64,
    },
    /// The key lives with another fingerprint.
    FingerprintMismatch,
}

/// The answer to `complete`, `fail` and `extend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// `complete`: the recorded response (the first one, on a retry).
    Completed {
        /// Raw JSON response.
        response: String,
    },
    /// `fail`: the claim is given up.
    Released,
    /// `extend`: the lease now ends at `lease_until`.
    Extended {
        /// Lease end, epoch ms.
        lease_until: i64,
    },
    /// The token is not the key's claim (a later claim took over, or it already finished).
    Conflict,
}

/// The idempotency service.
pub struct Idempotency {
    tier: Arc<Tier>,
    cfg: IdempotencySettings,
    writer: GroupCommit<IdemWrite, IdemWritten, StoreError>,
    waiters: Waiters,
    /// Keys seen with a hot copy: only their begins read Redis before SQL.
    copies: Arc<KnownCopies>,
}

impl Idempotency {
    /// Starts the service (and its group-commit writer) over `tier`.
    pub fn start(tier: Arc<Tier>, cfg: &IdempotencySettings) -> Arc<Self> {
        let sql = tier.durable().clone();
        let writer = GroupCommit::start("idempotency", cfg.writer.into(), move |w| {
            let sql = sql.clone();
            async move { sql.apply_idem(w).await }
        });
        Arc::new(Self {
            tier,
            cfg: cfg.clone(),
            writer,
            waiters: Waiters::default(),
            copies: Arc::default(),
        })
    }

    async fn write(&self, w: IdemWrite) -> Result<IdemWritten, Blocked> {
        self.tier.on_durable(self.writer.submit(w)).await
    }

    /// Begins `req.key`, waiting up to `req.wait_ms` for a claim in progress to finish.
    pub async fn begin(&self, req: &BeginRequest) -> Result<(Begun, Mode), Blocked> {
        if req.wait_ms <= 0 {
            // The common case joins no wait queue (no shared map lock on the hot path).
            return self.try_begin(req).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms as u64);
        let k = req.key.as_str();
        let slot = self.waiters.join(k);
        let answer = loop {
            // Registered before the attempt, so a completion between the two still wakes us.
            let woken = slot.released.notified();
            let answer = self.try_begin(req).await;
            let Ok((Begun::InProgress { retry_after_ms }, _)) = &answer else {
                break answer;
            };
            let poll = Duration::from_millis((*retry_after_ms).max(1) as u64)
                .min(ms(self.cfg.wait_poll_ms));
            let wake_at = (tokio::time::Instant::now() + poll).min(deadline);
            if tokio::time::Instant::now() >= deadline {
                break answer;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = woken => {}
            }
        };
        self.waiters.leave(k, slot);
        answer
    }

    async fn try_begin(&self, req: &BeginRequest) -> Result<(Begun, Mode), Blocked> {
        if let Err(safe_mode) = self.tier.effects_allowed() {
            return self.begin_in_safe_mode(req, safe_mode).await;
        }
        let active = self.tier.active_durable()?;
        let now = self.tier.now();
        let hot = active.primary();
        // The copy pays only for replays: a completed key (or one that lives with another
        // fingerprint) answers from it in one read. Anything else is SQL's to decide, so a
        // key this instance has not seen with a copy (a new one, nearly always) skips the
        // read; its first replay here is answered by SQL and seeds the copy.
        if let Some(hot) = hot
            .as_ref()
            .filter(|_| self.copies.contains(req.key.as_str()))
        {
            match hot.call(|r| r.idem_peek(&req.key)).await {
                Ok(Some(rec)) if rec.state == IdemState::Completed => {
                    if let rules::OnBegin::Answer(b) =
                        rules::on_begin(Some(&rec), &req.fingerprint, now)
                    {
                        return Ok((b, Mode::Primary));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "redis failed on idempotency begin; answering from sql");
                }
            }
        }
        self.claim(hot.is_some(), req, active.epoch, active.mode(), now)
            .await
    }

    /// In safe mode (G10) a completed key still replays and a claim in progress still answers
    /// as such, read from the durable record; a key that would be claimed is refused.
    async fn begin_in_safe_mode(
        &self,
        req: &BeginRequest,
        safe_mode: Blocked,
    ) -> Result<(Begun, Mode), Blocked> {
        self.tier.active_durable()?;
        let sql = self.tier.durable();
        let rec = self
            .tier
            .on_durable(sql.idem_record(req.key.as_str()))
            .await?;
        match rules::on_begin(rec.as_ref(), &req.fingerprint, self.tier.now()) {
            rules::OnBegin::Answer(begun) => Ok((begun, Mode::Durable)),
            rules::OnBegin::Claim => Err(safe_mode),
        }
    }

    /// Claims the key in SQL, which draws the token (above every earlier one of the key, and
    /// above the epoch's base) or refuses with the record that stands. A completed record
    /// found there is copied to the hot tier (when `hot`), so its next replays answer from it.
    async fn claim(
        &self,
        hot: bool,
        req: &BeginRequest,
        epoch: i64,
        mode: Mode,
        now: i64,
    ) -> Result<(Begun, Mode), Blocked> {
        let write = IdemWrite::Claim {
            key: req.key.as_str().to_owned(),
            token: None,
            base: token_base(epoch),
            fingerprint: req.fingerprint.clone(),
            lease_until: now + req.lease_ms,
            expires_at: now + req.ttl_ms,
            now,
            correlation: correlation::here(),
        };
        let begun = match self.write(write).await? {
            IdemWritten::Applied(rec) => Begun::Started {
                token: rec.token,
                lease_until: rec.lease_until,
                expires_at: rec.expires_at,
            },
            IdemWritten::Refused(rec) => {
                if let Some(done) = rec.as_ref().filter(|_| hot) {
                    if done.state == IdemState::Completed && done.live(now) {
                        self.seed_copy(done.clone(), now);
                    }
                }
                rules::refused(rec.as_ref(), &req.fingerprint, now)
            }
        };
        Ok((begun, mode))
    }

    /// Copies the completed `rec` to the hot tier off the answer path: the answer is SQL's and
    /// waits for no Redis write, and the key's later replays here read the copy. A completed
    /// record never changes until it expires, so a copy landing late is still true.
    fn seed_copy(&self, rec: IdemRecord, now: i64) {
        metrics::counter!(m::IDEM_RESEEDED, "op" => "begin").increment(1);
        let (tier, copies) = (self.tier.clone(), self.copies.clone());
        let seed = async move {
            let Some(hot) = tier.active_durable().ok().and_then(|a| a.primary()) else {
                return;
            };
            heal(hot, &rec, now).await;
            copies.insert(&rec.key);
        };
        tokio::spawn(seed.in_current_span());
    }

    /// Records `response` (raw JSON) as the result of the claim `token`.
    pub async fn complete(
        &self,
        key: &Key,
        token: i64,
        response: String,
    ) -> Result<(Finished, Mode), Blocked> {
        let write = |now| IdemWrite::Complete {
            key: key.as_str().to_owned(),
            token,
            response,
            now,
        };
        self.finish(key, token, IdemState::Completed, write).await
    }

    /// Gives up the claim `token`: a later begin may run again.
    pub async fn fail(&self, key: &Key, token: i64) -> Result<(Finished, Mode), Blocked> {
        let write = |now| IdemWrite::Release {
            key: key.as_str().to_owned(),
            token,
            now,
        };
        self.finish(key, token, IdemState::Released, write).await
    }

    /// Moves the lease of the claim `token` to `lease_ms` from now (a heartbeat for work that
    /// outlasts one lease).
    pub async fn extend(
        &self,
        key: &Key,
        token: i64,
        lease_ms: i64,
    ) -> Result<(Finished, Mode), Blocked> {
        let write = |now| IdemWrite::Extend {
            key: key.as_str().to_owned(),
            token,
            lease_until: now + lease_ms,
            now,
        };
        self.finish(key, token, IdemState::InProgress, write).await
    }

    /// Applies a write to the claim `token` that leaves it in `target`; a refused write whose
    /// record already is `target` with this token answers as applied (a safe retry).
    async fn finish(
        &self,
        key: &Key,
        token: i64,
        target: IdemState,
        write: impl FnOnce(i64) -> IdemWrite,
    ) -> Result<(Finished, Mode), Blocked> {
        let active = self.tier.active_durable()?;
        let now = self.tier.now();
        let (rec, applied) = match self.write(write(now)).await? {
            IdemWritten::Applied(rec) => (Some(rec), true),
            IdemWritten::Refused(rec) => {
                let retry = rules::already_applied(rec.as_ref(), token, target);
                (rec, retry)
            }
        };
        let mode = active.mode();
        if applied && target != IdemState::InProgress {
            self.waiters.wake_all(key.as_str());
        }
        let finished = match rec {
            Some(rec) if applied => match target {
                IdemState::Completed => Finished::Completed {
                    response: rec.response.unwrap_or_default(),
                },
                IdemState::Released => Finished::Released,
                IdemState::InProgress => Finished::Extended {
                    lease_until: rec.lease_until,
                },
            },
            _ => Finished::Conflict,
        };
        Ok((finished, mode))
    }

    /// Deletes expired records from SQL until none is left (Redis copies expire by their own
    /// TTL, set from the same expiry). Returns how many were deleted.
    pub async fn reap(&self) -> Result<u64, StoreError> {
        let sql = self.tier.durable();
        let mut total = 0;
        loop {
            let batch = self.cfg.reap_batch;
            let n = sql.reap_idem(self.tier.now(), batch).await?;
            metrics::counter!(m::IDEM_REAPED, "tier" => "sql").increment(n);
            total += n;
            if n < batch as u64 {
                return Ok(total);
            }
        }
    }
}

/// Copies the durable `rec` to the hot tier (best effort: SQL stays authoritative).
async fn heal(hot: Primary<'_>, rec: &IdemRecord, now: i64) {
    if let Err(e) = hot.call(|r| r.idem_seed(rec, None, now)).await {
        tracing::warn!(error = %e, key = %rec.key, "hot copy not updated; sql stays authoritative");
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Idempotency> {
    /// `idempotency_reaper`: expired records, every `idempotency.reap_interval_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let idem = self.clone();
        let period = crate::config::ms(self.cfg.reap_interval_ms.max(10));
        s.every("idempotency_reaper", period, move || {
            let idem = idem.clone();
            async move {
                match idem.reap().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "expired idempotency records reaped"),
                    Err(e) => tracing::warn!(error = %e, "idempotency reaper failed"),
                }
            }
        });
    }
}
