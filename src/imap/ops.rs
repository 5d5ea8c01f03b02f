//! Changing mail on the server: move, copy, flag, append, create, list, log out.
//!
//! Executors call these with UIDs and UTF-8 mailbox paths that were decided elsewhere; this
//! module only turns them into the right commands for this server (MOVE, or COPY + STORE +
//! UID EXPUNGE with UIDPLUS, or the cautious fallback of `fallback.rs` without either) and
//! refuses what cannot be done safely (a keyword PERMANENTFLAGS rules out). A request for many UIDs
//! is split into several commands; if one fails, the ones before it have taken effect and
//! the call fails, so a retry must be harmless (UID MOVE, STORE and COPY of UIDs that are
//! gone do nothing; a COPY retried after success copies twice).

use async_imap::imap_proto::{MailboxDatum, Response};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::connect::Conn;
use super::uidset::{MAX_SET_LEN, UidSet};
use super::{Capabilities, Error, Result, Session, fallback, wire};

/// Whether [`Session::uid_store`] adds or removes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    /// `+FLAGS.SILENT`.
    Add,
    /// `-FLAGS.SILENT`.
    Remove,
}

/// A mailbox as LIST reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// Its UTF-8 path with `/` as delimiter and no namespace prefix, as rules name it.
    pub name: String,
    /// Its name as the server sent it (modified UTF-7, server delimiter, prefix).
    pub server_name: String,
    /// LIST attributes, e.g. `\Trash`, `\Noselect`, `\HasNoChildren`.
    pub attributes: Vec<String>,
}

impl Folder {
    /// Whether the folder carries `attribute` (case-insensitive, e.g. `\Trash`).
    pub fn has_attribute(&self, attribute: &str) -> bool {
        self.attributes.iter().any(|a| a.eq_ignore_ascii_case(attribute))
    }
}

impl Session {
    /// Moves the messages from the selected mailbox to `target`: UID MOVE if offered, else
    /// UID COPY, UID STORE `\Deleted`, UID EXPUNGE of exactly these UIDs (UIDPLUS). Without
    /// either: UID COPY and UID STORE `\Deleted`, then EXPUNGE only if no other message is
    /// flagged `\Deleted`, else ours stay flagged (see `fallback.rs`).
    pub async fn uid_move(&mut self, uids: &UidSet, target: &str) -> Result<()> {
        let what = format!("move {} messages from {} to `{target}`", uids.len(), self.selected_name());
        self.require_selected(&what)?;
        let target_name = wire::quote(&self.server_name(target));
        let (commands, expunge) = move_commands(&self.caps, uids, &target_name);
        self.run_in_order(&what, commands).await?;
        match expunge {
            Expunge::Done => Ok(()),
            Expunge::IfOnlyOurs => self.expunge_if_only(&what, uids).await,
        }
    }

    /// Copies the messages from the selected mailbox to `target` (UID COPY).
    pub async fn uid_copy(&mut self, uids: &UidSet, target: &str) -> Result<()> {
        let what = format!("copy {} messages from {} to `{target}`", uids.len(), self.selected_name());
        self.require_selected(&what)?;
        let target_name = wire::quote(&self.server_name(target));
        let commands =
            uids.chunks(MAX_SET_LEN).into_iter().map(|set| format!("UID COPY {set} {target_name}")).collect();
        self.run_in_order(&what, commands).await
    }

    /// Adds or removes `flags` (`\Seen`, `$Label1`, ...) on the messages, silently (no FETCH
    /// answers). Each flag must be an IMAP atom, optionally with a leading `\`.
    pub async fn uid_store<S: AsRef<str>>(&mut self, uids: &UidSet, op: FlagOp, flags: &[S]) -> Result<()> {
        let sign = if op == FlagOp::Add { '+' } else { '-' };
        let flags: Vec<&str> = flags.iter().map(AsRef::as_ref).collect();
        let what = format!("store {sign}{flags:?} on {} messages in {}", uids.len(), self.selected_name());
        if let Some(bad) = flags.iter().find(|f| !valid_flag(f)) {
            return Err(Error::Invalid { what, reason: format!("`{bad}` is not a valid flag") });
        }
        self.require_selected(&what)?;
        // Removing a keyword the mailbox cannot hold is harmless; adding one would be lost.
        if op == FlagOp::Add
            && let Some(keyword) = fallback::refused_keyword(self.permanent_flags.as_deref(), &flags)
        {
            let reason = format!(
                "the server does not keep keyword `{keyword}` in {} (PERMANENTFLAGS {})",
                self.selected_name(),
                self.permanent_flags.as_deref().unwrap_or_default().join(" ")
            );
            return Err(self.unsupported(&what, &reason));
        }
        if flags.is_empty() || uids.is_empty() {
            return Ok(());
        }
        let list = flags.join(" ");
        let commands: Vec<String> = uids
            .chunks(MAX_SET_LEN)
            .into_iter()
            .map(|set| format!("UID STORE {set} {sign}FLAGS.SILENT ({list})"))
            .collect();
        // Independent of each other: one round trip for all.
        self.exchange(&what, &commands, self.timeouts.command, |_| {}).await
    }

    /// Deletes the messages for good: `\Deleted`, then UID EXPUNGE of exactly these UIDs
    /// (UIDPLUS). Without UIDPLUS: `\Deleted`, then EXPUNGE only if no other message is
    /// flagged `\Deleted`, else they stay flagged (see `fallback.rs`).
    pub async fn uid_delete(&mut self, uids: &UidSet) -> Result<()> {
        let what = format!("delete {} messages in {}", uids.len(), self.selected_name());
        self.require_selected(&what)?;
        let uidplus = self.caps.uidplus;
        let commands = uids
            .chunks(MAX_SET_LEN)
            .iter()
            .flat_map(|set| {
                let expunge = uidplus.then(|| format!("UID EXPUNGE {set}"));
                std::iter::once(format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)")).chain(expunge)
            })
            .collect();
        self.run_in_order(&what, commands).await?;
        if uidplus { Ok(()) } else { self.expunge_if_only(&what, uids).await }
    }

    /// Without UIDPLUS, after `uids` were flagged `\Deleted`: EXPUNGE if they are the only
    /// flagged messages, else leave them flagged and say so (`fallback.rs`).
    async fn expunge_if_only(&mut self, what: &str, uids: &UidSet) -> Result<()> {
        let mut deleted = Vec::new();
        self.exchange(what, &["UID SEARCH DELETED".to_owned()], self.timeouts.command, |r| {
            if let Response::MailboxData(MailboxDatum::Search(found)) = r {
                deleted.extend_from_slice(found);
            }
        })
        .await?;
        if fallback::expunge_is_safe(&deleted, uids) {
            return self.exchange(what, &["EXPUNGE".to_owned()], self.timeouts.command, |_| {}).await;
        }
        let others = deleted.iter().filter(|&&uid| !uids.contains(uid)).count();
        warn!(
            at = %self.at,
            mailbox = %self.selected_name(),
            ours = uids.len(),
            others,
            "imap: no UIDPLUS and other messages are flagged \\Deleted: ours stay flagged, nothing expunged"
        );
        Ok(())
    }

    /// Appends `message` (RFC 5322, CRLF line ends, no NUL) to `mailbox` with `flags`, e.g. a
    /// sent message to the Sent folder with `\Seen`. A missing mailbox is refused by the server
    /// (NO, usually with `[TRYCREATE]`) and the session stays usable.
    pub async fn append<S: AsRef<str>>(&mut self, mailbox: &str, flags: &[S], message: &[u8]) -> Result<()> {
        let what = format!("append a message of {} bytes to `{mailbox}`", message.len());
        let flags: Vec<&str> = flags.iter().map(AsRef::as_ref).collect();
        if let Some(bad) = flags.iter().find(|f| !valid_flag(f)) {
            return Err(Error::Invalid { what, reason: format!("`{bad}` is not a valid flag") });
        }
        if message.contains(&0) {
            return Err(Error::Invalid { what, reason: "the message holds a NUL byte".into() });
        }
        let command =
            format!("APPEND {} ({}) {{{}}}", wire::quote(&self.server_name(mailbox)), flags.join(" "), message.len());
        let megabytes = u32::try_from(message.len() >> 20).unwrap_or(u32::MAX);
        let limit = self.timeouts.command.saturating_add(self.timeouts.fetch_per_mb.saturating_mul(megabytes));
        debug!(at = %self.at, what, "imap: command");
        let conn = self.live(&what)?;
        let result = tokio::time::timeout(limit, append_literal(conn, &command, message)).await;
        self.settle(&what, limit, result)
    }

    /// Creates `mailbox` (and subscribes it, so mail clients show it). One that already
    /// exists is success.
    pub async fn create(&mut self, mailbox: &str) -> Result<()> {
        let what = format!("create mailbox `{mailbox}`");
        let name = wire::quote(&self.server_name(mailbox));
        match self.exchange(&what, &[format!("CREATE {name}")], self.timeouts.command, |_| {}).await {
            Ok(()) => {}
            Err(Error::Command { source: async_imap::error::Error::No(text), .. }) if already_exists(&text) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let subscribe = format!("subscribe mailbox `{mailbox}`");
        match self.exchange(&subscribe, &[format!("SUBSCRIBE {name}")], self.timeouts.command, |_| {}).await {
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                debug!(at = %self.at, error = %e, "imap: subscribing a new mailbox failed; it exists anyway");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Every mailbox with its attributes (special-use ones included when the server can
    /// return them), names as UTF-8 paths.
    pub async fn list(&mut self) -> Result<Vec<Folder>> {
        let mut command = "LIST \"\" \"*\"".to_owned();
        if self.caps.special_use && self.caps.has("LIST-EXTENDED") {
            command.push_str(" RETURN (SPECIAL-USE)");
        }
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        self.exchange("list mailboxes", &[command], self.timeouts.command, |r| {
            if let Response::MailboxData(MailboxDatum::List(data)) = r {
                found.push((data.name.to_string(), data.name_attributes.iter().map(wire::attribute_name).collect()));
            }
        })
        .await?;
        let folders = found.into_iter().map(|(server_name, attributes)| Folder {
            name: self.names.to_path(&server_name),
            server_name,
            attributes,
        });
        Ok(folders.collect())
    }

    /// The path of the first mailbox with special-use `attribute` (`\Trash`, `\Archive`,
    /// `\Sent`, `\Junk`, `\Drafts`, `\All`), if there is one.
    pub async fn special_use(&mut self, attribute: &str) -> Result<Option<String>> {
        let folders = self.list().await?;
        Ok(folders.into_iter().find(|f| f.has_attribute(attribute)).map(|f| f.name))
    }

    /// Says goodbye (LOGOUT) and closes the connection.
    pub async fn logout(mut self) -> Result<()> {
        let result = self.exchange("log out", &["LOGOUT".to_owned()], self.timeouts.command, |_| {}).await;
        self.mark_broken("logged out".into());
        result
    }

    /// Runs `commands` one after another, stopping at the first failure: a later one may
    /// only be safe if the earlier one succeeded (no EXPUNGE after a failed COPY).
    async fn run_in_order(&mut self, what: &str, commands: Vec<String>) -> Result<()> {
        for command in commands {
            self.exchange(what, &[command], self.timeouts.command, |_| {}).await?;
        }
        Ok(())
    }
}

/// APPEND with a synchronizing literal: the command, the server's go-ahead (`+`), the bytes.
/// A tagged answer instead of the go-ahead is a refusal before any byte was sent.
async fn append_literal(conn: &mut Conn, command: &str, message: &[u8]) -> Result<(), async_imap::error::Error> {
    type ImapError = async_imap::error::Error;
    let tag = conn.run_command(command).await?;
    loop {
        let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
        match response.parsed() {
            Response::Continue { .. } => break,
            Response::Done { tag: done, status, outcome } if *done == tag => {
                return Err(wire::refused(status, outcome).unwrap_or_else(|| {
                    ImapError::Io(std::io::Error::other("APPEND ended before its message was sent"))
                }));
            }
            // Untagged news (EXISTS of another mailbox, alerts): nothing to do with the append.
            _ => {}
        }
    }
    // The command was flushed when it was sent, so nothing waits in async-imap's buffer: the
    // literal can go straight to the stream.
    let stream = conn.get_mut();
    stream.write_all(message).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await?;
    loop {
        let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
        if let Response::Done { tag: done, status, outcome } = response.parsed()
            && *done == tag
        {
            return wire::refused(status, outcome).map_or(Ok(()), Err);
        }
    }
}

/// Whether the originals are gone once a move's commands ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expunge {
    /// MOVE or UID EXPUNGE took care of them.
    Done,
    /// They are flagged `\Deleted`; EXPUNGE only if no other message is (no UIDPLUS).
    IfOnlyOurs,
}

/// The commands for a move, in order, and what is left to do about the originals.
fn move_commands(caps: &Capabilities, uids: &UidSet, target: &str) -> (Vec<String>, Expunge) {
    let sets = uids.chunks(MAX_SET_LEN);
    if caps.move_ {
        return (sets.iter().map(|set| format!("UID MOVE {set} {target}")).collect(), Expunge::Done);
    }
    let commands = sets
        .iter()
        .flat_map(|set| {
            let expunge = caps.uidplus.then(|| format!("UID EXPUNGE {set}"));
            [format!("UID COPY {set} {target}"), format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)")]
                .into_iter()
                .chain(expunge)
        })
        .collect();
    (commands, if caps.uidplus { Expunge::Done } else { Expunge::IfOnlyOurs })
}

/// A flag as STORE takes it: an atom, or `\` and an atom.
fn valid_flag(flag: &str) -> bool {
    let atom = flag.strip_prefix('\\').unwrap_or(flag);
    !atom.is_empty() && atom.chars().all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c))
}

/// Whether a NO to CREATE says the mailbox is there already.
fn already_exists(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("alreadyexists") || text.contains("already exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Capabilities {
        Capabilities::from_raw(list.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn move_uses_move_when_offered() {
        let uids = UidSet::new([1, 2, 3, 7]);
        let commands = move_commands(&caps(&["IMAP4rev1", "MOVE", "UIDPLUS"]), &uids, "\"Archive\"");
        assert_eq!(commands, (vec!["UID MOVE 1:3,7 \"Archive\"".to_string()], Expunge::Done));
    }

    #[test]
    fn move_without_move_copies_flags_and_expunges_only_these_uids() {
        let uids = UidSet::new([4, 5]);
        let (commands, expunge) = move_commands(&caps(&["IMAP4rev1", "UIDPLUS"]), &uids, "\"Trash\"");
        assert_eq!(commands, ["UID COPY 4:5 \"Trash\"", "UID STORE 4:5 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE 4:5"]);
        assert_eq!(expunge, Expunge::Done);
    }

    #[test]
    fn move_without_move_or_uidplus_copies_and_flags_and_leaves_the_expunge_to_a_check() {
        let uids = UidSet::new([4, 5]);
        let (commands, expunge) = move_commands(&caps(&["IMAP4rev1"]), &uids, "\"Trash\"");
        assert_eq!(commands, ["UID COPY 4:5 \"Trash\"", "UID STORE 4:5 +FLAGS.SILENT (\\Deleted)"]);
        assert!(!commands.iter().any(|c| c.contains("EXPUNGE")), "{commands:?}");
        assert_eq!(expunge, Expunge::IfOnlyOurs);
    }

    #[test]
    fn long_moves_are_split() {
        let uids: UidSet = (1..=3000).step_by(2).collect();
        let (commands, _) = move_commands(&caps(&["MOVE"]), &uids, "\"A\"");
        assert!(commands.len() > 1 && commands.iter().all(|c| c.len() < MAX_SET_LEN + 20));
    }

    #[test]
    fn flags_are_checked_and_already_exists_is_recognized() {
        for good in ["\\Seen", "$Label1", "Junk", "\\Deleted"] {
            assert!(valid_flag(good), "{good}");
        }
        for bad in ["", "\\", "two words", "a)b", "x\r\n", "\\\\Seen", "\"q\""] {
            assert!(!valid_flag(bad), "{bad:?}");
        }
        assert!(already_exists("[ALREADYEXISTS] Mailbox already exists"));
        assert!(already_exists("Mailbox already exists"));
        assert!(!already_exists("[NOPERM] Permission denied"));
    }
}
