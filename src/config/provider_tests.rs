//! Presets through the whole config: what they fill in, what the account overrides, and the
//! positioned problems of a wrong `provider`, `connections` or `mailboxes`.

use std::path::Path;
use std::time::Duration;

use super::{NAMES, Provider};
use crate::config::{Backfill, Config, Error, Problem, Tls};

fn load(account: &str) -> Result<Config, Error> {
    Config::from_yaml(&format!("accounts:\n  a:\n{account}"), Path::new("/etc/tidings/tidings.yaml"))
}

fn problems(account: &str) -> Vec<Problem> {
    match load(account) {
        Err(Error::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn every_preset_needs_only_a_username_and_a_secret() {
    for name in NAMES {
        let config = load(&format!("    provider: {name}\n    username: me@example.com\n    password_env: P\n"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let account = &config.accounts[0];
        let preset = Provider::from_name(name).unwrap().preset();
        assert_eq!(account.provider, Provider::from_name(name));
        assert_eq!((&account.imap, account.smtp.as_ref()), (&preset.imap, Some(&preset.smtp)), "{name}");
        assert_eq!((account.connections, account.imap_id), (preset.connections, preset.imap_id), "{name}");
        // The login is the address: replies go out from it, and it counts as the account's own.
        assert_eq!(account.from.as_deref(), Some("me@example.com"), "{name}");
        assert_eq!(account.addresses, ["me@example.com"], "{name}");
    }
}

#[test]
fn every_field_of_a_preset_can_be_overridden() {
    let config = load(
        "    provider: gmail\n    username: me@gmail.com\n    password_env: P\n    from: Me@Example.org\n    \
         imap: { port: 143, tls: starttls }\n    smtp: { port: 587 }\n    connections: 4\n    imap_id: true\n",
    )
    .unwrap();
    let account = &config.accounts[0];
    assert_eq!(
        (account.imap.host.as_str(), account.imap.port, account.imap.tls),
        ("imap.gmail.com", 143, Tls::StartTls)
    );
    // A well-known port says its TLS mode: 587 is submission with STARTTLS.
    let smtp = account.smtp.as_ref().unwrap();
    assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("smtp.gmail.com", 587, Tls::StartTls));
    assert_eq!((account.connections, account.imap_id, account.from.as_deref()), (4, true, Some("Me@Example.org")));

    let config =
        load("    provider: fastmail\n    username: me@fastmail.com\n    password_env: P\n    imap: { host: imap.example.net }\n    smtp: { tls: starttls }\n")
            .unwrap();
    let account = &config.accounts[0];
    assert_eq!(
        (account.imap.host.as_str(), account.imap.port, account.imap.tls),
        ("imap.example.net", 993, Tls::Implicit)
    );
    let smtp = account.smtp.as_ref().unwrap();
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.tls),
        ("smtp.fastmail.com", 587, Tls::StartTls),
        "tls without a port takes its own port"
    );
}

#[test]
fn without_a_provider_nothing_is_filled_in() {
    let config = load("    imap: { host: mail.example.org }\n    username: u\n    password_env: P\n").unwrap();
    let account = &config.accounts[0];
    assert_eq!((account.provider, account.smtp.as_ref(), account.from.as_ref()), (None, None, None));
    assert_eq!((account.connections, account.imap_id), (super::DEFAULT_CONNECTIONS, false));
    let found = problems("    username: u\n    password_env: P\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].pos.line, found[0].message.as_str()), (2, "account `a` has no `imap` server"));
    assert!(found[0].hint.as_deref().unwrap().contains("provider: gmail"), "{found:#?}");
}

#[test]
fn an_unknown_provider_is_pointed_at_with_the_nearest_name() {
    let found = problems("    username: me@gmail.com\n    password_env: P\n    provider: gmial\n");
    assert_eq!(found.len(), 1, "only the provider is wrong, the missing imap follows from it: {found:#?}");
    assert_eq!((found[0].pos.line, found[0].pos.column), (5, 15));
    assert_eq!(found[0].message, "account `a`: unknown provider `gmial`");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `gmail`?"));
    let found = problems("    username: u\n    password_env: P\n    provider: Outlook\n");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `outlook`?"));
    let found = problems("    username: u\n    password_env: P\n    provider: protonmail\n");
    assert!(found[0].hint.as_deref().unwrap().starts_with("known providers: gmail, outlook, fastmail"), "{found:#?}");
    let found = problems("    username: u\n    password_env: P\n    provider: 3\n");
    assert_eq!(found[0].message, "account `a`: provider must be a string, found a number");
}

#[test]
fn connections_is_at_least_two() {
    let base = "    provider: gmail\n    username: u@gmail.com\n    password_env: P\n";
    for (value, message) in [
        ("1", "account `a`: connections must be at least 2, found 1"),
        ("many", "account `a`: connections must be a whole number of connections, found a string"),
        ("99999999999", "account `a`: connections 99999999999 is too large"),
    ] {
        let found = problems(&format!("{base}    connections: {value}\n"));
        assert_eq!(found.len(), 1, "{value}: {found:#?}");
        assert_eq!((found[0].pos.line, found[0].message.as_str()), (6, message), "{value}");
    }
    assert_eq!(load(&format!("{base}    connections: 2\n")).unwrap().accounts[0].connections, 2);
}

#[test]
fn mailboxes_all_is_resolved_later_with_the_account_backfill() {
    let account = "    imap: { host: h }\n    username: u\n    password_env: P\n    backfill: 7d\n";
    let config = load(&format!("{account}    mailboxes: all\n")).unwrap();
    let account_read = &config.accounts[0];
    assert!(account_read.subscribed);
    assert!(account_read.mailboxes.is_empty(), "listed from the server at start");
    assert_eq!(account_read.backfill, Backfill::Within(Duration::from_secs(7 * 86_400)));
    // A folder called "all" is still a list of one.
    let config = load(&format!("{account}    mailboxes: [all]\n")).unwrap();
    assert!(!config.accounts[0].subscribed);
    assert_eq!(config.accounts[0].mailboxes[0].name, "all");
    let found = problems(&format!("{account}    mailboxes: everything\n"));
    assert_eq!((found[0].pos.line, found[0].message.as_str()), (7, "account `a`: mailboxes must be a list or `all`"));
}
