//! Inventory and reservation endpoints (DESIGN §4 "Reservations"): validate, call the domain,
//! answer with the terminal state. A reservation sent with an `Idempotency-Key` header runs
//! through the idempotency service: a retry gets the first answer back, byte for byte.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{in_range, owner, Body, PathKey};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::idem::BeginRequest;
use crate::key::{name_of, Key};
use crate::outcome::Terminal;
use crate::reserve::{
    claim_for, ReserveRequest, Reserved, ReservedOnce, Settled, StockRead, TotalSet,
    DEFAULT_TTL_MS, MAX_QUANTITY, MAX_TOTAL, MAX_TTL_MS,
};
use crate::reserve::{HoldState, Stock};
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Header that makes a reservation retry-safe.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `PUT /v1/inventory/{sku}` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TotalBody {
    /// Units for sale, 0..=2^40. Refused (409) below the units held and sold.
    pub total: i64,
}

/// `POST /v1/inventory/{sku}/reservations` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReserveBody {
    /// Buyer (1–512 bytes); one live hold per buyer and SKU.
    pub user_id: String,
    /// Units, 1..=1 000 000.
    pub quantity: i64,
    /// Hold length in ms, 1..=86 400 000 (default 600 000).
    #[serde(default)]
    pub ttl_ms: Option<i64>,
}

/// Stock record.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct StockAnswer {
    /// `stock`.
    pub state: String,
    /// `primary` or `fallback`.
    pub mode: String,
    /// SKU.
    pub sku: String,
    /// Units for sale.
    pub total: i64,
    /// Units that can still be held.
    pub available: i64,
    /// Units in live holds.
    pub reserved: i64,
    /// Units sold.
    pub confirmed: i64,
}

/// Answer of the reservation endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ReservationAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// The hold (`reserved`), or the user's live hold (`already_reserved`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    /// Confirmation deadline, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Units still available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
}

/// The inventory and reservation routes: setting a total needs scope `inventory`, everything
/// else `reservations`.
pub(super) fn routes() -> Vec<Routes> {
    use crate::reserve::{ReservedOnce, StockRead, TotalSet};
    let (stock, held) = ("StockAnswer", "ReservationAnswer");
    vec![
        Routes::new("reserve", Need::Scope(Scope::Inventory)).answer(
            Answers::new("inventory_set", TotalSet::STATES, stock),
            routes!(set_total),
        ),
        Routes::new("reserve", Need::Scope(Scope::Reservations))
            .answer(
                Answers::new("inventory_get", StockRead::STATES, stock),
                routes!(read),
            )
            .answer(
                Answers::new("reserve", ReservedOnce::STATES, held),
                routes!(reserve),
            )
            .answer(
                Answers::new("reservation_confirm", Settled::CONFIRM_STATES, held),
                routes!(confirm),
            )
            .answer(
                Answers::new("reservation_release", Settled::RELEASE_STATES, held),
                routes!(release),
            ),
    ]
}

/// The stock record of `sku`; its state is `stock` in every outcome that answers one.
fn stock_answer(sku: &str, s: Stock, mode: Mode) -> StockAnswer {
    StockAnswer {
        state: StockRead::Found(s).state().into(),
        mode: mode.as_str().into(),
        sku: name_of(sku).into(),
        total: s.total,
        available: s.available(),
        reserved: s.reserved,
        confirmed: s.confirmed,
    }
}

/// Sets the total stock of a SKU (creating it).
#[utoipa::path(put, path = "/v1/inventory/{sku}", request_body = TotalBody,
    params(("sku" = String, Path, description = "SKU")))]
pub async fn set_total(
    State(app): State<AppState>,
    PathKey(sku): PathKey,
    Body(body): Body<TotalBody>,
) -> Result<Response, ApiError> {
    let total = in_range("total", body.total, 0, MAX_TOTAL)?;
    let k = sku.as_str();
    let (set, mode) = match app.reservations.set_total(&sku, total).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    answered(k, set.state(), mode.as_str());
    Ok(match set {
        TotalSet::Set(s) => Json(stock_answer(k, s, mode)).into_response(),
        TotalSet::BelowHeld(s) => {
            let detail = format!(
                "total {total} is below the {} units held and {} sold",
                s.reserved, s.confirmed
            );
            state_problem(
                status_of(&set),
                set.state(),
                "Total below held",
                detail,
                mode,
            )
        }
    })
}

/// Reads the stock of a SKU.
#[utoipa::path(get, path = "/v1/inventory/{sku}",
    params(("sku" = String, Path, description = "SKU")))]
pub async fn read(State(app): State<AppState>, PathKey(sku): PathKey) -> Response {
    let k = sku.as_str();
    let (read, mode) = match app.reservations.stock(&sku).await {
        Ok((stock, mode)) => (StockRead::from(stock), mode),
        Err(b) => return blocked(k, b),
    };
    answered(k, read.state(), mode.as_str());
    match read {
        StockRead::Found(s) => Json(stock_answer(k, s, mode)).into_response(),
        StockRead::Unknown => state_problem(
            status_of(&read),
            read.state(),
            "Unknown SKU",
            "no stock was ever set for this SKU",
            mode,
        ),
    }
}

/// The status and body of a reservation's answer (what an `Idempotency-Key` replays).
fn reservation_answer(reserved: &Reserved, mode: Mode) -> (StatusCode, ReservationAnswer) {
    let mut a = ReservationAnswer {
        state: reserved.state(),
        mode: Some(mode.as_str()),
        ..ReservationAnswer::default()
    };
    match reserved {
        Reserved::Reserved {
            id,
            expires_at,
            remaining,
        } => {
            a.reservation_id = Some(name_of(id).to_owned());
            a.expires_at = Some(rfc3339(*expires_at));
            a.remaining = Some(*remaining);
        }
        Reserved::OutOfStock { remaining } => a.remaining = Some(*remaining),
        Reserved::AlreadyReserved { id } => a.reservation_id = Some(name_of(id).to_owned()),
    }
    (status_of(reserved), a)
}

/// The claim of a request sent with an `Idempotency-Key`, if it was.
fn idempotency_key(
    headers: &HeaderMap,
    req: &ReserveRequest,
) -> Result<Option<BeginRequest>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = |detail: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key",
            detail,
        )
    };
    let value = raw.to_str().map_err(|e| bad(e.to_string()))?;
    claim_for(value, req)
        .map(Some)
        .map_err(|e| bad(format!("Idempotency-Key: {e}")))
}

/// Holds units of a SKU for a user.
#[utoipa::path(post, path = "/v1/inventory/{sku}/reservations", request_body = ReserveBody,
    params(("sku" = String, Path, description = "SKU"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and request gets the first answer back, byte for byte")))]
pub async fn reserve(
    State(app): State<AppState>,
    PathKey(sku): PathKey,
    headers: HeaderMap,
    Body(body): Body<ReserveBody>,
) -> Result<Response, ApiError> {
    let user_id = owner(&body.user_id).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_user",
            "Invalid user",
            "user_id: 1–512 bytes of UTF-8 without control characters",
        )
    })?;
    let req = ReserveRequest {
        user_id,
        quantity: in_range("quantity", body.quantity, 1, MAX_QUANTITY)?,
        ttl_ms: in_range(
            "ttl_ms",
            body.ttl_ms.unwrap_or(DEFAULT_TTL_MS),
            1,
            MAX_TTL_MS,
        )?,
        sku,
    };
    let claim = idempotency_key(&headers, &req)?;
    let k = req.sku.as_str();
    let Some(claim) = claim else {
        let result = app.reservations.reserve(&req).await;
        return Ok(match result {
            Ok((reserved, mode)) => {
                let (status, a) = reservation_answer(&reserved, mode);
                answered(k, a.state, mode.as_str());
                (status, Json(a)).into_response()
            }
            Err(b) => blocked(k, b),
        });
    };
    let render = |reserved: &Reserved, mode: Mode| {
        serde_json::to_string(&reservation_answer(reserved, mode).1).unwrap_or_default()
    };
    let once = app
        .reservations
        .reserve_once(&app.idempotency, &claim, &req, render)
        .await;
    let (once, mode) = match once {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    let (status, state) = (status_of(&once), once.state());
    // A replay answers in no mode of its own: nothing was decided now.
    let answered_in = match once {
        ReservedOnce::Replayed(_) => "none",
        _ => mode.as_str(),
    };
    answered(k, state, answered_in);
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    Ok(match once {
        ReservedOnce::Ran(_, body) => (status, json, body).into_response(),
        ReservedOnce::Replayed(r) => {
            (status, json, String::from(Box::<str>::from(r.body))).into_response()
        }
        ReservedOnce::InProgress { retry_after_ms } => {
            let body = serde_json::json!({"state": state, "retry_after_ms": retry_after_ms});
            (status, Json(body)).into_response()
        }
        ReservedOnce::FingerprintMismatch => {
            let detail = "this Idempotency-Key was used with a different reservation request";
            state_problem(status, state, "Fingerprint mismatch", detail, mode)
        }
    })
}

/// Moves reservation `id` to `to` and answers with the terminal state.
async fn settle(app: &AppState, id: &Key, to: HoldState) -> Response {
    let id = id.as_str();
    let (settled, mode) = match app.reservations.settle(id, to).await {
        Ok(r) => r,
        Err(b) => return blocked(id, b),
    };
    let (status, state) = (status_of(&settled), settled.state());
    let title = match settled {
        Settled::Done(_) => "",
        Settled::Expired => "Reservation expired",
        Settled::Conflict(HoldState::Confirmed) => "Already confirmed",
        Settled::Conflict(_) => "Already released",
        Settled::Missing => "Unknown reservation",
    };
    answered(id, state, mode.as_str());
    if status.is_success() {
        let a = ReservationAnswer {
            state,
            mode: Some(mode.as_str()),
            reservation_id: Some(name_of(id).to_owned()),
            ..ReservationAnswer::default()
        };
        return (status, Json(a)).into_response();
    }
    state_problem(
        status,
        state,
        title,
        format!("reservation {id}: {state}"),
        mode,
    )
}

/// Confirms (pays for) a reservation.
#[utoipa::path(post, path = "/v1/reservations/{id}/confirm",
    params(("id" = String, Path, description = "reservation id")))]
pub async fn confirm(State(app): State<AppState>, PathKey(id): PathKey) -> Response {
    settle(&app, &id, HoldState::Confirmed).await
}

/// Releases a reservation: its units return to stock.
#[utoipa::path(post, path = "/v1/reservations/{id}/release",
    params(("id" = String, Path, description = "reservation id")))]
pub async fn release(State(app): State<AppState>, PathKey(id): PathKey) -> Response {
    settle(&app, &id, HoldState::Released).await
}
