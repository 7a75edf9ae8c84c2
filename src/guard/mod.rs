//! The operational guard (G10): incidents, their escalation, signed webhook notifications from
//! a SQL outbox, safe mode shared by every instance, and the audit chain. Every decision is one
//! SQL transaction that re-reads and locks the rows it decides on, writes its audit entries and
//! outbox rows with the change, and applies the pure rules of [`rules`]; so instances sharing a
//! database never notify twice, never skip a round, and agree on the guard's state within one
//! tier lease.

mod deliver;
mod escalate;
pub mod events;
mod evidence;
mod incident;
mod keep;
pub mod monitor;
mod moves;
pub mod outcome;
pub mod rules;
pub mod sign;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::audit::Verifier;
use crate::config::{Config, ConfigError, GuardSettings, NotifySettings};
use crate::runtime::correlation::task_span;
use crate::store::StoreError;
use crate::tier::{Blocked, Tier};

pub use crate::store::guard::Incident;
pub use events::Role;
pub use evidence::Evidence;
pub use incident::{IncidentInput, Trigger, SEVERITIES};
pub use monitor::Monitor;
pub use outcome::{
    AuditPage, ByIdEvent, Found, GuardMove, GuardView, IncidentEvent, Noted, Recorded, Verified,
};
use rules::Timers;
use sign::Signer;

/// The actor of what Warden does on its own.
pub const WARDEN: &str = "warden";

/// A role's webhook endpoint.
#[derive(Debug, Clone)]
struct Endpoint {
    role: Role,
    url: String,
    signer: Signer,
}

/// The guard service shared by every request.
pub struct Guard {
    tier: Arc<Tier>,
    cfg: GuardSettings,
    notify: NotifySettings,
    timers: Timers,
    endpoints: Vec<Endpoint>,
    client: reqwest::Client,
    monitor: Arc<Monitor>,
    outage: watch::Outage,
    kept: keep::Kept,
}

impl Guard {
    /// The guard over `tier`, with the endpoints and timers of `config`.
    pub fn new(tier: Arc<Tier>, config: &Config) -> Result<Arc<Self>, ConfigError> {
        let n = &config.notify;
        let mut endpoints = Vec::new();
        for (role, url, secret) in [
            (Role::Owner, &n.owner_url, &n.owner_secret),
            (Role::Superadmin, &n.superadmin_url, &n.superadmin_secret),
        ] {
            if url.is_empty() {
                continue;
            }
            let signer = Signer::parse(secret).map_err(|e| {
                ConfigError::Invalid(format!("notify.{}_secret: {e}", role.as_str()))
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "notify.{}_url must start with http:// or https://",
                    role.as_str()
                )));
            }
            endpoints.push(Endpoint {
                role,
                url: url.clone(),
                signer,
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(n.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Invalid(format!("webhook client: {e}")))?;
        Ok(Arc::new(Self {
            monitor: Arc::new(Monitor::new(&config.guard)),
            outage: watch::Outage::default(),
            kept: keep::Kept::default(),
            timers: Timers::from(&config.guard),
            cfg: config.guard.clone(),
            notify: n.clone(),
            tier,
            endpoints,
            client,
        }))
    }

    /// The roles with an endpoint.
    fn roles(&self) -> Vec<Role> {
        self.endpoints.iter().map(|e| e.role).collect()
    }

    /// The continuous green needed to leave safe mode, ms.
    pub fn exit_green_ms(&self) -> i64 {
        self.timers.exit_green
    }

    /// The §10 monitor fed by every answered operation.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Runs `decision` on the durable tier, bounded by its timeout, mapping a failure to the
    /// stable reason of the tier that failed.
    async fn on_sql<T>(
        &self,
        decision: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Blocked> {
        self.tier.on_durable(decision).await
    }

    /// Up to `limit` audit entries after number `after`.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<AuditPage, Blocked> {
        let sql = self.tier.durable();
        Ok(AuditPage(self.on_sql(sql.audit_page(after, limit)).await?))
    }

    /// Walks the whole audit chain and names the first entry that does not match.
    pub async fn verify(&self) -> Result<Verified, Blocked> {
        const PAGE: i64 = 1_000;
        let sql = self.tier.durable();
        let mut v = Verifier::default();
        loop {
            let after = v.head().0;
            let page = self.on_sql(sql.audit_page(after, PAGE)).await?;
            for s in &page {
                if let Err(broken) = v.push(s) {
                    return Ok(Verified::Broken(broken));
                }
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        let (head_seq, head_hash) = self.on_sql(sql.audit_head()).await?;
        let (seq, hash) = v.head();
        if (seq, hash) != (head_seq, head_hash.as_str()) {
            // The head says more entries were written than the walk found: some were removed.
            return Ok(Verified::Broken(crate::audit::Broken {
                seq: seq + 1,
                id: String::new(),
                reason: "head_mismatch",
            }));
        }
        Ok(Verified::Intact {
            entries: seq,
            head_hash: hash.to_owned(),
        })
    }

    /// Runs the guard's background work until `stop`: every health tick, escalations and a
    /// health sample; every outbox poll, due deliveries.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let tick = self.cfg.tick();
        let poll = Duration::from_millis(self.notify.poll_ms);
        let ticker = async {
            loop {
                self.tick().instrument(task_span("guard_tick")).await;
                tokio::time::sleep(tick).await;
            }
        };
        let sender = async {
            loop {
                self.deliver_due().instrument(task_span("webhooks")).await;
                tokio::time::sleep(poll).await;
            }
        };
        tokio::select! {
            _ = stop => {}
            _ = ticker => {}
            _ = sender => {}
        }
    }

    /// One health tick.
    pub async fn tick(&self) {
        if let Err(e) = self.escalate_due().await {
            tracing::warn!(error = %e, "escalation step failed; retried next tick");
        }
        if let Err(e) = self.sample().await {
            tracing::warn!(error = %e, "health sample not recorded");
        }
        let reading = self.watch_fallback().await;
        if let Err(e) = self.keep_evidence(reading).await {
            tracing::warn!(error = %e, "evidence not recorded; kept for the next tick");
        }
        self.publish_gauges().await;
    }

    async fn publish_gauges(&self) {
        use crate::metrics_names as m;
        let sql = self.tier.durable();
        if let Ok((counts, oldest)) = self.tier.durably(sql.unacked_summary()).await {
            for severity in ["critical", "error", "warning", "info"] {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == severity)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!(m::INCIDENTS_UNACKED, "severity" => severity).set(n as f64);
            }
            let age = if oldest > 0 {
                (self.tier.now() - oldest).max(0) as f64 / 1000.0
            } else {
                0.0
            };
            metrics::gauge!(m::INCIDENT_UNACKED_AGE).set(age);
        }
        if let Ok(n) = self.tier.durably(sql.outbox_pending()).await {
            metrics::gauge!(m::OUTBOX_PENDING).set(n as f64);
        }
        metrics::gauge!(m::GUARD_STATE).set(self.tier.guard() as u8 as f64);
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Guard> {
    /// `guard`: the health tick (escalations, §10 samples, the fallback watch) every
    /// `guard.health_tick_ms`, and webhook deliveries every `notify.poll_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let guard = self.clone();
        s.run("guard", move |stop| guard.run(stop));
    }
}
