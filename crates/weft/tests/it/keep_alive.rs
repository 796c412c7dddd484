//! HTTP/1.1 connection reuse after a refused request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::server::Server;

/// One HTTP/1.1 response as read off the socket.
struct RawResponse {
    status_line: String,
    /// Lowercased names with their values.
    headers: Vec<(String, String)>,
}

/// Reads one response from `reader`: its head and its body (which is discarded).
fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<RawResponse> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header line");
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers.iter().find(|(name, _)| name == "content-length").map_or(0, |(_, v)| v.parse().expect("content-length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(RawResponse { status_line: status_line.trim_end().to_string(), headers })
}

/// Proves a keep-alive client is never surprised: when the server refuses a POST (415 here, for the content
/// type), it either announces `connection: close` or keeps the connection usable, so the client's next
/// request on it gets an answer rather than EOF or a broken pipe.
#[test]
fn a_request_refused_before_its_body_was_read_does_not_break_the_connection() {
    let server = Server::start();
    server.create_stream("s", 1, "always");
    let address = server.base_url().trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&address).expect("connecting");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut writer = stream.try_clone().expect("cloning the socket");
    let mut reader = BufReader::new(stream);
    let body = br#"{"a":1}"#;
    let head = format!(
        "POST /api/v1/streams/s/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        server.admin_token(),
        body.len()
    );
    writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body)).expect("sending the request");
    let refused = read_response(&mut reader).expect("the 415 answer");
    assert!(refused.status_line.contains(" 415 "), "{}", refused.status_line);
    let announced_close = refused.headers.iter().any(|(name, value)| name == "connection" && value.eq_ignore_ascii_case("close"));
    if announced_close {
        return;
    }
    // The server did not say it would close, so the client may send its next request.
    let next = format!("GET /healthz HTTP/1.1\r\nhost: {address}\r\n\r\n");
    let sent = writer.write_all(next.as_bytes());
    let answered = sent.and_then(|()| read_response(&mut reader));
    let next = answered.expect("the kept-alive connection answers the next request");
    assert!(next.status_line.contains(" 200 "), "{}", next.status_line);
}
