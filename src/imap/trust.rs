//! Whom a TLS connection trusts: the platform's verifier (the system's roots, the way a browser
//! on this machine would decide), only the CAs of the account's `ca_file`, or only the one
//! certificate the server's `tls_fingerprint` pins. The three are never mixed: a `ca_file` is
//! for a private server, and pinning it to its own CA means a public CA cannot vouch for an
//! impostor; a pin trusts one certificate and nothing else. With the first two the certificate
//! must name the host; a pinned one is matched exactly instead, which is what a self-signed
//! home server needs. Every handshake's signature is verified in all three.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rustls_platform_verifier::BuilderVerifierExt;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme,
};

use super::{Error, Login};
use crate::config::Fingerprint;

/// What one connection trusts; also the key of the process's shared TLS configs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Trust {
    /// The platform's verifier.
    Platform,
    /// A CA file and its contents (PEM), as read for this connection.
    CaFile(PathBuf, Vec<u8>),
    /// Exactly the certificate with this fingerprint.
    Pin(Fingerprint),
}

/// The process's TLS configs, each with the trust it was built for.
type SharedConfigs = Vec<(Trust, Arc<ClientConfig>)>;

/// A connector for `login`'s server: its pin, else its CA file, else the platform's roots.
///
/// One config per trust for the whole process, not one per connection: a config holds the root
/// store (the platform's is loaded from disk) and the session cache, so a thousand watchers
/// would otherwise hold a thousand copies and never resume a TLS session. The CA file is read
/// at every connect, so an edited file takes effect at the next one.
pub(super) async fn tls_connector(login: &Login, at: &str) -> Result<TlsConnector, Error> {
    static SHARED: Mutex<SharedConfigs> = Mutex::new(Vec::new());
    let trust = match (login.server.tls_fingerprint, &login.ca_file) {
        (Some(pin), _) => Trust::Pin(pin),
        (None, Some(path)) => {
            let pem = tokio::fs::read(path).await;
            Trust::CaFile(
                path.clone(),
                pem.map_err(|source| Error::CaFile { path: path.clone(), at: at.into(), source })?,
            )
        }
        (None, None) => Trust::Platform,
    };
    let cached = |shared: &[(Trust, Arc<ClientConfig>)]| {
        shared.iter().find(|(t, _)| *t == trust).map(|(_, config)| config.clone())
    };
    if let Some(config) = cached(&SHARED.lock().unwrap_or_else(PoisonError::into_inner)) {
        return Ok(TlsConnector::from(config));
    }
    let config = Arc::new(tls_config(&trust, at)?);
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    // Another connect may have built the same one meanwhile: keep the first.
    let config = cached(&shared).unwrap_or_else(|| {
        shared.push((trust, config.clone()));
        config
    });
    Ok(TlsConnector::from(config))
}

/// A new TLS config (ring provider) for `trust`.
fn tls_config(trust: &Trust, at: &str) -> Result<ClientConfig, Error> {
    let tls_error = |e: tokio_rustls::rustls::Error| Error::Tls { at: at.into(), source: io::Error::other(e) };
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    Ok(match trust {
        Trust::Pin(pin) => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedLeaf { pin: *pin, provider }))
        }
        Trust::CaFile(path, pem) => {
            let ca_error = |source| Error::CaFile { path: path.clone(), at: at.into(), source };
            builder.with_root_certificates(roots_from_pem(pem).map_err(ca_error)?)
        }
        Trust::Platform => builder.with_platform_verifier().map_err(tls_error)?,
    }
    .with_no_client_auth())
}

/// Every certificate in a PEM file as a root; at least one must be there.
pub(crate) fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, io::Error> {
    let invalid = |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.map_err(|e| invalid(&e))?).map_err(|e| invalid(&e))?;
    }
    if roots.is_empty() {
        return Err(invalid(&"no PEM certificate in it"));
    }
    Ok(roots)
}

/// The fingerprint a server presented instead of the pinned one, if `error` (from a handshake)
/// is that refusal.
pub(super) fn unpinned(error: &io::Error) -> Option<Fingerprint> {
    let rustls = error.get_ref()?.downcast_ref::<tokio_rustls::rustls::Error>()?;
    match rustls {
        tokio_rustls::rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other))) => {
            other.downcast_ref::<Unpinned>().map(|u| u.presented)
        }
        _ => None,
    }
}

/// The refusal of [`PinnedLeaf`], carried through rustls to [`unpinned`].
#[derive(Debug, thiserror::Error)]
#[error("the server presented certificate {presented}, not the pinned one")]
struct Unpinned {
    presented: Fingerprint,
}

/// Accepts exactly the leaf certificate whose SHA-256 is `pin`: no chain, no host name, no
/// validity dates (a pinned self-signed certificate is renewed by changing the pin). The
/// handshake signatures are checked with the provider's algorithms as usual.
#[derive(Debug)]
struct PinnedLeaf {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        if presented == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let refusal = OtherError(Arc::new(Unpinned { presented }));
        Err(tokio_rustls::rustls::Error::InvalidCertificate(CertificateError::Other(refusal)))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_needs_a_certificate() {
        let err = roots_from_pem(b"just text\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn a_pin_accepts_its_certificate_only_and_says_which_it_got() {
        let provider = Arc::new(ring::default_provider());
        let verifier = PinnedLeaf { pin: Fingerprint::of(b"the pinned cert"), provider };
        let name = ServerName::try_from("nas.lan").unwrap();
        let verify = |der: &'static [u8]| {
            verifier.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
        };
        assert!(verify(b"the pinned cert").is_ok());
        let refused = verify(b"another cert").unwrap_err();
        let io = io::Error::new(io::ErrorKind::InvalidData, refused);
        assert_eq!(unpinned(&io), Some(Fingerprint::of(b"another cert")));
        assert_eq!(unpinned(&io::Error::other("unrelated")), None);
    }
}
