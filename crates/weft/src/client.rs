//! The HTTP client the CLI commands use: JSON in, JSON out, and server errors turned into
//! messages that carry the server's stable code.

use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(Duration::from_secs(60)).build();
        Self { base: base.trim_end_matches('/').to_string(), agent }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.handle(self.agent.get(&self.url(path)).call())
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
