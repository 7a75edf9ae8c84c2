//! The guard's records as stored: incidents, the guard row, recovery actions, notes and the
//! webhook outbox. They are business facts (DESIGN §1): SQL only, each change written in one
//! transaction with its audit entry and outbox rows.

use std::future::Future;

use serde::Serialize;

use super::GuardState;
use crate::audit::Audit;
use crate::store::StoreError;

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Id (`inc_…`).
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// One open incident per key and tenant.
    pub dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub state: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    /// One line for people.
    pub summary: String,
    /// What raised it.
    pub source: String,
    /// Free JSON from the sender.
    pub details: String,
    /// Correlation id of the request that raised it.
    pub correlation_id: String,
    /// W3C `traceparent` of that request, or empty.
    pub traceparent: String,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
    /// Acknowledged, epoch ms (0: not).
    pub acked_at: i64,
    /// Who acknowledged it.
    pub acked_by: String,
    /// Resolved, epoch ms (0: not).
    pub resolved_at: i64,
    /// Who resolved it.
    pub resolved_by: String,
    /// Notification rounds written so far.
    pub attempts: i64,
    /// Next round due, epoch ms (0: none).
    pub next_notify_at: i64,
    /// When it put Warden in safe mode (0: it did not).
    pub safe_mode_at: i64,
    /// The safe-mode episode it caused or joined.
    pub episode: String,
    /// When the next-shift ticket was written (0: not).
    pub ticket_at: i64,
    /// Duplicate triggers folded into it.
    pub duplicates: i64,
    /// When it became critical, epoch ms: its escalation clock starts here (0: never).
    pub escalated_at: i64,
}

/// The guard's details (its state travels on the tier row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRow {
    /// The state.
    pub state: GuardState,
    /// The current safe-mode episode, or empty.
    pub episode: String,
    /// When the state was entered, epoch ms.
    pub since: i64,
    /// Why.
    pub reason: String,
    /// Who moved it.
    pub actor: String,
    /// While recovering: start of the continuously green window (0: none).
    pub green_since: i64,
    /// Last health sample, epoch ms.
    pub sampled_at: i64,
    /// Whether it was green.
    pub sample_green: bool,
}

/// A recorded recovery action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryAction {
    /// Id.
    pub id: String,
    /// The safe-mode episode it belongs to.
    pub episode: String,
    /// When, epoch ms.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What was done (a short name).
    pub action: String,
    /// Details.
    pub detail: String,
}

/// A note on an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Id.
    pub id: String,
    /// The incident.
    pub incident_id: String,
    /// When, epoch ms.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// Text.
    pub note: String,
}

/// A webhook delivery to write to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Its `webhook-id`, stable across retries.
    pub id: String,
    /// The incident or episode it is about.
    pub subject: String,
    /// The event type (`incident.triggered`, …).
    pub kind: String,
    /// The notification round (0 for one-off events).
    pub round: i64,
    /// `owner` or `superadmin`.
    pub role: String,
    /// The dead delivery this one replaces for the other role, or empty.
    pub failover_of: String,
    /// The JSON body, fixed for every try.
    pub body: String,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Its `webhook-id`.
    pub id: String,
    /// The incident or episode it is about.
    pub subject: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The notification round.
    pub round: i64,
    /// `owner` or `superadmin`.
    pub role: String,
    /// The dead delivery it replaces, or empty.
    pub failover_of: String,
    /// The JSON body.
    #[serde(skip)]
    pub body: String,
    /// `pending`, `delivered`, `dead` or `dropped`.
    pub state: String,
    /// Tries made.
    pub tries: i64,
    /// Next try, epoch ms.
    pub next_try_at: i64,
    /// Written, epoch ms.
    pub created_at: i64,
    /// Delivered, dead or dropped, epoch ms (0: pending).
    pub done_at: i64,
    /// HTTP status of the last try (0: no answer).
    pub last_status: i64,
    /// Why the last try failed.
    pub last_error: String,
}

/// One try of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryTry {
    /// The delivery.
    pub outbox_id: String,
    /// Its try number, from 1.
    pub try_no: i64,
    /// When, epoch ms.
    pub at: i64,
    /// HTTP status (0: no answer).
    pub status: i64,
    /// How long it took, ms.
    pub latency_ms: i64,
    /// Why it failed, or empty.
    pub error: String,
}

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// The receiver took it.
    Delivered,
    /// Try again at this instant (epoch ms).
    Retry(i64),
    /// No more tries.
    Dead,
    /// Not sent: the incident was acknowledged or resolved meanwhile.
    Dropped,
}

/// Refusals of one operation for one reason in one minute on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalRow {
    /// Start of the minute, epoch ms.
    pub minute: i64,
    /// The instance.
    pub instance: String,
    /// The operation.
    pub op: String,
    /// The safe-block reason.
    pub reason: String,
    /// How many.
    pub count: i64,
    /// Keys, streams or SKUs of the last few.
    pub sample_keys: Vec<String>,
    /// Their correlation ids.
    pub sample_correlation_ids: Vec<String>,
}

/// One instance's §10 reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadingRow {
    /// When, epoch ms.
    pub at: i64,
    /// The instance.
    pub instance: String,
    /// Answers in the window.
    pub operations: i64,
    /// Fallback share of them, per mille.
    pub fallback_permille: i64,
    /// p95 of fallback lock calls, ms.
    pub fallback_lock_p95_ms: i64,
    /// p95 of primary lock calls, ms.
    pub primary_lock_p95_ms: i64,
}

/// One guard decision's writes, in one transaction holding the rows it decides on: incidents, the guard row, recovery actions, notes, deliveries and audit entries commit together or not at all.
pub trait GuardWrite: Send {
    /// The incident `id` (locked).
    fn incident(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Incident>, StoreError>> + Send;
    /// The open incident of `dedup_key` in `tenant`, else its latest (locked).
    fn incident_by_key(
        &mut self,
        tenant: &str,
        dedup_key: &str,
    ) -> impl Future<Output = Result<Option<Incident>, StoreError>> + Send;
    /// Writes `i` (inserted when new, else replaced by id).
    fn put_incident(
        &mut self,
        i: &Incident,
        new: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The guard (its details locked; its state read from the tier row).
    fn guard(&mut self) -> impl Future<Output = Result<GuardRow, StoreError>> + Send;
    /// Writes the guard: its details, and its state on the tier row every instance reads.
    fn put_guard(&mut self, g: &GuardRow) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Incidents of safe-mode episode `episode` still unacknowledged.
    fn unacked_of_episode(
        &mut self,
        episode: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// How many recovery actions episode `episode` has.
    fn recoveries_of(
        &mut self,
        episode: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Records a recovery action.
    fn put_recovery(
        &mut self,
        r: &RecoveryAction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a note.
    fn put_note(&mut self, n: &Note) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Writes deliveries to the outbox, due at `now`; one already written for the same round
    /// and role is left as it is. How many were new.
    fn enqueue(
        &mut self,
        ds: &[NewDelivery],
        now: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Drops repeats of incident `id` not yet sent: after its acknowledgement or resolution
    /// no repeat goes out.
    fn drop_repeats(
        &mut self,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Appends audit entries to the chain.
    fn audit(&mut self, entries: &[Audit]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Commits every write of this decision.
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A delivery's state, read and settled inside a guard decision's transaction.
pub trait DeliveryWrite: Send {
    /// The delivery `id` (locked).
    fn delivery(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Delivery>, StoreError>> + Send;
    /// Records try `t` of a delivery and settles the delivery as `how`, if it is still
    /// pending (a delivery dropped meanwhile stays dropped). Whether it was.
    fn settle_delivery(
        &mut self,
        t: &DeliveryTry,
        how: &Settle,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
