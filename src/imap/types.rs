//! The plain data a session takes and gives: where to log in, deadlines, what the server
//! offers, a selected mailbox's state. No I/O here.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{Credentials, OAuth};
use crate::config::{Account, Secret, Server};

/// Where and as whom to log in. The credentials are resolved by the caller, once.
#[derive(Clone, Debug)]
pub struct Login {
    /// The account's name, for messages and logs.
    pub account: String,
    /// The IMAP server.
    pub server: Server,
    /// The login name.
    pub username: String,
    /// The password; shown as `[redacted]` by `Debug`. Unused with `oauth2`.
    pub password: Secret<String>,
    /// Log in with XOAUTH2 and this account's access token instead of the password.
    pub oauth2: Option<OAuth>,
    /// A PEM file of CAs to trust instead of the platform's roots.
    pub ca_file: Option<PathBuf>,
}

impl Login {
    /// The login for `account`'s IMAP server with its resolved `credentials` (clones share
    /// their token cache).
    pub fn new(account: &Account, credentials: &Credentials) -> Login {
        Login {
            account: account.name.clone(),
            server: account.imap.clone(),
            username: account.username.clone(),
            password: credentials.password.clone(),
            oauth2: credentials.oauth2.clone(),
            ca_file: account.ca_file.clone(),
        }
    }
}

/// Deadlines for the steps of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, TLS handshake and greeting, each (default 15 s).
    pub connect: Duration,
    /// Any one command, login included (default 60 s).
    pub command: Duration,
    /// Added to `command` per MiB of message bodies fetched at once (default 10 s).
    pub fetch_per_mb: Duration,
    /// The longest one IDLE lasts before the session ends and re-issues it (default 10 min:
    /// under RFC 2177's 29 minutes and the idle timeout of most NAT gateways).
    pub idle_refresh: Duration,
    /// Not a deadline but the one other switch of session setup: send the `ID` command (RFC
    /// 2971) right after login. Some servers want it (163.com, Yahoo), some break on it:
    /// off by default, on for the account's `imap_id` (see `Session::send_id`).
    pub send_id: bool,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(15),
            command: Duration::from_secs(60),
            fetch_per_mb: Duration::from_secs(10),
            idle_refresh: Duration::from_secs(600),
            send_id: false,
        }
    }
}

/// What the server offers after login (servers change the list after authentication).
/// The flags may be switched off by a caller to avoid an extension a server implements badly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// IDLE (RFC 2177): push instead of polling.
    pub idle: bool,
    /// MOVE (RFC 6851).
    pub move_: bool,
    /// UIDPLUS (RFC 4315): UID EXPUNGE, needed for a safe move without MOVE.
    pub uidplus: bool,
    /// SPECIAL-USE (RFC 6154): `\Trash`, `\Archive`, ... in LIST.
    pub special_use: bool,
    /// NAMESPACE (RFC 2342).
    pub namespace: bool,
    /// CONDSTORE (RFC 7162).
    pub condstore: bool,
    /// Gmail's extensions (X-GM-EXT-1), X-GM-RAW searches among them.
    pub gmail: bool,
    /// WITHIN (RFC 5032): SEARCH OLDER/YOUNGER by seconds, not only by whole days.
    pub within: bool,
    /// LITERAL+ (RFC 7888): literals of any size without waiting for the server's go-ahead.
    pub literal_plus: bool,
    /// LITERAL- (RFC 7888; also IMAP4rev2): the same for literals of at most 4096 bytes.
    pub literal_minus: bool,
    /// Every capability as the server sent it, e.g. `IMAP4rev1`, `AUTH=PLAIN`.
    pub raw: Vec<String>,
}

impl Capabilities {
    /// The flags for a list as sent by the server.
    pub fn from_raw(raw: Vec<String>) -> Capabilities {
        let has = |name: &str| raw.iter().any(|c| c.eq_ignore_ascii_case(name));
        Capabilities {
            idle: has("IDLE"),
            move_: has("MOVE"),
            uidplus: has("UIDPLUS"),
            special_use: has("SPECIAL-USE"),
            namespace: has("NAMESPACE"),
            condstore: has("CONDSTORE"),
            gmail: has("X-GM-EXT-1"),
            within: has("WITHIN"),
            literal_plus: has("LITERAL+"),
            literal_minus: has("LITERAL-") || has("IMAP4rev2"),
            raw,
        }
    }

    /// Whether the server sent capability `name` (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.raw.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// The state of a mailbox when it was selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    /// UIDVALIDITY: when it changes, every UID known from before is void.
    pub uidvalidity: u32,
    /// The UID the next message will get at the earliest.
    pub uidnext: u32,
    /// How many messages the mailbox holds.
    pub exists: u32,
}
