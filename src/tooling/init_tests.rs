use std::io::Cursor;

use super::*;
use crate::config::SecretSource;

#[test]
fn the_variable_is_the_name_upper_cased_with_underscores() {
    assert_eq!(variable("home", "PASSWORD"), "TIDINGS_HOME_PASSWORD");
    assert_eq!(variable("mail", "PASSWORD"), "TIDINGS_MAIL_PASSWORD");
    assert_eq!(variable("work-2", "PASSWORD"), "TIDINGS_WORK_2_PASSWORD");
    assert_eq!(variable("my_box", "CLIENT_SECRET"), "TIDINGS_MY_BOX_CLIENT_SECRET");
    assert_eq!(variable("Ünï.x", "PASSWORD"), "TIDINGS__N__X_PASSWORD");
}

#[test]
fn a_relative_path_is_made_absolute_against_the_current_directory() {
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(absolute(Path::new("certs/ca.pem")).unwrap(), cwd.join("certs/ca.pem"));
    assert_eq!(absolute(Path::new("/etc/ssl/ca.pem")).unwrap(), Path::new("/etc/ssl/ca.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"ca-\xff.pem"));
        assert!(absolute(odd).unwrap_err().contains("not UTF-8"));
    }
}

#[test]
fn the_ca_file_is_written_absolute_so_its_meaning_does_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        email: Some("me@example.org".into()),
        imap: Some("imap.example.org".into()),
        ca_file: Some("certs/ca.pem".into()),
        dir: Some(dir.path().join("conf")),
        ..Options::default()
    };
    let settings = complete(options, None, &mut Vec::new(), &mut Vec::new()).unwrap();
    let text = render(&settings);
    let expected = std::env::current_dir().unwrap().join("certs/ca.pem");
    assert!(text.contains(&format!("ca_file: {}", expected.display())), "{text}");
    let config = Config::from_yaml(&text, &settings.dir.join("tidings.yaml")).unwrap();
    assert_eq!(config.accounts[0].ca_file.as_deref(), Some(expected.as_path()));
}

#[test]
fn every_setup_renders_a_config_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    for setup in <Setup as clap::ValueEnum>::value_variants() {
        let options = Options {
            provider: Some(*setup),
            email: Some("me@example.org".into()),
            name: Some("home".into()),
            dir: Some(dir.path().to_owned()),
            ..Options::default()
        };
        let settings = complete(options, None, &mut Vec::new(), &mut Vec::new()).unwrap();
        let text = render(&settings);
        let config = Config::from_yaml(&text, &dir.path().join("tidings.yaml"))
            .unwrap_or_else(|e| panic!("{setup:?}: {e}\n{text}"));
        let account = &config.accounts[0];
        assert_eq!((account.name.as_str(), account.username.as_str()), ("home", "me@example.org"));
        assert_eq!(account.from.as_deref(), Some("me@example.org"));
        assert_eq!(account.mailboxes.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["INBOX"]);
        assert_eq!(config.rules_dir, dir.path().join("rules"));
        match setup {
            Setup::GmailOAuth2 | Setup::Preset(Provider::Outlook) => {
                assert!(account.oauth2.is_some(), "{setup:?}");
                assert_eq!(account.password, SecretSource::File(dir.path().join("home.token")));
            }
            _ => assert_eq!(account.password, SecretSource::Env("TIDINGS_HOME_PASSWORD".into())),
        }
        match setup {
            // `--provider generic` without --imap and no terminal: the host from the address.
            Setup::Generic => assert_eq!(account.imap.host, "imap.example.org"),
            _ => assert!(account.provider.is_some(), "{setup:?}"),
        }
    }
}

#[test]
fn a_plain_server_takes_every_flag() {
    let options = Options {
        email: Some("me@example.org".into()),
        imap: Some("mail.example.org".into()),
        port: Some(1143),
        tls: Some(Security::None),
        username: Some("me \"quoted\": yes".into()),
        smtp: Some("smtp.example.org".into()),
        smtp_tls: Some(Security::Implicit),
        dir: Some("/tmp/nowhere".into()),
        ..Options::default()
    };
    let mut assumed = Vec::new();
    let settings = complete(options, None, &mut Vec::new(), &mut assumed).unwrap();
    assert_eq!(assumed, ["--name mail", "--smtp-port 465"]);
    let text = render(&settings);
    assert!(text.contains("WARNING: `tls: none`"), "{text}");
    let config = Config::from_yaml(&text, Path::new("/tmp/nowhere/tidings.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let account = &config.accounts[0];
    assert_eq!(
        (account.imap.host.as_str(), account.imap.port, account.imap.tls),
        ("mail.example.org", 1143, Tls::None)
    );
    let smtp = account.smtp.as_ref().unwrap();
    assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("smtp.example.org", 465, Tls::Implicit));
    assert_eq!(account.username, "me \"quoted\": yes");
}

#[test]
fn without_a_terminal_nothing_is_asked_and_every_default_is_said() {
    let missing = complete(Options::default(), None, &mut Vec::new(), &mut Vec::new()).unwrap_err();
    assert!(matches!(missing, Error::Missing { flag: "--email", .. }), "{missing}");
    assert!(missing.to_string().contains("--email"));
    let options = Options { email: Some("me@gmail.com".into()), ..Options::default() };
    let (mut out, mut assumed) = (Vec::new(), Vec::new());
    let settings = complete(options, None, &mut out, &mut assumed).unwrap();
    assert!(out.is_empty(), "nothing is asked");
    assert_eq!(settings.servers, Servers::Preset(Provider::Gmail));
    assert_eq!(settings.dir, default_dir());
    assert_eq!(
        assumed,
        [
            "--name mail".to_owned(),
            "--provider gmail (from the address)".to_owned(),
            "--username me@gmail.com".to_owned(),
            format!("--dir {}", default_dir().display()),
        ]
    );
}

#[test]
fn on_a_terminal_what_is_missing_is_asked() {
    let mut input = Cursor::new("\nme@example.org\n\n");
    let mut out = Vec::new();
    let settings = complete(
        Options { dir: Some("/tmp/x".into()), ..Options::default() },
        Some(&mut input),
        &mut out,
        &mut Vec::new(),
    )
    .unwrap();
    let asked = String::from_utf8(out).unwrap();
    // An empty answer without a default asks again; an empty one with a default takes it.
    assert_eq!(asked.matches("Your email address: ").count(), 2, "{asked}");
    assert!(asked.contains("or your IMAP server's host name [imap.example.org]: "), "{asked}");
    assert!(matches!(&settings.servers, Servers::Plain { imap, .. } if imap.host == "imap.example.org"));

    let mut input = Cursor::new("me@fastmail.com\nGMX\n");
    let settings = complete(Options::default(), Some(&mut input), &mut Vec::new(), &mut Vec::new()).unwrap();
    assert_eq!(settings.servers, Servers::Preset(Provider::Gmx), "a provider's name, in any case");

    let mut input = Cursor::new("me@example.org\nmail.example.net\n");
    let settings = complete(Options::default(), Some(&mut input), &mut Vec::new(), &mut Vec::new()).unwrap();
    assert!(matches!(&settings.servers, Servers::Plain { imap, .. } if imap.host == "mail.example.net"));

    let mut input = Cursor::new("");
    let eof = complete(Options::default(), Some(&mut input), &mut Vec::new(), &mut Vec::new()).unwrap_err();
    assert!(matches!(eof, Error::Prompt(_)), "{eof}");
}

#[test]
fn wrong_flags_are_refused() {
    let refuse = |options: Options, expected: &str| {
        let e = complete(options, None, &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
        assert!(e.is_input());
    };
    let email = || Some("me@example.org".to_owned());
    refuse(Options { email: Some("me".into()), ..Options::default() }, "--email me: it is not an email address");
    refuse(Options { email: email(), name: Some("a b".into()), ..Options::default() }, "--name a b");
    refuse(
        Options { email: email(), provider: Some(Setup::Preset(Provider::Gmail)), port: Some(1), ..Options::default() },
        "--port with --provider gmail",
    );
    refuse(
        Options { email: email(), imap: Some("h.example".into()), smtp_port: Some(25), ..Options::default() },
        "--smtp-port or --smtp-tls without --smtp",
    );
}

#[test]
fn scalars_that_yaml_would_read_otherwise_are_quoted() {
    assert_eq!(scalar("me@example.org"), "me@example.org");
    assert_eq!(scalar("/etc/ssl/ca.pem"), "/etc/ssl/ca.pem");
    assert_eq!(scalar("12345"), "\"12345\"");
    assert_eq!(scalar("yes"), "\"yes\"");
    assert_eq!(scalar("a: b # c"), "\"a: b # c\"");
    assert_eq!(scalar("back\\slash\"quote"), r#""back\\slash\"quote""#);
    assert_eq!(shell_word("/tmp/a b/it's"), r"'/tmp/a b/it'\''s'");
    assert_eq!(shell_word("/tmp/ok"), "/tmp/ok");
}

#[test]
fn placeholders_are_filled_once() {
    let filled = fill("{a} and {b}, {unknown} {", &[("a", "{b}"), ("b", "x")]);
    assert_eq!(filled, "{b} and x, {unknown} {");
}

#[test]
fn an_address_domain_picks_its_preset() {
    assert_eq!(guess("gmail.com"), Some(Setup::Preset(Provider::Gmail)));
    assert_eq!(guess("hotmail.com"), Some(Setup::Preset(Provider::Outlook)));
    assert_eq!(guess("me.com"), Some(Setup::Preset(Provider::Icloud)));
    assert_eq!(guess("example.org"), None);
    assert_eq!(domain("Me@Example.ORG").as_deref(), Some("example.org"));
    assert_eq!(domain("me@localhost").as_deref(), Some("localhost"));
    for bad in ["me", "@example.org", "me@example", "me @example.org", "me@.org"] {
        assert_eq!(domain(bad), None, "{bad}");
    }
}
