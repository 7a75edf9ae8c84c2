//! Webhook delivery from the outbox: claim due rows, drop a repeat whose incident was
//! acknowledged meanwhile (re-read just before the send), sign and send, then settle the try —
//! delivered, retried with backoff (at least what a `Retry-After` asks), or dead. A dead
//! delivery is audited, counted and copied at once to the other role.

use std::time::Instant;

use reqwest::header::RETRY_AFTER;

use crate::audit::Audit;
use crate::metrics_names as m;
use crate::store::guard::Settle;
use crate::store::guard::{Delivery, DeliveryTry};
use crate::store::StoreError;

use super::events::{self, Role};
use super::rules::state;
use super::{Guard, WARDEN};
use crate::store::guard::{DeliveryWrite, GuardWrite};

/// Deliveries claimed per poll.
const CLAIM: i64 = 16;
/// The longest wait a `Retry-After` may ask for.
const RETRY_AFTER_CAP_MS: i64 = 3_600_000;

/// How one send went.
struct Sent {
    status: i64,
    error: String,
    retry_after_ms: Option<i64>,
    latency_ms: i64,
}

impl Guard {
    /// Sends every delivery due now.
    pub(super) async fn deliver_due(&self) {
        if self.endpoints.is_empty() {
            return;
        }
        let sql = self.tier.durable();
        let now = self.tier.now();
        let until = now + 2 * self.notify.timeout_ms as i64 + 1_000;
        let claimed = match self
            .tier
            .durably(sql.claim_deliveries(now, until, CLAIM))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "outbox not read");
                return;
            }
        };
        let sends = claimed.into_iter().map(|d| async move {
            if let Err(e) = self.deliver(&d).await {
                tracing::warn!(error = %e, webhook_id = %d.id, "delivery not settled; retried after its claim ends");
            }
        });
        futures::future::join_all(sends).await;
    }

    async fn deliver(&self, d: &Delivery) -> Result<(), StoreError> {
        let sql = self.tier.durable();
        let role = Role::parse(&d.role);
        if d.kind == events::NOTIFY && !self.still_unacked(&d.subject).await? {
            return self.settle_try(d, &dropped(d), Settle::Dropped, role).await;
        }
        // The acknowledgement drops pending repeats in its transaction: a repeat dropped
        // after this delivery was claimed is not sent.
        if sql.delivery_state(&d.id).await?.as_deref() != Some("pending") {
            return Ok(());
        }
        let Some(endpoint) = self.endpoints.iter().find(|e| Some(e.role) == role) else {
            let t = DeliveryTry {
                error: format!("no endpoint for role {}", d.role),
                ..try_of(d, 0, 0)
            };
            return self.settle_try(d, &t, Settle::Dead, role).await;
        };
        let sent = self.send(endpoint, d).await;
        let t = DeliveryTry {
            status: sent.status,
            latency_ms: sent.latency_ms,
            error: sent.error.clone(),
            ..try_of(d, self.tier.now(), 0)
        };
        let how = if (200..300).contains(&sent.status) {
            Settle::Delivered
        } else if d.tries >= i64::from(self.notify.max_tries) {
            Settle::Dead
        } else {
            let backoff = self.backoff(d.tries);
            let wait = sent.retry_after_ms.map_or(backoff, |ra| ra.max(backoff));
            Settle::Retry(self.tier.now() + wait)
        };
        self.settle_try(d, &t, how, role).await
    }

    async fn still_unacked(&self, incident_id: &str) -> Result<bool, StoreError> {
        let i = self.tier.durable().incident(incident_id).await?;
        Ok(i.is_some_and(|i| i.state == state::TRIGGERED))
    }

    /// The delay before try `tries + 1`: doubling from `backoff_ms`, with up to 20 % jitter,
    /// at most `backoff_max_ms`.
    fn backoff(&self, tries: i64) -> i64 {
        let base = self.notify.backoff_ms as i64;
        let exp = base.saturating_mul(1 << (tries - 1).clamp(0, 20));
        let capped = exp.min(self.notify.backoff_max_ms as i64).max(1);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1_000) as i64 * capped / 5_000;
        capped + jitter
    }

    async fn send(&self, e: &super::Endpoint, d: &Delivery) -> Sent {
        let ts = self.tier.now() / 1000;
        let started = Instant::now();
        let reply = self
            .client
            .post(&e.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", e.signer.sign(&d.id, ts, &d.body))
            .body(d.body.clone())
            .send()
            .await;
        let latency = started.elapsed();
        metrics::histogram!(m::DELIVERY_SECONDS).record(latency.as_secs_f64());
        let latency_ms = latency.as_millis() as i64;
        match reply {
            Ok(r) => {
                let status = i64::from(r.status().as_u16());
                let retry_after_ms = r
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after_ms);
                let error = if (200..300).contains(&status) {
                    String::new()
                } else {
                    format!("receiver answered {status}")
                };
                Sent {
                    status,
                    error,
                    retry_after_ms,
                    latency_ms,
                }
            }
            Err(err) => Sent {
                status: 0,
                error: if err.is_timeout() {
                    "timed out".into()
                } else if err.is_connect() {
                    "connection refused or unreachable".into()
                } else {
                    "request failed".into()
                },
                retry_after_ms: None,
                latency_ms,
            },
        }
    }

    /// Settles one try in a transaction; a dead delivery is audited and copied to the other
    /// role (once: a copy is never copied again).
    async fn settle_try(
        &self,
        d: &Delivery,
        t: &DeliveryTry,
        how: Settle,
        role: Option<Role>,
    ) -> Result<(), StoreError> {
        let now = self.tier.now();
        let mut tx = self.tier.durable().guard_tx().await?;
        if !tx.settle_delivery(t, &how, now).await? {
            return Ok(());
        }
        let outcome = match &how {
            Settle::Delivered => "delivered",
            Settle::Retry(_) => "retry",
            Settle::Dead => "dead",
            Settle::Dropped => "dropped",
        };
        let label = role.map_or("unknown", Role::as_str);
        metrics::counter!(m::DELIVERIES, "role" => label, "outcome" => outcome).increment(1);
        let detail = format!(
            "{} round {} to {} try {}: {}",
            d.kind,
            d.round,
            d.role,
            t.try_no,
            if t.error.is_empty() {
                format!("HTTP {}", t.status)
            } else {
                t.error.clone()
            }
        );
        match how {
            Settle::Delivered | Settle::Dropped => {
                let action = format!("delivery.{outcome}");
                tx.audit(&[Audit::new(now, WARDEN, &action, &d.subject, detail)])
                    .await?;
            }
            Settle::Retry(at) => {
                tracing::warn!(webhook_id = %d.id, role = %d.role, try_no = t.try_no,
                    retry_in_ms = at - now, error = %t.error, "delivery failed; retrying");
            }
            Settle::Dead => {
                tracing::error!(webhook_id = %d.id, role = %d.role, tries = t.try_no,
                    error = %t.error, "delivery dead; sending to the other role");
                tx.audit(&[Audit::new(now, WARDEN, "delivery.dead", &d.subject, detail)])
                    .await?;
                let other = role.map(Role::other);
                let configured = self.roles();
                if let Some(to) =
                    other.filter(|r| d.failover_of.is_empty() && configured.contains(r))
                {
                    tx.enqueue(&[events::failover_copy(d, to)], now).await?;
                }
            }
        }
        tx.commit().await
    }
}

fn try_of(d: &Delivery, at: i64, status: i64) -> DeliveryTry {
    DeliveryTry {
        outbox_id: d.id.clone(),
        try_no: d.tries,
        at,
        status,
        latency_ms: 0,
        error: String::new(),
    }
}

fn dropped(d: &Delivery) -> DeliveryTry {
    DeliveryTry {
        error: "incident acknowledged or resolved before the send".into(),
        ..try_of(d, 0, 0)
    }
}

/// A `Retry-After` value in ms: delay seconds, or an HTTP date (capped at one hour).
fn retry_after_ms(v: &str) -> Option<i64> {
    let ms = if let Ok(secs) = v.trim().parse::<i64>() {
        secs.saturating_mul(1000)
    } else {
        let at = httpdate(v)?;
        at - crate::runtime::clock::now_ms()
    };
    Some(ms.clamp(0, RETRY_AFTER_CAP_MS))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as epoch ms.
fn httpdate(v: &str) -> Option<i64> {
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    let t = time::PrimitiveDateTime::parse(v.trim(), &format).ok()?;
    Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date_and_capped() {
        assert_eq!(retry_after_ms("2"), Some(2_000));
        assert_eq!(retry_after_ms("999999"), Some(RETRY_AFTER_CAP_MS));
        assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0));
        assert_eq!(retry_after_ms("soon"), None);
    }
}
