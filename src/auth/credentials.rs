//! What an account logs in with, once its secrets are resolved: the password, or the OAuth2
//! settings with the account's token cache.
//!
//! The cache is state, so the config does not hold it: whoever runs the account (the runtime,
//! a tool, a test) makes the account's [`Credentials`] once and hands clones to every connection
//! (IMAP watchers, executor, SMTP), which share the cache and so see one refresh and every
//! rotation.

use std::sync::Arc;

use super::Tokens;
use crate::config::{Account, OAuth2, Secret};

/// An account's login secrets; clones share the token cache.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The password; shown as `[redacted]` by `Debug`. Unused with `oauth2`.
    pub password: Secret<String>,
    /// Log in with XOAUTH2 and this account's access token instead of the password.
    pub oauth2: Option<OAuth>,
}

/// An OAuth2 account's settings and its token cache.
#[derive(Clone, Debug)]
pub struct OAuth {
    /// The settings, as configured.
    pub settings: OAuth2,
    /// The access token in use and the latest refresh token.
    pub tokens: Arc<Tokens>,
}

impl Credentials {
    /// `account`'s credentials with its resolved `password` and a token cache of their own.
    pub fn new(account: &Account, password: Secret<String>) -> Credentials {
        let oauth2 = account.oauth2.clone().map(|settings| OAuth { settings, tokens: Arc::default() });
        Credentials { password, oauth2 }
    }
}
