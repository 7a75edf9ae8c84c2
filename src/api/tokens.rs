//! Token endpoints (scope `admin`): create (the secret is in that answer only), list (never a
//! secret) and revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{Body, Caller};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::access::StoredToken;
use crate::access::{NewToken, Revoked, Scope, Scopes};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};

/// The codes of a refused token field (422), for the OpenAPI document.
pub(super) const FIELD_CODES: [&str; 3] = ["invalid_name", "invalid_tenant", "invalid_scope"];

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenBody {
    /// Who the token is (1–128 bytes): the actor recorded for its audited actions.
    pub name: String,
    /// Its tenant: 1–63 of `a-z 0-9 _ -`, starting with a letter or digit.
    pub tenant: String,
    /// Scope names (1–16): `locks`, `idempotency`, `streams`, `review`, `reservations`,
    /// `inventory`, `ratelimit`, `ratelimit.admin`, `sessions`, `kv`, `cache`, `incidents`,
    /// `guard`, `audit`, `metrics`, `admin`.
    pub scopes: Vec<String>,
    /// Lifetime in ms (1..=10 years); absent for none.
    #[serde(default)]
    pub ttl_ms: Option<i64>,
}

/// One token, as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Public id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Expiry, RFC 3339, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Revocation, RFC 3339, if revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Last use, RFC 3339 (to the minute), if ever used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// Answer of a token's creation or revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// `token_created` or `token_revoked`.
    pub state: &'static str,
    /// `token_created` only: `wdn_<id>_<secret>`, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token concerned.
    #[serde(flatten)]
    pub view: TokenView,
}

/// Answer of the token list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// `tokens`.
    pub state: &'static str,
    /// Every token.
    pub tokens: Vec<TokenView>,
}

/// The token routes (scope `admin`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::access::{Created, Listed};
    vec![Routes::new("tokens", Need::Scope(Scope::Admin))
        .answer(
            Answers::new("token_create", Created::STATES, "TokenAnswer"),
            routes!(create),
        )
        .answer(
            Answers::new("token_list", Listed::STATES, "TokenList"),
            routes!(list),
        )
        .answer(
            Answers::new("token_revoke", Revoked::STATES, "TokenAnswer"),
            routes!(revoke),
        )]
}

fn view(t: StoredToken) -> TokenView {
    let time = |ms: i64| (ms != 0).then(|| rfc3339(ms));
    TokenView {
        scopes: Scopes::parse_text(&t.scopes)
            .map(|s| s.names().map(str::to_owned).collect())
            .unwrap_or_default(),
        created_at: rfc3339(t.created_at),
        expires_at: time(t.expires_at),
        revoked_at: time(t.revoked_at),
        last_used_at: time(t.last_used_at),
        id: t.id,
        name: t.name,
        tenant: t.tenant,
    }
}

/// Creates a token.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenBody)]
pub async fn create(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<TokenBody>,
) -> Result<Response, ApiError> {
    let new = NewToken::new(body.name, body.tenant, &body.scopes, body.ttl_ms).map_err(|r| {
        let title = match r.code {
            "out_of_range" => "Field out of range",
            "invalid_name" => "Invalid name",
            "invalid_tenant" => "Invalid tenant",
            _ => "Invalid scope",
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            r.code,
            title,
            r.to_string(),
        )
    })?;
    let created = match app.access.create(new, &caller.name).await {
        Ok(c) => c,
        Err(b) => return Ok(blocked("tokens", b)),
    };
    answered(&created.token.id, created.state(), "none");
    let answer = TokenAnswer {
        state: created.state(),
        token: Some(created.text.clone()),
        view: view(created.token.clone()),
    };
    Ok((status_of(&created), Json(answer)).into_response())
}

/// Lists every token (never a secret).
#[utoipa::path(get, path = "/v1/tokens")]
pub async fn list(State(app): State<AppState>) -> Response {
    let listed = match app.access.list().await {
        Ok(l) => l,
        Err(b) => return blocked("tokens", b),
    };
    let (status, state) = (status_of(&listed), listed.state());
    answered("tokens", state, "none");
    let answer = TokenList {
        state,
        tokens: listed.0.into_iter().map(view).collect(),
    };
    (status, Json(answer)).into_response()
}

/// Revokes a token: refused at once here, and on every instance within one tier lease.
#[utoipa::path(delete, path = "/v1/tokens/{id}",
    params(("id" = String, Path, description = "the token's public id")))]
pub async fn revoke(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    let revoked = match app.access.revoke(&id, &caller.name).await {
        Ok(r) => r,
        Err(b) => return blocked("tokens", b),
    };
    let (status, state) = (status_of(&revoked), revoked.state());
    answered(&id, state, "none");
    match revoked {
        Revoked::Revoked(t) => {
            let answer = TokenAnswer {
                state,
                token: None,
                view: view(t),
            };
            (status, Json(answer)).into_response()
        }
        Revoked::Unknown => state_problem(
            status,
            state,
            "Unknown token",
            "no token with this id",
            Mode::Durable,
        ),
    }
}
