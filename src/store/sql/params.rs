//! Statements built at run time: every value is a numbered bind parameter, never text in
//! the SQL, so a statement's text depends only on its shape.

use sqlx::{Any, AssertSqlSafe};

/// A bind value of a dynamically built statement.
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

pub(crate) fn query<'q>(
    sql: String,
    args: &'q [Arg<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(*s),
            Arg::Int(n) => q.bind(*n),
        };
    }
    q
}

/// `$n` placeholders for `args` as they grow.
pub(crate) struct Params<'a> {
    pub(crate) args: Vec<Arg<'a>>,
}

impl<'a> Params<'a> {
    pub(crate) fn new() -> Self {
        Self { args: Vec::new() }
    }

    pub(crate) fn text(&mut self, s: &'a str) -> String {
        self.args.push(Arg::Text(s));
        format!("${}", self.args.len())
    }

    pub(crate) fn int(&mut self, n: i64) -> String {
        self.args.push(Arg::Int(n));
        format!("${}", self.args.len())
    }
}

/// `(…),(…)` rows of placeholders, one row per item, built by `row`.
pub(crate) fn values<'a, T: 'a>(
    p: &mut Params<'a>,
    items: impl Iterator<Item = &'a T>,
    row: impl Fn(&mut Params<'a>, &'a T) -> Vec<String>,
) -> String {
    let rows: Vec<String> = items
        .map(|i| format!("({})", row(p, i).join(",")))
        .collect();
    rows.join(",")
}
