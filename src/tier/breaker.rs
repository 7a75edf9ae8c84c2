//! Circuit breaker on Redis: opens after N consecutive infrastructure failures, stays open for
//! a fixed period, then lets one probe decide. Domain answers never reach it.

use std::sync::Mutex;
use std::time::Duration;

// Tokio's clock (the system clock outside tests), so tests can pause and advance it.
use tokio::time::Instant;

/// What the breaker currently allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Redis calls flow.
    Closed,
    /// Redis is considered down until the open period ends.
    Open,
    /// The open period is over: the next probe decides.
    HalfOpen,
}

impl BreakerState {
    /// Name used in `/v1/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// Value of the breaker gauge.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_until: Option<Instant>,
    last_error: String,
}

/// A consecutive-failure breaker. A std `Mutex` suffices: it is never held across an await.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold,
            open_for,
            inner: Mutex::new(Inner {
                failures: 0,
                open_until: None,
                last_error: String::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current state.
    pub fn state(&self) -> BreakerState {
        match self.lock().open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// The error that last counted as a failure.
    pub fn last_error(&self) -> String {
        self.lock().last_error.clone()
    }

    /// A call succeeded: close.
    pub fn success(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.open_until = None;
    }

    /// A call failed on infrastructure. Returns `true` when this failure opened the breaker.
    pub fn failure(&self, error: &str) -> bool {
        let mut inner = self.lock();
        inner.failures = inner.failures.saturating_add(1);
        inner.last_error = error.to_owned();
        let half_open = inner.open_until.is_some_and(|u| Instant::now() >= u);
        if half_open || (inner.open_until.is_none() && inner.failures >= self.threshold) {
            inner.open_until = Some(Instant::now() + self.open_for);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_and_half_opens() {
        let b = Breaker::new(3, Duration::from_millis(20));
        assert!(!b.failure("x"));
        assert!(!b.failure("x"));
        b.success();
        assert!(!b.failure("x"));
        assert!(!b.failure("x"));
        assert!(b.failure("boom"));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.last_error(), "boom");
        tokio::time::advance(Duration::from_millis(30)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.failure("again"), "a failed probe reopens");
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(30)).await;
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
