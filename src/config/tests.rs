//! Stage-two validation: what a correct config becomes, and one clear problem per mistake.

use std::path::Path;
use std::time::Duration;

use super::*;

fn load(yaml: &str) -> Result<Config, Error> {
    Config::from_yaml(yaml, Path::new("/etc/tidings/tidings.yaml"))
}

fn problems(yaml: &str) -> Vec<Problem> {
    match load(yaml) {
        Err(Error::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

/// One file with every kind of mistake the issue names; each must come out once, on its line.
const EVERY_MISTAKE: &str = "\
accounts:
  work:
    imap: { host: imap.example.com, port: 99999 }
    username: me@example.com
    password_env: WORK_PASS
    colour: blue
  home:
    imap: { host: imap.example.net, tls: none }
    username: me
  work:
    imap: { host: imap.example.org }
    username: other
    password_env: OTHER_PASS
schedules:
  nightly:
    cron: \"0 25 * * *\"
    timezone: Europe/Berlin
    account: work
    rule: sweeps/nightly.rhai
  morning:
    cron: \"0 7 * * 1-5\"
    timezone: Mars/Olympus
    account: work
    rule: sweeps/morning.rhai
";

#[test]
fn every_mistake_is_reported_once_with_its_line() {
    let found = problems(EVERY_MISTAKE);
    let expected: &[(u32, &str)] = &[
        (3, "port 99999 is out of range"),
        (6, "unknown key `colour`"),
        (7, "account `home` has no password source"),
        (8, "`tls: none` sends the password in clear text"),
        (10, "`work` is defined twice (first at line 2)"),
        (16, "cron `0 25 * * *` is not valid"),
        (22, "`Mars/Olympus` is not a time zone"),
    ];
    let got: Vec<(u32, &str)> = found.iter().map(|p| (p.pos.line, p.message.as_str())).collect();
    assert_eq!(found.len(), expected.len(), "expected {expected:#?}\ngot {got:#?}");
    for ((line, needle), problem) in expected.iter().zip(&found) {
        assert_eq!(problem.pos.line, *line, "wrong line for {problem}");
        assert!(problem.message.contains(needle), "expected {needle:?} on line {line}, got {problem}");
        assert!(problem.pos.column > 0, "no column for {problem}");
    }
    assert!(found.iter().all(|p| p.hint.is_some() || p.message.contains("not valid")), "{found:#?}");
}

#[test]
fn the_error_message_names_file_line_and_column() {
    let err = load(EVERY_MISTAKE).unwrap_err().to_string();
    assert!(err.starts_with("cannot load config /etc/tidings/tidings.yaml: 7 problems"), "{err}");
    assert!(err.contains("\n  /etc/tidings/tidings.yaml:3:"), "{err}");
    assert!(err.contains("hint: did you mean") || err.contains("hint: known keys"), "{err}");
}

#[test]
fn a_misspelt_key_gets_a_suggestion() {
    let found = problems("acounts: {}\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `accounts`?"));
}

#[test]
fn empty_config_and_empty_accounts_are_valid() {
    for yaml in ["", "accounts: {}\n"] {
        let config = load(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert!(config.accounts.is_empty());
        assert_eq!(config.rules_dir, Path::new("/etc/tidings/rules"));
        assert_eq!(config.plugins_dir, Path::new("/etc/tidings/plugins"));
    }
}

#[test]
fn a_full_account_is_read_with_defaults_filled_in() {
    let config = load(
        "\
state: var/state.db
accounts:
  work:
    imap: { host: imap.example.com, tls: starttls }
    smtp: { host: smtp.example.com, tls: implicit }
    username: me
    password_file: secrets/work
    from: me@example.com
    backfill: 30d
    mailboxes: [INBOX, { name: Lists/rust, backfill: all }]
webhooks:
  chat:
    url: https://hooks.example.com/x
    secret_env: HOOK_SECRET
    headers: { X-Team: mail }
",
    )
    .unwrap();
    let work = config.account("work").unwrap();
    assert_eq!(
        work.imap,
        Server { host: "imap.example.com".into(), port: 143, tls: Tls::StartTls, tls_fingerprint: None }
    );
    assert_eq!(work.smtp.as_ref().map(|s| s.port), Some(465));
    assert_eq!(work.password, SecretSource::File("/etc/tidings/secrets/work".into()));
    assert_eq!(work.addresses, vec!["me@example.com".to_owned()]);
    assert_eq!(
        work.mailboxes,
        vec![
            Mailbox { name: "INBOX".into(), backfill: Backfill::Within(Duration::from_secs(30 * 86_400)) },
            Mailbox { name: "Lists/rust".into(), backfill: Backfill::All },
        ]
    );
    assert_eq!(config.state.file(), Some(Path::new("/etc/tidings/var/state.db")));
    let chat = &config.webhooks["chat"];
    assert_eq!(chat.timeout, Duration::from_secs(10));
    let headers: Vec<(&str, &str)> = chat.headers.iter().map(|(n, t)| (n.as_str(), t.source())).collect();
    assert_eq!(headers, [("X-Team", "mail")]);
    assert_eq!((chat.max_attempts, chat.retry_delay), (12, Duration::from_secs(2)));
    assert_eq!(
        (chat.include, chat.template.is_none(), chat.content_type.as_str()),
        (Include::default(), true, "application/json")
    );
}

#[test]
fn insecure_is_allowed_only_when_asked_for() {
    let yaml = "accounts:\n  lab:\n    allow_insecure: true\n    imap: { host: 127.0.0.1, port: 1143, tls: none }\n    username: u\n    password_env: P\n";
    let config = load(yaml).unwrap();
    assert_eq!(config.accounts[0].imap.tls, Tls::None);
}

#[test]
fn a_tls_fingerprint_pins_each_server_and_a_bad_one_is_reported_where_it_is() {
    let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let yaml = format!(
        "accounts:\n  home:\n    imap: {{ host: nas.lan, tls_fingerprint: \"sha256:{hex}\" }}\n    smtp: {{ host: nas.lan, tls_fingerprint: \"SHA256:{}\" }}\n    from: me@nas.lan\n    username: u\n    password_env: P\n",
        hex.to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    );
    let config = load(&yaml).unwrap();
    let home = &config.accounts[0];
    let pinned = Fingerprint::parse(&format!("sha256:{hex}")).unwrap();
    assert_eq!(home.imap.tls_fingerprint, Some(pinned));
    assert_eq!(home.smtp.as_ref().and_then(|s| s.tls_fingerprint), Some(pinned));
    let found = problems(&format!(
        "accounts:\n  a:\n    allow_insecure: true\n    imap: {{ host: h, tls_fingerprint: \"sha256:{}\" }}\n    smtp: {{ host: h, tls: none, tls_fingerprint: \"sha256:{hex}\" }}\n    from: me@h.example\n    username: u\n    password_env: P\n",
        &hex[..60]
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!((found[0].pos.line, found[0].pos.column), (4, 39), "{found:#?}");
    assert!(
        found[0].message.contains("account `a`: imap: tls_fingerprint `sha256:ba78")
            && found[0].message.contains("has 64 hex digits, this one 60"),
        "{}",
        found[0].message
    );
    assert!(
        found[0].hint.as_deref().is_some_and(|h| h.contains("openssl x509 -noout -fingerprint -sha256")),
        "{found:#?}"
    );
    assert_eq!(found[1].pos.line, 5, "{found:#?}");
    assert!(
        found[1].message.contains("smtp: tls_fingerprint pins a certificate, but `tls: none` has none"),
        "{found:#?}"
    );
}

#[test]
fn more_mistakes_each_name_what_and_where() {
    let found = problems(
        "\
accounts:
  a:
    imap: { host: h }
    username: u
    password_env: A
    password_file: /x
    from: not-an-address
    mailboxes: [INBOX, INBOX]
    backfill: 30
webhooks:
  w:
    url: ftp://example.com/
    timeout: soon
schedules:
  s:
    cron: \"* * * * *\"
    account: nobody
    rule: toplevel.rhai
    search: { seen: true, unseen: false, larger: 5zb }
",
    );
    let lines: Vec<u32> = found.iter().map(|p| p.pos.line).collect();
    assert_eq!(lines, vec![6, 7, 8, 9, 12, 13, 17, 18, 19, 19], "{found:#?}");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let found = problems("accounts:\n  a: [1, 2\n  b: c\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].message.starts_with("not valid YAML"), "{found:?}");
    assert!(found[0].pos.line >= 2, "{found:?}");
}

#[test]
fn nesting_deeper_than_a_config_needs_is_refused_not_a_stack_overflow() {
    // On a test thread (2 MB of stack), as a reload or a library user might load it: 70 nested
    // maps used to overflow the stack of a debug build; 3,000 would any build's.
    for depth in [tree::MAX_DEPTH + 1, 70, 3000] {
        let yaml: String = (0..depth).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.starts_with("not valid YAML"), "{found:?}");
        assert!(found[0].message.contains("depth"), "the message says why: {found:?}");
    }
    let flow = format!("accounts: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let found = problems(&flow);
    assert!(found[0].message.starts_with("not valid YAML"), "{found:?}");
    // The example config is far from the limit.
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tidings.yaml")).unwrap();
    assert!(tree::parse(&example).is_ok());
}

#[test]
fn resolved_secrets_never_show_in_debug() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "correct horse battery staple\n").unwrap();
    let config = Config::from_yaml(
        "accounts:\n  a:\n    imap: { host: h }\n    username: u\n    password_file: pw\n",
        &dir.path().join("tidings.yaml"),
    )
    .unwrap();
    let secrets = config.resolve_secrets().unwrap();
    assert_eq!(secrets.passwords["a"].expose(), "correct horse battery staple");
    let shown = format!("{secrets:?} {config:?}");
    assert!(!shown.contains("correct horse"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn watch_settings_and_rule_globs_are_read() {
    let config = load(
        "\
accounts:
  a:
    imap: { host: h }
    username: u
    password_env: P
    rules: [\"news*\", work.rhai]
    idle_interval: 5m
    poll_interval: 30s
    command_timeout: 20s
    max_message_size: 2MB
    create_folders: false
    delete: expunge
",
    )
    .unwrap();
    let a = &config.accounts[0];
    assert_eq!(a.rules, vec!["news*".to_owned(), "work.rhai".to_owned()]);
    let expected = Watch {
        idle_interval: Duration::from_secs(300),
        poll_interval: Duration::from_secs(30),
        command_timeout: Duration::from_secs(20),
        max_message_size: 2 << 20,
        create_folders: false,
        expunge_on_delete: true,
    };
    assert_eq!(a.watch, expected);
    let found = problems(
        "accounts:\n  a:\n    imap: { host: h }\n    username: u\n    password_env: P\n    idle_interval: 45m\n    delete: shred\n",
    );
    let lines: Vec<u32> = found.iter().map(|p| p.pos.line).collect();
    assert_eq!(lines, vec![6, 7], "{found:#?}");
}

#[test]
fn webhook_templates_includes_and_retries_are_read() {
    let config = load(
        "\
webhooks:
  slack:
    url: https://hooks.slack.com/services/T/B/X
    include: [text, attachments]
    template: '{\"text\": \"{{message.subject}}: {{message.text}}\", \"n\": {{message.attachments | json}}}'
    max_attempts: 3
    retry_delay: 500ms
    timeout: 5s
  ntfy:
    url: https://ntfy.sh/mail
    content_type: text/plain; charset=utf-8
    template: \"{{message.snippet}}\"
    headers: { Title: \"{{message.from}}: {{message.subject}}\" }
",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let slack = &config.webhooks["slack"];
    assert_eq!(slack.include, Include { text: true, attachments: true, ..Include::default() });
    assert_eq!(
        (slack.max_attempts, slack.retry_delay, slack.timeout),
        (3, Duration::from_millis(500), Duration::from_secs(5))
    );
    assert!(slack.is_json());
    let ntfy = &config.webhooks["ntfy"];
    assert!(!ntfy.is_json());
    assert_eq!(ntfy.template.as_ref().map(Template::source), Some("{{message.snippet}}"));
    assert_eq!(ntfy.headers[0].1.paths().collect::<Vec<_>>(), ["message.from", "message.subject"]);
}

#[test]
fn webhook_mistakes_are_found_at_load() {
    let found = problems(
        "\
webhooks:
  a:
    url: https://example.com/a
    template: '{\"text\": \"{{message.subjet}}\"}'
    include: [text, pdf]
  b:
    url: https://example.com/b
    template: '{\"text\": {{message.subject}}}'
    max_attempts: 0
    retry_delay: 2h
  c:
    url: https://example.com/c
    content_type: text/plain
    headers: { Content-Type: text/plain, X-Tidings-Signature: x, Title: \"{{message.text}}\" }
    timeout: 0s
  d:
    url: https://example.com/d
    content_type: not a type
",
    );
    let got: Vec<(u32, &str)> = found.iter().map(|p| (p.pos.line, p.message.as_str())).collect();
    let expected: &[(u32, &str)] = &[
        (4, "`{{message.subjet}}` names no payload field"),
        (5, "include: `pdf` is not recognised"),
        (8, "template does not give JSON once filled in"),
        (9, "max_attempts must be a number from 1 to 1000"),
        (10, "retry_delay is over an hour"),
        (13, "content_type `text/plain` without a template"),
        (14, "`Content-Type` cannot be set here"),
        (14, "`X-Tidings-Signature` cannot be set here"),
        (14, "`{{message.text}}` is only in the payload with `include: [text]`"),
        (15, "timeout must be longer than zero"),
        (18, "content_type `not a type` is not a media type"),
    ];
    assert_eq!(found.len(), expected.len(), "expected {expected:#?}\ngot {got:#?}");
    for ((line, needle), problem) in expected.iter().zip(&found) {
        assert_eq!(problem.pos.line, *line, "wrong line for {problem}");
        assert!(problem.message.contains(needle), "expected {needle:?} on line {line}, got {problem}");
    }
}

#[test]
fn commands_are_read_with_their_program_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let yaml = "\
commands:
  sync:
    run: [sh, -c, 'exit 0', '']
  notify:
    run: [/bin/sh, notify.sh]
    timeout: 5s
    max_attempts: 2
    retry_delay: 1m
    env: { TOPIC: mail, EMPTY: '' }
    dir: work
";
    let config = Config::from_yaml(yaml, &dir.path().join("tidings.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let sync = &config.commands["sync"];
    assert_eq!(sync.run, ["sh", "-c", "exit 0", ""]);
    assert!(sync.program.is_absolute() && sync.program.ends_with("sh"), "{:?}", sync.program);
    assert_eq!(
        (sync.timeout, sync.max_attempts, sync.retry_delay),
        (Duration::from_secs(60), 12, Duration::from_secs(2))
    );
    assert_eq!(sync.dir, dir.path());
    let notify = &config.commands["notify"];
    assert_eq!(notify.program, Path::new("/bin/sh"));
    assert_eq!(notify.env, [("TOPIC".to_owned(), "mail".to_owned()), ("EMPTY".to_owned(), String::new())]);
    assert_eq!(
        (notify.timeout, notify.max_attempts, notify.retry_delay),
        (Duration::from_secs(5), 2, Duration::from_secs(60))
    );
    assert_eq!(notify.dir, dir.path().join("work"));
}

#[test]
fn command_mistakes_are_found_at_load() {
    let found = problems(
        "\
commands:
  shell:
    run: mbsync -a
  empty:
    run: []
  missing:
    run: [surely-no-such-program-tidings]
  relative:
    run: [bin/notify]
    dir: nowhere
  typed:
    run: [sh, 5]
    env: { 1X: a, TIDINGS_EVENT_ID: b, N: 3 }
    shell: true
  bad name!:
    run: [sh]
  none:
    timeout: 1m
",
    );
    let got: Vec<(u32, &str)> = found.iter().map(|p| (p.pos.line, p.message.as_str())).collect();
    let expected: &[(u32, &str)] = &[
        (3, "run must be a list (the program, then its arguments), found a string"),
        (5, "run is empty"),
        (7, "program `surely-no-such-program-tidings` is not found on PATH"),
        (9, "program `/etc/tidings/bin/notify` is not an executable file"),
        (10, "dir `/etc/tidings/nowhere` is not a directory"),
        (12, "arguments must be strings, found a number"),
        (13, "`1X` is not a variable name"),
        (13, "`TIDINGS_EVENT_ID` cannot be set here"),
        (13, "N must be a string, found a number"),
        (14, "unknown key `shell`"),
        (15, "command `bad name!`: not a command name"),
        (17, "command `none` has no `run`"),
    ];
    assert_eq!(found.len(), expected.len(), "expected {expected:#?}\ngot {got:#?}");
    for ((line, needle), problem) in expected.iter().zip(&found) {
        assert_eq!(problem.pos.line, *line, "wrong line for {problem}");
        assert!(problem.message.contains(needle), "expected {needle:?} on line {line}, got {problem}");
    }
}

#[test]
fn http_health_and_alerts_are_read_and_checked_against_webhooks_and_accounts() {
    let base = "accounts:\n  work:\n    imap: { host: imap.example.com }\n    smtp: { host: smtp.example.com }\n    from: me@example.com\n    username: me\n    password_env: P\n  nosmtp:\n    imap: { host: imap.example.com }\n    username: me\n    password_env: P\nwebhooks:\n  ops: { url: \"https://ops.example.com/hook\" }\n";
    let config = load(&format!(
        "{base}http: {{ listen: \"127.0.0.1:9898\" }}\nhealth: {{ unhealthy_after: 90s }}\nalerts: {{ webhook: ops, mail: {{ account: work, to: me@example.com }} }}\n"
    ))
    .unwrap();
    assert_eq!(config.http.unwrap().listen, "127.0.0.1:9898".parse().unwrap());
    assert_eq!(config.health.unhealthy_after, Duration::from_secs(90));
    assert_eq!(config.health.outbox_overdue, monitor::DEFAULT_OUTBOX_OVERDUE);
    assert!(!config.health.degraded_is_unhealthy, "degraded answers 200 unless asked");
    let strict = load(&format!("{base}health: {{ degraded_is_unhealthy: true }}\n")).unwrap();
    assert!(strict.health.degraded_is_unhealthy);
    let alerts = config.alerts.unwrap();
    assert_eq!(alerts.webhook.as_deref(), Some("ops"));
    assert_eq!(alerts.mail.unwrap().to, ["me@example.com"]);
    for (extra, needle) in [
        ("http: { listen: localhost }\n", "http: listen `localhost` is not an address and port"),
        ("health: { unhealthy_after: 0s }\n", "health: unhealthy_after must be longer than zero"),
        ("health: { degraded_is_unhealthy: 1 }\n", "health: degraded_is_unhealthy must be true or false"),
        ("alerts: { webhook: pager }\n", "alerts: webhook `pager` is not defined"),
        ("alerts: { mail: { account: home, to: [a@b.c] } }\n", "alerts: mail: account `home` is not defined"),
        ("alerts: { mail: { account: nosmtp, to: [a@b.c] } }\n", "the account has no `smtp:` server"),
        ("alerts: {}\n", "alerts: nowhere to send them"),
    ] {
        let found = problems(&format!("{base}{extra}"));
        assert!(found.iter().any(|p| p.message.contains(needle)), "{extra}: expected {needle:?}, got {found:#?}");
    }
}

#[test]
fn a_postgres_state_and_fleet_timings_are_read_and_checked() {
    let base = "accounts:\n  work:\n    imap: { host: imap.example.com }\n    username: me\n    password_env: P\n";
    let config =
        load(&format!("{base}state: \"postgres://t:pw@db/tidings\"\nfleet: {{ lease: 12s, heartbeat: 4s }}\n"))
            .unwrap();
    assert_eq!(config.state, crate::config::State::Postgres("postgres://t:pw@db/tidings".into()));
    assert_eq!((config.fleet.lease, config.fleet.heartbeat), (Duration::from_secs(12), Duration::from_secs(4)));
    assert_eq!(load(base).unwrap().fleet, crate::config::Fleet::default());
    for (extra, needle) in [
        ("fleet: { lease: 10s, heartbeat: 6s }\n", "at most half the lease"),
        ("fleet: { heartbeat: 0s }\n", "must be more than zero"),
        ("fleet: { lease: 30s, beat: 1s }\n", "beat"),
    ] {
        let found = problems(&format!("{base}{extra}"));
        assert!(found.iter().any(|p| p.message.contains(needle)), "{extra}: expected {needle:?}, got {found:#?}");
    }
}

/// `--config tidings.yaml` has the parent `""`: every relative path (rules, plugins, state,
/// secrets, a command's working directory and program) is read from the working directory,
/// made absolute, so a command does not run in `""` and fail.
#[test]
fn a_bare_config_file_name_anchors_relative_paths_at_the_working_directory() {
    let cwd = std::env::current_dir().unwrap();
    let yaml = "state: state.db\nwebhooks:\n  hook: { url: \"https://h.example/x\", secret_file: hook.key }\ncommands:\n  ls: { run: [ls] }\naccounts:\n  a:\n    imap: { host: h }\n    ca_file: ca.pem\n    username: u\n    password_file: pw\n";
    for name in ["tidings.yaml", "./tidings.yaml"] {
        let config = Config::from_yaml(yaml, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.rules_dir, cwd.join("rules"), "{name}");
        assert_eq!(config.plugins_dir, cwd.join("plugins"), "{name}");
        assert_eq!(config.state.file(), Some(cwd.join("state.db").as_path()), "{name}");
        assert_eq!(config.commands["ls"].dir, cwd, "{name}");
        let account = &config.accounts[0];
        assert_eq!(account.ca_file.as_deref(), Some(cwd.join("ca.pem").as_path()), "{name}");
        assert_eq!(account.password, SecretSource::File(cwd.join("pw")), "{name}");
        assert_eq!(config.webhooks["hook"].secret, Some(SecretSource::File(cwd.join("hook.key"))), "{name}");
    }
    // A relative directory is made absolute too.
    let config = Config::from_yaml("commands:\n  ls: { run: [ls] }\n", Path::new("src/../tidings.yaml")).unwrap();
    assert!(config.commands["ls"].dir.is_absolute(), "{:?}", config.commands["ls"].dir);
    assert!(config.commands["ls"].dir.is_dir());
}
