//! The OpenAPI document: generated from the handlers' annotations, then completed so that
//! every operation lists every status it can answer — the refusals of malformed input that
//! the extractors give before any handler runs included, each with its stable codes.

use std::collections::BTreeMap;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::extract::FIELD_CODES;
use super::routes::{operations, Answers};
use crate::outcome::{StateDoc, Terminal};
use crate::tier::Blocked;

/// The OpenAPI document of this API, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warden",
        description = "Fenced locks, idempotency keys, causal streams and flash-sale reservations over Redis with a durable SQL tier"
    ),
    components(schemas(
        super::locks::LockAnswer,
        super::locks::LockMode,
        super::locks::Holder,
        crate::lock::CycleStep,
        super::locks::FenceAnswer,
        super::semaphores::SemaphoreAnswer,
        super::lock_groups::LockGroupAnswer,
        super::lock_groups::GroupLock,
        super::lock_groups::GroupKey,
        super::idem::IdemAnswer,
        super::reserve::StockAnswer,
        super::reserve::ReservationAnswer,
        super::streams::StreamAnswer,
        super::review::ReviewAnswer,
        super::tokens::TokenAnswer,
        super::tokens::TokenList,
        super::incidents::IncidentAnswer,
        super::guard::GuardAnswer,
        super::guard::ExitRefused,
        super::guard::AuditAnswer,
        super::answer::SafeBlockAnswer,
        super::ratelimit::RateLimitAnswer,
        super::ratelimit::LimitEntry,
        super::ratelimit::PolicyAnswer,
        super::kv::KvAnswer,
        super::sessions::SessionAnswer,
        super::session_pages::SessionPage,
        super::cache::CacheAnswer,
        super::cache::StatsAnswer,
        super::cache::FetchBody,
        super::cache::CachePutBody,
        super::cache::WarmBody,
        super::cache::WarmEntry,
        crate::ratelimit::Policy,
        crate::ratelimit::Limit,
        crate::ratelimit::Algorithm,
        crate::ratelimit::OnUnavailable,
        super::problem::Problem
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this API: the route table's operations, each with every status it
/// can answer. Built once.
pub fn document() -> Document {
    static DOC: std::sync::OnceLock<Document> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let settings = crate::config::CacheSettings::default();
        let routes = super::table(&settings).fold(
            utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi()),
            |all, r| all.merge(r.documented()),
        );
        let mut doc = routes.into_openapi();
        InputProblems.modify(&mut doc);
        AccessProblems.modify(&mut doc);
        doc
    })
    .clone()
}

/// Documents an operation's answers from its outcome's states: one response per status,
/// naming every state answered with it. A 503 is always a [`SafeBlockAnswer`].
///
/// [`SafeBlockAnswer`]: super::answer::SafeBlockAnswer
pub(super) fn document_answers(op: &mut Operation, answers: &Answers) {
    let mut by_status: BTreeMap<u16, Vec<&StateDoc>> = BTreeMap::new();
    for d in all_states(answers) {
        by_status.entry(d.status).or_default().push(d);
    }
    for (status, docs) in by_status {
        let description = docs
            .iter()
            .map(|d| format!("`{}`: {}", d.state, d.meaning))
            .collect::<Vec<_>>()
            .join("; ");
        let (media, body) = match (status, docs.iter().any(|d| d.problem)) {
            (503, _) => ("application/json", "SafeBlockAnswer"),
            (_, true) => (PROBLEM_JSON, "Problem"),
            _ => ("application/json", answers.schema),
        };
        let content = Content::new(Some(Ref::from_schema_name(body)));
        let response = Response::builder()
            .description(description)
            .content(media, content)
            .build();
        op.responses
            .responses
            .insert(status.to_string(), RefOr::T(response));
    }
}

/// Every state an operation can answer, the safe block included where it may come.
fn all_states(answers: &Answers) -> impl Iterator<Item = &'static StateDoc> {
    let blocked: &'static [StateDoc] = if answers.may_block {
        Blocked::STATES
    } else {
        &[]
    };
    answers.states.iter().chain(blocked)
}

/// Every operation of `doc`, for a modifier that treats them all alike.
fn operations_mut(doc: &mut Document) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(operations)
}

/// Media type of every refusal.
const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the refusals of malformed input to every operation that can meet them: a body
/// (malformed, too large, wrong media type, wrong fields), a path key, a query.
struct InputProblems;

impl Modify for InputProblems {
    fn modify(&self, doc: &mut Document) {
        for op in operations_mut(doc) {
            for (status, codes) in refusals(op) {
                add_problem(op, status, &codes);
            }
        }
        // Field codes of one operation only.
        if let Some(op) = doc
            .paths
            .paths
            .get_mut("/v1/tokens")
            .and_then(|i| i.post.as_mut())
        {
            add_problem(op, "422", &super::tokens::FIELD_CODES);
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/cache/") {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                add_problem(op, "400", &super::cache::PATH_CODES);
                if op.request_body.is_some() {
                    add_problem(op, "422", &super::cache::BODY_CODES);
                    add_problem(op, "413", &["value_too_large"]);
                }
            }
        }
        if let Some(op) = doc
            .paths
            .paths
            .get_mut("/v1/lock-groups/acquire")
            .and_then(|i| i.post.as_mut())
        {
            add_problem(op, "422", &super::lock_groups::GROUP_CODES);
        }
        for path in [
            "/v1/semaphores/{name}/permits/{id}/extend",
            "/v1/semaphores/{name}/permits/{id}/release",
        ] {
            if let Some(op) = doc.paths.paths.get_mut(path).and_then(|i| i.post.as_mut()) {
                add_problem(op, "400", &[super::semaphores::PERMIT_ID_CODE]);
            }
        }
        if let Some(item) = doc
            .paths
            .paths
            .get_mut("/v1/principals/{principal}/sessions")
        {
            for op in [&mut item.get, &mut item.delete].into_iter().flatten() {
                add_problem(op, "422", &[super::sessions::FIELD_CODES[0]]);
            }
        }
        let policy_writes = [
            "/v1/ratelimit/policies/{policy}",
            "/v1/ratelimit/policies/{policy}/overrides/{subject}",
        ];
        for path in policy_writes {
            if let Some(op) = doc.paths.paths.get_mut(path).and_then(|i| i.put.as_mut()) {
                add_problem(op, "422", &super::ratelimit::POLICY_CODES);
            }
        }
        if let Some(op) = doc
            .paths
            .paths
            .get_mut(policy_writes[0])
            .and_then(|i| i.put.as_mut())
        {
            add_problem(op, "400", &super::ratelimit::IF_MATCH_CODES);
        }
    }
}

/// Adds the refusals of the access check to every operation that needs a token: 401
/// `unauthenticated` and 403 `forbidden` (G9), and declares the bearer scheme; and to every
/// operation but `/healthz` and `/openapi.json`, the 503 `starting` of an instance that has
/// not started yet.
struct AccessProblems;

impl Modify for AccessProblems {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            for op in operations(item) {
                if !matches!(path.as_str(), "/healthz" | "/openapi.json") {
                    add_refusal(
                        op,
                        "503",
                        "the instance is still starting; retry after `Retry-After`",
                        &[super::starting::STARTING],
                    );
                }
                // The route table documented what each route needs: public ones need nothing.
                if op.security.is_none() {
                    continue;
                }
                add_refusal(op, "401", "no valid token", &["unauthenticated"]);
                add_refusal(op, "403", "the token lacks the scope", &["forbidden"]);
                add_refusal(
                    op,
                    "400",
                    "an X-Warden-Tenant that names no tenant",
                    &["invalid_tenant"],
                );
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
        unprocessable.extend(["invalid_query", "out_of_range"]);
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
    add_refusal(op, status, "malformed input", codes);
}

/// Documents refusals answered with `status`: `what` they are, and their codes.
fn add_refusal(op: &mut Operation, status: &str, what: &str, codes: &[&str]) {
    let content = Content::new(Some(Ref::from_schema_name("Problem")));
    let malformed = format!("{what} (problem+json `code`: {})", codes.join(", "));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenAPI requires `operationId`s to be unique, and generated clients name their
    /// functions by them: `acquire` was the id of three operations once.
    #[test]
    fn every_operation_id_is_unique_and_tagged_by_its_module() {
        let doc = document();
        let mut seen = std::collections::BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            let ops = [&item.get, &item.post, &item.put, &item.delete, &item.patch];
            for op in ops.into_iter().flatten() {
                let id = op.operation_id.clone().expect("an operationId");
                assert!(seen.insert(id.clone()), "{path}: {id} is not unique");
                let tags = op.tags.clone().unwrap_or_default();
                assert_eq!(tags.len(), 1, "{path}: {tags:?}");
                assert!(!tags[0].contains("::"), "{path}: tag {}", tags[0]);
                assert!(id.starts_with(&format!("{}_", tags[0])), "{path}: {id}");
            }
        }
    }

    /// A body type's doc comment names its route (`` `PUT /v1/kv/{key}` body``): every
    /// operation's request body must be the one of its own route. Two types of one name
    /// (three `PutBody`s once) share one schema, and all but one route then documented
    /// another route's body.
    #[test]
    fn every_request_body_is_its_own_routes() {
        let doc = document();
        let schemas = &doc.components.as_ref().expect("components").schemas;
        let mut wrong = Vec::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ];
            for (method, op) in ops {
                let Some(body) = op.as_ref().and_then(|o| o.request_body.as_ref()) else {
                    continue;
                };
                for content in body.content.values() {
                    let Some(RefOr::Ref(r)) = content.schema.as_ref() else {
                        continue;
                    };
                    let name = r.ref_location.rsplit('/').next().unwrap_or_default();
                    let Some(RefOr::T(schema)) = schemas.get(name) else {
                        panic!("{method} {path}: no schema {name}");
                    };
                    let text = serde_json::to_value(schema).unwrap();
                    let said = text["description"].as_str().unwrap_or_default();
                    if let Some(route) = said.strip_prefix('`').and_then(|d| d.split('`').next()) {
                        if route.contains(' ') && said.contains("body") {
                            let routes: Vec<&str> = said.split('`').skip(1).step_by(2).collect();
                            // A route may be shortened: `POST …/check`, `/release`.
                            let names_mine = |r: &&str| {
                                let (m, p) = r.split_once(' ').unwrap_or(("", r));
                                (m.is_empty() || m == method)
                                    && path.ends_with(p.trim_start_matches('…'))
                            };
                            let mine = format!("{method} {path}");
                            if !routes.iter().any(names_mine) {
                                wrong.push(format!("{mine} documents {said:?} ({name})"));
                            }
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// The operation `method` of `path` in `doc`.
    fn operation<'d>(doc: &'d Document, path: &str, method: &str) -> &'d Operation {
        let item = doc.paths.paths.get(path).expect("a documented path");
        let op = match method {
            "GET" => &item.get,
            "PUT" => &item.put,
            "DELETE" => &item.delete,
            "PATCH" => &item.patch,
            _ => &item.post,
        };
        op.as_ref()
            .unwrap_or_else(|| panic!("{method} {path}: no operation"))
    }

    #[test]
    fn outcome_operations_list_every_state_of_their_outcome() {
        let doc = document();
        let settings = crate::config::CacheSettings::default();
        let declared: Vec<(String, &str, Answers)> = super::super::table(&settings)
            .flat_map(|r| r.declared)
            .collect();
        assert!(
            declared.len() > 70,
            "{} routes answer outcomes",
            declared.len()
        );
        for (path, method, answers) in declared {
            let op = operation(&doc, &path, method);
            for d in all_states(&answers) {
                let Some(RefOr::T(r)) = op.responses.responses.get(&d.status.to_string()) else {
                    panic!("{path}: no {} response", d.status);
                };
                assert!(r.description.contains(d.state), "{path}: {}", r.description);
                let media = if d.problem && d.status != 503 {
                    PROBLEM_JSON
                } else {
                    "application/json"
                };
                assert!(r.content.contains_key(media), "{path}: {}", d.state);
            }
        }
    }

    /// Every operation is served under the access its route declares, and documents it: the
    /// scope in its security requirement, none for the public ones.
    #[test]
    fn every_operation_documents_the_scope_its_route_needs() {
        use super::super::auth::Need;
        let doc = document();
        let scope_of = |path: &str, method: &str| {
            operation(&doc, path, method).security.as_ref().map(|s| {
                let v = serde_json::to_value(s).unwrap();
                v[0]["bearer"].as_array().unwrap().len().to_string()
                    + &v[0]["bearer"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                        .join(",")
            })
        };
        assert_eq!(
            scope_of("/v1/inventory/{sku}", "PUT").as_deref(),
            Some("1inventory")
        );
        assert_eq!(
            scope_of("/v1/inventory/{sku}", "GET").as_deref(),
            Some("1reservations")
        );
        assert_eq!(
            scope_of("/v1/review/{id}/resolve", "POST").as_deref(),
            Some("1review")
        );
        assert_eq!(
            scope_of("/v1/ratelimit/policies/{policy}", "PUT").as_deref(),
            Some("1ratelimit.admin")
        );
        assert_eq!(
            scope_of("/v1/ratelimit/{policy}/{subject}/check", "POST").as_deref(),
            Some("1ratelimit")
        );
        assert_eq!(scope_of("/v1/status", "GET").as_deref(), Some("0"));
        assert_eq!(scope_of("/healthz", "GET"), None);
        let settings = crate::config::CacheSettings::default();
        let public: usize = super::super::table(&settings)
            .filter(|r| r.need() == Need::Public)
            .map(|r| r.documented().into_openapi().paths.paths.len())
            .sum();
        let open = doc
            .paths
            .paths
            .values()
            .flat_map(|i| [&i.get, &i.post, &i.put, &i.delete, &i.patch])
            .flatten()
            .filter(|op| op.security.is_none())
            .count();
        assert_eq!(open, public, "only the public routes need no token");
    }
}
