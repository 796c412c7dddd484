//! The HTTP client the CLI commands use: JSON in, JSON out, and server errors turned into
//! messages that carry the server's stable code.

use std::time::Duration;

use std::cell::RefCell;

use anyhow::anyhow;
use serde_json::Value;

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// `token` comes from `--token`/`WEFT_TOKEN`; without one, a client talking to a server on
    /// this machine uses the admin token the server wrote to `<data-dir>/admin.token`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(60))
            .middleware(AuthHeader)
            .build();
        let base = base.trim_end_matches('/').to_string();
        let token = token.filter(|t| !t.is_empty()).or_else(|| local_admin_token(&base));
        TOKEN.with(|cell| *cell.borrow_mut() = token);
        Self { base, agent }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.handle(self.agent.get(&self.url(path)).call())
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.handle(self.agent.delete(&self.url(path)).call())
    }

    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.handle(self.agent.post(&self.url(path)).send_json(body.clone()))
    }

    pub fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> anyhow::Result<Value> {
        self.handle(self.agent.post(&self.url(path)).set("content-type", content_type).send_bytes(body))
    }

    /// Posts JSON and returns the JSON body whatever the status (for endpoints whose error
    /// bodies carry the full answer, like apply's plan).
    pub fn post_json_any_status(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        match self.agent.post(&self.url(path)).send_json(body.clone()) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(response.into_json()?),
            Err(ureq::Error::Transport(transport)) => Err(anyhow!("cannot reach the Weft server at {}: {transport}", self.base)),
        }
    }

    fn handle(&self, result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<Value> {
        match result {
            Ok(response) => Ok(response.into_json()?),
            Err(ureq::Error::Status(status, response)) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                let error = &body["error"];
                match (error["code"].as_str(), error["message"].as_str()) {
                    (Some(code), Some(message)) => {
                        let path = error["path"].as_str().map(|p| format!(" (at {p})")).unwrap_or_default();
                        Err(anyhow!("{code}: {message}{path} [HTTP {status}]"))
                    }
                    _ => Err(anyhow!("server answered HTTP {status}")),
                }
            }
            Err(ureq::Error::Transport(transport)) => Err(anyhow!("cannot reach the Weft server at {}: {transport}", self.base)),
        }
    }
}

thread_local! {
    static TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Adds `Authorization: Bearer <token>` to every request the CLI sends.
struct AuthHeader;

impl ureq::Middleware for AuthHeader {
    fn handle(&self, request: ureq::Request, next: ureq::MiddlewareNext) -> Result<ureq::Response, ureq::Error> {
        let token = TOKEN.with(|cell| cell.borrow().clone());
        match token {
            Some(token) => next.handle(request.set("authorization", &format!("Bearer {token}"))),
            None => next.handle(request),
        }
    }
}

/// The admin token of a server on this machine, from `$WEFT_DATA_DIR/admin.token` or
/// `./weft-data/admin.token`.
fn local_admin_token(base: &str) -> Option<String> {
    let host = base.split("://").nth(1)?.split(['/', ':']).next()?;
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    let data_dir = std::env::var("WEFT_DATA_DIR").unwrap_or_else(|_| "./weft-data".to_string());
    std::fs::read_to_string(std::path::Path::new(&data_dir).join("admin.token")).ok().map(|t| t.trim().to_string())
}
