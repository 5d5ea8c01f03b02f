//! The HTTP side of token requests: one client setup, one form POST, the answer classified.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Error;
use crate::config::Secret;

/// A token endpoint's answer: a token (RFC 6749 5.1), or the fields of an error (5.2).
#[derive(Deserialize)]
pub(super) struct Answer {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    // Device-code flow (RFC 8628 3.2).
    pub device_code: Option<String>,
    pub user_code: Option<String>,
    pub verification_uri: Option<String>,
    pub interval: Option<u64>,
    pub message: Option<String>,
}

/// A granted token, the secrets wrapped.
pub(super) struct Granted {
    pub access: Secret<String>,
    pub refresh: Option<Secret<String>>,
    pub expires_in: Option<Duration>,
}

/// rustls with the ring provider and the platform verifier, as the IMAP side; no redirects (a
/// token endpoint that redirects a POST of secrets is not followed).
pub(super) fn client(account: &str, url: &str) -> Result<reqwest::Client, Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    use tokio_rustls::rustls::{ClientConfig, crypto::ring};
    let bad = |reason: String| Error::BadAnswer { account: account.into(), url: url.into(), reason };
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("no TLS: {e}")))?
        .with_platform_verifier()
        .map_err(|e| bad(format!("no TLS: {e}")))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| Error::Unreachable { account: account.into(), url: url.into(), source })
}

/// POSTs `form` to `url` and reads the JSON answer, whatever its status (errors are JSON too).
pub(super) async fn post(account: &str, url: &str, form: &[(&str, &str)]) -> Result<(u16, Answer), Error> {
    let unreachable = |source| Error::Unreachable { account: account.into(), url: url.into(), source };
    let response = client(account, url)?.post(url).form(form).send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(unreachable)?;
    if status >= 500 || status == 429 {
        return Err(Error::Unavailable { account: account.into(), url: url.into(), status });
    }
    let answer = serde_json::from_slice(&body).map_err(|e| Error::BadAnswer {
        account: account.into(),
        url: url.into(),
        reason: format!("status {status}, not a JSON token answer ({})", e.classify_name()),
    })?;
    Ok((status, answer))
}

/// The token in a successful answer, or the provider's error as [`Error::Refused`].
pub(super) fn granted(account: &str, url: &str, status: u16, answer: Answer) -> Result<Granted, Error> {
    if let Some(error) = answer.error {
        return Err(Error::Refused { account: account.into(), error, description: answer.error_description });
    }
    let Some(access) = answer.access_token.filter(|t| !t.is_empty()) else {
        return Err(Error::BadAnswer {
            account: account.into(),
            url: url.into(),
            reason: format!("status {status} without an access_token"),
        });
    };
    Ok(Granted {
        access: Secret::new(access),
        refresh: answer.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_in: answer.expires_in.map(Duration::from_secs),
    })
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    /// The kind of JSON error only: its message could quote the body.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}
