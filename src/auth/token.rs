//! An account's tokens: the access token in use, refreshed before it expires, and the latest
//! refresh token, written back when the provider rotates it.
//!
//! Every connection of the account asks [`access_token`] just before it logs in, so a
//! reconnect never uses a token about to expire. One refresh at a time: the lock is held over
//! the request, so ten watchers reconnecting at once cause one refresh, not ten (a provider
//! rotating refresh tokens would otherwise see the old one reused and may revoke them all).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::{info, warn};

use super::{Error, OAuth, http};
use crate::config::{OAuth2, Secret, SecretSource};

/// A token that expires within this is refreshed before a login: a login may take a while,
/// and clocks drift.
pub const MARGIN: Duration = Duration::from_secs(60);

/// How long an access token is trusted when the provider does not say (`expires_in` is only
/// RECOMMENDED in RFC 6749).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The shared token state of one account. `Debug` shows no token.
#[derive(Debug, Default)]
pub struct Tokens {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The access token and when it stops being used.
    access: Option<(Secret<String>, Instant)>,
    /// The refresh token once read or rotated; `None`: read it from its source.
    refresh: Option<Secret<String>>,
}

/// An access token for `account`, valid for at least [`MARGIN`]: the one in use, or a new one
/// from the token endpoint.
pub async fn access_token(oauth: &OAuth, account: &str) -> Result<Secret<String>, Error> {
    let mut state = oauth.tokens.state.lock().await;
    let oauth = &oauth.settings;
    if let Some((token, until)) = &state.access
        && Instant::now() + MARGIN < *until
    {
        return Ok(token.clone());
    }
    let refresh = match &state.refresh {
        Some(token) => token.clone(),
        None => read_refresh_token(oauth, account)?,
    };
    let client_secret = client_secret(oauth, account)?;
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.expose().as_str()),
        ("client_id", oauth.client_id.as_str()),
    ];
    if let Some(secret) = &client_secret {
        form.push(("client_secret", secret.expose()));
    }
    // Google keeps the scope of the grant; Microsoft wants the scope asked for again.
    if oauth.provider != crate::config::oauth2::Provider::Google {
        form.push(("scope", oauth.scope.as_str()));
    }
    let (status, answer) = http::post(account, &oauth.token_url, &form).await?;
    let granted = http::granted(account, &oauth.token_url, status, answer);
    let granted = match granted {
        Ok(granted) => granted,
        Err(e) => {
            // A refused grant will be refused again: the refresh token must be re-read (a user
            // may have run `tidings auth` meanwhile), never resent in a loop.
            state.refresh = None;
            state.access = None;
            return Err(e);
        }
    };
    let lifetime = granted.expires_in.unwrap_or(DEFAULT_LIFETIME);
    info!(account, expires_in = lifetime.as_secs(), "oauth2: access token refreshed");
    match granted.refresh {
        Some(new) if new != refresh => {
            match write_atomically(&oauth.store, new.expose()) {
                Ok(()) => info!(account, file = %oauth.store.display(), "oauth2: rotated refresh token stored"),
                // The new token still works from memory for this run; say loudly that a
                // restart will need the old one (which the provider may have revoked).
                Err(source) => warn!(
                    account,
                    error = %Error::Store { account: account.into(), path: oauth.store.clone(), source },
                    "oauth2: the rotated refresh token is kept in memory only; run `tidings auth` after a restart if the old one is refused"
                ),
            }
            state.refresh = Some(new);
        }
        _ => state.refresh = Some(refresh),
    }
    state.access = Some((granted.access.clone(), Instant::now() + lifetime));
    Ok(granted.access)
}

/// Drops the access token in use, after a server refused it: the next login refreshes first.
pub async fn forget_access_token(oauth: &OAuth) {
    oauth.tokens.state.lock().await.access = None;
}

/// The refresh token: the rotated one in the store (for a token from the environment), else its
/// configured source.
/// The client secret, read now (it may have been rotated in its file); `None` for public clients.
pub(super) fn client_secret(oauth: &OAuth2, account: &str) -> Result<Option<Secret<String>>, Error> {
    oauth.read_client_secret().map_err(|source| Error::Secret {
        account: account.into(),
        what: "client secret",
        source,
    })
}

fn read_refresh_token(oauth: &OAuth2, account: &str) -> Result<Secret<String>, Error> {
    let store_first = matches!(oauth.refresh_token, SecretSource::Env(_)) && oauth.store.is_file();
    let source = if store_first { SecretSource::File(oauth.store.clone()) } else { oauth.refresh_token.clone() };
    source.resolve().map_err(|source| Error::Secret { account: account.into(), what: "refresh token", source })
}

/// Replaces `path` with `text` so a crash leaves the old token or the new, never half: a
/// private temp file in the same directory, synced, then renamed over it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename itself is durable once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("work.token");
        write_atomically(&path, "one").unwrap();
        write_atomically(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
