//! TLS for `weft serve`: loads the PEM certificate chain and private key named by `--tls-cert`
//! and `--tls-key` into one `rustls` server configuration, which both listeners use (HTTPS, and
//! Kafka's `SSL`/`SASL_SSL`).
//!
//! Every problem is a startup error that names the file: a file that cannot be read, one with
//! no certificate or no private key in it, a key that does not belong to the certificate.
//! A key file that its group or other users may read is served, with a warning.
//! The `ring` provider is used explicitly, so the choice does not depend on which crypto
//! features other crates happen to enable.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Builds the server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let cert_pem = std::fs::read(cert_path).with_context(|| format!("reading the TLS certificate {}", cert_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the TLS certificate {}: not valid PEM", cert_path.display()))?;
    if chain.is_empty() {
        bail!("the TLS certificate {} holds no PEM CERTIFICATE block", cert_path.display());
    }
    let key_pem = std::fs::read(key_path).with_context(|| format!("reading the TLS key {}", key_path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            anyhow::anyhow!("the TLS key {} holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", key_path.display())
        }
        other => anyhow::anyhow!("reading the TLS key {}: not valid PEM: {other}", key_path.display()),
    })?;
    warn_if_readable_by_others(key_path);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing the TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| format!("the TLS key {} does not fit the certificate {}", key_path.display(), cert_path.display()))?;
    Ok(Arc::new(config))
}

/// Warns when the key file's group or other users may read it: whoever can read it can
/// impersonate the server.
fn warn_if_readable_by_others(key_path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(key_path) else { return };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        tracing::warn!(
            key = %key_path.display(),
            mode = %format!("{mode:03o}"),
            "the TLS key is readable by its group or by other users; restrict it with chmod 600"
        );
    }
}
