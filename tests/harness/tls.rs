//! A throwaway certificate authority and a server certificate signed by it.
//!
//! A CA plus a leaf, not one self-signed certificate: rustls refuses a
//! self-signed `openssl req -x509` certificate used as a server certificate
//! (`CaUsedAsEndEntity`), and a real deployment looks like this too. A test
//! about trust can choose another [`Leaf`] instead (see `TestEnv::start_own_with_leaf`).
//! Generated with `rcgen` on `ring`, so the tests pull in no OpenSSL or aws-lc.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

/// Names the server certificate is valid for; tests connect to 127.0.0.1
/// and verify against "localhost" or the IP itself.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "mx.tidings.test"];

/// Files written by [`Pki::write`], in the harness's temp dir.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (PEM) that clients must trust.
    pub ca_file: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub cert_file: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub key_file: PathBuf,
    /// The CA certificate, DER, for building rustls root stores.
    pub ca_der: CertificateDer<'static>,
    /// The server certificate, DER (what a client sees and may pin).
    pub leaf_der: CertificateDer<'static>,
}

/// A server certificate other than the usual one, for tests of trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Self-signed with CA:TRUE, as `openssl req -x509` makes it for a home server; the
    /// "CA file" is the certificate itself, which rustls refuses (`CaUsedAsEndEntity`).
    SelfSigned,
    /// Signed by a fresh test CA, but for another host name only ([`OTHER_NAME`]).
    OtherName,
}

/// The one name a [`Leaf::OtherName`] certificate is valid for.
pub const OTHER_NAME: &str = "mail.elsewhere.test";

impl Pki {
    /// Generates a fresh CA and server certificate and writes them under `dir`.
    pub fn write(dir: &Path) -> Result<Pki> {
        Pki::write_for(dir, &SERVER_NAMES)
    }

    /// Writes `leaf` (and its CA file) under `dir`, over what [`Pki::write`] put there.
    pub fn write_leaf(dir: &Path, leaf: Leaf) -> Result<Pki> {
        match leaf {
            Leaf::OtherName => Pki::write_for(dir, &[OTHER_NAME]),
            Leaf::SelfSigned => {
                let key = KeyPair::generate()?;
                let mut params = leaf_params(&SERVER_NAMES)?;
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages.push(KeyUsagePurpose::KeyCertSign);
                let cert = params.self_signed(&key)?;
                Pki::save(dir, &cert, &cert, &key)
            }
        }
    }

    fn write_for(dir: &Path, names: &[&str]) -> Result<Pki> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "tidings test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params(names)?.signed_by(&leaf_key, &ca)?;
        Pki::save(dir, &ca_cert, &leaf, &leaf_key)
    }

    /// Writes the CA file, the server certificate and its key under `dir`.
    fn save(dir: &Path, ca: &Certificate, leaf: &Certificate, key: &KeyPair) -> Result<Pki> {
        let pki = Pki {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            ca_der: ca.der().clone(),
            leaf_der: leaf.der().clone(),
        };
        write(&pki.ca_file, &ca.pem())?;
        write(&pki.cert_file, &leaf.pem())?;
        write(&pki.key_file, &key.serialize_pem())?;
        Ok(pki)
    }

    /// A rustls client config that trusts only the test CA (ring provider,
    /// set per config so it does not depend on a process-wide default).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("test CA is valid");
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A connector for [`Pki::client_config`].
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.client_config())
    }
}

/// A server certificate's parameters: `names`, for TLS servers.
fn leaf_params(names: &[&str]) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// The name clients verify the servers' certificate against.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("valid DNS name")
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
