//! Message identity: where a message lives on the server.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one message on one server: account, mailbox, UIDVALIDITY and UID.
///
/// A UID is only meaningful together with the mailbox's UIDVALIDITY: when the server resets
/// UIDVALIDITY, the same UID may name another message, so the key carries both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageKey {
    /// The account name from the config.
    pub account: String,
    /// The mailbox name as the server spells it, e.g. `INBOX` or `Lists/rust`.
    pub mailbox: String,
    /// The mailbox's UIDVALIDITY when the message was fetched.
    pub uidvalidity: u32,
    /// The message's UID in that mailbox.
    pub uid: u32,
}

impl MessageKey {
    /// A key from its four parts.
    pub fn new(account: impl Into<String>, mailbox: impl Into<String>, uidvalidity: u32, uid: u32) -> Self {
        Self { account: account.into(), mailbox: mailbox.into(), uidvalidity, uid }
    }
}

/// `account/mailbox/uidvalidity/uid`, the form used in logs.
impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.account, self.mailbox, self.uidvalidity, self.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_serde() {
        let key = MessageKey::new("work", "Lists/rust", 7, 42);
        assert_eq!(key.to_string(), "work/Lists/rust/7/42");
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<MessageKey>(&json).unwrap(), key);
    }
}
