//! IMAP actions on a batch: grouped by mailbox, then by plan phase, then by identical action,
//! so each group is one command over a UID set. Copies of sent mail (`save_sent`) are APPENDed
//! after them.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use tracing::field::display;

use crate::causes::error_chain;
use crate::config::Account;
use crate::exec::Ran;
use crate::exec::mail::SAVE_SENT;
use crate::imap::{FlagOp, Session, UidSet};
use crate::plan::{Action, Phase};
use crate::store::{Action as Stored, ActionId};

/// Per-connection knowledge: folders known to exist, and the \Trash, \Archive and \Sent
/// folders (`Some(None)`: looked up, the server has none).
#[derive(Default)]
pub struct Targets {
    existing: HashSet<String>,
    trash: Option<Option<String>>,
    archive: Option<Option<String>>,
    sent: Option<Option<String>>,
}

/// The claimed actions of one mailbox: (stored row, decoded action, UID).
type MailboxActions<'a> = Vec<(&'a Stored, Action, u32)>;

/// One command's worth: the same action on several messages of one mailbox.
struct Group<'a> {
    action: Action,
    members: Vec<(&'a Stored, u32)>,
}

/// Runs the claimed actions; returns a result for every action it got to.
pub async fn run(
    session: &mut Session,
    account: &Account,
    targets: &mut Targets,
    claimed: &[Stored],
) -> Vec<(ActionId, Ran)> {
    let mut results = Vec::new();
    let mut by_mailbox: BTreeMap<(String, u32), MailboxActions<'_>> = BTreeMap::new();
    let mut sent = Vec::new();
    for stored in claimed {
        if stored.kind == SAVE_SENT {
            sent.push(stored);
            continue;
        }
        match decode(stored) {
            Ok((mailbox, uidvalidity, uid, action)) => {
                by_mailbox.entry((mailbox, uidvalidity)).or_default().push((stored, action, uid))
            }
            Err(error) => results.push((stored.id, Ran::Permanent(error))),
        }
    }
    for ((mailbox, uidvalidity), actions) in by_mailbox {
        if session.is_broken() {
            break;
        }
        run_mailbox(session, account, targets, &mailbox, uidvalidity, actions, &mut results).await;
    }
    for stored in sent {
        if session.is_broken() {
            break;
        }
        let span = tracing::info_span!("action", action = SAVE_SENT, id = %stored.id);
        let ran = save_sent(session, account, targets, stored).await;
        let named = stored.payload.get("mailbox").and_then(serde_json::Value::as_str).map(str::to_owned);
        let to = named.or_else(|| targets.sent.clone().flatten());
        let to = to.as_deref().map(display);
        span.in_scope(|| match &ran {
            Ran::Done => tracing::info!(to, "sent message saved"),
            Ran::Permanent(e) => tracing::error!(to, error = %e, "failed"),
            Ran::Transient(e) | Ran::RetryAfter(_, e) => tracing::warn!(to, error = %e, "will retry"),
        });
        results.push((stored.id, ran));
    }
    results
}

/// What `exec::mail::save_sent_action` stores.
#[derive(Deserialize)]
struct SentCopy {
    /// The folder; `None`: the one the server marks \Sent.
    mailbox: Option<String>,
    /// The message as sent.
    message: String,
}

/// APPENDs a sent message, `\Seen`, to the account's sent folder. A second attempt first looks
/// for the Message-ID there: the first may have appended it before the connection broke.
async fn save_sent(session: &mut Session, account: &Account, targets: &mut Targets, stored: &Stored) -> Ran {
    let copy: SentCopy = match serde_json::from_value(stored.payload.clone()) {
        Ok(copy) => copy,
        Err(e) => return Ran::Permanent(format!("cannot read action {} ({SAVE_SENT}): {e}", stored.id)),
    };
    let mailbox = match copy.mailbox {
        Some(name) => match ensure(session, account, targets, &name).await {
            Ok(()) => name,
            Err(ran) => return ran,
        },
        None => match special_use(session, &mut targets.sent, "\\Sent").await {
            Ok(Some(folder)) => folder,
            Ok(None) => {
                return Ran::Permanent(format!(
                    "cannot save the sent message in account {}: the server marks no folder \\Sent (special-use); \
                     name one with `save_sent: \"Sent\"`",
                    account.name
                ));
            }
            Err(ran) => return ran,
        },
    };
    if stored.attempts > 1
        && let Some(id) = message_id(&copy.message)
    {
        let found = match session.examine(&mailbox).await {
            Ok(_) => session.search_uids(&format!("HEADER Message-ID \"{id}\"")).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(uids) if !uids.is_empty() => return Ran::Done,
            Ok(_) => {}
            Err(e) => return classify(&e, &format!("cannot look for the sent message in {mailbox}")),
        }
    }
    match session.append(&mailbox, &["\\Seen"], copy.message.as_bytes()).await {
        Ok(()) => Ran::Done,
        Err(e) => classify(&e, &format!("cannot save the sent message in {mailbox}")),
    }
}

/// The Message-ID of an RFC 5322 text, as written between `<>`, if it is plain enough to search
/// for (printable ASCII, no quotes).
fn message_id(message: &str) -> Option<&str> {
    let headers = message.split("\r\n\r\n").next()?;
    let line = headers.split("\r\n").find(|l| l.len() > 11 && l[..11].eq_ignore_ascii_case("message-id:"))?;
    let id = line[11..].trim();
    let plain = !id.is_empty() && id.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
    plain.then_some(id)
}

fn decode(stored: &Stored) -> Result<(String, u32, u32, Action), String> {
    let action: Action = serde_json::from_value(stored.payload.clone())
        .map_err(|e| format!("cannot read action {} ({}): {e}", stored.id, stored.kind))?;
    match (&stored.mailbox, stored.uidvalidity, stored.uid) {
        (Some(mailbox), Some(uidvalidity), Some(uid)) => Ok((mailbox.clone(), uidvalidity, uid, action)),
        _ => Err(format!("cannot run action {}: it names no message", stored.id)),
    }
}

async fn run_mailbox(
    session: &mut Session,
    account: &Account,
    targets: &mut Targets,
    mailbox: &str,
    uidvalidity: u32,
    actions: MailboxActions<'_>,
    results: &mut Vec<(ActionId, Ran)>,
) {
    // Still selected from the last round: a big backlog is hundreds of rounds on one mailbox.
    let still = session.selected_writable(mailbox).copied();
    let selected = match still {
        Some(selected) => Ok(selected),
        None => session.select(mailbox).await,
    };
    match selected {
        Ok(selected) if selected.uidvalidity == uidvalidity => {}
        Ok(selected) => {
            // The UIDs now name other messages (or none): acting on them would hit the wrong mail.
            let error = format!(
                "cannot act on {mailbox}: its UIDVALIDITY changed from {uidvalidity} to {}, the message is no longer addressable",
                selected.uidvalidity
            );
            results.extend(actions.iter().map(|(s, _, _)| (s.id, Ran::Permanent(error.clone()))));
            return;
        }
        Err(e) => {
            let ran = classify(&e, &format!("cannot select {mailbox}"));
            results.extend(actions.iter().map(|(s, _, _)| (s.id, ran.clone())));
            return;
        }
    }
    // UIDs whose earlier-phase action failed: their disposition waits, or flags would be lost.
    let mut held_back: HashSet<u32> = HashSet::new();
    for phase in [Phase::Flags, Phase::Copy, Phase::Disposition] {
        for group in groups(&actions, phase) {
            if session.is_broken() {
                return;
            }
            let (ready, held): (Vec<_>, Vec<_>) = group.members.iter().partition(|(_, uid)| !held_back.contains(uid));
            for (stored, _) in held {
                results.push((stored.id, Ran::Transient("waiting for an earlier action on the same message".into())));
            }
            if ready.is_empty() {
                continue;
            }
            let uids = UidSet::new(ready.iter().map(|(_, uid)| *uid));
            let span = tracing::info_span!("action", action = group.action.kind(), messages = ready.len());
            let ran = execute(session, account, targets, &group.action, &uids).await;
            let (to, flags) = (destination(&group.action, targets), flag_names(&group.action));
            let (to, flags) = (to.as_deref().map(display), flags.as_deref().map(display));
            let uids = display(short_uids(&uids));
            span.in_scope(|| match &ran {
                Ran::Done => tracing::info!(mailbox, uids, to, flags, "done"),
                Ran::Transient(e) | Ran::RetryAfter(_, e) => {
                    tracing::warn!(mailbox, uids, to, flags, error = %e, "will retry")
                }
                Ran::Permanent(e) => tracing::error!(mailbox, uids, to, flags, error = %e, "failed"),
            });
            if !matches!(ran, Ran::Done) {
                held_back.extend(ready.iter().map(|(_, uid)| *uid));
            }
            results.extend(ready.iter().map(|(stored, _)| (stored.id, ran.clone())));
        }
    }
}

/// Where an action put its messages, for its log line: the folder of a move or copy, the
/// \Trash or \Archive folder a delete or an archive moved them to (once looked up).
fn destination(action: &Action, targets: &Targets) -> Option<String> {
    match action {
        Action::Move { mailbox } | Action::Copy { mailbox } => Some(mailbox.clone()),
        Action::Delete => targets.trash.clone().flatten(),
        Action::Archive => targets.archive.clone().flatten(),
        _ => None,
    }
}

/// The flags or labels an action sets or clears, for its log line.
fn flag_names(action: &Action) -> Option<String> {
    match action {
        Action::AddFlags { flags } | Action::RemoveFlags { flags } => Some(flags.join(" ")),
        _ => None,
    }
}

/// A UID set for a log line, clipped: a backlog's can be thousands of ranges.
fn short_uids(uids: &UidSet) -> String {
    const MAX: usize = 120;
    let text = uids.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Identical actions of one phase, in first-seen order.
fn groups<'a>(actions: &[(&'a Stored, Action, u32)], phase: Phase) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for (stored, action, uid) in actions.iter().filter(|(_, a, _)| a.phase() == phase) {
        match groups.iter_mut().find(|g| g.action == *action) {
            Some(group) => group.members.push((stored, *uid)),
            None => groups.push(Group { action: action.clone(), members: vec![(stored, *uid)] }),
        }
    }
    groups
}

async fn execute(
    session: &mut Session,
    account: &Account,
    targets: &mut Targets,
    action: &Action,
    uids: &UidSet,
) -> Ran {
    let result = match action {
        Action::AddFlags { flags } => store(session, uids, FlagOp::Add, flags).await,
        Action::RemoveFlags { flags } => store(session, uids, FlagOp::Remove, flags).await,
        Action::Copy { mailbox } => match ensure(session, account, targets, mailbox).await {
            Ok(()) => session.uid_copy(uids, mailbox).await,
            Err(ran) => return ran,
        },
        Action::Move { mailbox } => match ensure(session, account, targets, mailbox).await {
            Ok(()) => session.uid_move(uids, mailbox).await,
            Err(ran) => return ran,
        },
        Action::Delete => return delete(session, account, targets, uids).await,
        Action::Archive => return archive(session, account, targets, uids).await,
        // Never claimed by this executor (see `plan::MAILBOX_KINDS`): the phases run above have
        // no outbound step, so this arm is only a guard.
        Action::Reply(_)
        | Action::Forward(_)
        | Action::Send(_)
        | Action::Webhook(_)
        | Action::Command(_)
        | Action::Collect { .. } => {
            return Ran::Permanent(format!("cannot run a {} action: it is not an IMAP action", action.kind()));
        }
    };
    match result {
        Ok(()) => Ran::Done,
        Err(e) => classify(&e, &format!("cannot {}", action.kind())),
    }
}

/// Flags and labels. On Gmail (X-GM-EXT-1) the names that are not IMAP system flags nor `$`
/// keywords are Gmail labels (`receipt`, `\Important`), set with X-GM-LABELS so that Gmail's
/// web interface shows them; elsewhere every name is a flag or keyword (see docs/gmail.md).
async fn store(session: &mut Session, uids: &UidSet, op: FlagOp, names: &[String]) -> crate::imap::Result<()> {
    if !session.capabilities().gmail {
        return session.uid_store(uids, op, names).await;
    }
    let (flags, labels): (Vec<&String>, Vec<&String>) = names.iter().partition(|n| is_imap_flag(n));
    if !flags.is_empty() {
        session.uid_store(uids, op, &flags).await?;
    }
    if !labels.is_empty() {
        session.store_labels(uids, op, &labels).await?;
    }
    Ok(())
}

/// Whether Gmail keeps `name` as an IMAP flag rather than a label: the system flags and the
/// `$` keywords of the IANA registry (`$Forwarded`, `$Junk`, `$MDNSent`).
fn is_imap_flag(name: &str) -> bool {
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    name.starts_with('$') || SYSTEM.iter().any(|s| s.eq_ignore_ascii_case(name))
}

async fn delete(session: &mut Session, account: &Account, targets: &mut Targets, uids: &UidSet) -> Ran {
    // On Gmail an EXPUNGE in a label folder only removes that label: the message lives on in
    // All Mail. Deleting is moving to the folder marked \Trash, whatever the account says.
    if account.watch.expunge_on_delete && !session.capabilities().gmail {
        return match session.uid_delete(uids).await {
            Ok(()) => Ran::Done,
            Err(e) => classify(&e, "cannot delete"),
        };
    }
    let trash = match special_use(session, &mut targets.trash, "\\Trash").await {
        Ok(trash) => trash,
        Err(ran) => return ran,
    };
    match trash {
        Some(trash) => match session.uid_move(uids, &trash).await {
            Ok(()) => Ran::Done,
            Err(e) => classify(&e, &format!("cannot move to {trash}")),
        },
        None => Ran::Permanent(
            "cannot delete: the server has no \\Trash folder; set `delete: expunge` on the account to expunge instead"
                .into(),
        ),
    }
}

/// Moves to the special-use \Archive folder. On Gmail archiving is removing the \Inbox label
/// (the message stays in All Mail and its other labels), wherever the message was seen.
async fn archive(session: &mut Session, account: &Account, targets: &mut Targets, uids: &UidSet) -> Ran {
    if session.capabilities().gmail {
        return match session.store_labels(uids, FlagOp::Remove, &["\\Inbox"]).await {
            Ok(()) => Ran::Done,
            Err(e) => classify(&e, &format!("cannot archive in account {}", account.name)),
        };
    }
    match special_use(session, &mut targets.archive, "\\Archive").await {
        Ok(Some(folder)) => match session.uid_move(uids, &folder).await {
            Ok(()) => Ran::Done,
            Err(e) => classify(&e, &format!("cannot move to {folder}")),
        },
        Ok(None) => Ran::Permanent(format!(
            "cannot archive in account {}: the server marks no folder \\Archive (special-use); use move_to(\"Archive\") instead",
            account.name
        )),
        Err(ran) => ran,
    }
}

/// The folder marked with special-use `attribute`, looked up once per connection into `known`.
async fn special_use(
    session: &mut Session,
    known: &mut Option<Option<String>>,
    attribute: &str,
) -> Result<Option<String>, Ran> {
    if known.is_none() {
        let found = session
            .special_use(attribute)
            .await
            .map_err(|e| classify(&e, &format!("cannot find the {attribute} folder")))?;
        *known = Some(found);
    }
    Ok(known.clone().flatten())
}

/// Makes sure a target folder exists (creating it when the account allows), once per connection.
async fn ensure(session: &mut Session, account: &Account, targets: &mut Targets, mailbox: &str) -> Result<(), Ran> {
    if targets.existing.contains(mailbox) {
        return Ok(());
    }
    if account.watch.create_folders {
        session.create(mailbox).await.map_err(|e| classify(&e, &format!("cannot create {mailbox}")))?;
    }
    targets.existing.insert(mailbox.to_owned());
    Ok(())
}

fn classify(error: &crate::imap::Error, what: &str) -> Ran {
    let text = format!("{what}: {}", error_chain(error));
    if error.is_transient() { Ran::Transient(text) } else { Ran::Permanent(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executor_claims_the_mailbox_kinds_and_sent_copies() {
        let (last, mailbox) = crate::exec::IMAP_KINDS.split_last().unwrap();
        assert_eq!((mailbox, *last), (crate::plan::MAILBOX_KINDS, SAVE_SENT));
    }

    #[test]
    fn on_gmail_only_system_flags_and_dollar_keywords_stay_flags() {
        for flag in ["\\Seen", "\\flagged", "$Forwarded", "$Junk"] {
            assert!(is_imap_flag(flag), "{flag}");
        }
        for label in ["receipt", "\\Important", "\\Inbox", "\\Starred", "Lists/rust"] {
            assert!(!is_imap_flag(label), "{label}");
        }
    }

    #[test]
    fn the_message_id_of_a_sent_copy_is_found_in_its_header_block() {
        let sent = "From: me@work.example\r\nMessage-ID: <1a.2.3.tidings@work.example>\r\nSubject: x\r\n\r\nMessage-ID: <no>\r\n";
        assert_eq!(message_id(sent), Some("<1a.2.3.tidings@work.example>"));
        assert_eq!(message_id("Subject: x\r\n\r\nMessage-ID: <body@x>\r\n"), None);
        assert_eq!(message_id("message-id: <\"quoted\"@x>\r\n\r\n"), None, "not searchable as is");
    }
}
