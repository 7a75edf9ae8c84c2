//! What incident events ask for: the PagerDuty Events v2 body (flat, as DESIGN §4.10 writes it,
//! or with PagerDuty's `payload`) and the Alertmanager webhook (v4), each checked field by field
//! (G8) and turned into the [`IncidentInput`] the guard applies.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::extract::identity;
use super::problem::ApiError;
use crate::guard::{IncidentInput, Trigger};

/// Longest summary, bytes.
const MAX_SUMMARY: usize = 1_024;
/// Longest source, bytes.
const MAX_SOURCE: usize = 255;
/// Largest `details`, bytes of JSON.
const MAX_DETAILS: usize = 16 * 1024;
/// Most alerts in one Alertmanager webhook.
pub(super) const MAX_ALERTS: usize = 100;

/// PagerDuty's nested `payload`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PdPayload {
    /// One line for people.
    #[serde(default)]
    pub summary: Option<String>,
    /// What raised it.
    #[serde(default)]
    pub source: Option<String>,
    /// `critical`, `error`, `warning` or `info`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Free JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_details: Option<serde_json::Value>,
}

/// `POST /v1/incidents`: a PagerDuty Events v2 event.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IncidentBody {
    /// `trigger`, `acknowledge` or `resolve`.
    pub event_action: String,
    /// Folds repeats into one open incident (1–512 bytes); required to acknowledge or resolve,
    /// made up for a trigger without one.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// `critical`, `error`, `warning` or `info` (trigger).
    #[serde(default)]
    pub severity: Option<String>,
    /// One line for people, 1–1024 bytes (trigger).
    #[serde(default)]
    pub summary: Option<String>,
    /// What raised it, at most 255 bytes.
    #[serde(default)]
    pub source: Option<String>,
    /// Free JSON, at most 16 KiB.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: Option<serde_json::Value>,
    /// PagerDuty's nesting of summary, source, severity and custom_details.
    #[serde(default)]
    pub payload: Option<PdPayload>,
}

/// One alert of an Alertmanager webhook.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AmAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels (`alertname`, `severity`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alertmanager's fingerprint of the labels.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// `POST /v1/alerts/alertmanager`: an Alertmanager webhook (version 4).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AlertmanagerBody {
    /// Must be `4`.
    pub version: String,
    /// The alert group.
    #[serde(default, rename = "groupKey")]
    pub group_key: String,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// 1–100 alerts.
    pub alerts: Vec<AmAlert>,
}

fn invalid(code: &'static str, title: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail)
}

fn dedup_key(raw: &str) -> Result<String, ApiError> {
    identity("dedup_key", "invalid_dedup_key", "Invalid dedup key", raw)
}

fn severity(raw: Option<&str>) -> Result<String, ApiError> {
    match raw {
        Some(s) if crate::guard::SEVERITIES.contains(&s) => Ok(s.to_owned()),
        _ => Err(ApiError::out_of_range(
            "severity",
            "critical, error, warning or info",
        )),
    }
}

pub(super) fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, ApiError> {
    if raw.len() < min || raw.len() > max || raw.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::out_of_range(
            field,
            &format!("{min}..={max} bytes of text without control characters"),
        ));
    }
    Ok(raw.to_owned())
}

fn details(v: Option<serde_json::Value>) -> Result<String, ApiError> {
    let s = v.map_or_else(|| "{}".to_owned(), |v| v.to_string());
    if s.len() > MAX_DETAILS {
        return Err(ApiError::out_of_range("details", "at most 16 KiB of JSON"));
    }
    Ok(s)
}

/// The incident event a PagerDuty-shaped body asks for.
pub(super) fn input_of(b: IncidentBody) -> Result<IncidentInput, ApiError> {
    let payload = b.payload.unwrap_or_default();
    let key = b.dedup_key.as_deref().map(dedup_key).transpose()?;
    match b.event_action.as_str() {
        "trigger" => {
            let summary = b.summary.or(payload.summary).unwrap_or_default();
            let source = b
                .source
                .or(payload.source)
                .unwrap_or_else(|| "unspecified".into());
            Ok(IncidentInput::Trigger(Trigger {
                dedup_key: key.unwrap_or_else(|| format!("auto:{}", uuid::Uuid::new_v4().simple())),
                severity: severity(b.severity.as_deref().or(payload.severity.as_deref()))?,
                summary: text("summary", &summary, 1, MAX_SUMMARY)?,
                source: text("source", &source, 1, MAX_SOURCE)?,
                details: details(b.details.or(payload.custom_details))?,
            }))
        }
        "acknowledge" | "resolve" => {
            let key = key.ok_or_else(|| {
                invalid(
                    "invalid_dedup_key",
                    "Invalid dedup key",
                    "dedup_key is required to acknowledge or resolve",
                )
            })?;
            Ok(if b.event_action == "resolve" {
                IncidentInput::Resolve(key)
            } else {
                IncidentInput::Acknowledge(key)
            })
        }
        _ => Err(ApiError::out_of_range(
            "event_action",
            "trigger, acknowledge or resolve",
        )),
    }
}

/// The dedup key of an Alertmanager alert: `am:` and its fingerprint, or a hash of its labels.
fn alert_key(a: &AmAlert) -> Result<String, ApiError> {
    match &a.fingerprint {
        Some(f) if !f.is_empty() => dedup_key(&format!("am:{f}")),
        _ => {
            let labels = serde_json::to_string(&a.labels).unwrap_or_default();
            Ok(format!("am:{}", &hex::encode(Sha256::digest(labels))[..16]))
        }
    }
}

fn alert_severity(labels: &BTreeMap<String, String>) -> String {
    match labels
        .get("severity")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        Some("critical" | "page") => "critical",
        Some("error" | "high") => "error",
        Some("info" | "none" | "low") => "info",
        _ => "warning",
    }
    .to_owned()
}

/// The incident event one alert asks for.
pub(super) fn alert_input(a: &AmAlert, body: &AlertmanagerBody) -> Result<IncidentInput, ApiError> {
    let receiver = body.receiver.as_str();
    let key = alert_key(a)?;
    match a.status.as_str() {
        "resolved" => Ok(IncidentInput::Resolve(key)),
        "firing" => {
            let pick = |names: &[&str], map: &BTreeMap<String, String>| {
                names
                    .iter()
                    .find_map(|n| map.get(*n).filter(|v| !v.is_empty()).cloned())
            };
            let summary = pick(&["summary", "description"], &a.annotations)
                .or_else(|| pick(&["alertname"], &a.labels))
                .unwrap_or_else(|| "alert".into());
            let source = pick(&["instance", "job"], &a.labels).unwrap_or_else(|| {
                if receiver.is_empty() {
                    "alertmanager".into()
                } else {
                    receiver.to_owned()
                }
            });
            let sent = serde_json::json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "group_key": body.group_key,
            });
            Ok(IncidentInput::Trigger(Trigger {
                dedup_key: key,
                severity: alert_severity(&a.labels),
                summary: text("summary", &summary, 1, MAX_SUMMARY)?,
                source: text("source", &source, 1, MAX_SOURCE)?,
                details: details(Some(sent))?,
            }))
        }
        _ => Err(ApiError::out_of_range(
            "alerts[].status",
            "firing or resolved",
        )),
    }
}
