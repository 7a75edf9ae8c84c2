//! Deny by default at the edge (G9): every route names what it needs in one table — nothing,
//! any valid token, or one scope — and a route missing from the table is refused. A refused
//! request never reaches a handler, so it changes nothing; it is answered 401
//! `unauthenticated` (with `WWW-Authenticate: Bearer`) or 403 `forbidden`, counted by code.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::answer::SafeBlockAnswer;
use super::problem::{ApiError, Problem};
use super::AppState;
use crate::access::{valid_tenant, Denied, Principal, Scope};
use crate::metrics_names as m;
use crate::outcome::Terminal;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health, readiness and the OpenAPI document.
    Public,
    /// Any valid token.
    Authenticated,
    /// A token with this scope.
    Scope(Scope),
    /// A token with this scope acting for the operators' tenant (`default`), or an `admin`
    /// token: state every tenant shares (the guard, the audit chain).
    Operator(Scope),
}

/// What `method` on the route `path` (as routed, `{param}`s unfilled) needs; `None` for a route
/// this table does not know, which is refused.
pub fn need(method: &Method, path: &str) -> Option<Need> {
    let scope = match path {
        "/healthz" | "/readyz" | "/openapi.json" => return Some(Need::Public),
        "/v1/status" => return Some(Need::Authenticated),
        "/metrics" => Scope::Metrics,
        "/v1/tokens" | "/v1/tokens/{id}" => Scope::Admin,
        "/v1/inventory/{sku}" if method == Method::PUT => Scope::Inventory,
        "/v1/inventory/{sku}" | "/v1/inventory/{sku}/reservations" => Scope::Reservations,
        "/v1/review" | "/v1/review/{id}/resolve" => Scope::Review,
        "/v1/dispatch/claim" => Scope::Streams,
        "/v1/guard" | "/v1/guard/enter" | "/v1/guard/recovery-actions" | "/v1/guard/exit" => {
            return Some(Need::Operator(Scope::Guard))
        }
        "/v1/audit" | "/v1/audit/verify" => return Some(Need::Operator(Scope::Audit)),
        "/v1/alerts/alertmanager" => Scope::Incidents,
        p if p.starts_with("/v1/incidents") => Scope::Incidents,
        p if p.starts_with("/v1/locks/")
            || p.starts_with("/v1/fences/")
            || p.starts_with("/v1/semaphores/")
            || p.starts_with("/v1/lock-groups/") =>
        {
            Scope::Locks
        }
        p if p.starts_with("/v1/idempotency/") => Scope::Idempotency,
        p if p.starts_with("/v1/reservations/") => Scope::Reservations,
        p if p.starts_with("/v1/streams/") => Scope::Streams,
        p if p.starts_with("/v1/ratelimit/policies/") => Scope::RateLimitAdmin,
        p if p.starts_with("/v1/kv/") => Scope::Kv,
        p if p.starts_with("/v1/cache/") => Scope::Cache,
        p if p.starts_with("/v1/sessions") || p.starts_with("/v1/principals/") => Scope::Sessions,
        p if p.starts_with("/v1/ratelimit/") => Scope::RateLimit,
        _ => return None,
    };
    Some(Need::Scope(scope))
}

/// The middleware: authenticates, checks the route's scope, and hands the caller to the
/// handler as a request extension.
pub async fn guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    // A cheap clone (the routed path is shared), so the request stays free to change below.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let path = matched.as_ref().map_or("", MatchedPath::as_str);
    let need = need(req.method(), path);
    if need == Some(Need::Public) {
        return next.run(req).await;
    }
    // In-process callers (the router used as a library) have no peer address: they are local.
    let loopback = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_none_or(|c| c.0.ip().is_loopback());
    let header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(v) => Some(v),
            Err(_) => return denied(Denied::Malformed),
        },
    };
    let principal = match app.access.authenticate(header, loopback).await {
        Err(blocked) => {
            tracing::warn!(reason = blocked.reason(), "caller not checked: safe block");
            return SafeBlockAnswer {
                state: blocked.state(),
                reason: blocked.reason(),
                retry_after_ms: blocked.retry_after_ms(),
            }
            .into_response();
        }
        Ok(Err(d)) => return denied(d),
        Ok(Ok(p)) => p,
    };
    let principal = match acting_for(&req, principal) {
        Ok(p) => p,
        Err(Err(bad)) => return bad.into_response(),
        Err(Ok(d)) => return denied(d),
    };
    match need {
        Some(Need::Scope(s)) if !principal.scopes.has(s) => return denied(Denied::Forbidden(s)),
        Some(Need::Operator(s)) if !principal.scopes.has(s) => return denied(Denied::Forbidden(s)),
        Some(Need::Operator(s))
            if principal.tenant != crate::access::DEFAULT_TENANT
                && !principal.scopes.has(Scope::Admin) =>
        {
            return denied(Denied::NotOperator(s))
        }
        None => {
            tracing::error!(%path, "a route names no scope: refused by default");
            return denied(Denied::Forbidden(Scope::Admin));
        }
        _ => {}
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Header by which an `admin` token acts on another tenant's objects.
pub const ACT_AS: &str = "x-warden-tenant";

/// The caller as it acts: an `admin` token may name another tenant with [`ACT_AS`].
/// Refused as a bad header (`Err(Err)`) or for want of `admin` (`Err(Ok)`).
fn acting_for(
    req: &Request,
    caller: Arc<Principal>,
) -> Result<Arc<Principal>, Result<Denied, ApiError>> {
    let Some(raw) = req.headers().get(ACT_AS) else {
        return Ok(caller);
    };
    let tenant = raw
        .to_str()
        .ok()
        .filter(|t| valid_tenant(t))
        .ok_or_else(|| {
            let detail = "X-Warden-Tenant: 1–63 of a-z 0-9 _ -, starting with a letter or digit";
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                "Invalid tenant",
                detail,
            ))
        })?;
    if !caller.scopes.has(Scope::Admin) {
        return Err(Ok(Denied::Forbidden(Scope::Admin)));
    }
    if tenant != caller.tenant {
        tracing::info!(token_id = ?caller.token_id, tenant, "admin acting for another tenant");
    }
    Ok(Arc::new(Principal {
        tenant: tenant.to_owned(),
        ..(*caller).clone()
    }))
}

/// The 401 or 403 answer of `d`, counted and logged (never with the token).
fn denied(d: Denied) -> Response {
    let code = d.code();
    metrics::counter!(m::ACCESS_DENIED, "code" => code).increment(1);
    tracing::info!(code, detail = %d.detail(), "request refused");
    let (status, title) = match d {
        Denied::Forbidden(_) | Denied::NotOperator(_) => (StatusCode::FORBIDDEN, "Forbidden"),
        _ => (StatusCode::UNAUTHORIZED, "Unauthenticated"),
    };
    let body = Problem {
        kind: format!("/problems/{code}"),
        title: title.into(),
        status: status.as_u16(),
        detail: d.detail(),
        code: code.into(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = match d {
            Denied::Missing => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        };
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(challenge),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[test]
    fn every_documented_operation_names_what_it_needs() {
        let doc = super::super::ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ];
            for (method, present) in ops {
                if present {
                    assert!(
                        need(&method, path).is_some(),
                        "{method} {path} names no scope"
                    );
                }
            }
        }
        assert_eq!(
            need(&Method::PUT, "/v1/inventory/{sku}"),
            Some(Need::Scope(Scope::Inventory))
        );
        assert_eq!(
            need(&Method::GET, "/v1/inventory/{sku}"),
            Some(Need::Scope(Scope::Reservations))
        );
        assert_eq!(
            need(&Method::POST, "/v1/review/{id}/resolve"),
            Some(Need::Scope(Scope::Review))
        );
        assert_eq!(
            need(&Method::PUT, "/v1/ratelimit/policies/{policy}"),
            Some(Need::Scope(Scope::RateLimitAdmin))
        );
        assert_eq!(
            need(&Method::POST, "/v1/ratelimit/{policy}/{subject}/check"),
            Some(Need::Scope(Scope::RateLimit))
        );
        assert_eq!(need(&Method::GET, "/v1/new-thing"), None);
    }
}
