//! Sessions (DESIGN §4.6, G12): logins are business facts, so every change is durable in SQL
//! before its answer, and SQL decides every read. A session never comes back once revoked,
//! rotated, evicted or expired: no write creates one (no upsert), an ended session keeps its
//! row until long after its absolute expiry, and "log out everywhere" moves a durable
//! per-principal generation that ends every older session even if its row were missed.
//! Session ids are 256 random bits; only their SHA-256 is stored or logged.

mod copy;
pub mod outcome;
pub mod rules;

use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use outcome::{
    Gone, SessionCreated, SessionRead, SessionRevoked, SessionRotated, SessionSaved, SessionTouch,
    EVENTS, LISTED,
};

use crate::config::SessionSettings;
use crate::metrics_names as m;
use crate::runtime::correlation;
use crate::runtime::group_commit::GroupCommit;
use crate::store::copy::Seeder;
use crate::store::session::{
    state, ChangeJob, Changed, CreateJob, CreatedRow, NewSession, Standing,
};
pub use crate::store::session::{OnLimit, SessionEvent, SessionRow};
use crate::store::StoreError;
use crate::tier::{Blocked, Mode, Tier};

/// Prefix of every session id.
pub const ID_PREFIX: &str = "wss_";
/// Longest idle or absolute TTL, ms (one year).
pub const MAX_TTL_MS: i64 = 366 * 24 * 3_600_000;
/// Most sessions a principal listing answers.
pub const MAX_LISTED: i64 = 1_000;

/// A new session id (`wss_` and 64 hex digits: 256 random bits) and its hash.
pub fn new_id() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let id = format!("{ID_PREFIX}{}", hex::encode(bytes));
    let hash = id_hash(&id);
    Ok((id, hash))
}

/// The SHA-256 of a session id, hex: all that is stored or logged of it.
pub fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Whether `id` has the shape of a session id (anything else cannot name one).
pub fn well_formed(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Its tenant.
    pub tenant: String,
    /// Its principal (`""` for none).
    pub principal: String,
    /// Its data, a JSON object as text.
    pub data: String,
    /// Idle TTL, ms.
    pub idle_ttl_ms: i64,
    /// Absolute TTL, ms (at least the idle one).
    pub absolute_ttl_ms: i64,
    /// At most this many live sessions for the principal, and what to do beyond.
    pub limit: Option<(i64, OnLimit)>,
}

/// The session service.
pub struct Sessions {
    tier: Arc<Tier>,
    cfg: SessionSettings,
    /// Creates, made durable many to a transaction.
    creates: GroupCommit<CreateJob, CreatedRow, StoreError>,
    /// Changes of data (`PUT`, `PATCH`), made durable many to a transaction.
    changes: GroupCommit<ChangeJob, Changed, StoreError>,
}

fn gone(row: &SessionRow, now: i64) -> Option<Gone> {
    match rules::standing(row, now) {
        Standing::Active => None,
        Standing::Expired => Some(Gone::Expired),
        Standing::Ended(s) if s == state::ROTATED => Some(Gone::Rotated),
        Standing::Ended(s) => Some(Gone::Revoked(s)),
    }
}

impl Sessions {
    /// The service over `tier`, with its group-commit writer of creates.
    pub fn new(tier: Arc<Tier>, cfg: &SessionSettings) -> Arc<Self> {
        let sql = tier.durable().clone();
        let creates = GroupCommit::start("sessions", cfg.writer.into(), move |jobs| {
            let sql = sql.clone();
            async move { sql.session_create_batch(jobs, rules::RULES).await }
        });
        let sql = tier.durable().clone();
        let changes = GroupCommit::start("session_changes", cfg.writer.into(), move |jobs| {
            let sql = sql.clone();
            async move { sql.session_change_batch(jobs, rules::RULES).await }
        });
        Arc::new(Self {
            tier,
            cfg: cfg.clone(),
            creates,
            changes,
        })
    }

    /// The mode of an answer SQL gives by design (a list, the events, an id that cannot
    /// exist); refused when no tier may be trusted (never assume a session is valid).
    fn mode(&self) -> Result<Mode, Blocked> {
        self.tier.active_durable()?;
        Ok(Mode::Durable)
    }

    /// Largest data, bytes of JSON.
    pub fn max_data_bytes(&self) -> usize {
        self.cfg.max_data_bytes
    }

    /// Creates a session, counting the principal's live sessions atomically when limited.
    pub async fn create(&self, req: &CreateRequest) -> Result<(SessionCreated, Mode), Blocked> {
        let w = self.writing()?;
        let (id, hash) = new_id().map_err(|e| {
            tracing::error!(error = %e, "no randomness for a session id");
            Blocked::DatabaseUnavailable
        })?;
        let new = NewSession {
            id_hash: hash,
            tenant: req.tenant.clone(),
            principal: req.principal.clone(),
            data: req.data.clone(),
            idle_ttl_ms: req.idle_ttl_ms,
            absolute_ttl_ms: req.absolute_ttl_ms,
        };
        let job = CreateJob {
            new,
            limit: req.limit,
            now: self.tier.now(),
            correlation_id: correlation::current(),
        };
        let created = self.tier.on_durable(self.creates.submit(job)).await?;
        Ok((
            match created {
                CreatedRow::Created { row, evicted } => {
                    self.end_copies(&w, &req.tenant, &evicted, state::EVICTED)
                        .await;
                    if let Some(p) = w.primary {
                        self.seed(p, w.epoch, &row, Seeder::Reader).await;
                    }
                    metrics::counter!(m::SESSION_EVENTS, "kind" => "created").increment(1);
                    if !evicted.is_empty() {
                        metrics::counter!(m::SESSION_EVENTS, "kind" => "evicted")
                            .increment(evicted.len() as u64);
                    }
                    tracing::info!(session = %row.id_hash, evicted = evicted.len(), "session created");
                    SessionCreated::Created(id, row, evicted.len())
                }
                CreatedRow::LimitReached => SessionCreated::LimitReached,
            },
            w.mode,
        ))
    }

    /// Reads session `id` of `tenant`; with `touch`, slides its idle expiry too.
    pub async fn get(
        &self,
        tenant: &str,
        id: &str,
        touch: bool,
    ) -> Result<(SessionRead, Mode), Blocked> {
        let (touched, mode) = if touch {
            self.touch(tenant, id).await?
        } else {
            self.look(tenant, id).await?
        };
        Ok((
            match touched {
                SessionTouch::Touched(row) => SessionRead::Active(row),
                SessionTouch::Gone(g) => SessionRead::Gone(g),
                SessionTouch::NotFound => SessionRead::NotFound,
            },
            mode,
        ))
    }

    /// Slides the idle expiry of session `id` (never past its absolute expiry). SQL is
    /// written at most once per `idle_ttl_ms / 10`: between writes, the expiry answered is
    /// the one stored, so it slides in steps of a tenth of the idle TTL.
    pub async fn touch(&self, tenant: &str, id: &str) -> Result<(SessionTouch, Mode), Blocked> {
        let (looked, mode) = self.look(tenant, id).await?;
        let SessionTouch::Touched(row) = looked else {
            return Ok((looked, mode));
        };
        let now = self.tier.now();
        if now - row.touch_written_at < row.idle_ttl_ms / 10 {
            metrics::counter!(m::SESSION_TOUCH_WRITES, "written" => "false").increment(1);
            return Ok((SessionTouch::Touched(row), mode));
        }
        let until = (now + row.idle_ttl_ms).min(row.absolute_expires_at);
        let hash = row.id_hash.clone();
        let w = self.hold(tenant, &hash).await?;
        let sql = self.tier.durable();
        let written = self
            .tier
            .on_durable(sql.session_touch(tenant, &hash, until, now))
            .await;
        // What SQL holds now (the touched row, or why it is not live), for the answer and
        // the copy.
        let current = match written {
            Ok(true) => Ok(Some(SessionRow {
                idle_expires_at: until,
                touch_written_at: now,
                ..row
            })),
            Ok(false) => self.tier.on_durable(sql.session(tenant, &hash)).await,
            Err(b) => Err(b),
        };
        let current = current?;
        self.settle(&w, tenant, &hash, current.as_ref()).await;
        if matches!(written, Ok(true)) {
            metrics::counter!(m::SESSION_TOUCH_WRITES, "written" => "true").increment(1);
        }
        Ok((
            current.map_or(SessionTouch::NotFound, |r| self.standing(r)),
            w.mode,
        ))
    }

    /// Replaces the data of session `id` if it is live at `expected_version`.
    pub async fn put(
        &self,
        tenant: &str,
        id: &str,
        data: String,
        expected_version: i64,
    ) -> Result<(SessionSaved, Mode), Blocked> {
        let max = self.cfg.max_data_bytes;
        self.change(tenant, id, Some(expected_version), move |_| {
            (data.len() <= max).then(|| data.clone())
        })
        .await
    }

    /// Merges `patch` (RFC 7396) into the data of session `id`, under its row lock, so
    /// concurrent patches of different attributes all survive; with `expected_version`, only
    /// at that version.
    pub async fn patch(
        &self,
        tenant: &str,
        id: &str,
        patch: serde_json::Value,
        expected_version: Option<i64>,
    ) -> Result<(SessionSaved, Mode), Blocked> {
        let max = self.cfg.max_data_bytes;
        self.change(tenant, id, expected_version, move |current| {
            let mut doc: serde_json::Value = serde_json::from_str(current).ok()?;
            json_patch::merge(&mut doc, &patch);
            if !doc.is_object() {
                doc = serde_json::json!({});
            }
            let text = doc.to_string();
            (text.len() <= max).then_some(text)
        })
        .await
    }

    async fn change(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        new_data: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<(SessionSaved, Mode), Blocked> {
        if !well_formed(id) {
            return Ok((SessionSaved::NotFound, self.mode()?));
        }
        let hash = id_hash(id);
        let w = self.hold(tenant, &hash).await?;
        let now = self.tier.now();
        let change = move |row: &SessionRow| {
            if expected_version.is_some_and(|v| v != row.version) {
                return None;
            }
            new_data(&row.data).map(|d| (d, true))
        };
        let job = ChangeJob {
            tenant: tenant.to_owned(),
            id_hash: hash.clone(),
            now,
            change: Box::new(change),
        };
        let changed = self.tier.on_durable(self.changes.submit(job)).await?;
        // A live row the change refused: at another version, or the new data too large.
        let refusal = |row: &SessionRow| match expected_version {
            Some(v) if v != row.version => SessionSaved::VersionConflict {
                current: row.version,
            },
            _ => SessionSaved::TooLarge,
        };
        self.settle(&w, tenant, &hash, changed.row()).await;
        Ok((
            match changed {
                Changed::Done(row) => SessionSaved::Saved(row),
                Changed::Refused(None) => SessionSaved::NotFound,
                Changed::Refused(Some(row)) => match gone(&row, now) {
                    Some(g) => SessionSaved::Gone(g),
                    None => {
                        let r = refusal(&row);
                        if matches!(r, SessionSaved::VersionConflict { .. }) {
                            metrics::counter!(m::SESSION_CONFLICTS).increment(1);
                        }
                        r
                    }
                },
            },
            w.mode,
        ))
    }

    /// Gives session `id` a new id with the same data; the old id answers 410 `rotated`.
    pub async fn rotate(&self, tenant: &str, id: &str) -> Result<(SessionRotated, Mode), Blocked> {
        if !well_formed(id) {
            return Ok((SessionRotated::NotFound, self.mode()?));
        }
        let (new_id, new_hash) = new_id().map_err(|e| {
            tracing::error!(error = %e, "no randomness for a session id");
            Blocked::DatabaseUnavailable
        })?;
        let hash = id_hash(id);
        let w = self.hold(tenant, &hash).await?;
        let now = self.tier.now();
        let cid = correlation::current();
        let sql = self.tier.durable();
        let rotated = self
            .tier
            .on_durable(sql.session_rotate(tenant, &hash, &new_hash, now, &cid, rules::RULES))
            .await?;
        let answer = match rotated {
            Changed::Done(row) => {
                // The old id ends at the successor's version.
                let old = SessionRow::ended(tenant, &hash, state::ROTATED, row.version);
                self.settle(&w, tenant, &hash, Some(&old)).await;
                if let Some(p) = w.primary {
                    self.seed(p, w.epoch, &row, Seeder::Reader).await;
                }
                metrics::counter!(m::SESSION_EVENTS, "kind" => "rotated").increment(1);
                SessionRotated::Rotated(new_id, Box::new(row))
            }
            Changed::Refused(row) => {
                self.settle(&w, tenant, &hash, row.as_ref()).await;
                match row.and_then(|r| gone(&r, now)) {
                    Some(g) => SessionRotated::Gone(g),
                    None => SessionRotated::NotFound,
                }
            }
        };
        Ok((answer, w.mode))
    }

    /// Revokes session `id` (idempotent).
    pub async fn revoke(&self, tenant: &str, id: &str) -> Result<(SessionRevoked, Mode), Blocked> {
        if !well_formed(id) {
            return Ok((SessionRevoked::NotFound, self.mode()?));
        }
        let hash = id_hash(id);
        let w = self.hold(tenant, &hash).await?;
        let now = self.tier.now();
        let cid = correlation::current();
        let sql = self.tier.durable();
        let revoked = self
            .tier
            .on_durable(sql.session_revoke(tenant, &hash, now, &cid))
            .await?;
        let row = revoked.as_ref().map(|(_, r)| r);
        self.settle(&w, tenant, &hash, row).await;
        Ok((
            match revoked {
                None => SessionRevoked::NotFound,
                Some((now_ended, _)) => {
                    if now_ended {
                        metrics::counter!(m::SESSION_EVENTS, "kind" => "revoked").increment(1);
                    }
                    SessionRevoked::Revoked(usize::from(now_ended))
                }
            },
            w.mode,
        ))
    }

    /// The live sessions of `principal`, oldest first (at most [`MAX_LISTED`]).
    pub async fn list(
        &self,
        tenant: &str,
        principal: &str,
    ) -> Result<(Vec<SessionRow>, Mode), Blocked> {
        let mode = self.mode()?;
        let sql = self.tier.durable();
        let now = self.tier.now();
        let rows = self
            .tier
            .on_durable(sql.sessions_of(tenant, principal, now, MAX_LISTED))
            .await?;
        Ok((rows, mode))
    }

    /// Logs `principal` out everywhere.
    pub async fn revoke_all(
        &self,
        tenant: &str,
        principal: &str,
    ) -> Result<(SessionRevoked, Mode), Blocked> {
        let w = self.writing()?;
        let now = self.tier.now();
        let cid = correlation::current();
        let sql = self.tier.durable();
        let ended = self
            .tier
            .on_durable(sql.session_revoke_all(tenant, principal, now, &cid))
            .await?;
        self.end_copies(&w, tenant, &ended, state::REVOKED).await;
        metrics::counter!(m::SESSION_EVENTS, "kind" => "revoked").increment(ended.len() as u64);
        tracing::info!(sessions = ended.len(), "principal logged out everywhere");
        Ok((SessionRevoked::Revoked(ended.len()), w.mode))
    }

    /// Events of `tenant` after `after` (at most `limit`), in commit order.
    pub async fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SessionEvent>, Blocked> {
        self.mode()?;
        let sql = self.tier.durable();
        self.tier
            .on_durable(sql.session_events(tenant, after, limit))
            .await
    }

    /// Publishes the live sessions per tenant (`warden_sessions_live`). A tenant whose last
    /// session ended drops to 0.
    pub async fn publish_live(&self, seen: &mut std::collections::HashSet<String>) {
        let sql = self.tier.durable();
        match self
            .tier
            .on_durable(sql.sessions_live(self.tier.now()))
            .await
        {
            Ok(counts) => {
                let now_seen: std::collections::HashSet<String> =
                    counts.iter().map(|(t, _)| t.clone()).collect();
                for gone in seen.difference(&now_seen) {
                    metrics::gauge!(m::SESSIONS_LIVE, "tenant" => gone.clone()).set(0.0);
                }
                for (tenant, n) in counts {
                    metrics::gauge!(m::SESSIONS_LIVE, "tenant" => tenant).set(n as f64);
                }
                *seen = now_seen;
            }
            Err(b) => tracing::debug!(reason = b.reason(), "live sessions not counted"),
        }
    }

    /// One sweep: marks sessions past an expiry as expired (with their events) and forgets
    /// rows whose absolute expiry passed `sessions.retention_ms` ago.
    pub async fn sweep(&self) -> Result<u64, Blocked> {
        let now = self.tier.now();
        let forget_before = now - self.cfg.retention_ms as i64;
        let cid = correlation::current();
        let sql = self.tier.durable();
        let batch = self.cfg.sweep_batch as i64;
        let n = self
            .tier
            .on_durable(sql.session_sweep(now, batch, forget_before, &cid))
            .await?;
        if n > 0 {
            metrics::counter!(m::SESSION_EVENTS, "kind" => "expired").increment(n);
        }
        Ok(n)
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Sessions> {
    /// `session_sweeper`: expired sessions marked every `sessions.sweep_every_ms`, and the
    /// live ones counted every `sessions.gauge_every_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let sessions = self.clone();
        let gauge_every = crate::config::ms(self.cfg.gauge_every_ms);
        let seen = Arc::new(tokio::sync::Mutex::new(std::collections::HashSet::new()));
        let next_count = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        s.every(
            "session_sweeper",
            crate::config::ms(self.cfg.sweep_every_ms),
            move || {
                let (sessions, seen, next_count) =
                    (sessions.clone(), seen.clone(), next_count.clone());
                async move {
                    match sessions.sweep().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(sessions = n, "expired sessions marked"),
                        Err(b) => tracing::warn!(reason = b.reason(), "session sweeper failed"),
                    }
                    let due = {
                        let mut next = next_count.lock().unwrap_or_else(|p| p.into_inner());
                        let due = std::time::Instant::now() >= *next;
                        if due {
                            *next = std::time::Instant::now() + gauge_every;
                        }
                        due
                    };
                    if due {
                        sessions.publish_live(&mut *seen.lock().await).await;
                    }
                }
            },
        );
    }
}
