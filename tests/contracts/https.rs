//! HTTPS through the real binary: with `WARDEN_TLS_CERT` and `WARDEN_TLS_KEY` the main listener
//! speaks TLS only, a client that trusts the certificate gets the usual answers, and a SIGHUP
//! swaps in a renewed certificate without a restart (new connections see it; the process and
//! its state stay).

use std::process::Command;
use std::time::Duration;

use crate::support::Warden;
use serde_json::json;

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let c = rcgen::generate_simple_self_signed(names).expect("a certificate");
    (c.cert.pem(), c.key_pair.serialize_pem())
}

/// A client that trusts `cert` only, on fresh connections.
fn client_trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_verified_clients_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first, first_key) = certificate();
    std::fs::write(&cert_path, &first).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    let w = Warden::start(&[
        (
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}/w.db", dir.path().display()),
        ),
        ("WARDEN_TLS_CERT", cert_path.display().to_string()),
        ("WARDEN_TLS_KEY", key_path.display().to_string()),
    ]);
    w.wait_readyz(Duration::from_secs(10)).await;
    let https = format!("https://127.0.0.1:{}", w.port);

    let trusted = client_trusting(&first);
    let r = trusted
        .post(format!("{https}/v1/locks/k/acquire"))
        .json(&json!({"owner": "o", "ttl_ms": 60000}))
        .send()
        .await
        .expect("a client trusting the certificate connects");
    assert_eq!(r.status().as_u16(), 200);
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", w.port))
        .send()
        .await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "no plain HTTP on the TLS port"
    );
    let (other, _) = certificate();
    assert!(
        client_trusting(&other)
            .get(format!("{https}/healthz"))
            .send()
            .await
            .is_err(),
        "a client that trusts another certificate is refused"
    );

    // Renew: write a new certificate, SIGHUP, and new connections present it.
    let (second, second_key) = certificate();
    std::fs::write(&cert_path, &second).unwrap();
    std::fs::write(&key_path, &second_key).unwrap();
    let pid = w.pid().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let renewed = client_trusting(&second);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = renewed.get(format!("{https}/healthz")).send().await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        client_trusting(&first)
            .get(format!("{https}/healthz"))
            .send()
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    // The same process, with its state: the lock taken before the reload is still held.
    let r = renewed
        .get(format!("{https}/v1/locks/k"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["owner"], "o", "{v}");
    assert!(w.tail_log().contains("certificate reloaded"));
}
