//! The client's connection to the server as a reading half and a writing half, each for a
//! thread of its own: plain TCP, or TLS over it (`--tls`, `--tls-ca`).
//!
//! Over TLS both halves share the rustls connection state under a lock, held only to feed
//! it bytes or take bytes from it: the reading half waits for the socket without it, so a
//! request can be written while the reader waits for a reply.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ClientConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::error::ShellError;

/// Which certificates a TLS connection trusts.
#[derive(Debug, Clone)]
pub enum TlsTrust {
    /// The system's certificate authorities.
    System,
    /// The certificates in this PEM file (a private authority, or the server's own).
    File(PathBuf),
}

/// The reading and the writing half of a connection.
pub type Halves = (Box<dyn Read + Send>, Box<dyn Write + Send>);

/// The halves of a connection to `address`, over TLS when `tls` says whom to trust.
pub fn open(address: &str, tls: Option<&TlsTrust>) -> Result<Halves, ShellError> {
    let socket = TcpStream::connect(address)
        .map_err(|e| ShellError::Connection(format!("cannot connect to {address}: {e}")))?;
    let _ = socket.set_nodelay(true);
    let Some(trust) = tls else {
        return Ok((Box::new(socket.try_clone()?), Box::new(socket)));
    };
    let mut connection = ClientConnection::new(client_config(trust)?, server_name(address)?)
        .map_err(|e| ShellError::Connection(format!("TLS with {address}: {e}")))?;
    let mut handshake = &socket;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut handshake)
            .map_err(|e| ShellError::Connection(format!("TLS handshake with {address}: {e}")))?;
    }
    let shared = Arc::new(Mutex::new(connection));
    let reader = TlsReader {
        connection: Arc::clone(&shared),
        socket: socket.try_clone()?,
        raw: Vec::new(),
        fed: 0,
    };
    let writer = TlsWriter {
        connection: shared,
        socket,
    };
    Ok((Box::new(reader), Box::new(writer)))
}

fn client_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>, ShellError> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        TlsTrust::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(ShellError::Connection(
                    "no certificate authorities found on this system: give the server's \
                     certificate with --tls-ca FILE"
                        .into(),
                ));
            }
        }
        TlsTrust::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    ShellError::Usage(format!("{}: not PEM certificates: {e}", path.display()))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ShellError::Usage(format!(
                    "{}: no certificate in the file",
                    path.display()
                )));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(sluice_server::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ShellError::Connection(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: the host part of `address`.
fn server_name(address: &str) -> Result<ServerName<'static>, ShellError> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| ShellError::Usage(format!("'{host}' is not a host name for TLS: {e}")))
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

struct TlsReader {
    connection: Arc<Mutex<ClientConnection>>,
    socket: TcpStream,
    /// Bytes as they came from the socket; those in `fed..` are not given to rustls yet.
    raw: Vec<u8>,
    fed: usize,
}

impl Read for TlsReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut connection = lock(&self.connection)?;
            match connection.reader().read(buffer) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                read => return read,
            }
            if self.fed == self.raw.len() {
                // Nothing left to decrypt: wait for the socket without holding the lock.
                drop(connection);
                self.raw.resize(1 << 16, 0);
                let count = self.socket.read(&mut self.raw)?;
                self.raw.truncate(count);
                self.fed = 0;
                if count == 0 {
                    return Ok(0);
                }
                continue;
            }
            // One record at a time, so decrypted bytes never pile up past rustls's limit.
            let mut unfed = &self.raw[self.fed..];
            self.fed += connection.read_tls(&mut unfed)?;
            connection.process_new_packets().map_err(tls_error)?;
            // Whatever the connection has to say back (an alert, a key update).
            while connection.wants_write() {
                connection.write_tls(&mut &self.socket)?;
            }
        }
    }
}

struct TlsWriter {
    connection: Arc<Mutex<ClientConnection>>,
    socket: TcpStream,
}

impl Write for TlsWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut connection = lock(&self.connection)?;
        let written = connection.writer().write(bytes)?;
        while connection.wants_write() {
            connection.write_tls(&mut self.socket)?;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut connection = lock(&self.connection)?;
        connection.writer().flush()?;
        while connection.wants_write() {
            connection.write_tls(&mut self.socket)?;
        }
        self.socket.flush()
    }
}

fn lock(
    connection: &Mutex<ClientConnection>,
) -> io::Result<std::sync::MutexGuard<'_, ClientConnection>> {
    connection
        .lock()
        .map_err(|_| io::Error::other("the TLS connection was poisoned by a failed thread"))
}
