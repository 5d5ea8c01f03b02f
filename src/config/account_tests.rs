//! The sending settings of an account: `save_sent`, `daily_send_limit` and `forward_rate`.

use std::path::Path;

use super::{DAILY_SEND_LIMIT, FORWARD_RATE, SaveSent};
use crate::config::{Config, Error, Problem};

const BASE: &str = "accounts:\n  a:\n    imap: { host: h }\n    username: u\n    password_env: P\n";

fn load(extra: &str) -> Result<Config, Error> {
    Config::from_yaml(&format!("{BASE}{extra}"), Path::new("/etc/tidings/tidings.yaml"))
}

fn problems(extra: &str) -> Vec<Problem> {
    match load(extra) {
        Err(Error::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn by_default_sent_mail_is_not_kept_and_100_messages_a_day_may_go() {
    let config = load("").unwrap();
    assert_eq!((&config.accounts[0].save_sent, config.accounts[0].daily_send_limit), (&None, DAILY_SEND_LIMIT));
    assert_eq!(DAILY_SEND_LIMIT, 100);
}

#[test]
fn save_sent_takes_true_false_or_a_folder() {
    let read = |value: &str| load(&format!("    save_sent: {value}\n")).unwrap().accounts[0].save_sent.clone();
    assert_eq!(read("true"), Some(SaveSent::SpecialUse));
    assert_eq!(read("false"), None);
    assert_eq!(read("\"Sent Items\""), Some(SaveSent::Folder("Sent Items".into())));
    assert_eq!(read("Gesendet/2026"), Some(SaveSent::Folder("Gesendet/2026".into())));
}

#[test]
fn daily_send_limit_is_a_positive_whole_number() {
    let limit = load("    daily_send_limit: 3\n").unwrap().accounts[0].daily_send_limit;
    assert_eq!(limit, 3);
    for (value, message) in [
        ("0", "account `a`: daily_send_limit must be at least 1, found 0"),
        ("-5", "must be at least 1, found -5"),
        ("ten", "daily_send_limit must be a whole number of messages, found a string"),
        ("99999999999", "daily_send_limit 99999999999 is too large"),
    ] {
        let found = problems(&format!("    daily_send_limit: {value}\n"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].message.contains(message), "{value}: {}", found[0].message);
        assert_eq!(found[0].pos.line, 6, "the error points at the value");
    }
}

#[test]
fn a_bad_save_sent_is_reported_where_it_is() {
    for value in ["1", "[Sent]", "\"\""] {
        let found = problems(&format!("    save_sent: {value}\n"));
        assert_eq!(found.len(), 1, "{value}: {found:#?}");
        assert_eq!(found[0].pos.line, 6, "{value}: {found:#?}");
    }
    let found = problems("    save_sent: 1\n");
    assert!(found[0].message.contains("save_sent must be true, false or a folder name, found a number"));
    assert!(found[0].hint.as_deref().is_some_and(|h| h.contains("\\Sent")), "{found:#?}");
    // Both mistakes at once, each on its line.
    let found = problems("    save_sent: []\n    daily_send_limit: 0\n");
    let lines: Vec<u32> = found.iter().map(|p| p.pos.line).collect();
    assert_eq!(lines, [6, 7], "{found:#?}");
}

#[test]
fn forward_rate_is_10_an_hour_unless_the_account_says() {
    assert_eq!(load("").unwrap().accounts[0].forward_rate, FORWARD_RATE);
    assert_eq!(FORWARD_RATE, 10);
    assert_eq!(load("    forward_rate: 2\n").unwrap().accounts[0].forward_rate, 2);
    let found = problems("    forward_rate: 0\n");
    assert!(found[0].message.contains("account `a`: forward_rate must be at least 1, found 0"), "{found:#?}");
}
