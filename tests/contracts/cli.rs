//! The operator's command line through the real binary: `warden token list` shows every token
//! without its secret, `revoke` ends one (a running instance then refuses it) and refuses an
//! unknown id, and a bad setting stops `warden serve` with the setting named.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{cli_token, Postgres, Warden};

/// `warden args…` on database `db`, no configuration file, no Redis.
fn warden(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_DATABASE_URL", db)
        .env("WARDEN_CONFIG", "/nonexistent/warden.toml")
        .env_remove("WARDEN_REDIS_URL")
        .output()
        .expect("warden runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `token list` line of the token named `name`.
fn listed(db: &str, name: &str) -> String {
    let out = warden(db, &["token", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    assert!(!list.contains("wdn_"), "a secret is listed: {list}");
    list.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed: {list}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_without_secrets_and_a_revoked_one_is_refused() {
    let pg = Postgres::database();
    let db = pg.url();
    let secret = cli_token(&db, "ops", "clinic", "admin,locks", None);
    let w = Warden::start(&[("WARDEN_DATABASE_URL", db.clone())]);
    let status = || {
        let req = w.http.get(format!("{}/v1/tokens", w.base()));
        async {
            req.bearer_auth(&secret)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status().await, 200);
    let line = listed(&db, "ops");
    assert!(line.contains("tenant=clinic"), "{line}");
    assert!(line.contains("admin") && line.contains("locks"), "{line}");
    assert!(line.ends_with(" valid"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_owned();

    let out = warden(&db, &["token", "revoke", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("revoked {id}\n"));
    assert!(listed(&db, "ops").ends_with(" revoked"));
    // The running instance refuses it within its cache time.
    let mut refused = false;
    for _ in 0..100 {
        if status().await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a revoked token is still served\n{}", w.tail_log());

    let out = warden(&db, &["token", "revoke", "tok_nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no token with id tok_nope"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_serve_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/w.db", dir.path().display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("serve")
        .env("WARDEN_DATABASE_URL", &db)
        .env("WARDEN_CONFIG", "/nonexistent/warden.toml")
        .env("WARDEN_AUTH", "bogus")
        .env_remove("WARDEN_REDIS_URL");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("warden: auth must be protected or required"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Nothing was started: no database file was made.
    assert!(!dir.path().join("w.db").exists());
}
