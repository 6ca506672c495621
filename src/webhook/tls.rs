//! TLS for `https://` receivers: the system's OpenSSL, loaded at run time
//! ([`crate::sys::tls`]), not linked, so that wschat builds with nothing
//! but the Rust toolchain and runs where `libssl3` is missing (`http://`
//! receivers then work, and `https://` ones fail with a clear error while
//! their events wait). It trusts the system's certificate store (and so
//! gets its updates and the machine's own CAs), plus the PEM certificates
//! of `--webhook-ca`; it checks the receiver's certificate chain and host
//! name, and speaks TLS 1.2 or 1.3 (RFC 8446).
//!
//! Why this stack, and not rustls or a linked OpenSSL: docs/customer-service.md,
//! "Webhooks".

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use crate::sys::tls::{Connector, TlsStream};

/// How the workers open `https://` connections: a [`Connector`] shared by
/// all of them, or, when no OpenSSL could be loaded, why not.
#[derive(Debug, Clone)]
pub struct Https(Arc<Result<Connector, String>>);

impl Https {
    /// Set up TLS trusting the system's store and `ca_file`. A missing
    /// OpenSSL is not an error here (it is logged, and each `https://`
    /// attempt fails with it, so the events wait); a CA file that cannot
    /// be read, or holds no certificate, is.
    pub fn setup(ca_file: Option<&Path>) -> io::Result<Https> {
        if let Err(why) = crate::sys::tls::available() {
            log::error!(
                "webhook: {why}; events for https:// receivers wait until it is installed and wschat restarted"
            );
            return Ok(Https(Arc::new(Err(why))));
        }
        let connector = Connector::new(ca_file)?;
        log::info!("webhook: https:// through {}", connector.version());
        Ok(Https(Arc::new(Ok(connector))))
    }

    /// Whether `https://` can work: `Err` says why not.
    pub fn ready(&self) -> io::Result<()> {
        match &*self.0 {
            Ok(_) => Ok(()),
            Err(why) => Err(io::Error::new(io::ErrorKind::NotFound, why.clone())),
        }
    }

    /// The TLS handshake with `host` over `tcp`.
    pub fn connect(&self, tcp: TcpStream, host: &str) -> io::Result<TlsStream> {
        match &*self.0 {
            Ok(connector) => connector.connect(tcp, host),
            Err(why) => Err(io::Error::new(io::ErrorKind::NotFound, why.clone())),
        }
    }
}
