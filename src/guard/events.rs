//! Webhook events: their types, who receives each, and their bodies (`{type, timestamp,
//! data}`, DESIGN §4.10). A body is fixed when its outbox row is written, so every retry sends
//! the same bytes under the same `webhook-id`.

use serde_json::json;

use crate::runtime::clock::rfc3339;
use crate::store::guard::{Incident, NewDelivery};
use crate::store::GuardState;

/// A first notice of an incident.
pub const TRIGGERED: &str = "incident.triggered";
/// A repeat while unacknowledged.
pub const NOTIFY: &str = "incident.notify";
/// Someone acknowledged it.
pub const ACKNOWLEDGED: &str = "incident.acknowledged";
/// It was resolved.
pub const RESOLVED: &str = "incident.resolved";
/// Side effects are refused from now on.
pub const SAFE_MODE_ENTERED: &str = "guard.safe_mode_entered";
/// The standard contingency message, once per safe-mode episode.
pub const CONTINGENCY: &str = "guard.contingency";
/// Side effects go on again.
pub const SAFE_MODE_EXITED: &str = "guard.safe_mode_exited";
/// The critical ticket for the next shift.
pub const TICKET: &str = "ticket.next_shift";

/// Every event type.
pub const TYPES: [&str; 8] = [
    TRIGGERED,
    NOTIFY,
    ACKNOWLEDGED,
    RESOLVED,
    SAFE_MODE_ENTERED,
    CONTINGENCY,
    SAFE_MODE_EXITED,
    TICKET,
];

/// Who is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The on-call owner (the clinic backend that turns events into messages).
    Owner,
    /// The superadmin.
    Superadmin,
}

impl Role {
    /// The name in bodies and rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Superadmin => "superadmin",
        }
    }

    /// The role a stored name means.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Owner, Self::Superadmin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// The other role: where a dead delivery goes.
    pub fn other(self) -> Self {
        match self {
            Self::Owner => Self::Superadmin,
            Self::Superadmin => Self::Owner,
        }
    }
}

/// The roles an event type goes to: the contingency message to the owner (who relays it), the
/// next-shift ticket to the superadmin, everything else to both.
pub fn roles_of(kind: &str) -> &'static [Role] {
    match kind {
        CONTINGENCY => &[Role::Owner],
        TICKET => &[Role::Superadmin],
        _ => &[Role::Owner, Role::Superadmin],
    }
}

/// One event about to be written to the outbox.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Its type.
    pub kind: &'static str,
    /// The incident it is about, if any.
    pub incident: Option<&'a Incident>,
    /// The safe-mode episode it is about (guard events), or empty.
    pub episode: &'a str,
    /// The notification round (`attempt` in the body).
    pub round: i64,
    /// The guard state it leaves.
    pub guard_state: GuardState,
    /// A message for people (the contingency text, a ticket's summary), or empty.
    pub message: String,
    /// The correlation id of what caused it.
    pub correlation_id: String,
}

impl Event<'_> {
    fn subject(&self) -> &str {
        self.incident.map_or(self.episode, |i| &i.id)
    }

    /// The body for `role` at `now`.
    pub fn body(&self, role: Role, now: i64, failover_of: &str) -> String {
        let i = self.incident;
        let mut data = json!({
            "incident_id": i.map(|i| i.id.as_str()),
            "dedup_key": i.map(|i| i.dedup_key.as_str()),
            "severity": i.map(|i| i.severity.as_str()),
            "summary": i.map(|i| i.summary.as_str()),
            "attempt": self.round,
            "role": role.as_str(),
            "guard_state": self.guard_state.as_str(),
            "correlation_id": self.correlation_id,
        });
        let extra = [
            ("episode", self.episode),
            ("message", &self.message),
            ("traceparent", i.map_or("", |i| &i.traceparent)),
            ("failover_of", failover_of),
        ];
        for (name, value) in extra {
            if !value.is_empty() {
                data[name] = json!(value);
            }
        }
        json!({"type": self.kind, "timestamp": rfc3339(now), "data": data}).to_string()
    }

    /// Its outbox rows for the roles among `configured` that receive it.
    pub fn deliveries(&self, configured: &[Role], now: i64) -> Vec<NewDelivery> {
        roles_of(self.kind)
            .iter()
            .filter(|r| configured.contains(r))
            .map(|&role| NewDelivery {
                id: new_webhook_id(),
                subject: self.subject().to_owned(),
                kind: self.kind.to_owned(),
                round: self.round,
                role: role.as_str().to_owned(),
                failover_of: String::new(),
                body: self.body(role, now, ""),
            })
            .collect()
    }
}

/// A fresh `webhook-id`.
pub fn new_webhook_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The copy of a dead delivery for the other role: the same event, addressed to `to`, naming
/// the dead one.
pub fn failover_copy(dead: &crate::store::guard::Delivery, to: Role) -> NewDelivery {
    let mut body: serde_json::Value =
        serde_json::from_str(&dead.body).unwrap_or_else(|_| json!({"data": {}}));
    body["data"]["role"] = json!(to.as_str());
    body["data"]["failover_of"] = json!(dead.id);
    NewDelivery {
        id: new_webhook_id(),
        subject: dead.subject.clone(),
        kind: dead.kind.clone(),
        round: dead.round,
        role: to.as_str().to_owned(),
        failover_of: dead.id.clone(),
        body: body.to_string(),
    }
}
