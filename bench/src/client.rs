//! A lean HTTP/1.1 client for the load generator: one keep-alive connection per simulated
//! client, so the generator spends as little of the shared CPU as it can.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// The `Authorization` value every request carries, if the run has a token (`--token`).
pub static AUTHORIZATION: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// One keep-alive connection to the target.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    auth: Option<String>,
}

impl Conn {
    /// Connects to `base` (`http://host:port`).
    pub async fn connect(base: &str) -> Result<Self, String> {
        let host = base
            .strip_prefix("http://")
            .ok_or("the bench URL must start with http://")?
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&host).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let auth = AUTHORIZATION.get().cloned().flatten();
        Ok(Self { sender, host, auth })
    }

    async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<(u16, Value), String> {
        if let Some(auth) = &self.auth {
            let value = auth
                .parse()
                .map_err(|_| "the token is not a header value")?;
            req.headers_mut()
                .insert(hyper::header::AUTHORIZATION, value);
        }
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null),
        ))
    }

    /// `POST path` with a JSON body.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        self.json(hyper::Method::POST, path, body).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&mut self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        self.json(hyper::Method::PUT, path, body).await
    }

    async fn json(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<(u16, Value), String> {
        let req = Request::get(path)
            .header(HOST, &self.host)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }
}
