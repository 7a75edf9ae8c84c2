//! Rate-limit policies as clients write them and as stored: every policy that passes
//! [`Policy::validate`] has 1–4 limits with positive rates, periods and capacities and unique
//! names, so the steps that run it never divide by zero or grow without bound.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most limits in one policy (or one override).
pub const MAX_LIMITS: usize = 4;
/// Longest period, ms (one year).
pub const MAX_PERIOD_MS: i64 = 366 * 24 * 3_600_000;
/// Highest rate or burst of a `gcra` limit.
pub const MAX_GCRA: i64 = 1_000_000_000;
/// Highest rate of a `sliding_log` limit: it keeps one entry per admitted unit.
pub const MAX_SLIDING_LOG: i64 = 10_000;
/// Longest limit name, bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// How one limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Generic cell rate algorithm (a leaky bucket of `burst` units draining at
    /// `rate / period_ms`): at most `burst + rate·W/period` units in any window `W`.
    Gcra,
    /// A log of admissions: at most `rate` units in any `period_ms`.
    SlidingLog,
}

impl Algorithm {
    /// The one-letter code the Redis step and the key suffix use.
    pub fn code(self) -> &'static str {
        match self {
            Self::Gcra => "g",
            Self::SlidingLog => "s",
        }
    }
}

/// One limit of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Name, unique in the policy (1–64 of `[A-Za-z0-9_.-]`): it names the limit in answers
    /// and headers.
    pub name: String,
    /// `gcra` or `sliding_log`.
    pub algorithm: Algorithm,
    /// Units per period.
    pub rate: i64,
    /// Period, ms (1..=31 622 400 000).
    pub period_ms: i64,
    /// `gcra`: units admitted at once after an idle spell (default: `rate`). Ignored by
    /// `sliding_log`, whose capacity is `rate`.
    #[serde(default)]
    pub burst: Option<i64>,
}

impl Limit {
    /// Most units this limit admits at once: a check costing more can never pass.
    pub fn capacity(&self) -> i64 {
        match self.algorithm {
            Algorithm::Gcra => self.burst.unwrap_or(self.rate),
            Algorithm::SlidingLog => self.rate,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME_BYTES
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(format!(
                "limit name {:?} must be 1–{MAX_NAME_BYTES} of A-Z a-z 0-9 _ . -",
                self.name
            ));
        }
        let max = match self.algorithm {
            Algorithm::Gcra => MAX_GCRA,
            Algorithm::SlidingLog => MAX_SLIDING_LOG,
        };
        if !(1..=max).contains(&self.rate) {
            return Err(format!("limit {}: rate must be in 1..={max}", self.name));
        }
        if !(1..=MAX_PERIOD_MS).contains(&self.period_ms) {
            return Err(format!(
                "limit {}: period_ms must be in 1..={MAX_PERIOD_MS}",
                self.name
            ));
        }
        match (self.algorithm, self.burst) {
            (Algorithm::Gcra, Some(b)) if !(1..=MAX_GCRA).contains(&b) => Err(format!(
                "limit {}: burst must be in 1..={MAX_GCRA}",
                self.name
            )),
            (Algorithm::SlidingLog, Some(b)) if b != self.rate => Err(format!(
                "limit {}: a sliding_log admits `rate` per period; omit burst or set it to rate",
                self.name
            )),
            _ => Ok(()),
        }
    }
}

/// Checks a list of limits: 1–4, each valid, names unique.
pub fn validate_limits(limits: &[Limit]) -> Result<(), String> {
    if limits.is_empty() || limits.len() > MAX_LIMITS {
        return Err(format!("a policy has 1–{MAX_LIMITS} limits"));
    }
    for (i, l) in limits.iter().enumerate() {
        l.validate()?;
        if limits[..i].iter().any(|o| o.name == l.name) {
            return Err(format!("limit name {:?} is used twice", l.name));
        }
    }
    Ok(())
}

/// What a check answers when no tier can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Admit, unchecked: `allowed_unchecked`.
    FailOpen,
    /// Refuse: 503 `limit_failed_safe_block`.
    #[default]
    FailClosed,
}

/// A policy as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// 1–4 limits; a check passes only if every one admits it.
    pub limits: Vec<Limit>,
    /// `fail_open` or `fail_closed` (default).
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// Count and answer `shadow_limited`, but never refuse.
    #[serde(default)]
    pub shadow: bool,
    /// Share of each limit kept in `local` mode (0 < factor <= 1, default 0.5), divided
    /// between the live instances.
    #[serde(default = "default_factor")]
    pub degraded_factor: f64,
}

fn default_factor() -> f64 {
    0.5
}

impl Policy {
    /// Checks every rule of a policy; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        validate_limits(&self.limits)?;
        if !(self.degraded_factor > 0.0 && self.degraded_factor <= 1.0) {
            return Err("degraded_factor must be in (0, 1]".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, algorithm: Algorithm, rate: i64, period_ms: i64) -> Limit {
        Limit {
            name: name.into(),
            algorithm,
            rate,
            period_ms,
            burst: None,
        }
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let ok = limit("minute", Algorithm::Gcra, 18, 60_000);
        let p = |limits: Vec<Limit>| Policy {
            limits,
            on_unavailable: OnUnavailable::FailClosed,
            shadow: false,
            degraded_factor: 0.5,
        };
        assert!(p(vec![ok.clone()]).validate().is_ok());
        assert!(p(vec![]).validate().is_err());
        assert!(p(vec![ok.clone(); 5]).validate().is_err());
        assert!(p(vec![ok.clone(), ok.clone()]).validate().is_err(), "dup");
        for bad in [
            limit("m", Algorithm::Gcra, -1, 1000),
            limit("m", Algorithm::Gcra, 1, 0),
            limit("", Algorithm::Gcra, 1, 1000),
            limit("a b", Algorithm::Gcra, 1, 1000),
            limit("m", Algorithm::SlidingLog, MAX_SLIDING_LOG + 1, 1000),
            Limit {
                burst: Some(0),
                ..ok.clone()
            },
            Limit {
                burst: Some(3),
                ..limit("m", Algorithm::SlidingLog, 5, 1000)
            },
        ] {
            assert!(p(vec![bad.clone()]).validate().is_err(), "{bad:?}");
        }
        let mut factor = p(vec![ok.clone()]);
        factor.degraded_factor = 0.0;
        assert!(factor.validate().is_err());
        factor.degraded_factor = 1.5;
        assert!(factor.validate().is_err());
        assert_eq!(ok.capacity(), 18);
        assert_eq!(
            Limit {
                burst: Some(100),
                ..ok
            }
            .capacity(),
            100
        );
    }
}
