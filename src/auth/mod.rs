//! OAuth2 for IMAP and SMTP: access tokens from a refresh token, XOAUTH2, `tidings auth`.
//!
//! - [`token`]: the account's [`Tokens`]: an access token refreshed before it expires (and
//!   whenever a login refused it), a rotated refresh token written back atomically.
//! - [`xoauth2`]: the SASL XOAUTH2 string, the IMAP authenticator that answers a refusal's
//!   JSON challenge with an empty line, and that challenge decoded for the error message.
//! - [`flow`]: `tidings auth ACCOUNT`, which gets the first refresh token: Google's loopback
//!   redirect with PKCE, Microsoft's device code.
//!
//! Token requests use reqwest's `form` (the `oauth2` crate would bring a second HTTP stack).
//! What this module must not do: log or put in an error any token, secret or code; only the
//! account, the endpoint and the provider's `error` and `error_description` appear.
//!
//! Layer: mechanism (see the map in lib.rs): it reads the `oauth2:` settings from `config`; the
//! token cache is state, held in [`Credentials`] by whoever runs the account, never in the config.

mod credentials;
pub mod flow;
mod http;
pub mod token;
pub mod xoauth2;

pub use credentials::{Credentials, OAuth};
pub use token::{Tokens, access_token, forget_access_token};

use std::path::PathBuf;

/// An error getting or storing a token. Never contains a token or secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client secret or the refresh token could not be read.
    #[error("cannot read the OAuth2 {what} of account `{account}`")]
    Secret {
        /// The account.
        account: String,
        /// `client secret` or `refresh token`.
        what: &'static str,
        /// Why.
        #[source]
        source: crate::config::secret::Error,
    },
    /// The token endpoint could not be reached or did not answer in time.
    #[error("cannot reach the OAuth2 token endpoint {url} for account `{account}`")]
    Unreachable {
        /// The account.
        account: String,
        /// The endpoint.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The provider refused the grant: a revoked or expired refresh token, a wrong client.
    /// Retrying will not help; a new refresh token is needed.
    #[error(
        "cannot refresh the OAuth2 access token of account `{account}`: the provider refused it ({error}{}); \
         run `tidings auth {account}` to get a new refresh token",
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Refused {
        /// The account.
        account: String,
        /// The OAuth2 `error` code, e.g. `invalid_grant`.
        error: String,
        /// The provider's `error_description`.
        description: Option<String>,
    },
    /// The endpoint answered 5xx or 429: the provider's trouble, worth retrying later.
    #[error("cannot refresh the OAuth2 access token of account `{account}`: {url} answered {status}")]
    Unavailable {
        /// The account.
        account: String,
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The endpoint answered with something other than a token or an OAuth2 error.
    #[error("cannot use the answer of the OAuth2 token endpoint {url} for account `{account}`: {reason}")]
    BadAnswer {
        /// The account.
        account: String,
        /// The endpoint.
        url: String,
        /// What was wrong (status, missing field); never the body, which may hold a token.
        reason: String,
    },
    /// A new refresh token could not be written to its file.
    #[error("cannot write the OAuth2 refresh token of account `{account}` to {path}")]
    Store {
        /// The account.
        account: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `tidings auth` could not complete the authorisation.
    #[error("cannot authorise account `{account}`: {reason}")]
    Flow {
        /// The account.
        account: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Retrying soon cannot fix it (refused grant, unreadable secret, bad answer): wait long,
    /// as for refused credentials.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Error::Unreachable { .. } | Error::Unavailable { .. })
    }
}
