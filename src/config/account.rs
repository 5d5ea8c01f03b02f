//! An account: its IMAP and SMTP servers, credentials, addresses and watched mailboxes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostics::{self as read, Fields, Problems};
use super::fingerprint::Fingerprint;
use super::oauth2::{self, OAuth2};
use super::provider::{self, Provider};
use super::secret::SecretSource;
use super::tree::{Key, Node, Pos, Value};

/// A validated account. Equal accounts are the same settings (a reload keeps their sessions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The name the user gave it in `accounts:`.
    pub name: String,
    /// The provider whose preset filled in what the account leaves out.
    pub provider: Option<Provider>,
    /// The IMAP server.
    pub imap: Server,
    /// The SMTP server, needed only by rules that send.
    pub smtp: Option<Server>,
    /// The login name.
    pub username: String,
    /// Where the password comes from; for an OAuth2 account, where its refresh token does.
    pub password: SecretSource,
    /// OAuth2 (XOAUTH2 login) instead of a password, when the account has an `oauth2:` block.
    pub oauth2: Option<OAuth2>,
    /// The address it sends as.
    pub from: Option<String>,
    /// Every address that belongs to the account (its own mail is never auto-replied to).
    pub addresses: Vec<String>,
    /// The mailboxes to watch, each with its backfill policy; empty with `mailboxes: all`
    /// until the runtime lists the subscribed ones.
    pub mailboxes: Vec<Mailbox>,
    /// `mailboxes: all`: every subscribed mailbox, listed when the account starts.
    pub subscribed: bool,
    /// The account's `backfill:`, for mailboxes found at start (`mailboxes: all`).
    pub backfill: Backfill,
    /// The most IMAP connections held at once (`connections:`; see `config::budget`).
    pub connections: u32,
    /// Send the IMAP `ID` command after login (some servers need it, some break on it).
    pub imap_id: bool,
    /// Extra CA certificates (PEM) to trust for this account's servers.
    pub ca_file: Option<PathBuf>,
    /// Globs selecting which live rules run for this account; empty means all.
    pub rules: Vec<String>,
    /// How the watchers and executors talk to the server.
    pub watch: Watch,
    /// Where sent mail is kept (APPENDed after the server took it); `None`: nowhere.
    pub save_sent: Option<SaveSent>,
    /// The most messages (replies, forwards, notices) the account sends in any 24 hours.
    pub daily_send_limit: u32,
    /// The most forwards the account sends to one destination in any hour (`forward_rate`):
    /// over it a forward is suppressed, not sent and not counted against `daily_send_limit`,
    /// so a forwarding loop the X-Loop marker does not catch cannot use up the day's sends.
    pub forward_rate: u32,
}

/// The messages an account sends in 24 hours when the config does not say.
pub const DAILY_SEND_LIMIT: u32 = 100;
/// The forwards an account sends to one destination in an hour when the config does not say.
pub const FORWARD_RATE: u32 = 10;

/// Where `save_sent` keeps a copy of each message sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveSent {
    /// The folder the server marks `\Sent` (special-use): `save_sent: true`.
    SpecialUse,
    /// A folder by name: `save_sent: "Sent Items"`.
    Folder(String),
}

/// Connection behaviour of an account's watchers and executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// IDLE is re-issued this often (servers and NATs drop idle sessions well before the
    /// 29 minutes RFC 2177 allows).
    pub idle_interval: Duration,
    /// How often to check for mail when the server has no IDLE.
    pub poll_interval: Duration,
    /// The deadline for every IMAP command.
    pub command_timeout: Duration,
    /// Messages larger than this are fetched headers-only; rules still see their size.
    pub max_message_size: u64,
    /// Create a missing target folder of a move or copy instead of failing the action.
    pub create_folders: bool,
    /// `delete()` expunges instead of moving to \Trash.
    pub expunge_on_delete: bool,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            idle_interval: Duration::from_secs(600),
            poll_interval: Duration::from_secs(60),
            command_timeout: Duration::from_secs(60),
            max_message_size: 10 << 20,
            create_folders: true,
            expunge_on_delete: false,
        }
    }
}

/// A server endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: Tls,
    /// `tls_fingerprint`: the server's certificate pinned; replaces the CA and host-name checks.
    pub tls_fingerprint: Option<Fingerprint>,
}

/// How a connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plaintext greeting, then STARTTLS before any credentials (IMAP 143, submission 587).
    StartTls,
    /// No encryption at all; only with `allow_insecure: true`.
    None,
}

/// A watched mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Its name on the server, e.g. `INBOX` or `Lists/rust`.
    pub name: String,
    /// What to do with mail already there the first time it is watched.
    pub backfill: Backfill,
}

/// What the first start does with mail already in a mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backfill {
    /// Only mail that arrives from now on.
    None,
    /// Every message already there.
    All,
    /// The messages not yet marked \Seen.
    Unseen,
    /// Messages that arrived within this long before the first start.
    Within(Duration),
}

const ACCOUNT_KEYS: &[&str] = &[
    "provider",
    "imap",
    "smtp",
    "allow_insecure",
    "username",
    "password_env",
    "password_file",
    "password_command",
    "oauth2",
    "from",
    "addresses",
    "mailboxes",
    "backfill",
    "ca_file",
    "rules",
    "idle_interval",
    "poll_interval",
    "command_timeout",
    "max_message_size",
    "create_folders",
    "delete",
    "save_sent",
    "daily_send_limit",
    "forward_rate",
    "connections",
    "imap_id",
];
const SERVER_KEYS: &[&str] = &["host", "port", "tls", "tls_fingerprint"];
const MAILBOX_KEYS: &[&str] = &["name", "backfill"];

/// Validates one entry of `accounts:`; `base` is the config file's directory.
pub fn validate(key: &Key, node: &Node, base: &Path, problems: &mut Problems) -> Option<Account> {
    let name = key.name.as_str();
    let what = format!("account `{name}`");
    let mut fields = Fields::read(node, &what, ACCOUNT_KEYS, problems)?;
    // "has no X" points at the name, which is where the reader looks.
    fields.pos = key.pos;
    let allow_insecure = match fields.get("allow_insecure") {
        Some(n) => read::boolean(n, &format!("{what}: allow_insecure"), problems).unwrap_or(false),
        None => false,
    };
    let preset = provider::read(&fields, &what, problems);
    let defaults = preset.flatten().map(Provider::preset);
    let imap = match (fields.get("imap"), &defaults) {
        (Some(n), d) => server(n, d.as_ref().map(|d| &d.imap), &format!("{what}: imap"), allow_insecure, problems),
        (None, Some(d)) => Some(d.imap.clone()),
        (None, None) => {
            // An unknown provider is the problem worth reading, not the missing server.
            if preset.is_some() {
                problems.hint(
                    fields.pos,
                    format!("{what} has no `imap` server"),
                    format!(
                        "add `provider: gmail` (or {}), or `imap: {{ host: imap.example.com, port: 993, tls: implicit }}`",
                        provider::NAMES[1..].join(", ")
                    ),
                );
            }
            None
        }
    };
    let smtp = match (fields.get("smtp"), &defaults) {
        (Some(n), d) => {
            Some(server(n, d.as_ref().map(|d| &d.smtp), &format!("{what}: smtp"), allow_insecure, problems))
        }
        (None, Some(d)) => Some(Some(d.smtp.clone())),
        (None, None) => None,
    };
    let username = required(&fields, "username", &what, problems);
    let credentials = secret_source(&fields, &what, base, problems);
    let from = match fields.get("from") {
        Some(n) => address(n, &format!("{what}: from"), problems),
        // With a provider the login name is the address (iCloud's short names excepted).
        None if defaults.is_some() => username.clone().filter(|u| u.contains('@')),
        None => None,
    };
    let addresses = match fields.get("addresses") {
        Some(n) => read::strings(n, &format!("{what}: addresses"), problems).map(|list| {
            list.into_iter()
                .filter_map(|(a, pos)| check_address(&a, pos, &format!("{what}: addresses"), problems))
                .collect()
        }),
        None => Some(from.iter().cloned().collect()),
    };
    if let (Some(Some(_)), None) = (&smtp, &from) {
        problems.hint(
            fields.pos,
            format!("{what} has an smtp server but no `from` address"),
            "add `from: you@example.com`: replies and notices are sent as this address",
        );
    }
    let backfill = fields.get("backfill").map(|n| backfill(n, &what, problems)).unwrap_or(Some(Backfill::None));
    let subscribed = fields.get("mailboxes").is_some_and(|n| matches!(&n.value, Value::Str(s) if s == "all"));
    let mailboxes = match fields.get("mailboxes") {
        Some(_) if subscribed => Some(Vec::new()),
        Some(n) => mailboxes(n, &what, backfill.unwrap_or(Backfill::None), problems),
        None => Some(vec![Mailbox { name: "INBOX".into(), backfill: backfill.unwrap_or(Backfill::None) }]),
    };
    let ca_file = fields.get("ca_file").and_then(|n| {
        let path = base.join(read::string(n, &format!("{what}: ca_file"), problems)?);
        problems.name_path(n.pos, format!("{what}: ca_file"), &path, super::files::Kind::File);
        Some(path)
    });
    let rules = match fields.get("rules") {
        Some(n) => {
            read::strings(n, &format!("{what}: rules"), problems).map(|l| l.into_iter().map(|(g, _)| g).collect())
        }
        None => Some(Vec::new()),
    };
    let watch = watch(&fields, &what, problems);
    let save_sent = match fields.get("save_sent") {
        Some(n) => save_sent(n, &what, problems),
        None => Some(None),
    };
    let connections = match fields.get("connections") {
        Some(n) => provider::connections(n, &what, problems),
        None => Some(defaults.as_ref().map_or(provider::DEFAULT_CONNECTIONS, |d| d.connections)),
    };
    let imap_id = match fields.get("imap_id") {
        Some(n) => read::boolean(n, &format!("{what}: imap_id"), problems),
        None => Some(defaults.as_ref().is_some_and(|d| d.imap_id)),
    };
    let daily_send_limit = match fields.get("daily_send_limit") {
        Some(n) => send_limit(n, &what, problems),
        None => Some(DAILY_SEND_LIMIT),
    };
    let forward_rate = match fields.get("forward_rate") {
        Some(n) => {
            let why = "to keep rules from forwarding, remove the forward() calls";
            read::count(n, &format!("{what}: forward_rate"), "forwards", 1, why, problems)
        }
        None => Some(FORWARD_RATE),
    };
    Some(Account {
        save_sent: save_sent?,
        daily_send_limit: daily_send_limit?,
        forward_rate: forward_rate?,
        rules: rules?,
        watch: watch?,
        name: name.to_owned(),
        imap: imap?,
        smtp: smtp.map(|s| s.ok_or(())).transpose().ok()?,
        username: username?,
        password: credentials.as_ref()?.0.clone(),
        oauth2: credentials?.1,
        from,
        addresses: addresses?,
        mailboxes: mailboxes?,
        subscribed,
        backfill: backfill?,
        connections: connections?,
        imap_id: imap_id?,
        provider: preset?,
        ca_file,
    })
}

fn required(fields: &Fields<'_>, key: &str, what: &str, problems: &mut Problems) -> Option<String> {
    match fields.get(key) {
        Some(n) => read::string(n, &format!("{what}: {key}"), problems),
        None => {
            problems.error(fields.pos, format!("{what} has no `{key}`"));
            None
        }
    }
}

/// A server block; under a provider's `preset` every key is optional and overrides the preset's.
fn server(
    node: &Node,
    preset: Option<&Server>,
    what: &str,
    allow_insecure: bool,
    problems: &mut Problems,
) -> Option<Server> {
    let fields = Fields::read(node, what, SERVER_KEYS, problems)?;
    let host = match (fields.get("host"), preset) {
        (None, Some(p)) => Some(p.host.clone()),
        _ => required(&fields, "host", what, problems),
    };
    let tls = match fields.get("tls") {
        Some(n) => {
            match read::choice(n, &format!("{what}: tls"), &["implicit", "starttls", "none"], problems) {
                Some("implicit") => Some(Tls::Implicit),
                Some("starttls") => Some(Tls::StartTls),
                Some(_) if allow_insecure => Some(Tls::None),
                Some(_) => {
                    problems.hint(n.pos, format!("{what}: `tls: none` sends the password in clear text"), "use `implicit` or `starttls`, or set `allow_insecure: true` on the account if you really mean it");
                    None
                }
                None => None,
            }
        }
        None => Some(preset.map_or(Tls::Implicit, |p| provider::default_tls(fields.get("port"), p))),
    };
    let port = match fields.get("port") {
        Some(n) => read::port(n, &format!("{what}: port"), problems),
        None => match preset {
            Some(p) if fields.get("tls").is_none() => Some(p.port),
            _ => tls.map(|t| default_port(what, t)),
        },
    };
    let tls_fingerprint = match fields.get("tls_fingerprint") {
        Some(n) => pin(n, tls, what, problems),
        None => Some(None),
    };
    Some(Server { host: host?, port: port?, tls: tls?, tls_fingerprint: tls_fingerprint? })
}

/// `tls_fingerprint`, validated; meaningless (and refused) on a plaintext connection.
fn pin(node: &Node, tls: Option<Tls>, what: &str, problems: &mut Problems) -> Option<Option<Fingerprint>> {
    let what = format!("{what}: tls_fingerprint");
    let text = read::string(node, &what, problems)?;
    match Fingerprint::parse(&text) {
        Ok(_) if tls == Some(Tls::None) => {
            problems.hint(
                node.pos,
                format!("{what} pins a certificate, but `tls: none` has none"),
                "use `tls: implicit` or `tls: starttls`, or drop the fingerprint",
            );
            None
        }
        Ok(pin) => Some(Some(pin)),
        Err(why) => {
            problems.hint(
                node.pos,
                format!("{what} `{text}` is not a SHA-256 fingerprint: {why}"),
                "write `sha256:` and the 64 hex digits that `openssl s_client -connect HOST:PORT </dev/null | openssl x509 -noout -fingerprint -sha256` prints (with `-starttls imap` or `-starttls smtp` for a STARTTLS port)",
            );
            None
        }
    }
}

/// The well-known port for a protocol and TLS mode, so `port:` can be left out.
fn default_port(what: &str, tls: Tls) -> u16 {
    let smtp = what.ends_with("smtp");
    match (smtp, tls) {
        (false, Tls::Implicit) => 993,
        (false, _) => 143,
        (true, Tls::Implicit) => 465,
        (true, _) => 587,
    }
}

/// The password source, or for an `oauth2:` block the refresh token's source and the block.
fn secret_source(
    fields: &Fields<'_>,
    what: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<(SecretSource, Option<OAuth2>)> {
    let given: Vec<(&str, &Node)> = ["password_env", "password_file", "password_command", "oauth2"]
        .into_iter()
        .filter_map(|k| fields.get(k).map(|n| (k, n)))
        .collect();
    match given.as_slice() {
        [] => {
            problems.hint(
                fields.pos,
                format!("{what} has no password source"),
                "add exactly one of `password_env: VAR`, `password_file: PATH`, `password_command: \"pass show mail\"` or an `oauth2:` block",
            );
            None
        }
        [(key, node)] => {
            if *key == "oauth2" {
                return oauth2::validate(node, what, base, problems).map(|o| (o.refresh_token.clone(), Some(o)));
            }
            let what = format!("{what}: {key}");
            let source = match *key {
                "password_env" => read::string(node, &what, problems).map(SecretSource::Env),
                "password_file" => read::string(node, &what, problems).map(|p| {
                    problems.name_path(node.pos, &what, &base.join(&p), super::files::Kind::Secret);
                    SecretSource::File(base.join(p))
                }),
                _ => read::string(node, &what, problems).map(SecretSource::Command),
            };
            source.map(|s| (s, None))
        }
        [_, (key, node), ..] => {
            let names: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
            problems.hint(
                node.pos,
                format!("{what} has more than one password source (`{key}` and others: {})", names.join(", ")),
                "keep exactly one",
            );
            None
        }
    }
}

fn address(node: &Node, what: &str, problems: &mut Problems) -> Option<String> {
    read::string(node, what, problems).and_then(|a| check_address(&a, node.pos, what, problems))
}

fn check_address(address: &str, pos: Pos, what: &str, problems: &mut Problems) -> Option<String> {
    let valid = address
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && (domain.contains('.') || domain == "localhost"))
        && !address.contains(char::is_whitespace);
    if valid {
        Some(address.to_owned())
    } else {
        problems.hint(
            pos,
            format!("{what}: `{address}` is not an email address"),
            "write the bare address, e.g. `me@example.com`",
        );
        None
    }
}

fn backfill(node: &Node, what: &str, problems: &mut Problems) -> Option<Backfill> {
    let what = format!("{what}: backfill");
    let Value::Str(text) = &node.value else {
        problems.hint(node.pos, format!("{what} must be none, all, unseen or a duration"), "e.g. `backfill: 30d`");
        return None;
    };
    match text.as_str() {
        "none" => Some(Backfill::None),
        "all" => Some(Backfill::All),
        "unseen" => Some(Backfill::Unseen),
        other => match super::duration::parse(other) {
            Ok(d) => Some(Backfill::Within(d)),
            Err(e) => {
                problems.hint(node.pos, format!("{what}: {e}"), "use none, all, unseen or a duration like `30d`");
                None
            }
        },
    }
}

fn mailboxes(node: &Node, what: &str, default: Backfill, problems: &mut Problems) -> Option<Vec<Mailbox>> {
    let what = format!("{what}: mailboxes");
    let Value::Seq(items) = &node.value else {
        problems.hint(
            node.pos,
            format!("{what} must be a list or `all`"),
            "e.g. `mailboxes: [INBOX, Lists/rust]`, or `mailboxes: all` for every subscribed mailbox",
        );
        return None;
    };
    let mut out: Vec<Mailbox> = Vec::new();
    let mut ok = true;
    for item in items {
        let mailbox = match &item.value {
            Value::Str(_) => read::string(item, &what, problems).map(|name| Mailbox { name, backfill: default }),
            _ => Fields::read(item, &what, MAILBOX_KEYS, problems).and_then(|f| {
                let name = required(&f, "name", &what, problems);
                let backfill = f.get("backfill").map(|n| backfill(n, &what, problems)).unwrap_or(Some(default));
                Some(Mailbox { name: name?, backfill: backfill? })
            }),
        };
        match mailbox {
            Some(m) if out.iter().any(|o| o.name == m.name) => {
                problems.error(item.pos, format!("{what}: `{}` is listed twice", m.name));
                ok = false;
            }
            Some(m) => out.push(m),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `save_sent: true` (the \Sent folder), `false` (none) or a folder name.
fn save_sent(node: &Node, what: &str, problems: &mut Problems) -> Option<Option<SaveSent>> {
    let what = format!("{what}: save_sent");
    match &node.value {
        Value::Bool(true) => Some(Some(SaveSent::SpecialUse)),
        Value::Bool(false) => Some(None),
        Value::Str(_) => read::string(node, &what, problems).map(|name| Some(SaveSent::Folder(name))),
        other => {
            problems.hint(
                node.pos,
                format!("{what} must be true, false or a folder name, found {}", other.kind()),
                "`save_sent: true` keeps sent mail in the server's \\Sent folder; `save_sent: \"Sent Items\"` in that one",
            );
            None
        }
    }
}

/// A whole number of messages, at least 1.
fn send_limit(node: &Node, what: &str, problems: &mut Problems) -> Option<u32> {
    let why = "to keep rules from sending, give the account no `smtp` server";
    read::count(node, &format!("{what}: daily_send_limit"), "messages", 1, why, problems)
}

fn watch(fields: &Fields<'_>, what: &str, problems: &mut Problems) -> Option<Watch> {
    let mut watch = Watch::default();
    let mut ok = true;
    let mut duration = |key: &str, slot: &mut Duration, problems: &mut Problems| {
        if let Some(n) = fields.get(key) {
            match read::duration(n, &format!("{what}: {key}"), problems) {
                Some(d) if d.is_zero() => {
                    problems.error(n.pos, format!("{what}: {key} cannot be zero"));
                    ok = false;
                }
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    };
    duration("idle_interval", &mut watch.idle_interval, problems);
    duration("poll_interval", &mut watch.poll_interval, problems);
    duration("command_timeout", &mut watch.command_timeout, problems);
    if let Some(n) = fields.get("idle_interval")
        && watch.idle_interval > Duration::from_secs(29 * 60)
    {
        problems.hint(
            n.pos,
            format!("{what}: idle_interval is longer than 29 minutes"),
            "servers may drop an IDLE older than 29 minutes (RFC 2177); 10m is a safe choice",
        );
        ok = false;
    }
    if let Some(n) = fields.get("max_message_size") {
        match super::schedule::size(n, &format!("{what}: max_message_size"), problems) {
            Some(bytes) if bytes > 0 => watch.max_message_size = bytes,
            Some(_) => {
                problems.error(n.pos, format!("{what}: max_message_size cannot be zero"));
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = fields.get("create_folders") {
        watch.create_folders = read::boolean(n, &format!("{what}: create_folders"), problems).unwrap_or_else(|| {
            ok = false;
            true
        });
    }
    if let Some(n) = fields.get("delete") {
        match read::choice(n, &format!("{what}: delete"), &["trash", "expunge"], problems) {
            Some(choice) => watch.expunge_on_delete = choice == "expunge",
            None => ok = false,
        }
    }
    ok.then_some(watch)
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
