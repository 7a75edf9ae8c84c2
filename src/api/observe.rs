//! Request observation: every request runs in a span carrying its `correlation_id` (read from
//! `X-Correlation-Id` or generated, and echoed); every answer is counted by operation and
//! terminal state and timed by operation and mode.

use std::time::Instant;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::guard::monitor::{self, Monitor};
use crate::runtime::correlation::{new_id, scope, trace_id, Correlation};

/// Header carrying the correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The W3C trace context header; its trace id is the correlation id when no
/// `X-Correlation-Id` is sent.
pub const TRACEPARENT_HEADER: &str = "traceparent";

fn valid_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// `path` as it may be logged: a session id in it (a bearer secret) becomes its reference,
/// the SHA-256 that answers and logs name sessions by.
fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(crate::session::ID_PREFIX) {
        return std::borrow::Cow::Borrowed(path);
    }
    let parts: Vec<String> = path
        .split('/')
        .map(|seg| {
            if seg.starts_with(crate::session::ID_PREFIX) {
                format!("ref:{}", crate::session::id_hash(seg))
            } else {
                seg.to_owned()
            }
        })
        .collect();
    std::borrow::Cow::Owned(parts.join("/"))
}

/// Middleware: correlation id span, echo header, access log at debug level.
pub async fn correlate(State(monitor): State<Arc<Monitor>>, req: Request, next: Next) -> Response {
    let traceparent = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| trace_id(v).is_some())
        .map(str::to_owned)
        .unwrap_or_default();
    let id = req
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(valid_id)
        .or_else(|| trace_id(&traceparent).map(str::to_owned))
        .unwrap_or_else(new_id);
    // `&str` values: the span's fields are written as they are, with no formatting pass. At
    // error level, so no filter that keeps a line drops the span naming its correlation id.
    let path = loggable(req.uri().path());
    let span = tracing::error_span!(
        "request",
        correlation_id = id.as_str(),
        method = req.method().as_str(),
        path = path.as_ref()
    );
    let started = Instant::now();
    let correlation = Correlation {
        id: id.clone(),
        traceparent,
    };
    let served = next.run(req).instrument(span.clone());
    let mut response = scope(correlation, monitor::scope(monitor, served)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "http"
        )
    });
    response
}

/// The metric handles of answers, registered once per label set and kept per thread: an
/// answer then costs a lookup by the labels' addresses, not a key built and hashed into the
/// recorder's registry. The recorder is installed before the router serves (`state`), so a
/// kept handle is the live recorder's.
mod handles {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use crate::metrics_names as m;

    /// Two `&'static str` by address and length (a literal may share its bytes with a longer
    /// one): labels are literals, so equal text at two addresses only keeps two handles of
    /// one series.
    type Labels = [(usize, usize); 2];

    fn labels(a: &'static str, b: &'static str) -> Labels {
        [
            (a.as_ptr() as usize, a.len()),
            (b.as_ptr() as usize, b.len()),
        ]
    }

    thread_local! {
        static ANSWERS: RefCell<HashMap<Labels, metrics::Counter>> = RefCell::default();
        static SECONDS: RefCell<HashMap<Labels, metrics::Histogram>> = RefCell::default();
    }

    /// Counts the answer `op`/`state` and times `op` in `mode`.
    pub(super) fn answered(op: &'static str, state: &'static str, mode: &'static str, secs: f64) {
        ANSWERS.with_borrow_mut(|c| {
            c.entry(labels(op, state))
                .or_insert_with(|| metrics::counter!(m::ANSWERS, "op" => op, "state" => state))
                .increment(1)
        });
        SECONDS.with_borrow_mut(|h| {
            h.entry(labels(op, mode))
                .or_insert_with(|| metrics::histogram!(m::OP_SECONDS, "op" => op, "mode" => mode))
                .record(secs)
        });
    }
}

tokio::task_local! {
    /// The operation being answered on this task: its name (from the route table) and when
    /// its request arrived.
    static ANSWERING: (&'static str, Instant);
}

/// Route layer of the route table: runs each request of its route as operation `op`, so that
/// what the handler answers ([`answered`]) is counted and timed under the name declared with
/// its route. A plain tower layer (no boxed `Next`, no extra allocation per request).
#[derive(Debug, Clone, Copy)]
pub struct Measure(pub &'static str);

impl<S> tower::Layer<S> for Measure {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured { op: self.0, inner }
    }
}

/// A route's service under [`Measure`].
#[derive(Debug, Clone)]
pub struct Measured<S> {
    op: &'static str,
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for Measured<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<(&'static str, Instant), S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        ANSWERING.scope((self.op, Instant::now()), self.inner.call(req))
    }
}

/// The operation being answered (`none` outside a route of the table).
pub fn current_op() -> &'static str {
    ANSWERING.try_with(|(op, _)| *op).unwrap_or("none")
}

/// Counts and times the terminal `state` of the operation being answered, reached in `mode`
/// (`none` when no tier acted).
pub fn answered(key: &str, state: &'static str, mode: &'static str) {
    let Ok((op, started)) = ANSWERING.try_with(|a| *a) else {
        // Only a handler outside the route table could get here; the table has none.
        tracing::error!(state, "an answer outside the route table: not counted");
        return;
    };
    let elapsed = started.elapsed();
    handles::answered(op, state, mode, elapsed.as_secs_f64());
    crate::guard::monitor::record(op, mode, elapsed);
    // Every answer is counted and timed above; one log line per answer is opt-in
    // (`WARDEN_LOG=warden=debug`): refusals that need attention log their own lines.
    tracing::debug!(
        op,
        key,
        state,
        mode,
        latency_us = elapsed.as_micros() as u64,
        "answered"
    );
}
