//! Named webhook endpoints. Rules refer to them by name only, so a rule can never send mail
//! content to an address the config did not list.

use std::path::Path;
use std::time::Duration;

use super::diagnostics::{self as read, Fields, Problems};
use super::secret::SecretSource;
use super::template::{INCLUDED_FIELDS, Template};
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
    /// Extra request headers; their values may hold placeholders.
    pub headers: Vec<(String, Template)>,
    /// The whole request's deadline.
    pub timeout: Duration,
    /// More of the message in the payload than every event carries.
    pub include: Include,
    /// The body in the receiver's own shape; `None`: the payload as JSON.
    pub template: Option<Template>,
    /// The body's media type.
    pub content_type: String,
    /// Attempts before the event is dead-lettered.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles from there, up to an hour.
    pub retry_delay: Duration,
}

/// What an endpoint's `include` adds to the payload's `message`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    /// The whole text body.
    pub text: bool,
    /// The HTML body.
    pub html: bool,
    /// The raw message, base64.
    pub raw: bool,
    /// Attachments with their content, base64.
    pub attachments: bool,
}

impl Include {
    /// The words it was written with, for the template check.
    pub fn words(&self) -> Vec<&'static str> {
        let on = [self.text, self.html, self.raw, self.attachments];
        INCLUDED_FIELDS.iter().zip(on).filter(|(_, on)| *on).map(|(w, _)| *w).collect()
    }
}

impl Webhook {
    /// Whether the body is JSON: template placeholders are escaped for JSON strings.
    pub fn is_json(&self) -> bool {
        is_json(&self.content_type)
    }
}

const WEBHOOK_KEYS: &[&str] = &[
    "url",
    "secret_env",
    "secret_file",
    "headers",
    "timeout",
    "include",
    "template",
    "content_type",
    "max_attempts",
    "retry_delay",
];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const JSON: &str = "application/json";
/// Headers tidings sets itself: a config that set them would break delivery or signatures.
const RESERVED: &[&str] =
    &["content-type", "content-length", "host", "transfer-encoding", "connection", "idempotency-key"];
/// Attempts before an event is dead-lettered, unless the endpoint or command says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;
/// The first retry's delay, unless the endpoint or command says otherwise.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);
/// The most attempts an endpoint or command may ask for (at an hour apart: over a month).
const MOST_ATTEMPTS: i64 = 1000;

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
        (None, Some(file)) => read::string(file, &format!("{what}: secret_file"), problems).map(|p| {
            problems.name_path(file.pos, format!("{what}: secret_file"), &base.join(&p), super::files::Kind::Secret);
            Some(SecretSource::File(base.join(p)))
        }),
        (None, None) => Some(None),
    };
    let include = fields.get("include").map_or(Some(Include::default()), |n| include(n, &what, problems));
    let words = include.map(|i| i.words()).unwrap_or_default();
    let headers = fields.get("headers").map(|n| headers(n, &what, &words, problems)).unwrap_or(Some(Vec::new()));
    let timeout = positive_duration(fields.get("timeout"), &format!("{what}: timeout"), DEFAULT_TIMEOUT, problems);
    let content_type = match fields.get("content_type") {
        Some(n) => content_type(n, &what, problems),
        None => Some(JSON.to_owned()),
    };
    let template = match (fields.get("template"), &content_type) {
        (Some(n), Some(ct)) => template(n, &what, ct, &words, problems),
        (Some(_), None) => None,
        (None, Some(ct)) if !is_json(ct) => {
            let pos = fields.get("content_type").map_or(fields.pos, |n| n.pos);
            problems.hint(
                pos,
                format!("{what}: content_type `{ct}` without a template, but the body is the JSON payload"),
                "add a `template` for that type, or drop content_type",
            );
            None
        }
        (None, _) => Some(None),
    };
    let (max_attempts, retry_delay) = retries(&fields, &what, problems);
    Some(Webhook {
        name: name.to_owned(),
        url: url?,
        secret: secret?,
        headers: headers?,
        timeout: timeout?,
        include: include?,
        template: template?,
        content_type: content_type?,
        max_attempts: max_attempts?,
        retry_delay: retry_delay?,
    })
}

/// Whether a media type is JSON (`application/json`, `application/problem+json` ...).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == JSON || essence.ends_with("+json")
}

/// Reads `max_attempts` and `retry_delay` of an endpoint or command, with their defaults.
pub fn retries(fields: &Fields, what: &str, problems: &mut Problems) -> (Option<u32>, Option<Duration>) {
    let max_attempts = match fields.get("max_attempts") {
        Some(n) => match n.value {
            Value::Int(i) if (1..=MOST_ATTEMPTS).contains(&i) => u32::try_from(i).ok(),
            _ => {
                problems.hint(
                    n.pos,
                    format!("{what}: max_attempts must be a number from 1 to {MOST_ATTEMPTS}"),
                    "1 means no retry; the default is 12 (retries over about an hour)",
                );
                None
            }
        },
        None => Some(DEFAULT_MAX_ATTEMPTS),
    };
    let retry_delay = match positive_duration(
        fields.get("retry_delay"),
        &format!("{what}: retry_delay"),
        DEFAULT_RETRY_DELAY,
        problems,
    ) {
        Some(d) if d > Duration::from_secs(3600) => {
            let pos = fields.get("retry_delay").map_or(fields.pos, |n| n.pos);
            problems.hint(pos, format!("{what}: retry_delay is over an hour"), "retries wait at most an hour each");
            None
        }
        other => other,
    };
    (max_attempts, retry_delay)
}

/// A duration above zero, or `default` when not given.
pub fn positive_duration(
    node: Option<&Node>,
    what: &str,
    default: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let Some(node) = node else { return Some(default) };
    match read::duration(node, what, problems)? {
        Duration::ZERO => {
            problems.error(node.pos, format!("{what} must be longer than zero"));
            None
        }
        d => Some(d),
    }
}

fn include(node: &Node, what: &str, problems: &mut Problems) -> Option<Include> {
    let what = format!("{what}: include");
    let mut include = Include::default();
    for (word, pos) in read::strings(node, &what, problems)? {
        let flag = match word.as_str() {
            "text" => &mut include.text,
            "html" => &mut include.html,
            "raw" => &mut include.raw,
            "attachments" => &mut include.attachments,
            _ => {
                problems.hint(
                    pos,
                    format!("{what}: `{word}` is not recognised"),
                    format!("use any of: {}", INCLUDED_FIELDS.join(", ")),
                );
                return None;
            }
        };
        *flag = true;
    }
    Some(include)
}

fn content_type(node: &Node, what: &str, problems: &mut Problems) -> Option<String> {
    let text = read::string(node, &format!("{what}: content_type"), problems)?;
    let essence = text.split(';').next().unwrap_or("").trim();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    let valid = essence.split_once('/').is_some_and(|(t, s)| token(t) && token(s)) && !text.contains(['\r', '\n']);
    if !valid {
        problems.hint(
            node.pos,
            format!("{what}: content_type `{text}` is not a media type"),
            "write it as type/subtype, e.g. `text/plain; charset=utf-8`",
        );
        return None;
    }
    Some(text)
}

/// Parses a body template and checks its paths (and, for JSON, that it gives JSON).
fn template(
    node: &Node,
    what: &str,
    content_type: &str,
    included: &[&str],
    problems: &mut Problems,
) -> Option<Option<Template>> {
    let what = format!("{what}: template");
    let source = read::string(node, &what, problems)?;
    let template = match Template::parse(&source).and_then(|t| t.check(included).map(|()| t)) {
        Ok(t) => t,
        Err(e) => {
            problems.error(node.pos, format!("{what}: {e}"));
            return None;
        }
    };
    if is_json(content_type)
        && let Err(e) = serde_json::from_str::<serde_json::Value>(&template.sample())
    {
        problems.hint(
            node.pos,
            format!("{what} does not give JSON once filled in ({e})"),
            "put each `{{path}}` inside quotes, or write `{{path | json}}` for a JSON value; for a body that is not JSON, set content_type",
        );
        return None;
    }
    Some(Some(template))
}

fn headers(node: &Node, what: &str, included: &[&str], problems: &mut Problems) -> Option<Vec<(String, Template)>> {
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
        let lower = key.name.to_ascii_lowercase();
        if !valid_name {
            problems.error(key.pos, format!("{what}: `{}` is not a valid header name", key.name));
            ok = false;
        } else if RESERVED.contains(&lower.as_str()) || lower.starts_with("x-tidings-") {
            let hint = if lower == "content-type" {
                "use the endpoint's `content_type`"
            } else {
                "tidings sets it on every request"
            };
            problems.hint(key.pos, format!("{what}: `{}` cannot be set here", key.name), hint);
            ok = false;
        }
        let parsed = match read::string(value, &format!("{what}: {}", key.name), problems) {
            Some(v) if v.contains(['\r', '\n']) => Err(format!("`{}` cannot contain a line break", key.name)),
            Some(v) => Template::parse(&v).and_then(|t| t.check(included).map(|()| t)),
            None => {
                ok = false;
                continue;
            }
        };
        match parsed {
            Ok(t) => out.push((key.name.clone(), t)),
            Err(e) => {
                problems.error(value.pos, format!("{what}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
