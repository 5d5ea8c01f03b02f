//! Webhook delivery: one signed POST per attempt, and what its answer means for retrying.
//!
//! The body is the event payload as JSON, or the endpoint's template filled in from it. Every
//! request carries `Idempotency-Key` (the event id: the same on every attempt), `X-Tidings-Event`
//! (the endpoint's name), `X-Tidings-Attempt`, and, when the endpoint has a secret,
//! `X-Tidings-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//!
//! 2xx is delivered; 408, 429, 5xx, network errors and timeouts are retried (no sooner than a
//! `Retry-After` asks); any other answer is permanent. Redirects are followed only within the
//! endpoint's origin (scheme, host and port), so a receiver cannot bounce the payload elsewhere.
//!
//! Neither the secret, nor the body, nor the URL (its path often holds a token, as Slack's do)
//! is ever logged or put into an error: logs name the endpoint and its host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, redirect};
use ring::hmac;
use serde_json::Value;

use super::{Ran, event};
use crate::causes::error_chain;
use crate::config::template::Escape;
use crate::config::{Config, Secrets, Webhook};
use crate::plan::Event;
use crate::store::Action;

/// Most redirects followed (within the origin).
const MAX_REDIRECTS: usize = 5;
/// Most bytes of an error answer kept for the error message.
const ERROR_BODY: usize = 300;

/// Why webhooks cannot be delivered at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TLS could not be set up (no usable system roots).
    #[error("cannot set up TLS for webhooks")]
    Tls(#[source] tokio_rustls::rustls::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for webhooks")]
    Client(#[source] reqwest::Error),
}

/// The configured endpoints and one HTTP client (its connections pooled) for all of them.
pub struct Webhooks {
    client: reqwest::Client,
    endpoints: BTreeMap<String, Endpoint>,
}

struct Endpoint {
    config: Webhook,
    key: Option<hmac::Key>,
}

impl Webhooks {
    /// The endpoints of `config`, each with its secret from `secrets`.
    pub fn new(config: &Config, secrets: &Secrets) -> Result<Webhooks, Error> {
        let endpoints = config
            .webhooks
            .iter()
            .map(|(name, hook)| {
                let key = secrets.webhooks.get(name).map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose().as_bytes()));
                (name.clone(), Endpoint { config: hook.clone(), key })
            })
            .collect();
        Ok(Webhooks { client: client()?, endpoints })
    }

    /// The endpoint with this name.
    pub fn endpoint(&self, name: &str) -> Option<&Webhook> {
        self.endpoints.get(name).map(|e| &e.config)
    }

    /// One attempt to deliver the event of outbox row `row`.
    pub async fn deliver(&self, row: &Action, event: &Event) -> Ran {
        let Some(endpoint) = self.endpoints.get(&event.endpoint) else {
            return Ran::Permanent(format!("no webhook named `{}` in the config", event.endpoint));
        };
        let hook = &endpoint.config;
        let payload = event::payload(row, event);
        let body = body(hook, &payload);
        let mut headers = headers(hook, row, &payload);
        if let Some(key) = &endpoint.key {
            headers.insert(SIGNATURE, signature(key, Utc::now().timestamp(), &body));
        }
        let host = hook.url.host_str().unwrap_or_default();
        tracing::debug!(endpoint = %hook.name, %host, bytes = body.len(), "posting webhook");
        let sent = self.client.post(hook.url.clone()).headers(headers).body(body).timeout(hook.timeout).send().await;
        let ran = match sent {
            Ok(response) => answer(hook, response).await,
            Err(e) => failed(hook, e),
        };
        tracing::debug!(endpoint = %hook.name, %host, outcome = ?ran, "webhook attempt done");
        ran
    }
}

impl Webhooks {
    /// Whether endpoint `name` answers at all (`tidings check --connect`): a HEAD request, no
    /// event; any HTTP status is an answer.
    pub async fn reach(&self, name: &str) -> Result<StatusCode, reqwest::Error> {
        let Some(endpoint) = self.endpoints.get(name) else { return Ok(StatusCode::NOT_FOUND) };
        let hook = &endpoint.config;
        let sent = self.client.head(hook.url.clone()).timeout(hook.timeout.min(Duration::from_secs(10))).send().await;
        sent.map(|response| response.status())
    }

    /// Posts a signed `tidings.test` event to endpoint `name` (`check --connect
    /// --ping-webhooks`), so the receiver's signature check can be tried; no message in it.
    pub async fn ping(&self, name: &str) -> Ran {
        let Some(endpoint) = self.endpoints.get(name) else {
            return Ran::Permanent(format!("no webhook named `{name}` in the config"));
        };
        let hook = &endpoint.config;
        let now = Utc::now();
        let id = format!("tidings-test-{}", now.timestamp_millis());
        let body = serde_json::to_vec(&serde_json::json!({
            "event": "tidings.test", "id": id, "endpoint": name, "time": now.to_rfc3339(),
        }))
        .unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("x-tidings-event", HeaderValue::from_static("tidings.test"));
        headers.insert("idempotency-key", HeaderValue::try_from(id).unwrap_or(HeaderValue::from_static("test")));
        if let Some(key) = &endpoint.key {
            headers.insert(SIGNATURE, signature(key, now.timestamp(), &body));
        }
        let sent = self.client.post(hook.url.clone()).headers(headers).body(body).timeout(hook.timeout).send().await;
        match sent {
            Ok(response) => answer(hook, response).await,
            Err(e) => failed(hook, e),
        }
    }
}

/// The client: rustls with the ring provider and the platform's verifier (the same trust as the
/// IMAP side), HTTP/2 when the receiver offers it, redirects only within the origin.
fn client() -> Result<reqwest::Client, Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    use tokio_rustls::rustls::{ClientConfig, crypto::ring};
    let mut tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_platform_verifier()
        .map_err(Error::Tls)?
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let same_origin = redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(reqwest::Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS || first.is_some_and(|o| o != attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .redirect(same_origin)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(Error::Client)
}

/// The request body: the payload as JSON, or the endpoint's template filled in.
pub fn body(hook: &Webhook, payload: &Value) -> Vec<u8> {
    match &hook.template {
        None => serde_json::to_vec(payload).unwrap_or_default(),
        Some(template) => template.render(payload, Escape::for_body(&hook.content_type)).into_bytes(),
    }
}

const SIGNATURE: HeaderName = HeaderName::from_static("x-tidings-signature");

/// Every header but the signature: the endpoint's own (templates filled in), then tidings'.
pub fn headers(hook: &Webhook, row: &Action, payload: &Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, template) in &hook.headers {
        let value = header_text(&template.render(payload, Escape::Header));
        // Names and values were checked with the config; a failure here would be a bug there.
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(endpoint = %hook.name, header = %name, "header left out: not a valid header"),
        }
    }
    let text = |s: &str| HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static("invalid"));
    headers.insert(reqwest::header::CONTENT_TYPE, text(&hook.content_type));
    headers.insert("idempotency-key", text(payload["id"].as_str().unwrap_or_default()));
    headers.insert("x-tidings-event", text(&event::event_id(&hook.name)));
    headers.insert("x-tidings-attempt", HeaderValue::from(row.attempts));
    headers
}

/// A header value as HTTP carries it: as is when it is ASCII, else RFC 2047 encoded words
/// (`=?UTF-8?B?...?=`), which receivers such as ntfy decode.
fn header_text(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes encode to 60 characters: each word stays under RFC 2047's 75.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", b64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", b64.encode(&chunk)));
    }
    words.join(" ")
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> HeaderValue {
    let mut context = hmac::Context::with_key(key);
    context.update(format!("{timestamp}.").as_bytes());
    context.update(body);
    let hex: String = context.sign().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    // Digits, letters, `=` and `,` only.
    HeaderValue::try_from(format!("t={timestamp},v1={hex}")).unwrap_or(HeaderValue::from_static("invalid"))
}

/// What the receiver's answer means.
async fn answer(hook: &Webhook, response: reqwest::Response) -> Ran {
    let status = response.status();
    if status.is_success() {
        return Ran::Done;
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, Utc::now()));
    let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let said = error_body(response).await;
    classify(hook, status, retry_after, location.as_deref(), &said)
}

/// The classification table: 2xx done; 408, 429 and 5xx transient (with the receiver's
/// Retry-After); a redirect that was not followed, and any other 4xx, permanent.
pub fn classify(
    hook: &Webhook,
    status: StatusCode,
    retry_after: Option<Duration>,
    location: Option<&str>,
    said: &str,
) -> Ran {
    let mut error = format!("webhook `{}` answered {status}", hook.name);
    if !said.is_empty() {
        error.push_str(&format!(": {said}"));
    }
    let transient = matches!(status.as_u16(), 408 | 429) || status.is_server_error();
    match () {
        () if status.is_success() => Ran::Done,
        () if transient => match retry_after {
            Some(after) => Ran::RetryAfter(after, error),
            None => Ran::Transient(error),
        },
        () if status.is_redirection() => {
            let to = location.and_then(|l| hook.url.join(l).ok()).and_then(|u| u.host_str().map(str::to_owned));
            let to = to.map_or_else(|| "elsewhere".to_owned(), |host| format!("to host {host}"));
            Ran::Permanent(format!(
                "{error}, a redirect {to} that is not followed (only same-origin redirects are): put the final URL in the config"
            ))
        }
        () => Ran::Permanent(error),
    }
}

/// What a failed request means: all network errors and timeouts are transient.
fn failed(hook: &Webhook, error: reqwest::Error) -> Ran {
    let what = if error.is_timeout() {
        format!("webhook `{}` timed out after {:?}", hook.name, hook.timeout)
    } else if error.is_connect() {
        format!("cannot connect to webhook `{}`", hook.name)
    } else {
        format!("cannot post to webhook `{}`", hook.name)
    };
    // Without the URL: its path may be the endpoint's token.
    let cause = error_chain(&error.without_url());
    Ran::Transient(format!("{what}: {cause}"))
}

/// The start of an error answer, on one line, for the error message.
async fn error_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY {
        match tokio::time::timeout(Duration::from_secs(2), response.chunk()).await {
            Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_BODY)]).into_owned();
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a date in the past means now).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
