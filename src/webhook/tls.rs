//! TLS for `https://` receivers: `native-tls`, which on Linux is the
//! system's OpenSSL, linked dynamically. It trusts the system's
//! certificate store (and so gets its updates and the machine's own CAs),
//! plus the PEM certificates of `--webhook-ca`; it checks the receiver's
//! certificate and host name, and negotiates TLS 1.2 or 1.3 (RFC 8446).
//!
//! Why this stack: measured in the release build (docs/customer-service.md,
//! "Webhooks"), wschat with it is 2.27 MB; the same code over rustls with
//! ring is 3.56 MB, past wschat's 3 MiB budget.

use std::io;
use std::path::Path;

/// What the workers use to open TLS connections.
pub type Connector = native_tls::TlsConnector;

/// A connector trusting the system's store and the certificates in
/// `ca_file` (PEM, one or several).
pub fn client_config(ca_file: Option<&Path>) -> io::Result<Connector> {
    let mut builder = native_tls::TlsConnector::builder();
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if let Some(path) = ca_file {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let mut found = 0;
        for block in pem_blocks(&pem) {
            let cert = native_tls::Certificate::from_pem(block.as_bytes())
                .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
            builder.add_root_certificate(cert);
            found += 1;
        }
        if found == 0 {
            return Err(io::Error::other(format!(
                "{}: no PEM certificate in it",
                path.display()
            )));
        }
    }
    builder.build().map_err(io::Error::other)
}

/// Each `-----BEGIN CERTIFICATE-----` … `-----END CERTIFICATE-----` block
/// of `pem` (RFC 7468 §2).
fn pem_blocks(pem: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let stop = start + len + END.len();
        out.push(format!("{}\n", &rest[start..stop]));
        rest = &rest[stop..];
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pem_blocks_are_split() {
        let two = "x\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n";
        let blocks = super::pem_blocks(two);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].contains("BB=="));
        assert!(super::pem_blocks("nothing").is_empty());
    }
}
