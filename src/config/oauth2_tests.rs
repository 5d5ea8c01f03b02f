//! The `oauth2:` block: providers' defaults, custom issuers, and every mistake reported.

use std::path::{Path, PathBuf};

use super::Provider;
use crate::config::{Config, Error, Problem, SecretSource};

const BASE: &str =
    "state: /var/lib/tidings/state.db\naccounts:\n  g:\n    imap: { host: h }\n    username: me@gmail.com\n";

fn load(oauth2: &str) -> Result<Config, Error> {
    Config::from_yaml(&format!("{BASE}    oauth2:\n{oauth2}"), Path::new("/etc/tidings/tidings.yaml"))
}

fn problems(oauth2: &str) -> Vec<Problem> {
    match load(oauth2) {
        Err(Error::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn google_needs_only_a_client_and_a_refresh_token() {
    let config = load(
        "      provider: google\n      client_id: 123.apps.googleusercontent.com\n      \
         client_secret_env: GOOGLE_SECRET\n      refresh_token_file: secrets/g.token\n",
    )
    .unwrap();
    let account = &config.accounts[0];
    let oauth = account.oauth2.as_ref().unwrap();
    assert_eq!(oauth.provider, Provider::Google);
    assert_eq!(oauth.token_url, "https://oauth2.googleapis.com/token");
    assert_eq!(oauth.scope, "https://mail.google.com/");
    assert_eq!(oauth.client_secret, Some(SecretSource::Env("GOOGLE_SECRET".into())));
    let file = PathBuf::from("/etc/tidings/secrets/g.token");
    assert_eq!(oauth.refresh_token, SecretSource::File(file.clone()));
    assert_eq!(oauth.store, file, "a rotated token goes back to its file");
    assert_eq!(account.password, SecretSource::File(file), "start-up checks the refresh token");
}

#[test]
fn microsoft_has_its_scopes_and_a_token_from_the_environment_rotates_into_the_state_dir() {
    let config =
        load("      provider: microsoft\n      client_id: 9e5f94bc\n      refresh_token_env: MS_TOKEN\n").unwrap();
    let oauth = config.accounts[0].oauth2.as_ref().unwrap();
    assert_eq!(oauth.token_url, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
    assert!(oauth.scope.contains("https://outlook.office.com/IMAP.AccessAsUser.All"), "{}", oauth.scope);
    assert!(oauth.scope.contains("offline_access"), "{}", oauth.scope);
    assert_eq!(oauth.client_secret, None);
    assert_eq!(oauth.store, PathBuf::from("/var/lib/tidings/oauth2-g.token"));
}

#[test]
fn custom_needs_a_token_url_and_scope_and_https() {
    let found = problems("      provider: custom\n      client_id: c\n      refresh_token_env: T\n");
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("has no `token_url`")), "{found:#?}");
    assert!(messages.iter().any(|m| m.contains("has no `scope`")), "{found:#?}");
    let found = problems(
        "      provider: custom\n      client_id: c\n      refresh_token_env: T\n      \
         token_url: http://sso.example.com/token\n      scope: mail\n",
    );
    assert!(found[0].message.contains("is not https"), "{found:#?}");
    let local = "      provider: custom\n      client_id: c\n      refresh_token_env: T\n      \
                 token_url: http://127.0.0.1:8080/token\n      scope: mail\n";
    assert!(load(local).is_ok());
}

#[test]
fn every_mistake_is_named() {
    let found = problems(
        "      provider: yahoo\n      refresh_token_env: A\n      refresh_token_file: b\n      client_secret: x\n",
    );
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    for expected in
        ["client_secret", "provider", "has no `client_id`", "both `refresh_token_env` and `refresh_token_file`"]
    {
        assert!(messages.iter().any(|m| m.contains(expected)), "{expected}: {found:#?}");
    }
    let found = problems("      provider: google\n      client_id: c\n");
    assert!(found[0].message.contains("has no `refresh_token_file` or `refresh_token_env`"), "{found:#?}");
    assert!(found[0].hint.as_deref().unwrap_or("").contains("tidings auth"), "{found:#?}");
}

#[test]
fn a_password_and_oauth2_together_are_refused() {
    let yaml = format!(
        "{BASE}    password_env: P\n    oauth2:\n      provider: google\n      client_id: c\n      refresh_token_env: T\n"
    );
    let Err(Error::Invalid { problems, .. }) = Config::from_yaml(&yaml, Path::new("/etc/t.yaml")) else {
        panic!("expected an invalid config");
    };
    assert!(problems[0].message.contains("more than one password source"), "{problems:#?}");
}

#[test]
fn start_up_names_a_missing_refresh_token_or_client_secret() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "accounts:\n  g:\n    imap: { host: h }\n    username: u\n    oauth2:\n      provider: google\n      \
                client_id: c\n      client_secret_file: client\n      refresh_token_file: g.token\n";
    let config = Config::from_yaml(yaml, &dir.path().join("t.yaml")).unwrap();
    let error = format!("{:#}", anyhow::Error::from(config.resolve_secrets().unwrap_err()));
    assert!(error.contains("its OAuth2 refresh token; `tidings auth g` gets one"), "{error}");
    std::fs::write(dir.path().join("g.token"), "rt\n").unwrap();
    let error = format!("{:#}", anyhow::Error::from(config.resolve_secrets().unwrap_err()));
    assert!(error.contains("account `g` (its OAuth2 client secret)"), "{error}");
    std::fs::write(dir.path().join("client"), "cs\n").unwrap();
    assert_eq!(config.resolve_secrets().unwrap().passwords["g"].expose(), "rt");
}

#[test]
fn a_client_secret_file_may_be_the_bare_secret_or_googles_downloaded_json() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "accounts:\n  g:\n    imap: { host: h }\n    username: u\n    oauth2:\n      provider: google\n      \
                client_id: 123.apps.googleusercontent.com\n      client_secret_file: client.json\n      \
                refresh_token_file: g.token\n";
    std::fs::write(dir.path().join("g.token"), "rt\n").unwrap();
    let config = Config::from_yaml(yaml, &dir.path().join("t.yaml")).unwrap();
    let oauth = config.accounts[0].oauth2.as_ref().unwrap();
    let read = |content: &str| {
        std::fs::write(dir.path().join("client.json"), content).unwrap();
        oauth.read_client_secret().map(|s| s.map(|s| s.expose().clone())).map_err(|e| e.to_string())
    };
    assert_eq!(read("GOCSPX-bare\n"), Ok(Some("GOCSPX-bare".into())));
    let installed = r#"{"installed":{"client_id":"123.apps.googleusercontent.com","project_id":"p",
        "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token",
        "client_secret":"GOCSPX-json","redirect_uris":["http://localhost"]}}"#;
    assert_eq!(read(installed), Ok(Some("GOCSPX-json".into())));
    let web = r#"{"web":{"client_secret":"GOCSPX-web","client_id":"123.apps.googleusercontent.com"}}"#;
    assert_eq!(read(web), Ok(Some("GOCSPX-web".into())));
    // Each wrong JSON is a clear error that names what is missing and never shows a secret.
    let no_secret = read(r#"{"installed":{"client_id":"123.apps.googleusercontent.com"}}"#).unwrap_err();
    assert!(no_secret.contains("has no `client_secret`") && no_secret.contains("client.json"), "{no_secret}");
    let other = read(r#"{"installed":{"client_id":"999.apps","client_secret":"GOCSPX-x"}}"#).unwrap_err();
    assert!(other.contains("client `999.apps`, but `client_id` is `123.apps"), "{other}");
    assert!(!other.contains("GOCSPX"), "{other}");
    let neither = read(r#"{"client_secret":"GOCSPX-x"}"#).unwrap_err();
    assert!(neither.contains("without an `installed` or `web` object"), "{neither}");
    let broken = read("{\n  \"installed\": {\n    \"client_secret\": GOCSPX\n").unwrap_err();
    assert!(broken.contains("is not JSON (line 3, column 22)") && !broken.contains("GOCSPX"), "{broken}");
    // `check` reads it the same way: a JSON without a secret fails there, not at the first login.
    std::fs::write(dir.path().join("client.json"), r#"{"web":{"client_id":"123.apps.googleusercontent.com"}}"#)
        .unwrap();
    let error = format!("{:#}", anyhow::Error::from(config.resolve_secrets().unwrap_err()));
    assert!(
        error.contains("account `g` (its OAuth2 client secret)") && error.contains("no `client_secret`"),
        "{error}"
    );
}
