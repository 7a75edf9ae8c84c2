//! TLS to the stores through the real binary: Warden on a Redis that listens on a TLS port
//! only (`rediss://`, trusting the test's CA through `WARDEN_REDIS_TLS_CA`) and a PostgreSQL
//! that accepts TLS connections only (`hostssl`, `?sslmode=require`) grants on Redis and writes
//! to SQL — so both connections can only be TLS.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Postgres, Warden};
use serde_json::json;

/// A redis-server with no plain port, TLS on `port`, killed on drop.
struct TlsRedis(Child);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_redis(dir: &std::path::Path, port: u16) -> TlsRedis {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let server = TlsRedis(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pong = Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(&cert)
            .args(["-p", &port.to_string(), "PING"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
            .unwrap_or(false);
        if pong {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_runs_on_rediss_and_postgres_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let c = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let (cert, key) = (c.cert.pem(), c.key_pair.serialize_pem());
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let pg = Postgres::start_tls(&cert, &key);
    let port = crate::support::free_port();
    let _redis = tls_redis(dir.path(), port);
    let w = Warden::start(&[
        (
            "WARDEN_DATABASE_URL",
            format!("{}?sslmode=require", pg.url()),
        ),
        ("WARDEN_REDIS_URL", format!("rediss://127.0.0.1:{port}/")),
        (
            "WARDEN_REDIS_TLS_CA",
            dir.path().join("cert.pem").display().to_string(),
        ),
        // What this test checks is TLS, not the 50 ms default timeout: a debug build doing
        // TLS handshakes on a loaded CI lane timed out three calls at start-up, and the
        // breaker then keeps SQL for its 30 s default (clean-clone run of 9879752).
        ("WARDEN_REDIS_TIMEOUT_MS", "1000".into()),
    ]);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let (s, v) = w.acquire("tls-k", "o", 60_000, 0).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("lock_acquired_primary")),
        "{v}"
    );
    let (s, v) = w.idem("tls-i", "begin", json!({})).await;
    assert_eq!((s, v["state"].as_str()), (201, Some("started")), "{v}");
    let (s, v) = w
        .idem(
            "tls-i",
            "complete",
            json!({"token": v["token"], "response": {"ok": true}}),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("completed")),
        "durable over TLS: {v}"
    );
}
