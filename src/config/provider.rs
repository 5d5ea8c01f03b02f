//! Provider presets: `provider: gmail` fills in what every user of that provider would type.
//!
//! A preset is only defaults: each of `imap`, `smtp`, `connections`, `imap_id` and `from` can
//! still be written on the account and wins. Hosts, ports and TLS modes are the providers'
//! published settings. Connection budgets are the providers' limits on simultaneous IMAP
//! connections per account where one is published (Gmail 15, Exchange 16 per user) and a
//! conservative guess where none is (say so in the table below), so a daemon never gets an
//! account locked out for opening too many.

use super::account::{Server, Tls};
use super::diagnostics::{self as read, Fields, Problems};
use super::tree::{Node, Value};

/// The connections an account without a provider may hold: Dovecot's default limit per user
/// and client address (`mail_max_userip_connections`).
pub const DEFAULT_CONNECTIONS: u32 = 10;

/// A mail provider tidings knows the settings of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Google Mail and Google Workspace.
    Gmail,
    /// Outlook.com, Hotmail and Microsoft 365 (Exchange Online).
    Outlook,
    /// Fastmail.
    Fastmail,
    /// mail.com.
    Mailcom,
    /// GMX (gmx.net, gmx.de; gmx.com users override the hosts).
    Gmx,
    /// Yahoo Mail (and AOL's servers, which are Yahoo's).
    Yahoo,
    /// iCloud Mail.
    Icloud,
}

/// What a provider's preset fills in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The IMAP server.
    pub imap: Server,
    /// The SMTP submission server.
    pub smtp: Server,
    /// The most simultaneous IMAP connections tidings opens for the account.
    pub connections: u32,
    /// Whether to send the IMAP `ID` command after login.
    pub imap_id: bool,
    /// What the user must switch on at the provider before tidings can log in (docs/providers.md).
    pub needs: &'static str,
}

/// Every provider's name as written in the config, in the order docs/providers.md lists them.
pub const NAMES: &[&str] = &["gmail", "outlook", "fastmail", "mailcom", "gmx", "yahoo", "icloud"];

impl Provider {
    /// All providers, in [`NAMES`] order.
    pub const ALL: [Provider; 7] = [
        Provider::Gmail,
        Provider::Outlook,
        Provider::Fastmail,
        Provider::Mailcom,
        Provider::Gmx,
        Provider::Yahoo,
        Provider::Icloud,
    ];

    /// The provider called `name` in the config.
    pub fn from_name(name: &str) -> Option<Provider> {
        NAMES.iter().position(|n| *n == name).map(|i| Provider::ALL[i])
    }

    /// Its name as written in the config.
    pub fn name(self) -> &'static str {
        NAMES[Provider::ALL.iter().position(|p| *p == self).unwrap_or_default()]
    }

    /// Its preset.
    pub fn preset(self) -> Preset {
        let (imap, smtp, connections, imap_id, needs) = match self {
            // Gmail allows 15 simultaneous IMAP connections per account (Google's documented
            // limit); 465 is implicit TLS, 587 with STARTTLS works as well.
            Provider::Gmail => (
                ("imap.gmail.com", 993, Tls::Implicit),
                ("smtp.gmail.com", 465, Tls::Implicit),
                15,
                false,
                "IMAP access (on by default for personal accounts; Workspace admins can turn it off), and \
                 either an app password (needs 2-Step Verification) or OAuth2",
            ),
            // Exchange's default per-user IMAP limit is 16. Microsoft has turned off password
            // logins for Exchange Online and Outlook.com: OAuth2 is the way in.
            Provider::Outlook => (
                ("outlook.office365.com", 993, Tls::Implicit),
                ("smtp.office365.com", 587, Tls::StartTls),
                16,
                false,
                "OAuth2 (`oauth2: { provider: microsoft }`); on Microsoft 365 an admin may have to allow \
                 IMAP and authenticated SMTP for the mailbox",
            ),
            // No published limit: 10, Dovecot's default per user and address.
            Provider::Fastmail => (
                ("imap.fastmail.com", 993, Tls::Implicit),
                ("smtp.fastmail.com", 465, Tls::Implicit),
                10,
                false,
                "an app password with IMAP and SMTP access (Settings > Privacy & Security > App passwords)",
            ),
            // mail.com and GMX are one company's servers; no published limit, 5 is cautious.
            Provider::Mailcom => (
                ("imap.mail.com", 993, Tls::Implicit),
                ("smtp.mail.com", 587, Tls::StartTls),
                5,
                false,
                "POP3 & IMAP access enabled in its settings (E-mail > POP3 & IMAP)",
            ),
            Provider::Gmx => (
                ("imap.gmx.net", 993, Tls::Implicit),
                ("mail.gmx.net", 587, Tls::StartTls),
                5,
                false,
                "POP3 & IMAP access enabled in its settings (E-mail > POP3 & IMAP); gmx.com addresses use \
                 imap.gmx.com and mail.gmx.com",
            ),
            // Yahoo asks IMAP clients to identify themselves with ID (its IMAP developer notes).
            Provider::Yahoo => (
                ("imap.mail.yahoo.com", 993, Tls::Implicit),
                ("smtp.mail.yahoo.com", 465, Tls::Implicit),
                5,
                true,
                "an app password (Account security > Generate app password)",
            ),
            Provider::Icloud => (
                ("imap.mail.me.com", 993, Tls::Implicit),
                ("smtp.mail.me.com", 587, Tls::StartTls),
                5,
                false,
                "two-factor authentication and an app-specific password (account.apple.com > Sign-In and \
                 Security); the username is the full iCloud address",
            ),
        };
        let server =
            |(host, port, tls): (&str, u16, Tls)| Server { host: host.to_owned(), port, tls, tls_fingerprint: None };
        Preset { imap: server(imap), smtp: server(smtp), connections, imap_id, needs }
    }
}

/// Reads `provider:`: `Some(None)` when not given, `None` when it names no known provider (the
/// problem is recorded, with the nearest name when it looks like a typo).
pub fn read(fields: &Fields<'_>, what: &str, problems: &mut Problems) -> Option<Option<Provider>> {
    let Some(node) = fields.get("provider") else { return Some(None) };
    let name = read::string(node, &format!("{what}: provider"), problems)?;
    if let Some(provider) = Provider::from_name(&name) {
        return Some(Some(provider));
    }
    let hint = match read::closest(&name.to_lowercase(), NAMES) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("known providers: {}; or leave `provider` out and give `imap:` and `smtp:`", NAMES.join(", ")),
    };
    problems.hint(node.pos, format!("{what}: unknown provider `{name}`"), hint);
    None
}

/// Reads `connections:`, the account's IMAP connection budget: at least 2 (the executor and
/// one watcher).
pub fn connections(node: &Node, what: &str, problems: &mut Problems) -> Option<u32> {
    let why = "the executor holds one connection and the watchers need at least one more";
    read::count(node, &format!("{what}: connections"), "connections", 2, why, problems)
}

/// The TLS mode of a server block that leaves `tls` out under a preset: a well-known `port`
/// says it (`smtp: { port: 587 }` on Gmail means STARTTLS), else the preset's.
pub fn default_tls(port: Option<&Node>, preset: &Server) -> Tls {
    match port.map(|n| &n.value) {
        Some(Value::Int(993 | 465)) => Tls::Implicit,
        Some(Value::Int(143 | 587)) => Tls::StartTls,
        _ => preset.tls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_provider() {
        for (name, provider) in NAMES.iter().zip(Provider::ALL) {
            assert_eq!(Provider::from_name(name), Some(provider));
            assert_eq!(provider.name(), *name);
        }
        assert_eq!(Provider::from_name("Gmail"), None, "names are lowercase, as every other word in the config");
    }

    #[test]
    fn the_presets_are_the_published_settings() {
        let gmail = Provider::Gmail.preset();
        assert_eq!((gmail.imap.host.as_str(), gmail.imap.port, gmail.imap.tls), ("imap.gmail.com", 993, Tls::Implicit));
        assert_eq!((gmail.smtp.host.as_str(), gmail.smtp.port, gmail.smtp.tls), ("smtp.gmail.com", 465, Tls::Implicit));
        assert_eq!(gmail.connections, 15);
        let mailcom = Provider::Mailcom.preset();
        assert_eq!((mailcom.imap.host.as_str(), mailcom.imap.port), ("imap.mail.com", 993));
        assert_eq!(
            (mailcom.smtp.host.as_str(), mailcom.smtp.port, mailcom.smtp.tls),
            ("smtp.mail.com", 587, Tls::StartTls)
        );
        assert!(mailcom.needs.contains("POP3 & IMAP"));
        for provider in Provider::ALL {
            let preset = provider.preset();
            // A port that does not match its TLS mode is the classic copy-paste slip.
            for server in [&preset.imap, &preset.smtp] {
                let expected = match server.tls {
                    Tls::Implicit => [993, 465],
                    _ => [143, 587],
                };
                assert!(expected.contains(&server.port), "{provider:?}: {server:?}");
            }
            assert!(preset.connections >= 2, "{provider:?}: the executor and one watcher at least");
        }
        assert!(Provider::Yahoo.preset().imap_id);
    }
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod config_tests;
