//! What Gmail says about a message beyond IMAP (X-GM-EXT-1): its labels, its thread and its
//! account-wide id. Filled in by the fetcher only when the server advertises the extension.

use serde::Serialize;

/// Gmail's attributes of one message, as fetched with X-GM-MSGID, X-GM-THRID, X-GM-LABELS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GmailAttrs {
    /// X-GM-MSGID: the same for the message in every label folder it shows up in (INBOX,
    /// `[Gmail]/All Mail`, `Receipts`), unlike its UIDs; what a message is deduplicated by.
    pub msgid: u64,
    /// X-GM-THRID: the conversation, as Gmail's web interface groups it.
    pub thread_id: u64,
    /// X-GM-LABELS, decoded to UTF-8: user labels as named (`Receipts/2026`), Gmail's own as
    /// `\Inbox`, `\Important`, `\Starred`, `\Sent`, `\Draft`.
    pub labels: Vec<String>,
}
