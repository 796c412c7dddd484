//! Query strings and request bodies parsed with errors that name the parameter.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use weft_core::{Error, Kind};

use crate::codes;

/// Query parameters, refusing names the endpoint does not know.
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, Error> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !known.contains(&name.as_ref()) {
                return Err(Error::invalid(
                    codes::UNKNOWN_PARAMETER,
                    format!("unknown query parameter {:?}; known: {}", weft_core::stream::truncate_for_message(&name), known.join(", ")),
                ));
            }
            params.insert(name.into_owned(), value.into_owned());
        }
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An unsigned integer parameter within `max`.
    pub fn u64(&self, name: &str, max: u64) -> Result<Option<u64>, Error> {
        let Some(text) = self.get(name) else { return Ok(None) };
        match text.parse::<u64>() {
            Ok(value) if value <= max => Ok(Some(value)),
            _ => Err(Error::invalid(
                codes::INVALID_PARAMETER,
                format!("{name} must be a whole number from 0 to {max}, not {:?}", weft_core::stream::truncate_for_message(text)),
            )
            .with_path(format!("/{name}"))),
        }
    }
}

/// Reads the body, refusing more than `max_bytes` with `request.body_too_large`.
pub async fn read_body(body: Body, max_bytes: usize) -> Result<Bytes, Error> {
    use futures_util::StreamExt as _;
    let mut chunks = body.into_data_stream();
    let mut read = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| Error::invalid(codes::INVALID_BODY, format!("request body could not be read: {error}")))?;
        if read.len() + chunk.len() > max_bytes {
            // Read (and drop) a bounded remainder before answering, so a client that is still
            // sending sees the 413 instead of a connection reset.
            let mut n_drained = 0usize;
            while n_drained < BODY_DRAIN_BYTES_MAX {
                match chunks.next().await {
                    Some(Ok(chunk)) => n_drained += chunk.len(),
                    _ => break,
                }
            }
            return Err(Error::new(Kind::TooLarge, codes::BODY_TOO_LARGE, format!("request body is larger than {max_bytes} bytes")));
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// Bytes of an over-limit body read past the limit (and dropped) before the 413 is sent.
pub const BODY_DRAIN_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Parses a JSON body into `T`, naming the problem on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // Serde would read a JSON array into a struct field by field; request bodies are objects.
    if bytes.trim_ascii_start().first().is_some_and(|&b| b != b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(Error::invalid(codes::INVALID_BODY, "request body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        let code = if error.is_syntax() || error.is_eof() { codes::MALFORMED_JSON } else { codes::INVALID_BODY };
        Error::invalid(code, format!("request body at line {} column {}: {error}", error.line(), error.column()))
    })
}

/// Middleware for routes that take no query parameters: any is `unknown query parameter`,
/// with the same code and message as on routes that take some.
pub async fn refuse_query_parameters(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    match QueryParams::parse(request.uri().query(), &[]) {
        Ok(_) => next.run(request).await,
        Err(error) => crate::api_error::ApiError(error).into_response(),
    }
}
