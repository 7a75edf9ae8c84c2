//! Tool suites, one binary: the alert rules under promtool and `/openapi.json` under
//! schemathesis (both installed by scripts/test.sh).

#[path = "../support/mod.rs"]
mod support;

mod alert_rules;
mod openapi_conformance;
