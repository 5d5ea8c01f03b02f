//! The `oauth2:` block of an account: which provider issues its tokens, the client it is
//! registered as, and where the refresh token lives.
//!
//! ```yaml
//! oauth2:
//!   provider: google              # google | microsoft | custom
//!   client_id: 1234.apps.googleusercontent.com
//!   client_secret_file: secrets/google-client   # or client_secret_env; Microsoft needs none
//!   refresh_token_file: secrets/work.token      # or refresh_token_env
//!   # custom only: token_url: https://sso.example.com/token, scope: "mail"
//! ```
//!
//! The refresh token is the account's long-lived secret, so it takes the place of the password
//! ([`super::Account::password`] holds its source and start-up checks that it can be read). A
//! token the provider rotates is written back: to its file, or, when it came from the
//! environment (which cannot be written), to [`OAuth2::store`] next to the state database, which
//! is read first from then on.

use std::path::{Path, PathBuf};

use super::diagnostics::{self as read, Fields, Problems};
use super::secret::{self, Secret, SecretSource};
use super::tree::Node;

/// Who issues the tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Google (Gmail, Workspace): scope `https://mail.google.com/`.
    Google,
    /// Microsoft 365 and Outlook.com: IMAP and SMTP scopes of outlook.office.com.
    Microsoft,
    /// Any other issuer: `token_url` and `scope` are given.
    Custom,
}

/// A validated `oauth2:` block: settings only (the token cache is [`crate::auth`]'s, made by
/// whoever runs the account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuth2 {
    /// The issuer.
    pub provider: Provider,
    /// The client (application) id registered with the provider.
    pub client_id: String,
    /// The client secret, when the client has one (Google's desktop clients do; Microsoft's
    /// public clients do not).
    pub client_secret: Option<SecretSource>,
    /// Where the refresh token was configured (an environment variable or a file).
    pub refresh_token: SecretSource,
    /// Where a rotated refresh token is written: the token's own file, or for a token from the
    /// environment a file next to the state database (see [`OAuth2::place_store`]).
    pub store: PathBuf,
    /// The token endpoint.
    pub token_url: String,
    /// The scope asked for (space-separated).
    pub scope: String,
}

const KEYS: &[&str] = &[
    "provider",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "refresh_token_env",
    "refresh_token_file",
    "token_url",
    "scope",
];

const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_SCOPE: &str = "https://mail.google.com/";
const MICROSOFT_TOKEN_URL: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/token";
const MICROSOFT_SCOPE: &str =
    "offline_access https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send";

impl Provider {
    /// Google's loopback authorisation page or Microsoft's device-code endpoint, for
    /// `tidings auth`; `None` for a custom issuer.
    pub fn authorize_url(self) -> Option<&'static str> {
        match self {
            Provider::Google => Some("https://accounts.google.com/o/oauth2/v2/auth"),
            Provider::Microsoft => Some("https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"),
            Provider::Custom => None,
        }
    }
}

impl OAuth2 {
    /// Decides where a rotated refresh token from the environment is kept: `oauth2-<account>.token`
    /// in `dir` (the state file's directory, or the state directory with a shared store). A token
    /// from a file is written back to that file.
    pub fn place_store(&mut self, account: &str, dir: &Path) {
        if let SecretSource::Env(_) = self.refresh_token {
            self.store = dir.join(format!("oauth2-{account}.token"));
        }
    }

    /// The client secret, read now (it may have been replaced in its file); `None` for a public
    /// client. The source may hold the bare secret or, as Google hands it out, the client's
    /// downloaded JSON (`{"installed": {"client_id", "client_secret", ...}}` or `{"web": ...}`):
    /// its `client_secret` is taken, and its `client_id` must be the block's.
    pub fn read_client_secret(&self) -> Result<Option<Secret<String>>, secret::Error> {
        let Some(source) = &self.client_secret else { return Ok(None) };
        let text = source.resolve()?;
        if !text.expose().trim_start().starts_with('{') {
            return Ok(Some(text));
        }
        let malformed = |reason: String| secret::Error::Malformed { source_name: source.to_string(), reason };
        client_secret_from_json(text.expose(), &self.client_id).map(Some).map_err(malformed)
    }
}

/// Google's client JSON: `{"installed": {...}}` for a desktop client, `{"web": {...}}` for a web
/// one. The error names what is missing, never a value but the (public) client id.
fn client_secret_from_json(text: &str, client_id: &str) -> Result<Secret<String>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        installed: Option<Client>,
        web: Option<Client>,
    }
    #[derive(serde::Deserialize)]
    struct Client {
        client_id: Option<String>,
        client_secret: Option<String>,
    }
    let file: File = serde_json::from_str(text)
        .map_err(|e| format!("it starts with `{{` but is not JSON (line {}, column {})", e.line(), e.column()))?;
    let client = file.installed.or(file.web).ok_or_else(|| {
        "it is JSON without an `installed` or `web` object (Google's downloaded client file has one)".to_owned()
    })?;
    if let Some(id) = client.client_id.filter(|id| id != client_id) {
        return Err(format!("it is the JSON of client `{id}`, but `client_id` is `{client_id}`"));
    }
    match client.client_secret {
        Some(secret) if !secret.is_empty() => Ok(Secret::new(secret)),
        _ => Err("its JSON has no `client_secret` (a client without a secret needs no `client_secret_file`)".into()),
    }
}

/// Validates an account's `oauth2:` block; `what` names the account, `base` anchors paths.
pub fn validate(node: &Node, what: &str, base: &Path, problems: &mut Problems) -> Option<OAuth2> {
    let what = format!("{what}: oauth2");
    let fields = Fields::read(node, &what, KEYS, problems)?;
    let provider = match fields.get("provider") {
        Some(n) => match read::choice(n, &format!("{what}: provider"), &["google", "microsoft", "custom"], problems) {
            Some("google") => Some(Provider::Google),
            Some("microsoft") => Some(Provider::Microsoft),
            Some(_) => Some(Provider::Custom),
            None => None,
        },
        None => {
            problems.hint(
                fields.pos,
                format!("{what} has no `provider`"),
                "add `provider: google`, `microsoft` or `custom`",
            );
            None
        }
    };
    let client_id = match fields.get("client_id") {
        Some(n) => read::string(n, &format!("{what}: client_id"), problems),
        None => {
            problems.hint(
                fields.pos,
                format!("{what} has no `client_id`"),
                "add the client id of the application registered with the provider",
            );
            None
        }
    };
    let client_secret = one_of(&fields, &what, "client_secret", base, false, problems);
    let refresh_token = one_of(&fields, &what, "refresh_token", base, true, problems);
    let custom = |key: &str, default: &str, problems: &mut Problems| match (fields.get(key), provider) {
        (Some(n), _) => read::string(n, &format!("{what}: {key}"), problems),
        (None, Some(Provider::Custom)) => {
            problems.hint(
                fields.pos,
                format!("{what} has no `{key}`"),
                "a `provider: custom` needs `token_url` and `scope`",
            );
            None
        }
        (None, _) => Some(default.to_owned()),
    };
    let (token_url, scope) = match provider {
        Some(Provider::Microsoft) => {
            (custom("token_url", MICROSOFT_TOKEN_URL, problems), custom("scope", MICROSOFT_SCOPE, problems))
        }
        _ => (custom("token_url", GOOGLE_TOKEN_URL, problems), custom("scope", GOOGLE_SCOPE, problems)),
    };
    if let (Some(url), Some(n)) = (&token_url, fields.get("token_url"))
        && !(url.starts_with("https://") || url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"))
    {
        problems.hint(
            n.pos,
            format!("{what}: token_url `{url}` is not https"),
            "the token endpoint receives the client secret and refresh token: use https (plain http only on localhost)",
        );
        return None;
    }
    let refresh_token = refresh_token??;
    let store = match &refresh_token {
        SecretSource::File(path) => path.clone(),
        _ => PathBuf::new(),
    };
    Some(OAuth2 {
        provider: provider?,
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token,
        store,
        token_url: token_url?,
        scope: scope?,
    })
}

/// `<name>_env` or `<name>_file`, at most one; `required`: exactly one.
fn one_of(
    fields: &Fields<'_>,
    what: &str,
    name: &str,
    base: &Path,
    required: bool,
    problems: &mut Problems,
) -> Option<Option<SecretSource>> {
    let (env, file) = (format!("{name}_env"), format!("{name}_file"));
    match (fields.get(&env), fields.get(&file)) {
        (Some(_), Some(n)) => {
            problems.hint(n.pos, format!("{what} has both `{env}` and `{file}`"), "keep one");
            None
        }
        (Some(n), None) => read::string(n, &format!("{what}: {env}"), problems).map(|v| Some(SecretSource::Env(v))),
        (None, Some(n)) => read::string(n, &format!("{what}: {file}"), problems).map(|p| {
            problems.name_path(n.pos, format!("{what}: {file}"), &base.join(&p), super::files::Kind::Secret);
            Some(SecretSource::File(base.join(p)))
        }),
        (None, None) if required => {
            problems.hint(
                fields.pos,
                format!("{what} has no `{file}` or `{env}`"),
                format!("add `{file}: PATH` and run `tidings auth ACCOUNT` to fill it"),
            );
            None
        }
        (None, None) => Some(None),
    }
}

#[cfg(test)]
#[path = "oauth2_tests.rs"]
mod tests;
