//! HTTPS: a listener that hands axum connections whose TLS handshake is already done, so
//! `axum::serve` (and its graceful shutdown) serves HTTPS exactly as it serves plaintext.
//!
//! Handshakes run in their own tasks, never in `accept`: a client that connects and stalls
//! would otherwise hold up every other connection. At most `TLS_HANDSHAKES_MAX` run at once
//! (further accepts wait for one to finish), each bounded by `TLS_HANDSHAKE_DEADLINE_MS`.
//! This module does not load certificates: it receives a ready `rustls` configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// Most TLS handshakes in progress at once.
pub const TLS_HANDSHAKES_MAX: usize = 256;
/// Longest a client may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_DEADLINE_MS: u64 = 10_000;
/// Handshaken connections waiting for axum to take them.
const HANDSHAKEN_QUEUED_MAX: usize = 64;
/// Pause after a failed accept (usually out of file descriptors), instead of spinning.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 50;

/// Accepts TCP connections and yields them once their TLS handshake has completed.
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Serves `config` on `listener`; HTTP/1.1 is announced over ALPN.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, handshaken) = mpsc::channel(HANDSHAKEN_QUEUED_MAX);
        let accepting = tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(Self { handshaken, local_addr, accepting })
    }
}

impl Drop for TlsListener {
    /// axum drops the listener when it stops accepting (graceful shutdown): the port closes and
    /// handshakes in flight find the queue gone.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The accept loop never returns and is aborted only when this listener is dropped, so
        // the queue stays open for as long as anyone can call `accept`.
        self.handshaken.recv().await.expect("the TLS accept loop runs until its listener is dropped")
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, handshaken: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let handshakes = Arc::new(Semaphore::new(TLS_HANDSHAKES_MAX));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "https accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else { return };
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            let deadline = Duration::from_millis(TLS_HANDSHAKE_DEADLINE_MS);
            let stream = match tokio::time::timeout(deadline, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "https tls handshake failed"),
                Err(_) => return tracing::debug!(%peer, "https tls handshake did not finish before the deadline"),
            };
            drop(permit);
            // Fails only when the listener is gone (shutdown): the connection is then closed.
            let _ = handshaken.send((stream, peer)).await;
        });
    }
}
