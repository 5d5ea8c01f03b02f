//! The event payload: what a webhook receives as its body (unless its endpoint has a template)
//! and a command on its standard input. Documented field by field in `docs/webhooks.md`.
//!
//! The payload is versioned. Within version 1, fields may be added (receivers must ignore
//! fields they do not know) but never removed, renamed or given another type; anything else is
//! version 2.

use serde::Serialize;
use serde_json::Value;

use crate::plan::{Event, EventMessage};
use crate::store::Action;

/// The payload version this build writes.
pub const VERSION: u32 = 1;

/// The event payload, version 1.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// Always [`VERSION`].
    pub version: u32,
    /// The event id, the same on every attempt: the `Idempotency-Key` header.
    pub id: String,
    /// `webhook` or `command`.
    pub kind: &'a str,
    /// The endpoint's or command's name in the config.
    pub endpoint: &'a str,
    /// The rule that decided it.
    pub rule: Option<&'a str>,
    /// The account.
    pub account: &'a str,
    /// The message's mailbox when the rule decided (`None` for a schedule's rule).
    pub mailbox: Option<&'a str>,
    /// The mailbox's UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// The message's UID.
    pub uid: Option<u32>,
    /// When the event was stored, RFC 3339 UTC.
    pub created_at: String,
    /// The message's facts (and the endpoint's `include` extras).
    pub message: Option<&'a EventMessage>,
    /// The rule's own data.
    pub data: &'a Value,
}

/// The payload of the event in outbox row `row`.
pub fn payload(row: &Action, event: &Event) -> Value {
    let payload = Payload {
        version: VERSION,
        id: event_id(&row.key),
        kind: &row.kind,
        endpoint: &event.endpoint,
        rule: row.rule.as_deref(),
        account: &row.account,
        mailbox: row.mailbox.as_deref(),
        uidvalidity: row.uidvalidity,
        uid: row.uid,
        created_at: row.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        message: event.message.as_ref(),
        data: &event.data,
    };
    // Cannot fail: every field is a string, a number, or JSON already.
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// The event id for an idempotency key: the key itself, with `%`, control characters and
/// anything beyond ASCII percent-encoded, so that it can travel in an HTTP header (a mailbox
/// name such as `Entwürfe` is part of the key).
pub fn event_id(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c == '%' || c.is_control() || !c.is_ascii() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An outbox row for message uid 42 in work/INBOX (UIDVALIDITY 7), decided by `hook.rhai`,
/// in its first attempt.
#[cfg(test)]
pub(crate) fn test_row(key: &str, kind: &str) -> Action {
    use crate::store::{ActionId, ActionState};
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-24T09:31:00Z").unwrap().with_timezone(&chrono::Utc);
    Action {
        id: ActionId(9),
        key: key.into(),
        account: "work".into(),
        mailbox: Some("INBOX".into()),
        uidvalidity: Some(7),
        uid: Some(42),
        kind: kind.into(),
        payload: Value::Null,
        state: ActionState::InFlight,
        attempts: 1,
        next_attempt_at: at,
        claimed_at: None,
        last_error: None,
        created_at: at,
        updated_at: at,
        rule: Some("hook.rhai".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::template::{ATTACHMENT_FIELDS, FIELDS, INCLUDED_FIELDS, MESSAGE_FIELDS};
    use crate::plan::EventAttachment;

    fn row(key: &str) -> Action {
        test_row(key, "webhook")
    }

    fn full_message() -> EventMessage {
        EventMessage {
            message_id: Some("m@x".into()),
            text: Some("t".into()),
            html: Some("<p>t</p>".into()),
            raw: Some("cmF3".into()),
            attachments: Some(vec![EventAttachment {
                name: None,
                content_type: "text/plain".into(),
                size: 1,
                content: "eA==".into(),
            }]),
            ..EventMessage::default()
        }
    }

    #[test]
    fn the_payload_has_every_documented_field() {
        let message = full_message();
        let event = Event { endpoint: "chat".into(), data: json!({"n": 1}), message: Some(message), at: None };
        let payload = payload(&row("work/INBOX/7/42/hook.rhai#0"), &event);
        assert_eq!(payload["version"], 1);
        assert_eq!(payload["id"], "work/INBOX/7/42/hook.rhai#0");
        assert_eq!((payload["kind"].as_str(), payload["endpoint"].as_str()), (Some("webhook"), Some("chat")));
        assert_eq!((payload["rule"].as_str(), payload["account"].as_str()), (Some("hook.rhai"), Some("work")));
        assert_eq!((payload["uidvalidity"].as_u64(), payload["uid"].as_u64()), (Some(7), Some(42)));
        assert_eq!(payload["created_at"], "2026-12-24T09:31:00Z");
        assert_eq!(payload["data"], json!({"n": 1}));
        // The template checker knows exactly these fields, so a template can name any of them.
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let mut fields: Vec<&str> = FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys(&payload), fields);
        let mut message_fields: Vec<&str> = MESSAGE_FIELDS.iter().chain(INCLUDED_FIELDS).copied().collect();
        message_fields.sort_unstable();
        assert_eq!(keys(&payload["message"]), message_fields);
        let mut attachment_fields = ATTACHMENT_FIELDS.to_vec();
        attachment_fields.sort_unstable();
        assert_eq!(keys(&payload["message"]["attachments"][0]), attachment_fields);
    }

    #[test]
    fn a_schedule_event_has_no_message() {
        let mut schedule = row("work/schedule/nightly/2026-12-24T09:00:00Z#0");
        (schedule.mailbox, schedule.uidvalidity, schedule.uid) = (None, None, None);
        let payload = payload(&schedule, &Event::new("chat", json!(null)));
        assert_eq!(
            (&payload["message"], &payload["mailbox"], &payload["uid"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
    }

    #[test]
    fn ids_are_header_safe() {
        assert_eq!(event_id("work/Entwürfe/7/1/r.rhai#0"), "work/Entw%C3%BCrfe/7/1/r.rhai#0");
        assert_eq!(event_id("a/Sent Items/100%\t/1"), "a/Sent Items/100%25%09/1");
        assert!(reqwest::header::HeaderValue::from_str(&event_id("x/Ünïcödé 📬/\r\n")).is_ok());
    }
}
