//! While an instance starts (waiting for its database, migrating, arming Redis) its port
//! answers at once instead of leaving callers in the listen backlog: `/healthz` 200 (the
//! process is alive), `/openapi.json`, and 503 `starting` with `Retry-After` for everything
//! else, `/readyz` included. Nothing here reads a store or a token, and nothing it answers
//! changes state. Once the instance's router is set, every request goes to it: one server
//! on one listener throughout, so no connection is closed at the switch.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::{Bytes, HttpBody};
use axum::http::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::routing::get;
use axum::BoxError;
use axum::Router;
use tower::Service;

use super::ops;
use super::problem::state_problem_in;
use crate::metrics_names as m;

/// The code (and terminal state) of a request refused because the instance is still starting.
pub const STARTING: &str = "starting";

/// The routes served until the instance has started.
fn router() -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/openapi.json", get(ops::openapi))
        .fallback(starting)
}

/// 503 `starting`: retry in a second.
async fn starting() -> Response {
    metrics::counter!(m::ANSWERS, "op" => "startup", "state" => STARTING).increment(1);
    let mut answer = state_problem_in(
        StatusCode::SERVICE_UNAVAILABLE,
        STARTING,
        "Starting",
        "this instance is still starting (its database may not be up yet); retry shortly",
        "none",
    );
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// The listener's service: the start-up answers until the instance's router is set, then that
/// router (one atomic load per request more).
#[derive(Clone)]
pub struct Switch {
    started: Arc<OnceLock<Router>>,
    starting: Router,
}

impl Switch {
    /// Answers as [`router`] until `started` is set.
    pub fn new(started: Arc<OnceLock<Router>>) -> Self {
        Self {
            started,
            starting: router(),
        }
    }
}

impl<B> Service<Request<B>> for Switch
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.started.get() {
            Some(app) => app.clone().call(req),
            None => self.starting.call(req),
        }
    }
}
