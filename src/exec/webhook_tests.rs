//! Webhook requests: signature, headers, bodies, the answer table, and delivery to a real
//! HTTP/1.1 receiver on 127.0.0.1 (a tokio listener speaking the protocol by hand).

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::Secret;
use crate::exec::event::test_row;
use crate::plan::EventMessage;

const SECRET: &str = "whsec_test";

fn config(hooks: &str) -> Config {
    Config::from_yaml(&format!("webhooks:\n{hooks}"), Path::new("/etc/tidings/t.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn hook(hooks: &str) -> Webhook {
    config(hooks).webhooks.into_values().next().unwrap()
}

fn secrets() -> Secrets {
    Secrets { webhooks: [("hook".to_owned(), Secret::new(SECRET.to_owned()))].into(), ..Secrets::default() }
}

fn event() -> Event {
    let message = EventMessage {
        subject: "Neue Rechnung: Müller \"4711\"".into(),
        from: Some("ann@example.com".into()),
        to: vec!["me@example.com".into(), "team@example.com".into()],
        ..EventMessage::default()
    };
    Event { endpoint: "hook".into(), data: json!({"n": 1, "text": "line\nbreak"}), message: Some(message), at: None }
}

#[test]
fn the_signature_matches_an_independent_hmac() {
    // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let header = signature(&key, 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(header, "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
}

#[test]
fn requests_carry_the_event_id_name_attempt_and_type() {
    let hook =
        hook("  hook: { url: \"https://h.example/x\", headers: { X-Team: mail, Title: \"{{message.subject}}\" } }\n");
    let mut row = test_row("work/Entwürfe/7/42/hook.rhai#0", "webhook");
    row.attempts = 3;
    let payload = event::payload(&row, &event());
    let headers = headers(&hook, &row, &payload);
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(get("idempotency-key"), "work/Entw%C3%BCrfe/7/42/hook.rhai#0");
    assert_eq!(get("idempotency-key"), payload["id"].as_str().unwrap());
    assert_eq!((get("x-tidings-event"), get("x-tidings-attempt")), ("hook".to_owned(), "3".to_owned()));
    assert_eq!((get("content-type"), get("x-team")), ("application/json".to_owned(), "mail".to_owned()));
    // Not ASCII: RFC 2047 encoded words, which decode to the subject.
    let title = get("title");
    assert!(title.starts_with("=?UTF-8?B?") && title.ends_with("?="), "{title}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let decoded: String =
        title.split(' ').map(|w| String::from_utf8(b64.decode(&w[10..w.len() - 2]).unwrap()).unwrap()).collect();
    assert_eq!(decoded, "Neue Rechnung: Müller \"4711\"");
    assert!(title.split(' ').all(|w| w.len() <= 75), "{title}");
    assert_eq!(header_text("plain ascii"), "plain ascii");
}

#[test]
fn bodies_are_the_payload_or_the_filled_template() {
    let row = test_row("k", "webhook");
    let payload = event::payload(&row, &event());
    let plain = hook("  hook: { url: \"https://h.example/x\" }\n");
    assert_eq!(serde_json::from_slice::<Value>(&body(&plain, &payload)).unwrap(), payload);
    let slack = hook(
        "  hook:\n    url: https://h.example/x\n    template: '{\"text\": \"{{message.from}}: {{message.subject}} ({{data.text}})\", \"d\": {{data | json}}}'\n",
    );
    let sent: Value = serde_json::from_slice(&body(&slack, &payload)).unwrap();
    assert_eq!(
        sent,
        json!({"text": "ann@example.com: Neue Rechnung: Müller \"4711\" (line\nbreak)", "d": {"n": 1, "text": "line\nbreak"}})
    );
    let ntfy = hook(
        "  hook:\n    url: https://h.example/x\n    content_type: text/plain\n    template: \"{{message.to}}: {{message.subject}}\"\n",
    );
    assert_eq!(
        String::from_utf8(body(&ntfy, &payload)).unwrap(),
        "me@example.com, team@example.com: Neue Rechnung: Müller \"4711\""
    );
}

#[test]
fn answers_are_classified() {
    let hook = hook("  hook: { url: \"https://h.example/x\" }\n");
    let class = |code: u16, after: Option<Duration>| match classify(
        &hook,
        StatusCode::from_u16(code).unwrap(),
        after,
        Some("https://other.example/y"),
        "",
    ) {
        Ran::Done => "done",
        Ran::Transient(_) => "transient",
        Ran::RetryAfter(..) => "retry-after",
        Ran::Permanent(_) => "permanent",
    };
    let table = [
        (200, "done"),
        (201, "done"),
        (204, "done"),
        (301, "permanent"),
        (307, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (408, "transient"),
        (410, "permanent"),
        (422, "permanent"),
        (429, "transient"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (504, "transient"),
    ];
    for (code, expected) in table {
        assert_eq!(class(code, None), expected, "{code}");
    }
    for code in [408, 429, 503] {
        assert_eq!(class(code, Some(Duration::from_secs(9))), "retry-after", "{code}");
    }
    assert_eq!(class(400, Some(Duration::from_secs(9))), "permanent");
    let Ran::Permanent(redirect) = classify(&hook, StatusCode::FOUND, None, Some("https://other.example/y"), "") else {
        panic!()
    };
    assert!(redirect.contains("to host other.example that is not followed"), "{redirect}");
    let Ran::Permanent(said) = classify(&hook, StatusCode::BAD_REQUEST, None, None, "invalid_payload") else {
        panic!()
    };
    assert_eq!(said, "webhook `hook` answered 400 Bad Request: invalid_payload");
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc);
    assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(retry_after("Wed, 21 Oct 2015 07:30:30 GMT", now), Some(Duration::from_secs(150)));
    assert_eq!(retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO), "in the past: now");
    assert_eq!(retry_after("soon", now), None);
    assert_eq!(retry_after("-5", now), None);
}

/// One request as the receiver read it.
#[derive(Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// A receiver answering each connection with the next of `answers` (`delay ms` first, if
/// given), then closing it. Returns its base URL and what it saw.
async fn receiver(answers: Vec<(u64, String)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (delay, answer) in answers {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let request = read_request(&mut socket).await;
            log.lock().unwrap().push(request);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (base, seen)
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

async fn read_request(socket: &mut TcpStream) -> Seen {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8(data[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = data[end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&buf[..n]);
    }
    Seen { line, headers, body }
}

fn webhooks_at(url: &str, extra: &str) -> Webhooks {
    Webhooks::new(&config(&format!("  hook:\n    url: {url}\n    secret_env: UNUSED\n{extra}")), &secrets()).unwrap()
}

#[tokio::test]
async fn a_delivery_is_signed_and_the_receiver_can_verify_it() {
    let (base, seen) = receiver(vec![(0, response("200 OK", "", "ok"))]).await;
    let hooks = webhooks_at(&format!("{base}/hook/T123"), "");
    let row = test_row("work/INBOX/7/42/hook.rhai#0", "webhook");
    let ran = hooks.deliver(&row, &event()).await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    let seen = seen.lock().unwrap();
    let request = &seen[0];
    assert_eq!(request.line, "POST /hook/T123 HTTP/1.1");
    assert_eq!(request.header("user-agent"), concat!("tidings/", env!("CARGO_PKG_VERSION")));
    assert_eq!(request.header("idempotency-key"), "work/INBOX/7/42/hook.rhai#0");
    let payload: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!((payload["version"].as_u64(), payload["uid"].as_u64()), (Some(1), Some(42)));
    // What a receiver does: recompute the HMAC over "<t>.<body>" and compare.
    let (t, v1) = request.header("x-tidings-signature").split_once(',').unwrap();
    let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    assert!((Utc::now().timestamp() - t).abs() < 60, "fresh timestamp");
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected: String = hmac::sign(&key, &signed).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, format!("v1={expected}"));
}

#[tokio::test]
async fn failures_are_transient_permanent_or_retry_after() {
    let answers = vec![
        (0, response("503 Service Unavailable", "Retry-After: 7\r\n", "")),
        (0, response("400 Bad Request", "", "{\"error\":\n \"invalid_payload\"}")),
        (0, response("500 Internal Server Error", "", "")),
        (3000, response("200 OK", "", "")),
    ];
    let (base, _seen) = receiver(answers).await;
    let hooks = webhooks_at(&format!("{base}/secret-token-path"), "    timeout: 300ms\n");
    let row = test_row("k", "webhook");
    let after = hooks.deliver(&row, &event()).await;
    assert!(matches!(&after, Ran::RetryAfter(d, e) if *d == Duration::from_secs(7) && e.contains("503")), "{after:?}");
    let bad = hooks.deliver(&row, &event()).await;
    assert!(
        matches!(&bad, Ran::Permanent(e) if e.ends_with("400 Bad Request: {\"error\": \"invalid_payload\"}")),
        "{bad:?}"
    );
    let busy = hooks.deliver(&row, &event()).await;
    assert!(matches!(&busy, Ran::Transient(e) if e.contains("500")), "{busy:?}");
    let started = std::time::Instant::now();
    let slow = hooks.deliver(&row, &event()).await;
    assert!(matches!(&slow, Ran::Transient(e) if e.contains("timed out after 300ms")), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    for ran in [after, bad, busy, slow] {
        let text = format!("{ran:?}");
        assert!(!text.contains("secret-token-path") && !text.contains("127.0.0.1"), "the URL is never shown: {text}");
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried_without_its_url_shown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token-in-path", listener.local_addr().unwrap());
    drop(listener);
    let ran = webhooks_at(&url, "").deliver(&test_row("k", "webhook"), &event()).await;
    let Ran::Transient(error) = ran else { panic!("{ran:?}") };
    assert!(error.starts_with("cannot connect to webhook `hook`"), "{error}");
    assert!(!error.contains("token-in-path"), "{error}");
}

#[tokio::test]
async fn redirects_are_followed_within_the_origin_only() {
    let answers = vec![
        (0, response("307 Temporary Redirect", "Location: /moved\r\n", "")),
        (0, response("200 OK", "", "")),
        (0, response("308 Permanent Redirect", "Location: http://elsewhere.invalid/x\r\n", "")),
    ];
    let (base, seen) = receiver(answers).await;
    let hooks = webhooks_at(&format!("{base}/hook"), "");
    let row = test_row("k", "webhook");
    assert!(matches!(hooks.deliver(&row, &event()).await, Ran::Done));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[1].line, "POST /moved HTTP/1.1");
        assert_eq!(seen[1].body, seen[0].body, "a 307 keeps the body");
    }
    let ran = hooks.deliver(&row, &event()).await;
    assert!(
        matches!(&ran, Ran::Permanent(e) if e.contains("to host elsewhere.invalid that is not followed")),
        "{ran:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3, "nothing was sent elsewhere");
}

/// The shipped examples load, and give each receiver its own shape, whatever the mail holds.
#[test]
fn the_examples_give_slack_discord_and_ntfy_their_shapes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/webhooks");
    let load = |name: &str| {
        let config = Config::load(&dir.join(format!("{name}.yaml"))).unwrap_or_else(|e| panic!("{e}"));
        config.webhooks.into_values().next().unwrap()
    };
    let mut event = event();
    event.message.as_mut().unwrap().snippet = "Hi \"all\",\n<!channel> @everyone \\ pay".into();
    let row = test_row("k", "webhook");
    let payload = event::payload(&row, &event);
    let json = |hook: &Webhook| -> Value { serde_json::from_slice(&body(hook, &payload)).unwrap() };
    let slack = json(&load("slack"));
    assert_eq!(slack["blocks"][0]["text"]["text"], "ann@example.com: Neue Rechnung: Müller \"4711\"");
    assert_eq!(slack["blocks"][1]["elements"][0]["text"], "Hi \"all\",\n<!channel> @everyone \\ pay");
    let discord = json(&load("discord"));
    assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
    let description = discord["embeds"][0]["description"].as_str().unwrap();
    assert!(description.starts_with("From: ann@example.com\nSubject: Neue Rechnung"), "{description}");
    let ntfy = load("ntfy");
    assert_eq!(String::from_utf8(body(&ntfy, &payload)).unwrap(), "Hi \"all\",\n<!channel> @everyone \\ pay");
    let headers = headers(&ntfy, &row, &payload);
    assert!(headers["title"].to_str().unwrap().starts_with("=?UTF-8?B?"));
    assert_eq!((headers["tags"].to_str().unwrap(), headers["priority"].to_str().unwrap()), ("envelope", ""));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
}
