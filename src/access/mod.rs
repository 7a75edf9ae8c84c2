//! Deny by default (G9): every call but health, readiness and the OpenAPI document is made
//! with a token, and a token acts only within its tenant and its scopes. A token is checked
//! against the SHA-256 of its secret kept in SQL; a checked token is kept here for at most one
//! tier lease, so a revocation reaches every instance within one tier lease. Secrets are shown
//! once, at creation, and never stored or logged.

mod outcome;
pub mod scope;
mod secret;

pub use outcome::{Created, Listed, Revoked};
pub use scope::{Scope, Scopes};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::audit::Audit;
use crate::runtime::clock::now_ms;
use crate::tier::{Blocked, Tier};
use secret::Presented;

pub use crate::key::DEFAULT_TENANT;
/// How often a token's last use is written, at most.
const LAST_USED_EVERY_MS: i64 = 60_000;
/// Unknown token ids remembered (each for one tier lease) so a flood of made-up tokens does
/// not reach the database; past this many the memory starts over.
const UNKNOWN_REMEMBERED: usize = 10_000;

pub use crate::config::AuthMode;
pub use crate::store::tokens::StoredToken;

/// Who is calling: a token's identity, or the local caller of protected mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's public id (`None` in protected mode).
    pub token_id: Option<String>,
    /// The token's name: the actor recorded for audited actions.
    pub name: String,
    /// The tenant whose objects it acts on.
    pub tenant: String,
    /// What it may do.
    pub scopes: Scopes,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer wdn_<id>_<secret>`.
    Malformed,
    /// No token with this id and secret.
    Unknown,
    /// The token was revoked.
    Revoked,
    /// The token expired.
    Expired,
    /// The token lacks the scope the call needs.
    Forbidden(Scope),
    /// The call acts on state every tenant shares (the guard, the audit chain): it needs a
    /// token of the operators' tenant, or `admin`.
    NotOperator(Scope),
}

impl Denied {
    /// The stable code: `unauthenticated` (401) or `forbidden` (403).
    pub fn code(self) -> &'static str {
        match self {
            Self::Forbidden(_) | Self::NotOperator(_) => "forbidden",
            _ => "unauthenticated",
        }
    }

    /// Why, for the problem's detail (never the token itself).
    pub fn detail(self) -> String {
        match self {
            Self::Missing => "this call needs `Authorization: Bearer <token>`".into(),
            Self::Malformed => "the Authorization header is not `Bearer wdn_<id>_<secret>`".into(),
            Self::Unknown => "no such token".into(),
            Self::Revoked => "the token was revoked".into(),
            Self::Expired => "the token expired".into(),
            Self::Forbidden(s) => format!("this call needs scope `{}`", s.as_str()),
            Self::NotOperator(s) => format!(
                "this call acts on what every tenant shares: it needs scope `{}` on a token of \
                 tenant `{DEFAULT_TENANT}`, or scope `admin`",
                s.as_str()
            ),
        }
    }
}

/// Longest token lifetime, ms (10 years).
pub const MAX_TOKEN_TTL_MS: i64 = 10 * 365 * 86_400_000;
/// Most scopes named for one token.
pub const MAX_SCOPES: usize = 16;
/// Longest token name, bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Why a new token's request was refused: the field, a stable code, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The field at fault.
    pub field: &'static str,
    /// Stable code: `invalid_name`, `invalid_tenant`, `invalid_scope` or `out_of_range`.
    pub code: &'static str,
    /// What is allowed.
    pub allowed: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.allowed)
    }
}

/// A new token's request.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Name (the actor of its audited actions).
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// Scopes.
    pub scopes: Scopes,
    /// Lifetime, ms; `None` for no expiry.
    pub ttl_ms: Option<i64>,
}

impl NewToken {
    /// Checks a new token's request, the same for the HTTP API and the command line: a name of
    /// 1–128 bytes without control characters, a tenant name, 1–16 known scopes, and a
    /// lifetime of 1 ms to 10 years if any.
    pub fn new(
        name: String,
        tenant: String,
        scope_names: &[String],
        ttl_ms: Option<i64>,
    ) -> Result<Self, Refused> {
        let refused = |field, code, allowed: &str| Refused {
            field,
            code,
            allowed: allowed.to_owned(),
        };
        if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
            let detail = "1–128 bytes of UTF-8 without control characters";
            return Err(refused("name", "invalid_name", detail));
        }
        if !valid_tenant(&tenant) {
            let detail = "1–63 of a-z 0-9 _ -, starting with a letter or digit";
            return Err(refused("tenant", "invalid_tenant", detail));
        }
        if scope_names.is_empty() || scope_names.len() > MAX_SCOPES {
            return Err(refused("scopes", "out_of_range", "1..=16 names"));
        }
        let scopes = Scopes::parse_text(&scope_names.join(" ")).map_err(|unknown| {
            refused(
                "scopes",
                "invalid_scope",
                &format!("no scope named {unknown:?}"),
            )
        })?;
        if ttl_ms.is_some_and(|t| !(1..=MAX_TOKEN_TTL_MS).contains(&t)) {
            return Err(refused("ttl_ms", "out_of_range", "1..=315360000000 ms"));
        }
        Ok(Self {
            name,
            tenant,
            scopes,
            ttl_ms,
        })
    }
}

/// A token checked recently.
#[derive(Clone)]
struct Checked {
    stored: Arc<StoredToken>,
    principal: Arc<Principal>,
    at: Instant,
}

/// The access service.
pub struct Access {
    tier: Arc<Tier>,
    mode: AuthMode,
    /// How long a checked token is trusted without rereading it: one tier lease.
    recheck: Duration,
    checked: RwLock<HashMap<String, Checked>>,
    /// Ids no token has, as of when they were looked up.
    unknown: Mutex<HashMap<String, Instant>>,
    /// Whether a token was ever created (once true, for good).
    tokens_exist: AtomicBool,
    /// When `tokens_exist` is next read while false, epoch ms (0: at once): one atomic on the
    /// protected-mode path, no lock.
    existence_due: AtomicI64,
}

impl Access {
    /// The access service over `tier` in `mode`, trusting a checked token for `recheck`.
    pub async fn start(tier: Arc<Tier>, mode: AuthMode, recheck: Duration) -> Arc<Self> {
        let access = Arc::new(Self {
            tier,
            mode,
            recheck,
            checked: RwLock::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            tokens_exist: AtomicBool::new(false),
            existence_due: AtomicI64::new(0),
        });
        if mode == AuthMode::Protected && !access.tokens_exist().await {
            tracing::warn!(
                "protected mode: no token exists yet, so requests from loopback are served as \
                 tenant `default` with every scope; create a token to end this"
            );
        }
        access
    }

    /// The caller of a request carrying `authorization` (the header's value), from loopback or
    /// not. A store failure while checking an unknown token blocks the request.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        loopback: bool,
    ) -> Result<Result<Arc<Principal>, Denied>, Blocked> {
        let Some(header) = authorization else {
            let local = self.mode == AuthMode::Protected && loopback && !self.tokens_exist().await;
            return Ok(if local {
                Ok(local_principal())
            } else {
                Err(Denied::Missing)
            });
        };
        let Some(presented) = bearer(header).and_then(Presented::parse) else {
            return Ok(Err(Denied::Malformed));
        };
        let Some(checked) = self.checked(presented.id).await? else {
            return Ok(Err(Denied::Unknown));
        };
        let t = &checked.stored;
        if !presented.matches(&t.secret_hash) {
            return Ok(Err(Denied::Unknown));
        }
        let now = self.tier.now();
        if t.revoked_at != 0 {
            return Ok(Err(Denied::Revoked));
        }
        if t.expires_at != 0 && t.expires_at <= now {
            return Ok(Err(Denied::Expired));
        }
        if now - t.last_used_at >= LAST_USED_EVERY_MS {
            self.note_use(&checked, now);
        }
        Ok(Ok(checked.principal))
    }

    /// The token `id` as checked within one tier lease, or read again.
    async fn checked(&self, id: &str) -> Result<Option<Checked>, Blocked> {
        let cached = self.read_cache().get(id).cloned();
        if let Some(c) = cached.filter(|c| c.at.elapsed() < self.recheck) {
            return Ok(Some(c));
        }
        let fresh = |at: &Instant| at.elapsed() < self.recheck;
        if self.unknown_ids().get(id).is_some_and(fresh) {
            return Ok(None);
        }
        let sql = self.tier.durable();
        let Some(stored) = self.tier.on_durable(sql.token(id)).await? else {
            let mut unknown = self.unknown_ids();
            if unknown.len() >= UNKNOWN_REMEMBERED {
                unknown.clear();
            }
            unknown.insert(id.to_owned(), Instant::now());
            return Ok(None);
        };
        let scopes = Scopes::parse_text(&stored.scopes).unwrap_or_else(|unknown| {
            tracing::error!(token_id = %stored.id, unknown, "stored token names an unknown scope; it gets none");
            Scopes::default()
        });
        let principal = Arc::new(Principal {
            token_id: Some(stored.id.clone()),
            name: stored.name.clone(),
            tenant: stored.tenant.clone(),
            scopes,
        });
        let c = Checked {
            stored: Arc::new(stored),
            principal,
            at: Instant::now(),
        };
        self.write_cache().insert(id.to_owned(), c.clone());
        Ok(Some(c))
    }

    /// Writes a token's last use off the request's path (best effort).
    fn note_use(&self, checked: &Checked, now: i64) {
        let mut fresh = (*checked.stored).clone();
        fresh.last_used_at = now;
        let c = Checked {
            stored: Arc::new(fresh),
            ..checked.clone()
        };
        self.write_cache().insert(c.stored.id.clone(), c);
        let sql = self.tier.durable().clone();
        let id = checked.stored.id.clone();
        tokio::spawn(async move {
            if let Err(e) = sql.token_used(&id, now).await {
                tracing::warn!(error = %e, token_id = %id, "last use of a token not recorded");
            }
        });
    }

    /// Whether a token was ever created, reread at most once per tier lease while not.
    async fn tokens_exist(&self) -> bool {
        if self.tokens_exist.load(Ordering::Relaxed) {
            return true;
        }
        let now = now_ms();
        let due_at = self.existence_due.load(Ordering::Relaxed);
        let next = now + self.recheck.as_millis() as i64;
        let due = now >= due_at
            && self
                .existence_due
                .compare_exchange(due_at, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            // An unreadable database leaves the answer as it was: nothing can be granted
            // without the database anyway (the tier lease lapses), and the domain answers
            // those requests with a safe block rather than a misleading 401.
            if let Ok(true) = self.tier.on_durable(self.tier.durable().any_token()).await {
                self.tokens_exist.store(true, Ordering::Relaxed);
            }
        }
        self.tokens_exist.load(Ordering::Relaxed)
    }

    /// Creates a token; its secret is in the answer and nowhere else.
    pub async fn create(&self, new: NewToken, actor: &str) -> Result<Created, Blocked> {
        let minted = secret::mint().map_err(|e| {
            tracing::error!(error = %e, "no randomness for a token secret");
            Blocked::DatabaseUnavailable
        })?;
        let now = self.tier.now();
        let stored = StoredToken {
            id: minted.id,
            name: new.name,
            tenant: new.tenant,
            scopes: new.scopes.to_text(),
            secret_hash: minted.hash,
            created_at: now,
            expires_at: new.ttl_ms.map_or(0, |ttl| now + ttl),
            revoked_at: 0,
            last_used_at: 0,
        };
        let sql = self.tier.durable();
        let audit = Audit::new(
            now,
            actor,
            "token.create",
            &stored.id,
            format!(
                "token {:?} for tenant {:?} with scopes {:?}",
                stored.name, stored.tenant, stored.scopes
            ),
        );
        self.tier
            .on_durable(sql.insert_token(&stored, &audit))
            .await?;
        self.tokens_exist.store(true, Ordering::Relaxed);
        self.unknown_ids().remove(&stored.id);
        tracing::warn!(token_id = %stored.id, name = %stored.name, tenant = %stored.tenant,
            scopes = %stored.scopes, "token created");
        Ok(Created {
            text: minted.text,
            token: stored,
        })
    }

    /// Every token (without secrets).
    pub async fn list(&self) -> Result<Listed, Blocked> {
        let sql = self.tier.durable();
        Ok(Listed(self.tier.on_durable(sql.tokens()).await?))
    }

    /// Revokes token `id`: refused here at once, and on every other instance within one tier
    /// lease.
    pub async fn revoke(&self, id: &str, actor: &str) -> Result<Revoked, Blocked> {
        let sql = self.tier.durable();
        let now = self.tier.now();
        let audit = Audit::new(now, actor, "token.revoke", id, String::new());
        let revoked = sql.revoke_token(id, now, &audit);
        let Some(token) = self.tier.on_durable(revoked).await? else {
            return Ok(Revoked::Unknown);
        };
        self.write_cache().remove(id);
        tracing::warn!(token_id = %token.id, name = %token.name, "token revoked");
        Ok(Revoked::Revoked(token))
    }

    fn unknown_ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.unknown.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Checked>> {
        self.checked.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Checked>> {
        self.checked.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The caller of protected mode: tenant `default`, every scope.
pub fn local_principal() -> Arc<Principal> {
    Arc::new(Principal {
        token_id: None,
        name: "local".into(),
        tenant: DEFAULT_TENANT.into(),
        scopes: Scopes::all(),
    })
}

/// The credentials of `Bearer <credentials>` (the scheme in any case).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `name` is a tenant name: 1–63 of `a-z`, `0-9`, `_`, `-`, starting with a letter or
/// digit.
pub fn valid_tenant(name: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    (1..=63).contains(&name.len())
        && name.bytes().all(ok)
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_and_tenant_names() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        for good in ["default", "clinic-7", "a", "shop_eu"] {
            assert!(valid_tenant(good), "{good}");
        }
        for bad in ["", "Clinic", "-x", "a b", "a:b", &"t".repeat(64), "ção"] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }

    #[test]
    fn a_new_token_is_checked_field_by_field() {
        let ok = |scopes: &[&str]| scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let new = |name: &str, tenant: &str, scopes: &[&str], ttl| {
            NewToken::new(name.into(), tenant.into(), &ok(scopes), ttl).map_err(|r| r.code)
        };
        assert!(new("ops", "default", &["admin", "locks"], Some(1)).is_ok());
        assert_eq!(
            new("", "default", &["locks"], None).err(),
            Some("invalid_name")
        );
        assert_eq!(
            new(&"n".repeat(129), "default", &["locks"], None).err(),
            Some("invalid_name")
        );
        assert_eq!(
            new("a\nb", "default", &["locks"], None).err(),
            Some("invalid_name")
        );
        assert_eq!(
            new("ops", "Shop", &["locks"], None).err(),
            Some("invalid_tenant")
        );
        assert_eq!(new("ops", "default", &[], None).err(), Some("out_of_range"));
        assert_eq!(
            new("ops", "default", &["root"], None).err(),
            Some("invalid_scope")
        );
        assert_eq!(
            new("ops", "default", &["locks"], Some(0)).err(),
            Some("out_of_range")
        );
    }

    #[test]
    fn unauthenticated_and_forbidden_are_told_apart() {
        assert_eq!(Denied::Revoked.code(), "unauthenticated");
        assert_eq!(Denied::Forbidden(Scope::Inventory).code(), "forbidden");
        assert!(Denied::Forbidden(Scope::Inventory)
            .detail()
            .contains("inventory"));
    }
}
