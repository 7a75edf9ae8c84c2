//! Deny by default at the edge (G9): every route is declared with what it needs (`routes.rs`)
//! — nothing, any valid token, or one scope — and only a declared route is served. A refused
//! request never reaches a handler, so it changes nothing; it is answered 401
//! `unauthenticated` (with `WWW-Authenticate: Bearer`) or 403 `forbidden`, counted by code.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
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

/// The middleware: authenticates, checks the route's scope, and hands the caller to the
/// handler as a request extension.
pub async fn guard(
    State((app, need)): State<(AppState, Need)>,
    mut req: Request,
    next: Next,
) -> Response {
    if need == Need::Public {
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
        Need::Scope(s) | Need::Operator(s) if !principal.scopes.has(s) => {
            return denied(Denied::Forbidden(s))
        }
        Need::Operator(s)
            if principal.tenant != crate::access::DEFAULT_TENANT
                && !principal.scopes.has(Scope::Admin) =>
        {
            return denied(Denied::NotOperator(s))
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
