//! UID SEARCH with criteria built key by key, strings included.
//!
//! A string that is plain printable ASCII goes quoted; any other (accents, CJK, a line break)
//! goes as a literal, and the search then says `CHARSET UTF-8`. Literals are sent without
//! waiting for the server's go-ahead where it allows that (LITERAL+, or LITERAL- for small
//! ones), else one by one after each `+`, as RFC 3501 requires. What to search for is decided
//! by the caller; this module only writes it correctly.

use std::fmt;

use async_imap::imap_proto::{MailboxDatum, Response};
use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::connect::Conn;
use super::{Error, Result, Session, wire};

/// The largest literal LITERAL- lets a client send without waiting (RFC 7888).
const LITERAL_MINUS_MAX: usize = 4096;

/// Search criteria as IMAP writes them; the keys are ANDed, as IMAP does with a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Criteria {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Protocol text as it is: `SEEN`, `OLDER 604800`, `(FROM "a" OR ...)`.
    Syntax(String),
    /// A string argument: quoted or a literal, as its content needs.
    Text(String),
}

impl Criteria {
    /// No criteria yet; searching with none searches `ALL`.
    pub fn new() -> Criteria {
        Criteria::default()
    }

    /// Adds protocol text as it is (`SEEN`, `BEFORE 1-Jan-2026`). It must be printable ASCII;
    /// [`Session::search`] refuses anything else.
    pub fn push(&mut self, syntax: impl Into<String>) -> &mut Criteria {
        self.parts.push(Part::Syntax(syntax.into()));
        self
    }

    /// Adds a string argument (after `FROM`, `SUBJECT` ...): quoted if plain ASCII, else a
    /// literal under `CHARSET UTF-8`.
    pub fn push_text(&mut self, text: impl Into<String>) -> &mut Criteria {
        self.parts.push(Part::Text(text.into()));
        self
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether a string must go as a literal, and the search must name its charset.
    pub fn needs_utf8(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Text(t) if needs_literal(t)))
    }

    /// The command as one line, literals non-synchronizing (`{n+}`), and the literals' sizes.
    fn command(&self, sync: bool) -> (Vec<String>, Vec<&str>) {
        let mut pieces = vec![if self.needs_utf8() { "UID SEARCH CHARSET UTF-8" } else { "UID SEARCH" }.to_owned()];
        let mut literals = Vec::new();
        if self.parts.is_empty() {
            pieces[0].push_str(" ALL");
        }
        for part in &self.parts {
            let current = pieces.last_mut().expect("pieces starts with one and only grows");
            current.push(' ');
            match part {
                Part::Syntax(s) => current.push_str(s),
                Part::Text(t) if !needs_literal(t) => current.push_str(&wire::quote(t)),
                Part::Text(t) => {
                    current.push_str(&format!("{{{}{}}}", t.len(), if sync { "" } else { "+" }));
                    literals.push(t.as_str());
                    pieces.push(String::new());
                }
            }
        }
        (pieces, literals)
    }

    /// Why it cannot be sent, if it cannot: syntax that is not printable ASCII, a NUL in a
    /// string (no literal may carry one).
    fn problem(&self) -> Option<&'static str> {
        self.parts.iter().find_map(|part| match part {
            Part::Syntax(s) if !s.chars().all(|c| c.is_ascii_graphic() || c == ' ') => {
                Some("search criteria must be printable ASCII")
            }
            Part::Text(t) if t.contains('\0') => Some("a search string cannot hold a NUL character"),
            _ => None,
        })
    }
}

/// As the server receives it with LITERAL+, without `UID SEARCH`.
impl fmt::Display for Criteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pieces, literals) = self.command(false);
        let line = pieces[0].strip_prefix("UID SEARCH ").unwrap_or(&pieces[0]);
        f.write_str(line)?;
        for (literal, piece) in literals.iter().zip(&pieces[1..]) {
            write!(f, "\r\n{literal}{piece}")?;
        }
        Ok(())
    }
}

/// Anything but printable ASCII (quoted strings cannot carry 8-bit text or line breaks).
fn needs_literal(text: &str) -> bool {
    !text.chars().all(|c| c == ' ' || c.is_ascii_graphic())
}

impl Session {
    /// UID SEARCH for `criteria` in the selected mailbox; ascending UIDs.
    pub async fn search(&mut self, criteria: &Criteria) -> Result<Vec<u32>> {
        let what = format!("search `{}` in {}", criteria.to_string().replace("\r\n", " "), self.selected_name());
        if let Some(reason) = criteria.problem() {
            return Err(Error::Invalid { what, reason: reason.into() });
        }
        self.require_selected(&what)?;
        let (_, literals) = criteria.command(false);
        let no_wait = self.caps.literal_plus
            || (self.caps.literal_minus && literals.iter().all(|l| l.len() <= LITERAL_MINUS_MAX));
        let mut uids = Vec::new();
        let collect = |r: &Response<'_>| {
            if let Response::MailboxData(MailboxDatum::Search(found)) = r {
                uids.extend_from_slice(found);
            }
        };
        if literals.is_empty() || no_wait {
            let (pieces, literals) = criteria.command(false);
            let mut line = pieces[0].clone();
            for (literal, piece) in literals.iter().zip(&pieces[1..]) {
                line.push_str("\r\n");
                line.push_str(literal);
                line.push_str(piece);
            }
            self.exchange(&what, &[line], self.timeouts.command, collect).await?;
        } else {
            let (pieces, literals) = criteria.command(true);
            debug!(at = %self.at, what, literals = literals.len(), "imap: command with synchronizing literals");
            let limit = self.timeouts.command;
            let conn = self.live(&what)?;
            let result = tokio::time::timeout(limit, synchronizing(conn, &pieces, &literals, collect)).await;
            self.new_mail |= self.settle(&what, limit, result)?;
        }
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }
}

/// Sends a command whose `pieces` are separated by synchronizing literals: each literal only
/// after the server's `+`. A tagged answer instead of a `+` is a refusal; the command is over
/// then, and the connection in step. Returns whether EXISTS was seen.
async fn synchronizing(
    conn: &mut Conn,
    pieces: &[String],
    literals: &[&str],
    mut on_data: impl FnMut(&Response<'_>),
) -> Result<bool, async_imap::error::Error> {
    type ImapError = async_imap::error::Error;
    let mut exists = false;
    let tag = conn.run_command(&pieces[0]).await?;
    for (literal, piece) in literals.iter().zip(&pieces[1..]) {
        loop {
            let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
            match response.parsed() {
                Response::Continue { .. } => break,
                Response::Done { tag: done, status, outcome } if *done == tag => {
                    return Err(wire::refused(status, outcome).unwrap_or_else(|| {
                        ImapError::Io(std::io::Error::other("the command ended before its literal was sent"))
                    }));
                }
                other => exists |= matches!(other, Response::MailboxData(MailboxDatum::Exists(_))),
            }
        }
        // Each command part was flushed when sent, so nothing waits in async-imap's buffer: the
        // literal and the rest of the line can go straight to the stream.
        let stream = conn.get_mut();
        stream.write_all(literal.as_bytes()).await?;
        stream.write_all(piece.as_bytes()).await?;
        stream.write_all(b"\r\n").await?;
        stream.flush().await?;
    }
    loop {
        let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
        match response.parsed() {
            Response::Done { tag: done, status, outcome } if *done == tag => {
                return wire::refused(status, outcome).map_or(Ok(exists), Err);
            }
            other => {
                exists |= matches!(other, Response::MailboxData(MailboxDatum::Exists(_)));
                on_data(other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_criteria_are_one_line_and_strings_are_quoted() {
        let mut c = Criteria::new();
        c.push("SEEN").push("FROM").push_text("ann \"the\" \\ boss").push("LARGER 10");
        assert_eq!(c.to_string(), r#"SEEN FROM "ann \"the\" \\ boss" LARGER 10"#);
        assert!(!c.needs_utf8());
        assert_eq!(Criteria::new().to_string(), "ALL");
    }

    #[test]
    fn other_strings_are_literals_under_utf8() {
        let mut c = Criteria::new();
        c.push("SUBJECT").push_text("Résumé").push("UNSEEN").push("TO").push_text("a\r\nb");
        assert!(c.needs_utf8());
        assert_eq!(c.to_string(), "CHARSET UTF-8 SUBJECT {8+}\r\nRésumé UNSEEN TO {4+}\r\na\r\nb");
        let (pieces, literals) = c.command(true);
        assert_eq!(pieces, ["UID SEARCH CHARSET UTF-8 SUBJECT {8}", " UNSEEN TO {4}", ""]);
        assert_eq!(literals, ["Résumé", "a\r\nb"]);
    }

    #[test]
    fn unsendable_criteria_are_refused() {
        assert_eq!(Criteria::new().push("ALL\r\nA1 LOGOUT").problem(), Some("search criteria must be printable ASCII"));
        assert!(Criteria::new().push("SUBJECT").push_text("a\0b").problem().is_some());
        assert_eq!(Criteria::new().push("OR SEEN (FLAGGED)").push_text("ü").problem(), None);
    }
}
