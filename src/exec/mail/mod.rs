//! Sending mail: the pieces the outbound dispatcher puts together for a reply, a forward or a
//! new message.
//!
//! - [`guard`]: whether a reply may go out at all (RFC 3834 / RFC 5230), and from which address;
//! - [`compose`]: the RFC 5322 message, threaded and marked `Auto-Submitted`;
//! - [`smtp`]: one authenticated SMTP connection, every step under a deadline, a transaction
//!   whose failure says whether the message may have gone out;
//! - [`save_sent_action`]: the follow-up that keeps a copy in the account's sent folder.
//!
//! What it must not do: touch the store or decide when to send (the dispatcher does), or log a
//! password or a message body.

pub mod compose;
pub mod guard;
pub mod smtp;

use serde_json::json;

use crate::config::Account;
use crate::config::account::SaveSent;
use crate::store::NewAction;

pub use compose::Composed;

/// The outbox kind of [`save_sent_action`], run by the IMAP executor.
pub const SAVE_SENT: &str = "save_sent";

/// The action that APPENDs a sent message to the account's sent folder (`save_sent`), stored
/// with the send's outcome so that a crash cannot lose it: payload `{"mailbox": null | "name",
/// "message": "<the RFC 5322 text>"}`, `null` meaning the folder the server marks `\Sent`. Its
/// key is the send's `key` and `/save_sent`.
pub fn save_sent_action(account: &Account, key: &str, sent: &Composed) -> NewAction {
    let mailbox = match &account.save_sent {
        Some(SaveSent::Folder(name)) => Some(name.clone()),
        Some(SaveSent::SpecialUse) | None => None,
    };
    // Composed messages are 7-bit or UTF-8 (8BITMIME): the text form loses nothing.
    let message = String::from_utf8_lossy(&sent.bytes).into_owned();
    NewAction::new(
        format!("{key}/{SAVE_SENT}"),
        &account.name,
        SAVE_SENT,
        json!({ "mailbox": mailbox, "message": message }),
    )
}

/// Account `work` for unit tests: from me@work.example, also known as Me.Too@Work.Example.
#[cfg(test)]
pub(crate) fn test_account() -> Account {
    let yaml = "accounts:\n  work:\n    imap: { host: h }\n    smtp: { host: h }\n    username: u\n    \
                password_env: P\n    from: me@work.example\n    addresses: [me@work.example, Me.Too@Work.Example]\n";
    let config = crate::config::Config::from_yaml(yaml, std::path::Path::new("/tmp/t.yaml")).unwrap();
    config.accounts[0].clone()
}
