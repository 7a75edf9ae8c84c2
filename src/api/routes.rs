//! The route table: each route is declared once, in its capability's `routes()` — its handler
//! and documentation (`routes!` over the handler's `#[utoipa::path]`), the access it needs, the
//! operation name its answers are counted and timed under, and the states it answers. The
//! router, the access check, the answers' metrics and the OpenAPI document are all built from
//! that one declaration, so none of them can know a route the others do not.

use axum::middleware::from_fn_with_state;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use super::auth::{self, Need};
use super::{observe, openapi, AppState};
use crate::outcome::StateDoc;

/// What one operation answers: the name its answers are counted and timed under (the `op`
/// label of the answer metrics), the states of its outcome, and the schema of its JSON body.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answers {
    /// The operation's name in metrics and logs (`lock_acquire`).
    pub(super) op: &'static str,
    /// Every state it can answer (a safe block aside).
    pub(super) states: &'static [StateDoc],
    /// The schema of its JSON answers.
    pub(super) schema: &'static str,
    /// Whether a safe block (503) may come besides `states`.
    pub(super) may_block: bool,
}

impl Answers {
    /// Operation `op`, answering `states` as `schema`, or a safe block.
    pub(super) const fn new(
        op: &'static str,
        states: &'static [StateDoc],
        schema: &'static str,
    ) -> Self {
        Self {
            op,
            states,
            schema,
            may_block: true,
        }
    }

    /// The same for an operation whose own safe-block state is one of its outcome's
    /// (`lock_acquire_failed_safe_block`).
    pub(super) const fn own_block(self) -> Self {
        Self {
            may_block: false,
            ..self
        }
    }
}

/// The routes of one capability that need the same access.
pub(super) struct Routes {
    tag: &'static str,
    need: Need,
    router: OpenApiRouter<AppState>,
    /// Each answering route's path and answers, for the tests that hold the document to them.
    #[cfg(test)]
    pub(super) declared: Vec<(String, &'static str, Answers)>,
}

impl Routes {
    /// Routes documented under `tag` (the capability's name, prefix of their `operationId`s)
    /// and served to callers that meet `need`.
    pub(super) fn new(tag: &'static str, need: Need) -> Self {
        Self {
            tag,
            need,
            router: OpenApiRouter::new(),
            #[cfg(test)]
            declared: Vec::new(),
        }
    }

    /// Adds one handler's route, answering `answers`: documented from them, and counted and
    /// timed under their name.
    pub(super) fn answer(
        #[allow(unused_mut)] mut self,
        answers: Answers,
        route: UtoipaMethodRouter<AppState>,
    ) -> Self {
        let (schemas, mut paths, method) = route;
        #[cfg(test)]
        self.declare(&paths, answers);
        for item in paths.paths.values_mut() {
            for op in operations(item) {
                openapi::document_answers(op, &answers);
            }
        }
        let method = method.route_layer(observe::Measure(answers.op));
        self.add((schemas, paths, method))
    }

    #[cfg(test)]
    fn declare(&mut self, paths: &utoipa::openapi::Paths, answers: Answers) {
        for (path, item) in &paths.paths {
            let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
            let ops = [&item.get, &item.post, &item.put, &item.delete, &item.patch];
            for (method, op) in methods.into_iter().zip(ops) {
                if op.is_some() {
                    self.declared.push((path.clone(), method, answers));
                }
            }
        }
    }

    /// Adds a route whose answers are no outcome's (health, metrics, the document itself).
    pub(super) fn plain(self, route: UtoipaMethodRouter<AppState>) -> Self {
        self.add(route)
    }

    /// Applies `layer` to every route added so far (a capability's own body limit).
    pub(super) fn layer(self, layer: axum::extract::DefaultBodyLimit) -> Self {
        Self {
            router: self.router.layer(layer),
            ..self
        }
    }

    fn add(self, (schemas, mut paths, method): UtoipaMethodRouter<AppState>) -> Self {
        for item in paths.paths.values_mut() {
            for op in operations(item) {
                self.name(op);
            }
        }
        Self {
            router: self.router.routes((schemas, paths, method)),
            ..self
        }
    }

    /// Names `op` uniquely, as OpenAPI requires and code generators rely on: tagged by its
    /// capability, `operationId` `<capability>_<handler>`; and documents the scope it needs.
    fn name(&self, op: &mut Operation) {
        if let Some(id) = &op.operation_id {
            op.operation_id = Some(format!("{}_{id}", self.tag));
        }
        op.tags = Some(vec![self.tag.to_owned()]);
        op.security = match self.need {
            Need::Public => None,
            Need::Authenticated => Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]),
            Need::Scope(s) | Need::Operator(s) => {
                Some(vec![SecurityRequirement::new("bearer", [s.as_str()])])
            }
        };
    }

    /// What its routes need.
    #[cfg(test)]
    pub(super) fn need(&self) -> Need {
        self.need
    }

    /// Its routes, documented, without the access check (for the document alone).
    pub(super) fn documented(self) -> OpenApiRouter<AppState> {
        self.router
    }

    /// Its routes as served: behind the access check of their need.
    pub(super) fn serving(self, state: &AppState) -> OpenApiRouter<AppState> {
        let check = from_fn_with_state((state.clone(), self.need), auth::guard);
        self.router.route_layer(check)
    }
}

/// Every operation of a path item.
pub(super) fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}
