//! TLS for the line protocol (`--tls-cert`, `--tls-key`): the server's certificate chain and
//! private key, read from PEM files, and the handshake each connection starts with.
//!
//! rustls with the *ring* provider ([`crypto_provider`]): TLS 1.2 and 1.3, no client
//! certificates. A handshake
//! that fails or takes longer than [`HANDSHAKE_TIMEOUT`] ends the connection, logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::ServeError;

/// How long a client has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS settings from certificate chain `cert` and private key `key`, both PEM.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let unreadable = |path: &Path, what: &str, error: &dyn std::fmt::Display| {
        ServeError::Tls(format!("{}: {what}: {error}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(cert, "cannot read a PEM certificate chain", &e))?;
    if chain.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| unreadable(key, "cannot read a PEM private key", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
        })
        .map_err(|e| {
            ServeError::Tls(format!(
                "{} and {} do not make a TLS identity: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// The cryptography of every TLS connection, the server's and its clients': *ring*'s.
/// rustls now deprecates it for lacking post-quantum key exchange, which needs aws-lc-rs, a
/// C library several times larger to build and ship; *ring*'s X25519 and P-256 are what
/// TLS 1.3 clients use today.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS stream of `socket` once the client's handshake succeeds; `None` (logged) when
/// it fails or times out.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
) -> Option<TlsStream<TcpStream>> {
    let peer = socket
        .peer_addr()
        .map_or_else(|_| "a client".to_string(), |a| a.to_string());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            eprintln!("TLS handshake with {peer} failed: {error}");
            None
        }
        Err(_) => {
            eprintln!(
                "TLS handshake with {peer} took over {} s: closed",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            None
        }
    }
}
