//! A small HTTP/1.1 keep-alive client over a tokio `TcpStream`, enough to drive Weft's JSON and NDJSON API.
//!
//! It sends one request at a time per connection, with an optional bearer token, and reads `Content-Length` or chunked bodies.
//! It does no TLS, redirects, compression or connection pooling: the benchmark owns its connections explicitly.

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::systems::read_line_bounded;

/// Longest status or header line accepted.
const HEADER_LINE_BYTES_MAX: u64 = 16 * 1024;
/// Most header lines accepted in one response.
const HEADER_LINES_MAX: usize = 100;
/// Largest response body accepted (a consume page of 10,000 events is about 5 MiB).
const BODY_BYTES_MAX: u64 = 256 * 1024 * 1024;

pub(crate) struct HttpConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    host: String,
    /// `Authorization` header value sent with every request (`Bearer <token>`), if any.
    authorization: Option<String>,
    head: Vec<u8>,
}

pub(crate) struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpConnection {
    pub(crate) fn new(stream: TcpStream, port: u16) -> HttpConnection {
        let (reader, writer) = stream.into_split();
        HttpConnection {
            reader: BufReader::with_capacity(256 * 1024, reader),
            writer,
            host: format!("127.0.0.1:{port}"),
            authorization: None,
            head: Vec::with_capacity(512),
        }
    }

    pub(crate) async fn connect(port: u16) -> Result<HttpConnection> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.with_context(|| format!("connect to 127.0.0.1:{port}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection::new(stream, port))
    }

    /// Sends `Authorization: Bearer <token>` with every request from now on.
    pub(crate) fn with_bearer_token(mut self, token: Option<&str>) -> HttpConnection {
        self.authorization = token.map(|token| format!("Bearer {token}"));
        self
    }

    pub(crate) async fn get(&mut self, path: &str) -> Result<HttpResponse> {
        self.request("GET", path, None, &[]).await
    }

    pub(crate) async fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> Result<HttpResponse> {
        self.request("POST", path, Some(content_type), body).await
    }

    async fn request(&mut self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Result<HttpResponse> {
        use std::io::Write as _;
        self.head.clear();
        write!(self.head, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host)?;
        if let Some(authorization) = &self.authorization {
            write!(self.head, "Authorization: {authorization}\r\n")?;
        }
        if let Some(content_type) = content_type {
            write!(self.head, "Content-Type: {content_type}\r\n")?;
        }
        if method != "GET" {
            write!(self.head, "Content-Length: {}\r\n", body.len())?;
        }
        self.head.extend_from_slice(b"\r\n");
        self.writer.write_all(&self.head).await?;
        if !body.is_empty() {
            self.writer.write_all(body).await?;
        }
        self.read_response().await.with_context(|| format!("{method} {path}"))
    }

    async fn read_response(&mut self) -> Result<HttpResponse> {
        let status_line = read_line_bounded(&mut self.reader, HEADER_LINE_BYTES_MAX).await?;
        let status_line = String::from_utf8_lossy(&status_line);
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        for line_idx in 0.. {
            if line_idx >= HEADER_LINES_MAX {
                bail!("more than {HEADER_LINES_MAX} response header lines");
            }
            let line = read_line_bounded(&mut self.reader, HEADER_LINE_BYTES_MAX).await?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(&line);
            let Some((name, value)) = line.split_once(':') else {
                bail!("bad header line {line:?}");
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse().with_context(|| format!("bad content-length {value:?}"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            self.read_chunked_body().await?
        } else if let Some(length) = content_length {
            if length > BODY_BYTES_MAX {
                bail!("response body of {length} bytes is over the {BODY_BYTES_MAX} byte limit");
            }
            let mut body = vec![0; length as usize];
            self.reader.read_exact(&mut body).await?;
            body
        } else {
            // Keep-alive needs a framed body; an unframed one is only valid for bodiless statuses.
            Vec::new()
        };
        Ok(HttpResponse { status, body })
    }

    async fn read_chunked_body(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = read_line_bounded(&mut self.reader, HEADER_LINE_BYTES_MAX).await?;
            let size_text = String::from_utf8_lossy(&size_line);
            let size_hex = size_text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_hex, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                // Skip trailers up to the empty line.
                while !read_line_bounded(&mut self.reader, HEADER_LINE_BYTES_MAX).await?.is_empty() {}
                return Ok(body);
            }
            if body.len() as u64 + size > BODY_BYTES_MAX {
                bail!("chunked response body is over the {BODY_BYTES_MAX} byte limit");
            }
            let start = body.len();
            body.resize(start + size as usize, 0);
            self.reader.read_exact(&mut body[start..]).await?;
            let crlf = read_line_bounded(&mut self.reader, 2).await?;
            if !crlf.is_empty() {
                bail!("chunk not followed by CRLF");
            }
        }
    }
}
