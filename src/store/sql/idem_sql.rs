//! The SQL text of idempotency batches. A batch runs in rounds in which a key appears at most
//! once (its later writes in later rounds, in submission order), so no statement touches a
//! row twice. On PostgreSQL a round is one statement, its kinds joined as data-modifying CTEs;
//! on SQLite (no DML in CTEs) each kind is its own statement. Every value is a bind parameter.

use std::collections::HashMap;

use super::padded;
use super::params::{values, Params};
use crate::store::idem::IdemWrite;

pub(super) const COLS: &str =
    "idem_key, state, token, fingerprint, lease_until, expires_at, response, correlation_id, \
     traceparent";

/// The stored row may be claimed: expired, released, or a lapsed lease whose fingerprint does
/// not conflict — the rule of `idem::rules::on_begin`, written in SQL so the claim is one
/// conditional statement (`tests/contracts/idem_rule.rs` checks the two agree). `{now}` is replaced by
/// the statement's clock placeholder.
const FREE: &str = "(warden_idem.expires_at <= {now} OR warden_idem.state = 'released'
    OR (warden_idem.state = 'in_progress' AND warden_idem.lease_until <= {now}
        AND (warden_idem.fingerprint = excluded.fingerprint
             OR warden_idem.fingerprint = '' OR excluded.fingerprint = '')))";

/// Claim rows as a query over `VALUES`: `{distinct}` drops the repeats that pad a list on
/// PostgreSQL, and a drawn token reads the reaped floor in the same statement. (A `WHERE` is
/// required: SQLite cannot otherwise tell the upsert's `ON` from a join's.)
const CLAIM_ROWS: &str = "SELECT {distinct} v.column1, {token}, v.column3, v.column4, v.column5,
    v.column6, v.column7
FROM (VALUES {values}) AS v{from} WHERE {filter}";

const CLAIM_GIVEN: &str =
    "INSERT INTO warden_idem (idem_key, token, fingerprint, lease_until, expires_at,
    correlation_id, traceparent)
{rows}
ON CONFLICT (idem_key) DO UPDATE SET state = 'in_progress', token = excluded.token,
    fingerprint = excluded.fingerprint, lease_until = excluded.lease_until,
    expires_at = excluded.expires_at, response = NULL,
    correlation_id = excluded.correlation_id, traceparent = excluded.traceparent
WHERE warden_idem.token < excluded.token AND {free}
RETURNING {cols}";

const CLAIM_DRAWN: &str =
    "INSERT INTO warden_idem (idem_key, token, fingerprint, lease_until, expires_at,
    correlation_id, traceparent)
{rows}
ON CONFLICT (idem_key) DO UPDATE SET state = 'in_progress',
    token = CASE WHEN warden_idem.token >= excluded.token THEN warden_idem.token + 1
                 ELSE excluded.token END,
    fingerprint = excluded.fingerprint, lease_until = excluded.lease_until,
    expires_at = excluded.expires_at, response = NULL,
    correlation_id = excluded.correlation_id, traceparent = excluded.traceparent
WHERE {free}
RETURNING {cols}";

const COMPLETE: &str =
    "UPDATE warden_idem SET state = 'completed', response = v.column3, lease_until = 0
FROM (VALUES {values}) AS v
WHERE warden_idem.idem_key = v.column1 AND warden_idem.token = v.column2
  AND warden_idem.state = 'in_progress' AND warden_idem.expires_at > {now}
RETURNING {cols}";

const RELEASE: &str = "UPDATE warden_idem SET state = 'released', lease_until = 0
FROM (VALUES {values}) AS v
WHERE warden_idem.idem_key = v.column1 AND warden_idem.token = v.column2
  AND warden_idem.state = 'in_progress' AND warden_idem.expires_at > {now}
RETURNING {cols}";

const EXTEND: &str = "UPDATE warden_idem SET lease_until = v.column3
FROM (VALUES {values}) AS v
WHERE warden_idem.idem_key = v.column1 AND warden_idem.token = v.column2
  AND warden_idem.state = 'in_progress' AND warden_idem.expires_at > {now}
RETURNING {cols}";

/// The statement kinds, run in this order within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    ClaimGiven,
    ClaimDrawn,
    Complete,
    Release,
    Extend,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::ClaimGiven,
        Kind::ClaimDrawn,
        Kind::Complete,
        Kind::Release,
        Kind::Extend,
    ];

    fn of(w: &IdemWrite) -> Self {
        match w {
            IdemWrite::Claim { token: Some(_), .. } => Kind::ClaimGiven,
            IdemWrite::Claim { token: None, .. } => Kind::ClaimDrawn,
            IdemWrite::Complete { .. } => Kind::Complete,
            IdemWrite::Release { .. } => Kind::Release,
            IdemWrite::Extend { .. } => Kind::Extend,
        }
    }

    /// The statement for rows `{values}` at clock `{now}`.
    fn sql(self, pg: bool) -> String {
        let claim = |template: &str, token: &str, from: &str, filter: &str| {
            let rows = CLAIM_ROWS
                .replace(
                    "{distinct}",
                    if pg { "DISTINCT ON (v.column1)" } else { "" },
                )
                .replace("{token}", token)
                .replace("{from}", from)
                .replace("{filter}", filter);
            template.replace("{rows}", &rows)
        };
        // On PostgreSQL the floor is read under a share lock: a reaper raises it (then deletes
        // the rows below it) in its own transactions, and a read of the floor from before the
        // raise, racing the delete, could draw a token the deleted row had. Locked, the read
        // waits for the raise and sees it, or the raise waits for this claim to commit.
        // SQLite runs one writer at a time.
        let (greatest, floor) = if pg {
            (
                "GREATEST",
                ", (SELECT name, value FROM warden_counters WHERE name = 'idem_floor' FOR SHARE) AS f",
            )
        } else {
            ("MAX", ", warden_counters AS f")
        };
        let sql = match self {
            Kind::ClaimGiven => claim(CLAIM_GIVEN, "v.column2", "", "1 = 1"),
            Kind::ClaimDrawn => claim(
                CLAIM_DRAWN,
                &format!("{greatest}(v.column2, f.value) + 1"),
                floor,
                "f.name = 'idem_floor'",
            ),
            Kind::Complete => COMPLETE.to_owned(),
            Kind::Release => RELEASE.to_owned(),
            Kind::Extend => EXTEND.to_owned(),
        };
        sql.replace("{free}", FREE).replace("{cols}", COLS)
    }
}

/// The placeholders of one write's row (a drawn claim binds its least token, `base`).
fn row<'a>(p: &mut Params<'a>, w: &'a IdemWrite) -> Vec<String> {
    match w {
        IdemWrite::Claim {
            key,
            token,
            base,
            fingerprint,
            lease_until,
            expires_at,
            correlation,
            ..
        } => vec![
            p.text(key),
            p.int(token.unwrap_or(*base)),
            p.text(fingerprint),
            p.int(*lease_until),
            p.int(*expires_at),
            p.text(&correlation.id),
            p.text(&correlation.traceparent),
        ],
        IdemWrite::Complete {
            key,
            token,
            response,
            ..
        } => vec![p.text(key), p.int(*token), p.text(response)],
        IdemWrite::Release { key, token, .. } => vec![p.text(key), p.int(*token)],
        IdemWrite::Extend {
            key,
            token,
            lease_until,
            ..
        } => vec![p.text(key), p.int(*token), p.int(*lease_until)],
    }
}

fn clock(w: &IdemWrite) -> i64 {
    match w {
        IdemWrite::Claim { now, .. }
        | IdemWrite::Complete { now, .. }
        | IdemWrite::Release { now, .. }
        | IdemWrite::Extend { now, .. } => *now,
    }
}

/// The writes of one statement, by kind.
pub(super) type Parts<'w> = Vec<(Kind, Vec<&'w IdemWrite>)>;

/// One statement for `parts` and its parameters: the kinds joined as CTEs when there are
/// several (PostgreSQL only). Each kind's clock is the latest of its writes'. On PostgreSQL
/// each list is padded to a power of two (claims drop the repeats, updates ignore them), so
/// statements come in few shapes and stay prepared.
pub(super) fn statement<'w>(parts: &'w Parts<'w>, pg: bool) -> (String, Params<'w>) {
    let mut p = Params::new();
    let mut sqls: Vec<String> = Vec::with_capacity(parts.len());
    for (kind, ws) in parts {
        let now = p.int(ws.iter().map(|w| clock(w)).max().unwrap_or(0));
        let rows = if pg {
            values(&mut p, padded(ws), |p, w| row(p, w))
        } else {
            values(&mut p, ws.iter(), |p, w| row(p, w))
        };
        sqls.push(
            kind.sql(pg)
                .replace("{values}", &rows)
                .replace("{now}", &now),
        );
    }
    if let [one] = sqls.as_slice() {
        return (one.clone(), p);
    }
    let ctes: Vec<String> = sqls
        .iter()
        .enumerate()
        .map(|(i, s)| format!("w{i} AS ({s})"))
        .collect();
    let union: Vec<String> = (0..sqls.len())
        .map(|i| format!("SELECT {COLS} FROM w{i}"))
        .collect();
    let sql = format!("WITH {} {}", ctes.join(", "), union.join(" UNION ALL "));
    (sql, p)
}

/// Splits write indices into rounds in which every key appears at most once, keeping each
/// key's writes in submission order.
fn rounds(writes: &[IdemWrite]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let n = seen.entry(w.key()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

/// The statements of a batch, in order: per round, one with every kind (`joined`) or one per
/// kind; each a list of (kind, write indices).
pub(super) fn plan(writes: &[IdemWrite], joined: bool) -> Vec<Vec<(Kind, Vec<usize>)>> {
    let mut out = Vec::new();
    for round in rounds(writes) {
        let parts: Vec<(Kind, Vec<usize>)> = Kind::ALL
            .into_iter()
            .map(|k| {
                let idx = round.iter().copied().filter(|&i| Kind::of(&writes[i]) == k);
                (k, idx.collect::<Vec<usize>>())
            })
            .filter(|(_, idx)| !idx.is_empty())
            .collect();
        if joined {
            out.push(parts);
        } else {
            out.extend(parts.into_iter().map(|p| vec![p]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(k: &str, t: i64, now: i64) -> IdemWrite {
        IdemWrite::Release {
            key: k.into(),
            token: t,
            now,
        }
    }

    #[test]
    fn placeholders_number_each_clock_then_its_rows() {
        let ws = [release("a", 1, 5), release("b", 2, 9)];
        let parts: Parts = vec![(Kind::Release, ws.iter().collect())];
        let (sql, p) = statement(&parts, false);
        assert!(sql.contains("VALUES ($2,$3),($4,$5)"), "{sql}");
        assert!(sql.contains("expires_at > $1"), "{sql}");
        assert_eq!(p.args.len(), 5);
    }

    #[test]
    fn postgres_pads_lists_and_joins_kinds_in_one_statement() {
        let ws = [release("a", 1, 5), release("b", 2, 9), release("c", 3, 7)];
        let done = IdemWrite::Complete {
            key: "d".into(),
            token: 4,
            response: "{}".into(),
            now: 6,
        };
        let parts: Parts = vec![
            (Kind::Complete, vec![&done]),
            (Kind::Release, ws.iter().collect()),
        ];
        let (sql, p) = statement(&parts, true);
        assert!(sql.starts_with("WITH w0 AS (UPDATE"), "{sql}");
        assert!(sql.contains("UNION ALL SELECT"), "{sql}");
        // A clock and a completion of 3, then a clock and 3 releases padded to 4 of 2.
        assert_eq!(p.args.len(), 1 + 3 + 1 + 4 * 2);
    }

    #[test]
    fn sqlite_runs_one_statement_per_kind_postgres_one_per_round() {
        let done = |k: &str| IdemWrite::Complete {
            key: k.into(),
            token: 1,
            response: "{}".into(),
            now: 0,
        };
        let writes = vec![release("a", 1, 0), done("b"), done("a")];
        let kinds = |plan: Vec<Vec<(Kind, Vec<usize>)>>| -> Vec<Vec<Kind>> {
            plan.into_iter()
                .map(|s| s.into_iter().map(|(k, _)| k).collect())
                .collect()
        };
        assert_eq!(
            kinds(plan(&writes, true)),
            vec![vec![Kind::Complete, Kind::Release], vec![Kind::Complete]]
        );
        assert_eq!(
            kinds(plan(&writes, false)),
            vec![
                vec![Kind::Complete],
                vec![Kind::Release],
                vec![Kind::Complete]
            ]
        );
    }

    #[test]
    fn rounds_keep_one_write_per_key_in_order() {
        let w = |k: &str, t| release(k, t, 0);
        let writes = vec![w("a", 1), w("b", 1), w("a", 2), w("a", 3)];
        assert_eq!(rounds(&writes), vec![vec![0, 1], vec![2], vec![3]]);
    }
}
