//! Recorded lock histories and the invariants checked over them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Warden;

/// One grant as the client saw it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub key: String,
    pub owner: String,
    pub token: i64,
    pub mode: String,
    pub instance: usize,
    pub requested: Instant,
    pub answered: Instant,
    pub ttl: Duration,
    /// When the client sent its release (if it did).
    pub release_sent: Option<Instant>,
    /// When the release was answered, with its status, state and reason.
    pub release: Option<Released>,
}

/// A release as the client saw it.
#[derive(Debug, Clone)]
pub struct Released {
    pub answered: Instant,
    pub status: u16,
    pub state: String,
    pub reason: String,
}

impl Grant {
    /// Until when the lease was certainly live: the earlier of release and expiry (the server
    /// set expiry after `requested`, so it is no earlier than `requested + ttl`).
    fn live_until(&self) -> Instant {
        let expiry = self.requested + self.ttl;
        self.release_sent.map_or(expiry, |r| r.min(expiry))
    }
}

#[derive(Clone, Default)]
pub struct History {
    grants: Arc<Mutex<Vec<Grant>>>,
    /// Every 503 answer seen (acquires and releases).
    refusals: Arc<Mutex<Vec<Value>>>,
}

impl History {
    pub fn push(&self, g: Grant) {
        self.grants.lock().unwrap().push(g);
    }

    pub fn grants(&self) -> Vec<Grant> {
        self.grants.lock().unwrap().clone()
    }

    pub fn refused(&self, answer: Value) {
        self.refusals.lock().unwrap().push(answer);
    }

    pub fn refusals(&self) -> Vec<Value> {
        self.refusals.lock().unwrap().clone()
    }

    /// G1 as answered: a grant requested after another of the same key was answered has a
    /// larger token, except the owner's own retry of a lease it may still have held (its
    /// release was not answered `released`, and its TTL had not certainly run out), which
    /// returns that grant (DESIGN G1). A released or expired grant is never handed back.
    pub fn assert_tokens_grow(&self) {
        let g = self.grants();
        for a in &g {
            for b in &g {
                if a.key != b.key || b.requested <= a.answered || b.token > a.token {
                    continue;
                }
                let released = a.release.as_ref().is_some_and(|r| r.state == "released");
                let maybe_live = b.requested < a.answered + a.ttl;
                let own_retry = b.token == a.token && b.owner == a.owner && !released && maybe_live;
                assert!(
                    own_retry,
                    "token went backwards: {a:?} answered before {b:?} was requested"
                );
            }
        }
    }

    /// G3: no grant is made while another grant of the same key is certainly live.
    pub fn assert_no_overlap(&self) {
        let g = self.grants();
        for a in &g {
            for b in &g {
                if a.key == b.key && a.token != b.token {
                    let inside = b.requested >= a.answered && b.answered <= a.live_until();
                    assert!(!inside, "overlapping holders:\n {a:?}\n {b:?}");
                }
            }
        }
    }

    pub fn count_mode(&self, mode: &str) -> usize {
        self.grants().iter().filter(|g| g.mode == mode).count()
    }

    pub fn count_mode_after(&self, mode: &str, after: Instant) -> usize {
        self.grants()
            .iter()
            .filter(|g| g.mode == mode && g.requested > after)
            .count()
    }
}

/// One contending client: acquire (no wait), hold for `hold`, release; until `stop` is set.
#[allow(clippy::too_many_arguments)]
pub async fn contend(
    w: Arc<Warden>,
    instance: usize,
    client: usize,
    keys: Vec<String>,
    ttl_ms: i64,
    hold: Duration,
    history: History,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let mut errors = 0;
    let mut round = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        round += 1;
        let key = &keys[(client + round) % keys.len()];
        let owner = format!("i{instance}-c{client}");
        let requested = Instant::now();
        let r = w
            .http
            .post(format!("{}/v1/locks/{key}/acquire", w.base()))
            .json(&serde_json::json!({"owner": owner, "ttl_ms": ttl_ms}))
            .send()
            .await;
        let Ok(r) = r else {
            errors += 1;
            continue;
        };
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let answered = Instant::now();
        match status {
            200 => {
                let token = v["fencing_token"].as_i64().unwrap();
                let mut g = Grant {
                    key: key.clone(),
                    owner: owner.clone(),
                    token,
                    mode: v["mode"].as_str().unwrap().to_owned(),
                    instance,
                    requested,
                    answered,
                    ttl: Duration::from_millis(ttl_ms as u64),
                    release_sent: None,
                    release: None,
                };
                tokio::time::sleep(hold).await;
                g.release_sent = Some(Instant::now());
                let r = w
                    .http
                    .post(format!("{}/v1/locks/{key}/release", w.base()))
                    .json(&serde_json::json!({"owner": owner, "fencing_token": token}))
                    .send()
                    .await;
                if let Ok(r) = r {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    if status == 503 {
                        history.refused(v.clone());
                    }
                    g.release = Some(Released {
                        answered: Instant::now(),
                        status,
                        state: v["state"].as_str().unwrap_or_default().to_owned(),
                        reason: v["reason"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                history.push(g);
            }
            409 => tokio::time::sleep(Duration::from_millis(5)).await,
            503 => {
                history.refused(v);
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
    errors
}
