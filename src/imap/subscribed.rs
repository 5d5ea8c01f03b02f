//! The mailboxes an account subscribed to, for `mailboxes: all`.

use async_imap::imap_proto::{MailboxDatum, Response};

use super::{Folder, Result, Session};

impl Session {
    /// Every subscribed mailbox that exists (LSUB, matched against LIST so each comes with its
    /// attributes, special-use ones included), in the server's LIST order. A subscription to a
    /// mailbox that is gone is left out: LSUB keeps reporting it, SELECT would fail on it.
    pub async fn subscribed(&mut self) -> Result<Vec<Folder>> {
        let mut names: Vec<String> = Vec::new();
        self.exchange("list subscribed mailboxes", &["LSUB \"\" \"*\"".to_owned()], self.timeouts.command, |r| {
            if let Response::MailboxData(MailboxDatum::List(data)) = r {
                names.push(data.name.to_string());
            }
        })
        .await?;
        // INBOX is case-insensitive (RFC 3501 5.1); every other name is compared as sent.
        let subscribed = |f: &Folder| {
            names.iter().any(|n| {
                *n == f.server_name || (n.eq_ignore_ascii_case("INBOX") && f.server_name.eq_ignore_ascii_case("INBOX"))
            })
        };
        Ok(self.list().await?.into_iter().filter(|f| subscribed(f)).collect())
    }
}
