//! Plans: what the rules decided for one message, in the order it must be carried out.
//!
//! Input: the decisions rules recorded while they ran, in the order they were made. Output: a
//! [`Plan`], whose actions are stored in the outbox before any of them runs. This module decides
//! nothing and does no IO; it only applies Sieve-like semantics to what the rules said:
//!
//! 1. flag, keyword and label changes first (they must land before the message leaves the
//!    mailbox, or they would be applied to nothing);
//! 2. then copies;
//! 3. then at most one final disposition (move, archive or delete). When rules decide several,
//!    the last one wins, and the overridden ones are reported as conflicts;
//! 4. then the outbound actions (reply, forward, send, webhook, command). They do not act on the
//!    message in its mailbox, which the disposition may have moved: each carries what it needs,
//!    captured when the rule decided. Identical ones are kept once, like copies;
//! 5. then what live rules `collect()`ed for a schedule's rule (a digest) to read later: data
//!    the store keeps apart, never an action an executor runs.
//!
//! Each action's idempotency key is derived from the message (account, mailbox, UIDVALIDITY,
//! UID) and the decision (rule, position), so storing the same plan twice stores it once.
//!
//! Layer: data (see the map in lib.rs): it imports nothing from the layers above.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::message::{MessageKey, MessageView};

/// One thing to do to a message. Serialised as the outbox payload: keep the JSON stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Add flags (`\Seen`, `\Flagged`, ...) and keywords (`$Label`, `GitHub`).
    AddFlags {
        /// The flags, system flags with their backslash.
        flags: Vec<String>,
    },
    /// Remove flags and keywords.
    RemoveFlags {
        /// The flags, system flags with their backslash.
        flags: Vec<String>,
    },
    /// Copy to another mailbox (UTF-8 path with `/` separators).
    Copy {
        /// Target mailbox.
        mailbox: String,
    },
    /// Move to another mailbox: the final disposition.
    Move {
        /// Target mailbox.
        mailbox: String,
    },
    /// Delete: move to the special-use \Trash mailbox (or expunge, if the account says so).
    Delete,
    /// Archive: move to the special-use \Archive mailbox.
    Archive,
    /// Answer the message's sender.
    Reply(Reply),
    /// Send the message on to other addresses.
    Forward(Forward),
    /// Send a new message (a notice, a digest).
    Send(NewMessage),
    /// POST an event to a webhook endpoint named in the config.
    Webhook(Event),
    /// Run an external program configured by name, with the event as JSON on its standard input.
    Command(Event),
    /// Keep data under a name for a schedule's rule to read with `collected(name)` (a digest).
    /// The store keeps it with the collected items, not in the outbox: no executor runs it.
    Collect {
        /// The collection's name.
        name: String,
        /// The rule's data.
        data: serde_json::Value,
    },
}

/// A webhook or command event, as the rule decided it: the dispatcher wraps it in the versioned
/// payload (event id, account, mailbox, UIDVALIDITY, UID come from the outbox row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The webhook endpoint's or the command's name in the config.
    pub endpoint: String,
    /// The rule's own data.
    pub data: serde_json::Value,
    /// What the event says about the message; `None` for a schedule's rule, which has none.
    pub message: Option<EventMessage>,
    /// Not to run before this time (send later); `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

impl Event {
    /// An event about no message, due at once.
    pub fn new(endpoint: impl Into<String>, data: serde_json::Value) -> Event {
        Event { endpoint: endpoint.into(), data, message: None, at: None }
    }
}

/// The message facts in an event payload, captured when the rule decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// Message-ID without `<>`.
    pub message_id: Option<String>,
    /// The From address.
    pub from: Option<String>,
    /// To addresses.
    pub to: Vec<String>,
    /// Cc addresses.
    pub cc: Vec<String>,
    /// The decoded subject.
    pub subject: String,
    /// The Date header, RFC 3339.
    pub date: Option<String>,
    /// The start of the text body, at most a few hundred characters.
    pub snippet: String,
    /// Keywords and labels (not system flags).
    pub labels: Vec<String>,
    /// System flags (`\Seen` ...).
    pub flags: Vec<String>,
    /// The whole text body, when the endpoint's `include` asks for `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The HTML body, when `include` asks for `html`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The raw message, base64, when `include` asks for `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Attachments with their content in base64, when `include` asks for `attachments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<EventAttachment>>,
}

impl EventMessage {
    /// Characters of the text body in `snippet`.
    pub const SNIPPET: usize = 280;

    /// The facts every event carries (no `include` extras).
    pub fn of(view: &MessageView) -> EventMessage {
        EventMessage {
            message_id: view.message_id().map(str::to_owned),
            from: view.from().map(|a| a.address.clone()),
            to: view.to().iter().map(|a| a.address.clone()).collect(),
            cc: view.cc().iter().map(|a| a.address.clone()).collect(),
            subject: view.subject().to_owned(),
            date: view.date().map(|d| d.to_rfc3339()),
            snippet: view.text().chars().take(Self::SNIPPET).collect(),
            labels: view.keywords().to_vec(),
            flags: view.flags().to_vec(),
            ..EventMessage::default()
        }
    }
}

/// An attachment in an event payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAttachment {
    /// Its file name, if it has one.
    pub name: Option<String>,
    /// Its MIME type.
    pub content_type: String,
    /// Its decoded size in bytes.
    pub size: u64,
    /// Its decoded content, base64.
    pub content: String,
}

/// The kinds of the actions an IMAP executor carries out on the message in its mailbox.
pub const MAILBOX_KINDS: &[&str] = &["add_flags", "remove_flags", "copy", "move", "delete", "archive"];
/// The kinds of the outbound actions, carried out by their own executors.
pub const OUTBOUND_KINDS: &[&str] = &["reply", "forward", "send", "webhook", "command"];
/// The outbound kinds that send mail.
pub const MAIL_KINDS: &[&str] = &["reply", "forward", "send"];
/// The outbound kinds that notify other programs: at least once, by the event lane.
pub const EVENT_KINDS: &[&str] = &["webhook", "command"];
/// The kind of [`Action::Collect`]: stored as a collected item, never in the outbox.
pub const COLLECT_KIND: &str = "collect";

/// What an outbound action needs of the message it answers or forwards, captured when the rule
/// decided: by the time it runs, the message may have been moved or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    /// Its Message-ID without `<>`, for In-Reply-To and References.
    pub message_id: Option<String>,
    /// Its References without `<>`, oldest first.
    pub references: Vec<String>,
    /// Its From address (`""` when it had none).
    pub from: String,
    /// Its decoded Subject.
    pub subject: String,
    /// Its Date header, RFC 3339.
    pub date: Option<String>,
    /// Its To addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// Its Cc addresses.
    #[serde(default)]
    pub cc: Vec<String>,
    /// The envelope sender from Return-Path: `Some("")` for the null sender `<>`.
    #[serde(default)]
    pub return_path: Option<String>,
    /// The Sender header's address.
    #[serde(default)]
    pub sender: Option<String>,
    /// The headers the RFC 3834 guards read, as `(lower-case name, value)`: Auto-Submitted,
    /// Precedence, X-Auto-Response-Suppress, every List-* header, and the like.
    #[serde(default)]
    pub guard_headers: Vec<(String, String)>,
}

impl Original {
    /// Captures what outbound actions need of `view`.
    pub fn of(view: &MessageView) -> Original {
        Original {
            message_id: view.message_id().map(str::to_owned),
            references: view.references().to_vec(),
            from: view.from().map(|a| a.address.clone()).unwrap_or_default(),
            subject: view.subject().to_owned(),
            date: view.date().map(|d| d.to_rfc3339()),
            to: view.to().iter().map(|a| a.address.clone()).collect(),
            cc: view.cc().iter().map(|a| a.address.clone()).collect(),
            return_path: view.header("return-path").map(envelope_address),
            sender: view.sender().map(|a| a.address.clone()),
            guard_headers: guard_headers(view),
        }
    }
}

/// Headers that mark mail as machine-sent, besides Auto-Submitted, Precedence, the List-*
/// family (RFC 2369, 2919) and multipart/report (bounces, RFC 6522): what mailing list
/// managers, Exchange and common auto-responders write instead.
/// (The marks of auto-responders are [`crate::message::AUTO_REPLY_HEADERS`].)
const AUTOMATED_HEADERS: &[&str] =
    &["auto-submitted", "precedence", "x-apple-action", "x-mailing-list", "mailing-list", "x-loop", "x-beenthere"];

/// The most guard headers an action keeps: a sender can write thousands of `X-Loop` lines, and
/// each is copied into a forward.
const MAX_GUARD_HEADERS: usize = 50;

/// The headers the reply guards read, lower-case names, top to bottom: only those, so the
/// stored action stays small.
fn guard_headers(view: &MessageView) -> Vec<(String, String)> {
    view.all_headers()
        .iter()
        .map(|header| (header.name().to_ascii_lowercase(), header))
        .filter(|(name, header)| {
            AUTOMATED_HEADERS.contains(&name.as_str())
                || crate::message::AUTO_REPLY_HEADERS.contains(&name.as_str())
                || name.starts_with("list-")
                || (name == "content-type"
                    && header.value().trim_start().to_ascii_lowercase().starts_with("multipart/report"))
        })
        .map(|(name, header)| (name, one_line(header.value())))
        .take(MAX_GUARD_HEADERS)
        .collect()
}

/// Text for a header of a message tidings sends: every control character (CR and LF above all,
/// which would start a header the rule did not write) becomes a space. Text from a message
/// (a subject, a name) may hold them, decoded from RFC 2047 words; it is cleaned, not refused,
/// since a rule cannot know what the next sender writes.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The address in a Return-Path (`<a@b.example>` -> `a@b.example`); `""` for the null sender
/// `<>`, which bounces and auto-replies carry.
fn envelope_address(value: &str) -> String {
    let value = value.trim();
    let inner = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    inner.trim().to_owned()
}

/// An automatic reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Where the reply goes: the envelope sender (Return-Path) unless the rule chose Reply-To
    /// or From; `""` when the message has no usable address there (see `unusable`).
    pub to: String,
    /// Why `to` is empty: the reply is then suppressed with this reason when it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
    /// The subject: `Re: ` and the original's, unless the rule gave one.
    pub subject: String,
    /// The text.
    pub body: String,
    /// At most one reply per sender in this many days (Sieve vacation's `:days`).
    pub days: u32,
    /// What the once-per-`days` memory is kept under: the rule's name unless it gave one.
    pub handle: String,
    /// The message replied to.
    pub original: Original,
    /// An HTML alternative to `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The From address the rule chose (one of the account's); `None`: the account address
    /// the original was sent to, else the account's `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Not to send before this time; `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// A forward: the original's headers summary and text, under an optional note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The recipients.
    pub to: Vec<String>,
    /// Text put above the forwarded message.
    pub note: Option<String>,
    /// The message forwarded.
    pub original: Original,
    /// Its plain-text body, for an inline forward.
    pub text: String,
    /// The whole original, base64, when it is forwarded as a `message/rfc822` attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<String>,
    /// The From address the rule chose (one of the account's); `None`: the account's `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A new message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// The recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The text.
    pub body: String,
    /// An HTML alternative to `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The From address the rule chose (one of the account's); `None`: the account's `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Not to send before this time; `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

impl Action {
    /// When the action may run at the earliest (send later); `None`: as soon as it is stored.
    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        match self {
            Action::Reply(r) => r.at,
            Action::Send(m) => m.at,
            Action::Webhook(e) | Action::Command(e) => e.at,
            _ => None,
        }
    }

    /// Whether it sends mail (reply, forward, send): at most once, under the daily cap.
    pub fn is_mail(&self) -> bool {
        matches!(self, Action::Reply(_) | Action::Forward(_) | Action::Send(_))
    }

    /// The outbox kind, also the name used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddFlags { .. } => "add_flags",
            Action::RemoveFlags { .. } => "remove_flags",
            Action::Copy { .. } => "copy",
            Action::Move { .. } => "move",
            Action::Delete => "delete",
            Action::Archive => "archive",
            Action::Reply(_) => "reply",
            Action::Forward(_) => "forward",
            Action::Send(_) => "send",
            Action::Webhook(_) => "webhook",
            Action::Command(_) => "command",
            Action::Collect { .. } => COLLECT_KIND,
        }
    }

    /// Which step of the plan this belongs to; lower runs first.
    pub fn phase(&self) -> Phase {
        match self {
            Action::AddFlags { .. } | Action::RemoveFlags { .. } => Phase::Flags,
            Action::Copy { .. } => Phase::Copy,
            Action::Move { .. } | Action::Delete | Action::Archive => Phase::Disposition,
            Action::Reply(_) | Action::Forward(_) | Action::Send(_) | Action::Webhook(_) | Action::Command(_) => {
                Phase::Outbound
            }
            Action::Collect { .. } => Phase::Collect,
        }
    }

    /// Whether it goes out of the mailbox (mail, webhooks, commands): what the per-message cap
    /// on outbound actions counts.
    pub fn is_outbound(&self) -> bool {
        self.phase() == Phase::Outbound
    }
}

/// The steps of a plan, in execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Flag, keyword and label changes.
    Flags,
    /// Copies.
    Copy,
    /// The final move, archive or delete.
    Disposition,
    /// Replies, forwards, new messages, webhooks and commands.
    Outbound,
    /// Data collected for a schedule's rule.
    Collect,
}

/// A decision as a rule made it: which rule, its n-th decision, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The rule's name (its file name).
    pub rule: String,
    /// 0-based index of this decision among the rule's decisions for this message.
    pub position: usize,
    /// What it decided.
    pub action: Action,
}

/// An action in a plan, with its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Unique per message and decision: storing it twice is a no-op.
    pub key: String,
    /// The rule that decided it.
    pub rule: String,
    /// The action.
    pub action: Action,
}

/// The plan for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The message it is for.
    pub message: MessageKey,
    /// Actions in execution order.
    pub actions: Vec<Planned>,
    /// Dispositions that a later one overrode, as `rule: action`, for logs and `tidings test`.
    pub overridden: Vec<Decision>,
}

impl Plan {
    /// Orders the decisions into a plan (flags, copies, one disposition, outbound, collected) and keys each
    /// action.
    pub fn build(message: MessageKey, decisions: Vec<Decision>) -> Plan {
        Plan::build_keyed(message, decisions, |message, d| idempotency_key(message, &d.rule, d.position))
    }

    /// Like [`Plan::build`], each action keyed by `key` (a schedule's decisions are keyed by
    /// the fire, see [`schedule_key`]).
    pub fn build_keyed(
        message: MessageKey,
        decisions: Vec<Decision>,
        key: impl Fn(&MessageKey, &Decision) -> String,
    ) -> Plan {
        let mut actions = Vec::new();
        let mut copies: Vec<Decision> = Vec::new();
        let mut disposition: Option<Decision> = None;
        let mut outbound: Vec<Decision> = Vec::new();
        let mut collect: Vec<Decision> = Vec::new();
        let mut overridden = Vec::new();
        for decision in decisions {
            match decision.action.phase() {
                Phase::Flags => actions.push(decision),
                Phase::Copy => push_new(&mut copies, decision),
                Phase::Disposition => overridden.extend(disposition.replace(decision)),
                Phase::Outbound => push_new(&mut outbound, decision),
                Phase::Collect => push_new(&mut collect, decision),
            }
        }
        actions.extend(copies);
        actions.extend(disposition);
        actions.extend(outbound);
        actions.extend(collect);
        let actions =
            actions.into_iter().map(|d| Planned { key: key(&message, &d), rule: d.rule, action: d.action }).collect();
        Plan { message, actions, overridden }
    }

    /// Whether the rules decided nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Adds a decision unless the same action is already there: two rules copying to one folder, or
/// sending the same webhook, mean it once.
fn push_new(list: &mut Vec<Decision>, decision: Decision) {
    if !list.iter().any(|d| d.action == decision.action) {
        list.push(decision);
    }
}

/// `account/mailbox/uidvalidity/uid/rule#position`: the same message and decision always give the
/// same key, so a plan stored again after a crash adds nothing.
pub fn idempotency_key(message: &MessageKey, rule: &str, position: usize) -> String {
    format!("{}/{}/{}/{}/{}#{}", message.account, message.mailbox, message.uidvalidity, message.uid, rule, position)
}

/// `schedule/<name>/<fired_at unix millis>/<account/mailbox/uidvalidity/uid or "-">/<rule>#<pos>`:
/// the key of a scheduled decision. The fire time is in it, so a fire re-run after a crash adds
/// nothing while next week's fire on the same message is new; `message` is `None` for a rule
/// that runs once per fire with no message.
pub fn schedule_key(
    name: &str,
    fired_at: DateTime<Utc>,
    message: Option<&MessageKey>,
    rule: &str,
    position: usize,
) -> String {
    let message =
        message.map_or_else(|| "-".to_owned(), |m| format!("{}/{}/{}/{}", m.account, m.mailbox, m.uidvalidity, m.uid));
    format!("schedule/{name}/{}/{message}/{rule}#{position}", fired_at.timestamp_millis())
}

#[cfg(test)]
mod tests;
