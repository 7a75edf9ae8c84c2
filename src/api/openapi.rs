//! The OpenAPI document: generated from the handlers' annotations, then completed so that
//! every operation lists every status it can answer — the refusals of malformed input that
//! the extractors give before any handler runs included, each with its stable codes.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::extract::FIELD_CODES;

/// The OpenAPI document of this API, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warden",
        description = "Fenced locks, idempotency keys, causal streams and flash-sale reservations over Redis with a durable SQL tier"
    ),
    paths(
        super::locks::acquire,
        super::locks::extend,
        super::locks::release,
        super::locks::read,
        super::locks::fence_check,
        super::idem::begin,
        super::idem::complete,
        super::idem::fail,
        super::idem::extend,
        super::reserve::set_total,
        super::reserve::read,
        super::reserve::reserve,
        super::reserve::confirm,
        super::reserve::release,
        super::streams::intake,
        super::streams::claim,
        super::streams::commit,
        super::streams::replay,
        super::streams::read,
        super::review::list,
        super::review::resolve,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::status,
        super::ops::metrics,
        super::ops::openapi
    ),
    modifiers(&InputProblems)
)]
pub struct ApiDoc;

/// Media type of every refusal.
const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the refusals of malformed input to every operation that can meet them: a body
/// (malformed, too large, wrong media type, wrong fields), a path key, a query.
struct InputProblems;

impl Modify for InputProblems {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (status, codes) in refusals(op) {
                    add_problem(op, status, &codes);
                }
            }
        }
    }
}

/// The statuses and stable codes of the malformed-input refusals `op` can answer.
fn refusals(op: &Operation) -> Vec<(&'static str, Vec<&'static str>)> {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let mut bad_request = Vec::new();
    let mut unprocessable = Vec::new();
    let mut out = Vec::new();
    if has(ParameterIn::Path) {
        bad_request.push("invalid_key");
    }
    if has(ParameterIn::Query) {
        bad_request.push("invalid_query");
        unprocessable.push("invalid_query");
    }
    if op.request_body.is_some() {
        bad_request.extend(["malformed_json", "unreadable_body"]);
        unprocessable.extend(["invalid_body", "out_of_range"]);
        unprocessable.extend(FIELD_CODES);
        out.push(("413", vec!["body_too_large"]));
        out.push(("415", vec!["unsupported_media_type"]));
    }
    if !bad_request.is_empty() {
        out.push(("400", bad_request));
    }
    if !unprocessable.is_empty() {
        out.push(("422", unprocessable));
    }
    out
}

/// Documents a problem answer with `status` on `op`: a new response naming `codes`, or, where
/// the status is documented already (a domain refusal), the problem media type added to it.
fn add_problem(op: &mut Operation, status: &str, codes: &[&str]) {
    let content = Content::new(Some(Ref::from_schema_name("Problem")));
    let malformed = format!(
        "malformed input (problem+json `code`: {})",
        codes.join(", ")
    );
    let entry = op.responses.responses.entry(status.to_owned());
    let response = entry.or_insert_with(|| RefOr::T(Response::new("")));
    if let RefOr::T(response) = response {
        if response.description.is_empty() {
            response.description = malformed;
        } else {
            response.description = format!("{}; or {malformed}", response.description);
        }
        response
            .content
            .entry(PROBLEM_JSON.to_owned())
            .or_insert(content);
    }
}
