//! Helpers for G8 tests: send raw requests and check that each answer is a complete problem
//! document with the expected status and code.

use std::time::Duration;

use serde_json::Value;

use super::Warden;

/// method, path, content type, body, expected status, expected code
pub type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);

/// A case with a JSON body (none when `body` is empty).
pub fn case<'a>(method: &'a str, path: &str, body: &str, status: u16, code: &'a str) -> Case<'a> {
    let ctype = (!body.is_empty()).then_some("application/json");
    (
        method,
        path.to_owned(),
        ctype,
        body.as_bytes().to_vec(),
        status,
        code,
    )
}

/// What answers raw requests: a `warden serve` process, or the router in-process.
pub trait Target {
    /// Sends one request; returns status, content type and the body as JSON.
    fn send(
        &self,
        method: &str,
        path: &str,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = (u16, String, Value)>;
}

impl Target for Warden {
    async fn send(
        &self,
        method: &str,
        path: &str,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base()))
            .body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, r.json().await.unwrap_or(Value::Null))
    }
}

/// Every case gets its status and a complete problem document with its code.
pub async fn assert_problems(w: &impl Target, cases: Vec<Case<'_>>) {
    for (method, path, ctype, body, status, code) in cases {
        let (s, ct, v) = w.send(method, &path, ctype, body.clone()).await;
        let shown = String::from_utf8_lossy(&body);
        assert_eq!(s, status, "{method} {path} {shown}: {v}");
        assert_eq!(ct, "application/problem+json", "{method} {path}");
        assert_eq!(v["code"], code, "{method} {path} {shown}: {v}");
        assert_eq!(v["status"], status);
        for field in ["type", "title", "detail"] {
            assert!(v[field].is_string(), "{field} missing in {v}");
        }
    }
}

/// A Warden on a fresh SQLite file with a 4 KiB body limit.
pub async fn small_warden() -> (tempfile::TempDir, Warden) {
    let dir = tempfile::tempdir().unwrap();
    let w = Warden::start(&[
        (
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}/w.db", dir.path().display()),
        ),
        ("WARDEN_MAX_BODY_BYTES", "4096".into()),
    ]);
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    (dir, w)
}
