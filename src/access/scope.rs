//! Scopes: what a token may do, one per capability, with the sensitive actions (stock totals,
//! review resolution, the guard, tokens) in scopes of their own. A route names the one scope it
//! needs; a token without it is refused (G9).

/// One scope (DESIGN §4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Locks and fences.
    Locks,
    /// Idempotency keys.
    Idempotency,
    /// Causal streams and dispatch.
    Streams,
    /// The manual review queue: reading it and resolving items.
    Review,
    /// Reservations and stock reads.
    Reservations,
    /// Stock totals.
    Inventory,
    /// Rate-limit checks.
    RateLimit,
    /// Rate-limit policies.
    RateLimitAdmin,
    /// Sessions.
    Sessions,
    /// The key-value store.
    Kv,
    /// The cache.
    Cache,
    /// Incidents.
    Incidents,
    /// The guard (safe mode).
    Guard,
    /// The audit log.
    Audit,
    /// `/metrics`.
    Metrics,
    /// Tokens, and acting on another tenant.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 16] = [
        Scope::Locks,
        Scope::Idempotency,
        Scope::Streams,
        Scope::Review,
        Scope::Reservations,
        Scope::Inventory,
        Scope::RateLimit,
        Scope::RateLimitAdmin,
        Scope::Sessions,
        Scope::Kv,
        Scope::Cache,
        Scope::Incidents,
        Scope::Guard,
        Scope::Audit,
        Scope::Metrics,
        Scope::Admin,
    ];

    /// The scope's name in tokens and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Locks => "locks",
            Self::Idempotency => "idempotency",
            Self::Streams => "streams",
            Self::Review => "review",
            Self::Reservations => "reservations",
            Self::Inventory => "inventory",
            Self::RateLimit => "ratelimit",
            Self::RateLimitAdmin => "ratelimit.admin",
            Self::Sessions => "sessions",
            Self::Kv => "kv",
            Self::Cache => "cache",
            Self::Incidents => "incidents",
            Self::Guard => "guard",
            Self::Audit => "audit",
            Self::Metrics => "metrics",
            Self::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A set of scopes (a bit per scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u32);

impl Scopes {
    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn has(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// The names, space-separated, in [`Scope::ALL`] order (as stored).
    pub fn to_text(self) -> String {
        self.names().collect::<Vec<_>>().join(" ")
    }

    /// The names, in [`Scope::ALL`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.has(*s))
            .map(Scope::as_str)
    }

    /// Parses space-separated names (as stored); `Err` names the first unknown one.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        text.split_whitespace()
            .map(|n| Scope::parse(n).ok_or_else(|| n.to_owned()))
            .collect()
    }

    fn bit(scope: Scope) -> u32 {
        1 << Scope::ALL.iter().position(|s| *s == scope).unwrap_or(31)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | Self::bit(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_text() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        let set: Scopes = [Scope::Locks, Scope::Admin].into_iter().collect();
        assert_eq!(set.to_text(), "locks admin");
        assert_eq!(Scopes::parse_text("admin  locks"), Ok(set));
        assert!(set.has(Scope::Locks) && !set.has(Scope::Inventory));
        assert_eq!(Scopes::parse_text("locks root"), Err("root".into()));
        assert_eq!(Scopes::all().names().count(), Scope::ALL.len());
    }
}
