//! Connections to the shared PostgreSQL: a pool (deadpool) whose connections use rustls with the
//! ring provider, like every other connection tidings makes. The server's certificate is
//! checked against the platform's roots, or only the CAs of a `ca_file`, and must name the host.
//! The URL's `sslmode` decides whether TLS is required (`require`), tried (`prefer`, the
//! default) or not used (`disable`). The URL may hold a password: no error here repeats it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::crypto::ring;

/// Why no pool could be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse (the message never repeats it: it may hold a password).
    #[error("cannot read the PostgreSQL URL of `state:`")]
    Url(#[source] tokio_postgres::Error),
    /// The CA file could not be read or holds no certificate.
    #[error("cannot read CA file {path} for PostgreSQL")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rustls could not be set up.
    #[error("cannot set up TLS for PostgreSQL")]
    Tls(#[source] tokio_rustls::rustls::Error),
    /// The pool could not be built.
    #[error("cannot set up the PostgreSQL connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// A pool of at most `size` connections to `url`, trusting `ca_file`'s CAs when given, else
/// the platform's. Connections are opened when first used.
/// A session idle inside a transaction for `idle_in_transaction` is ended by the server (a
/// fleet member passes half its lease, so a frozen holder's locks are gone before its lease).
pub fn pool(url: &str, ca_file: Option<&Path>, size: usize, idle_in_transaction: Duration) -> Result<Pool, Error> {
    let (url, root_cert) = split_root_cert(url);
    let ca_file = ca_file.or(root_cert.as_deref());
    let mut config: tokio_postgres::Config = url.parse().map_err(Error::Url)?;
    // Every store transaction runs its statements back to back: a session idle inside one is a
    // client that stalled (a frozen VM, a SIGSTOP) while holding row locks, which would keep a
    // takeover of its accounts waiting for as long as it stays frozen. The server ends such a
    // session after this long, releasing its locks; the stalled writes are lost, as the fencing
    // epoch would refuse them anyway.
    let idle = format!("-c idle_in_transaction_session_timeout={}", idle_in_transaction.as_millis().max(1));
    let options = match config.get_options() {
        Some(given) => format!("{given} {idle}"),
        None => idle,
    };
    config.options(&options);
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?;
    let tls = match ca_file {
        Some(path) => {
            let ca_error = |source| Error::CaFile { path: path.to_owned(), source };
            let pem = std::fs::read(path).map_err(ca_error)?;
            let roots = crate::imap::trust::roots_from_pem(&pem).map_err(ca_error)?;
            builder.with_root_certificates(roots)
        }
        None => builder.with_platform_verifier().map_err(Error::Tls)?,
    }
    .with_no_client_auth();
    // Fast recycling: a connection that broke shows on its next use, which the caller retries.
    let manager = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = Manager::from_config(config, MakeRustlsConnect::new(tls), manager);
    Pool::builder(manager).max_size(size).build().map_err(Error::Pool)
}

/// Takes libpq's `sslrootcert=<file>` out of a URL's query (tokio-postgres refuses options it
/// does not know), so `state:` alone can name the CA a private PostgreSQL is signed by.
pub fn split_root_cert(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut root_cert = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(file) => {
                root_cert = Some(PathBuf::from(file));
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (url, root_cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url_and_the_rest_kept() {
        let (url, ca) = split_root_cert("postgres://t@db/x?sslmode=require&sslrootcert=/etc/ca.pem&connect_timeout=5");
        assert_eq!(url, "postgres://t@db/x?sslmode=require&connect_timeout=5");
        assert_eq!(ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (url, ca) = split_root_cert("postgres://t@db/x?sslrootcert=/ca.pem");
        assert_eq!((url.as_str(), ca.as_deref()), ("postgres://t@db/x", Some(Path::new("/ca.pem"))));
        assert_eq!(split_root_cert("postgres://t@db/x"), ("postgres://t@db/x".to_owned(), None));
    }
}
