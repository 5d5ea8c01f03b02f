//! Named webhook endpoints. Rules refer to them by name only, so a rule can never send mail
//! content to an address the config did not list.

use std::path::Path;
use std::time::Duration;

use super::diagnostics::{self as read, Fields, Problems};
use super::secret::SecretSource;
use super::tree::{Key, Node, Value};

/// A validated webhook endpoint.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// The name rules use.
    pub name: String,
    /// Where to POST.
    pub url: reqwest::Url,
    /// The signing secret, if the receiver verifies signatures.
    pub secret: Option<SecretSource>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The whole request's deadline.
    pub timeout: Duration,
}

const WEBHOOK_KEYS: &[&str] = &["url", "secret_env", "secret_file", "headers", "timeout"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates one entry of `webhooks:`.
pub fn validate(key: &Key, node: &Node, base: &Path, problems: &mut Problems) -> Option<Webhook> {
    let name = key.name.as_str();
    let what = format!("webhook `{name}`");
    let mut fields = Fields::read(node, &what, WEBHOOK_KEYS, problems)?;
    // "has no X" points at the name, which is where the reader looks.
    fields.pos = key.pos;
    let url = match fields.get("url") {
        Some(n) => {
            read::string(n, &format!("{what}: url"), problems).and_then(|text| match reqwest::Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
                Ok(_) => {
                    problems.error(n.pos, format!("{what}: url `{text}` must be http:// or https:// with a host"));
                    None
                }
                Err(e) => {
                    problems.error(n.pos, format!("{what}: url `{text}` is not a URL: {e}"));
                    None
                }
            })
        }
        None => {
            problems.error(fields.pos, format!("{what} has no `url`"));
            None
        }
    };
    let secret = match (fields.get("secret_env"), fields.get("secret_file")) {
        (Some(_), Some(file)) => {
            problems.hint(file.pos, format!("{what} has both secret_env and secret_file"), "keep exactly one");
            None
        }
        (Some(env), None) => {
            read::string(env, &format!("{what}: secret_env"), problems).map(|v| Some(SecretSource::Env(v)))
        }
        (None, Some(file)) => read::string(file, &format!("{what}: secret_file"), problems)
            .map(|p| Some(SecretSource::File(base.join(p)))),
        (None, None) => Some(None),
    };
    let headers = fields.get("headers").map(|n| headers(n, &what, problems)).unwrap_or(Some(Vec::new()));
    let timeout = match fields.get("timeout") {
        Some(n) => read::duration(n, &format!("{what}: timeout"), problems),
        None => Some(DEFAULT_TIMEOUT),
    };
    Some(Webhook { name: name.to_owned(), url: url?, secret: secret?, headers: headers?, timeout: timeout? })
}

fn headers(node: &Node, what: &str, problems: &mut Problems) -> Option<Vec<(String, String)>> {
    let what = format!("{what}: headers");
    let Value::Map(entries) = &node.value else {
        problems.error(node.pos, format!("{what} must be a map of header name to value"));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let valid_name =
            !key.name.is_empty() && key.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            problems.error(key.pos, format!("{what}: `{}` is not a valid header name", key.name));
            ok = false;
        }
        match read::string(value, &format!("{what}: {}", key.name), problems) {
            Some(v) if !v.contains(['\r', '\n']) => out.push((key.name.clone(), v)),
            Some(_) => {
                problems.error(value.pos, format!("{what}: `{}` cannot contain a line break", key.name));
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}
