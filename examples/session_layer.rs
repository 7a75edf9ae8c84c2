//! How a web service uses Warden sessions in-process: an axum middleware that reads the
//! `sid` cookie, asks Warden (touching the session, so activity slides its idle expiry), and
//! hands the session to the handler — or answers 401. Logging in creates a session; logging
//! out revokes it, and a later request with the old cookie is refused, whatever it carries.
//!
//! Run: `cargo run --example session_layer` (embedded SQLite; set `WARDEN_REDIS_URL` for
//! Redis), then `curl -c jar -XPOST localhost:3000/login?user=ana`,
//! `curl -b jar localhost:3000/me`, `curl -b jar -XPOST localhost:3000/logout`.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use warden::session::{CreateRequest, SessionCreated, SessionRead};
use warden::store::session::SessionRow;

type App = Arc<warden::service::Warden>;

/// The tenant this service's sessions live in.
const TENANT: &str = "default";

fn cookie(req: &Request, name: &str) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The middleware: a live session or 401. A store that cannot answer is a 503, never a guess.
async fn require_session(State(w): State<App>, mut req: Request, next: Next) -> Response {
    let Some(sid) = cookie(&req, "sid") else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match w.sessions.get(TENANT, &sid, true).await {
        Ok((SessionRead::Active(row), _)) => {
            req.extensions_mut().insert(row);
            req.extensions_mut().insert(SessionId(sid));
            next.run(req).await
        }
        Ok(_) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

#[derive(Clone)]
struct SessionId(String);

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(State(w): State<App>, Query(q): Query<Login>) -> Response {
    let req = CreateRequest {
        tenant: TENANT.into(),
        principal: q.user.clone(),
        data: serde_json::json!({ "user": q.user }).to_string(),
        idle_ttl_ms: 30 * 60_000,
        absolute_ttl_ms: 12 * 3_600_000,
        limit: Some((5, warden::store::session::OnLimit::EvictOldest)),
    };
    match w.sessions.create(&req).await {
        Ok((SessionCreated::Created(id, ..), _)) => {
            let set = format!("sid={id}; HttpOnly; Secure; SameSite=Lax; Path=/");
            ([(header::SET_COOKIE, set)], "logged in").into_response()
        }
        Ok(_) => StatusCode::CONFLICT.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn me(Extension(row): Extension<SessionRow>) -> String {
    row.data
}

async fn logout(State(w): State<App>, Extension(SessionId(sid)): Extension<SessionId>) -> Response {
    match w.sessions.revoke(TENANT, &sid).await {
        Ok(_) => "logged out".into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = warden::config::Flags {
        config: "warden.toml".into(),
        ..Default::default()
    };
    let config = flags.resolve()?;
    let warden: App = Arc::new(warden::service::Warden::start(&config).await?);
    let private = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(
            warden.clone(),
            require_session,
        ));
    let app = Router::new()
        .route("/login", post(login))
        .merge(private)
        .with_state(warden);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
