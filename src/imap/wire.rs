//! Commands on the wire: send one or more tagged commands back to back, read until each has
//! its tagged answer, hand every untagged response to the caller; plus the conversions of
//! flags, attributes and dates from their protocol form.
//!
//! This is the only place that reads responses for the session's own commands (IDLE aside),
//! so pipelining is one round trip for a whole batch. It must not interpret what the
//! responses mean for the mailbox beyond noticing EXISTS (new mail).

use async_imap::imap_proto::{MailboxDatum, NameAttribute, Outcome, RequestId, Response, Status};
use chrono::{DateTime, Utc};

use super::connect::Conn;

type ImapError = async_imap::error::Error;

/// What an exchange noticed on the side.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Noticed {
    /// The server sent EXISTS: new mail may have arrived.
    pub exists: bool,
}

/// Sends `commands` pipelined, then reads until every one is answered. Untagged responses go
/// to `on_data`. If any command was refused (NO/BAD), the first refusal is returned, but only
/// after all answers were read, so the connection stays in step and usable.
pub(super) async fn pipeline(
    conn: &mut Conn,
    commands: &[String],
    mut on_data: impl FnMut(&Response<'_>),
) -> Result<Noticed, ImapError> {
    let mut tags: Vec<RequestId> = Vec::with_capacity(commands.len());
    for command in commands {
        tags.push(conn.run_command(command).await?);
    }
    let mut open = tags.len();
    let mut refusal: Option<ImapError> = None;
    let mut noticed = Noticed::default();
    while open > 0 {
        let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
        match response.parsed() {
            Response::Done { tag, status, outcome } if tags.contains(tag) => {
                open -= 1;
                if refusal.is_none() {
                    refusal = refused(status, outcome);
                }
            }
            parsed => {
                noticed.exists |= matches!(parsed, Response::MailboxData(MailboxDatum::Exists(_)));
                on_data(parsed);
            }
        }
    }
    refusal.map_or(Ok(noticed), Err)
}

/// The error for a tagged NO or BAD (code and text as the server sent them), else `None`.
pub(super) fn refused(status: &Status, outcome: &Outcome<'_>) -> Option<ImapError> {
    let text = || {
        let code = outcome.code.as_ref().map(|c| format!("[{c:?}] ")).unwrap_or_default();
        format!("{code}{}", outcome.information.as_deref().unwrap_or(""))
    };
    match status {
        Status::Ok => None,
        Status::No => Some(ImapError::No(text())),
        Status::Bad => Some(ImapError::Bad(text())),
        other => Some(ImapError::Io(std::io::Error::other(format!("unexpected {other:?} answer: {}", text())))),
    }
}

/// A flag as rules see it: system flags in their canonical case (`\Seen`), keywords as the
/// server sent them; `\Recent` is dropped, as it depends on which session looked first.
pub(super) fn flag_name(raw: &str) -> Option<String> {
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    if raw.eq_ignore_ascii_case("\\Recent") {
        return None;
    }
    let name = SYSTEM.iter().find(|s| s.eq_ignore_ascii_case(raw)).map_or(raw, |s| s);
    Some(name.to_owned())
}

/// A LIST attribute as text, e.g. `\Trash`, `\Noselect`, `\HasNoChildren`.
pub(super) fn attribute_name(attribute: &NameAttribute<'_>) -> String {
    let name = match attribute {
        NameAttribute::NoInferiors => "\\Noinferiors",
        NameAttribute::NoSelect => "\\Noselect",
        NameAttribute::Marked => "\\Marked",
        NameAttribute::Unmarked => "\\Unmarked",
        NameAttribute::All => "\\All",
        NameAttribute::Archive => "\\Archive",
        NameAttribute::Drafts => "\\Drafts",
        NameAttribute::Flagged => "\\Flagged",
        NameAttribute::Junk => "\\Junk",
        NameAttribute::Sent => "\\Sent",
        NameAttribute::Trash => "\\Trash",
        NameAttribute::Extension(other) => other,
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

/// An INTERNALDATE (`17-Jul-1996 02:44:25 -0700`, the day may be space-padded) in UTC.
pub(super) fn internal_date(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw.trim(), "%d-%b-%Y %H:%M:%S %z").ok().map(|d| d.with_timezone(&Utc))
}

/// `s` as an IMAP quoted string. Mailbox names reach here modified-UTF-7 encoded, so they
/// are printable ASCII: no CR or LF can get in.
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn flags_are_canonical_and_recent_is_dropped() {
        assert_eq!(flag_name("\\SEEN").as_deref(), Some("\\Seen"));
        assert_eq!(flag_name("\\Flagged").as_deref(), Some("\\Flagged"));
        assert_eq!(flag_name("$Forwarded").as_deref(), Some("$Forwarded"));
        assert_eq!(flag_name("\\Recent"), None);
    }

    #[test]
    fn internal_dates_parse_with_padded_days() {
        let want = Utc.with_ymd_and_hms(1996, 7, 17, 9, 44, 25).unwrap();
        assert_eq!(internal_date("17-Jul-1996 02:44:25 -0700"), Some(want));
        let padded = Utc.with_ymd_and_hms(2026, 3, 7, 1, 0, 0).unwrap();
        assert_eq!(internal_date(" 7-Mar-2026 02:00:00 +0100"), Some(padded));
        assert_eq!(internal_date("yesterday"), None);
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("&ANw-berweisungen"), "\"&ANw-berweisungen\"");
    }
}
