//! The same-run baseline of a fallback row: `pgbench` running the statement(s) a path makes,
//! one row at a time and each in its own transaction (what Warden would do without group
//! commit), against the same database at the same client count. p99 comes from pgbench's
//! per-transaction log.

use std::process::Command;

use super::row::{Baseline, Row};
use super::servers::Servers;

/// A lock acquire of a new key: the conditional upsert of `store/sql/lock.rs`, one row.
const ACQUIRE: &str = r"\set k random(1, 1000000000000)
INSERT INTO warden_locks (lock_key, owner, counter, token, expires_at)
SELECT 'pgb-' || :k || '-' || :client_id, 'o', 1, 1, 9999999999999
WHERE EXISTS (SELECT 1 FROM warden_tier WHERE id = 1)
ON CONFLICT (lock_key) DO NOTHING RETURNING owner, token, expires_at;
";

/// A begin+complete pair of a new key: the claim insert and the completing update, one row
/// each, each committed.
const PAIR: &str = r"\set k random(1, 1000000000000)
INSERT INTO warden_idem (idem_key, token, fingerprint, lease_until, expires_at)
VALUES ('pgb-' || :k || '-' || :client_id, 1, 'f', 0, 9999999999999)
ON CONFLICT (idem_key) DO NOTHING RETURNING token;
UPDATE warden_idem SET state = 'completed', response = '{}', lease_until = 0
WHERE idem_key = 'pgb-' || :k || '-' || :client_id AND token = 1 AND state = 'in_progress'
RETURNING token;
";

/// The SKU the hot-SKU script reserves from, created once before it runs.
const HOT_SKU: &str = "INSERT INTO warden_inventory (sku, total) VALUES ('pgb-hot', 1000000000000)
ON CONFLICT (sku) DO NOTHING;
";

/// A reservation of one unit of one hot SKU: the conditional stock update and the hold, in one
/// transaction (what every reserve was before the fallback batches).
const HOT: &str = r"\set u random(1, 1000000000000)
BEGIN;
UPDATE warden_inventory SET reserved = reserved + 1
WHERE sku = 'pgb-hot' AND reserved + confirmed + 1 <= total;
INSERT INTO warden_holds (id, sku, user_id, quantity, state, expires_at)
VALUES ('pgb-' || :u || '-' || :client_id, 'pgb-hot', 'u' || :u, 1, 'held', 9999999999999);
END;
";

/// An intent taken in and committed on one of the client's 16 streams: the stream row created
/// if missing and its sequence drawn, the intent inserted; then the intent marked committed
/// and the stream's counters moved — two transactions, as intake and commit are two calls.
const STREAM: &str = r#"\set k random(1, 16)
BEGIN;
INSERT INTO warden_streams (stream) VALUES ('pgb-' || :client_id || '-' || :k)
ON CONFLICT (stream) DO NOTHING;
UPDATE warden_streams SET assigned = assigned + 1, rev = rev + 1
WHERE stream = 'pgb-' || :client_id || '-' || :k RETURNING assigned AS seq \gset
INSERT INTO warden_intents (stream, commit_sequence, intent_id, dispatch_priority, intent_type,
    payload, arrived_at, state)
VALUES ('pgb-' || :client_id || '-' || :k, :seq, 'i' || :seq, 0, 'message',
    '{"text": "appointment confirmed"}', 0, 'ready');
END;
BEGIN;
UPDATE warden_intents SET state = 'committed', committed_version = :seq
WHERE stream = 'pgb-' || :client_id || '-' || :k AND commit_sequence = :seq AND state = 'ready';
UPDATE warden_streams SET last_committed = :seq, version = version + 1, rev = rev + 1
WHERE stream = 'pgb-' || :client_id || '-' || :k AND last_committed = :seq - 1;
END;
"#;

/// A fallback row's pgbench script: its name, its setup (run once) and its statements.
struct Script {
    what: &'static str,
    setup: Option<&'static str>,
    sql: &'static str,
}

/// The pgbench script of a fallback row's path, if it has one.
fn script(path: &str) -> Option<Script> {
    let (what, setup, sql) = match path {
        "lock acquire (new keys)" => ("pgbench acquire upsert", None, ACQUIRE),
        "idempotency begin+complete" => ("pgbench claim+complete", None, PAIR),
        "flash sale hot SKU" => ("pgbench reserve (row lock)", Some(HOT_SKU), HOT),
        "streams intake+commit" => ("pgbench intake+commit", None, STREAM),
        _ => return None,
    };
    Some(Script { what, setup, sql })
}

/// The p99 of a pgbench transaction log (third column: latency in µs), in ms.
fn p99_of_logs(dir: &std::path::Path) -> f64 {
    let mut us: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pgbench_log"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
                .collect::<Vec<u64>>()
        })
        .collect();
    us.sort_unstable();
    us.get((us.len() as f64 * 0.99) as usize)
        .map_or(0.0, |v| *v as f64 / 1000.0)
}

/// Runs the row's pgbench baseline on `db` and puts it on `row`; a path without a script is
/// left alone, a failed run is reported on stderr.
pub(crate) fn attach(servers: &Servers, db: &str, seconds: u64, row: &mut Row) {
    let Some(script) = script(&row.path) else {
        return;
    };
    let setup = match script.setup {
        Some(sql) => run(servers, db, 1, None, sql).map(|_| ()),
        None => Ok(()),
    };
    match setup.and_then(|()| run(servers, db, row.clients, Some(seconds), script.sql)) {
        Ok((tps, p99_ms)) => {
            row.baseline = Some(Baseline {
                what: script.what.into(),
                rate: tps,
                p99_ms,
            })
        }
        Err(e) => eprintln!("pgbench baseline of {} failed: {e}", row.path),
    }
}

/// Scripts per second and p99 ms of `sql` at `clients` for `seconds` (once, without).
fn run(
    servers: &Servers,
    db: &str,
    clients: usize,
    seconds: Option<u64>,
    sql: &str,
) -> Result<(f64, f64), String> {
    let length = match seconds {
        Some(s) => ["-T".to_owned(), s.to_string()],
        None => ["-t".to_owned(), "1".to_owned()],
    };
    let dir = servers
        .dir()
        .join(format!("pgbench-{}", warden::runtime::clock::now_ms()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("script.sql");
    std::fs::write(&file, sql).map_err(|e| e.to_string())?;
    let out = Command::new(servers.pg_tool("pgbench"))
        .current_dir(&dir)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &servers.pg_port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-n", "-M", "prepared", "-j", "2", "-l"])
        .args(["-c", &clients.to_string()])
        .args(length)
        .arg("-f")
        .arg(&file)
        .arg(db)
        .output()
        .map_err(|e| format!("pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            format!(
                "no tps in pgbench output: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let p99 = p99_of_logs(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((tps, p99))
}
