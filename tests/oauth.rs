//! OAuth2 against a real local token endpoint (`harness::TokenEndpoint`, HTTP/1.1 on
//! 127.0.0.1): access tokens reused until a minute before expiry, then refreshed; a rotated
//! refresh token written back to its file and used after a restart; a revoked token reported
//! naming the account and treated as an auth failure (the slow backoff, no loop). XOAUTH2
//! logins against Dovecot whose oauth2 passdb introspects tokens at that endpoint, IMAP and
//! SMTP (Postfix authenticating through Dovecot). `tidings auth` for Google (loopback + PKCE)
//! and Microsoft (device code) against the same endpoint, and as the binary runs it, with a
//! fixed `--port` and Google's client JSON as the client secret file.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use tidings::auth::{Credentials, OAuth, access_token, forget_access_token};
use tidings::config::{Account, Config, Secret};
use tidings::exec::mail::smtp::Smtp;
use tidings::imap::{Backoff, Login, Session, Timeouts};

use crate::harness::{TestEnv, TokenEndpoint};

/// `account`'s OAuth2 settings with a token cache of their own, as a fresh run would make.
fn cache(account: &Account) -> OAuth {
    Credentials::new(account, Secret::new(String::new())).oauth2.expect("an oauth2 account")
}

/// A config with one OAuth2 account `work` whose refresh token is in `work.token` in `dir`
/// (written with `refresh_token`), its IMAP server `imap` (a YAML flow map) and extra lines.
fn account(dir: &Path, endpoint: &TokenEndpoint, refresh_token: Option<&str>, imap: &str, extra: &str) -> Account {
    std::fs::write(dir.join("client-secret"), "s3cret-client\n").unwrap();
    if let Some(token) = refresh_token {
        std::fs::write(dir.join("work.token"), format!("{token}\n")).unwrap();
    }
    let yaml = format!(
        "state: state.db\naccounts:\n  work:\n    imap: {imap}\n    username: me@tidings.test\n{extra}    oauth2:\n      \
         provider: custom\n      client_id: tidings-test\n      client_secret_file: client-secret\n      \
         refresh_token_file: work.token\n      token_url: {}\n      scope: mail\n",
        endpoint.url("/token")
    );
    let config = Config::from_yaml(&yaml, &dir.join("tidings.yaml")).unwrap_or_else(|e| panic!("{e}"));
    config.resolve_secrets().unwrap_or_else(|e| panic!("{e}"));
    config.accounts.into_iter().next().unwrap()
}

fn offline(dir: &Path, endpoint: &TokenEndpoint, refresh_token: Option<&str>) -> Account {
    account(dir, endpoint, refresh_token, "{ host: 127.0.0.1, port: 1, tls: implicit }", "")
}

#[tokio::test]
async fn an_access_token_is_reused_until_a_minute_before_it_expires() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    endpoint.grant("rt-0", "me@tidings.test");
    let work = offline(dir.path(), &endpoint, Some("rt-0"));
    let oauth = &cache(&work);
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-1");
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-1", "an hour-long token is reused");
    let sent = endpoint.requests("/token");
    assert_eq!(sent.len(), 1);
    let form = &sent[0].form;
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], "rt-0");
    assert_eq!(form["client_id"], "tidings-test");
    assert_eq!(form["client_secret"], "s3cret-client");
    assert_eq!(form["scope"], "mail");

    // 62 s: usable for 2 s more before the one-minute margin, then refreshed while the old one
    // is still valid at the endpoint.
    endpoint.set_expires_in(62);
    forget_access_token(oauth).await;
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-2");
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-2");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-3", "refreshed before it expires");

    // A token that expires within the margin is never reused: every login refreshes.
    endpoint.set_expires_in(30);
    forget_access_token(oauth).await;
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-4");
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-5");
    assert_eq!(endpoint.requests("/token").len(), 5);
    Ok(())
}

#[tokio::test]
async fn a_rotated_refresh_token_is_written_back_and_used_after_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    endpoint.grant("rt-0", "me@tidings.test");
    endpoint.rotate(true);
    let file = dir.path().join("work.token");
    let work = offline(dir.path(), &endpoint, Some("rt-0"));
    let oauth = &cache(&work);
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-1");
    assert_eq!(std::fs::read_to_string(&file)?, "rt-1\n", "the rotated token replaced the old one in its file");
    assert_eq!(endpoint.valid_refresh_tokens(), ["rt-1"]);

    // The next refresh of the same run sends the new token, from memory.
    forget_access_token(oauth).await;
    assert_eq!(access_token(oauth, "work").await?.expose(), "at-2");
    assert_eq!(endpoint.requests("/token")[1].form["refresh_token"], "rt-1");
    assert_eq!(std::fs::read_to_string(&file)?, "rt-2\n");

    // A restart (the config loaded afresh) reads the file: the old token would be refused.
    let restarted = offline(dir.path(), &endpoint, None);
    assert_eq!(access_token(&cache(&restarted), "work").await?.expose(), "at-3");
    assert_eq!(endpoint.requests("/token")[2].form["refresh_token"], "rt-2");
    assert_eq!(std::fs::read_to_string(&file)?, "rt-3\n");
    let left: Vec<_> = std::fs::read_dir(dir.path())?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "no temp file left: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_revoked_refresh_token_is_a_clear_auth_error_not_a_loop() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    endpoint.grant("rt-revoked", "me@tidings.test");
    let work = offline(dir.path(), &endpoint, Some("rt-revoked"));
    let oauth = &cache(&work);
    access_token(oauth, "work").await?;
    // The user removes the app's access; the access token in hand is dropped, as after a
    // refused login.
    endpoint.revoke("rt-revoked");
    forget_access_token(oauth).await;
    let error = access_token(oauth, "work").await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("account `work`"), "{text}");
    assert!(text.contains("invalid_grant: Token has been expired or revoked."), "{text}");
    assert!(text.contains("run `tidings auth work`"), "{text}");
    assert!(!text.contains("rt-revoked"), "the token is never shown: {text}");
    assert!(error.is_permanent());

    // Through an IMAP connect: an auth failure, which waits the slow delay; one token request
    // per attempt, the IMAP server never contacted (port 1 would refuse).
    let login = Login::new(&work, &Credentials::new(&work, Secret::new(String::new())));
    let error = Session::connect(&login, Timeouts::default()).await.expect_err("the login fails");
    assert!(error.is_auth(), "{error:#}");
    assert!(!error.is_transient(), "{error:#}");
    let slow = Duration::from_secs(900);
    let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(300), slow, 1);
    assert_eq!(backoff.delay_for(&error), slow);
    assert_eq!(endpoint.requests("/token").len(), 3);
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(chain.contains("no OAuth2 access token") && chain.contains("account `work`"), "{chain}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_transient() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    let work = offline(dir.path(), &endpoint, Some("rt-0"));
    drop(endpoint);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let login = Login::new(&work, &Credentials::new(&work, Secret::new(String::new())));
    let error = Session::connect(&login, Timeouts::default()).await.expect_err("no endpoint");
    assert!(error.is_transient() && !error.is_auth(), "{error:#}");
    Ok(())
}

/// XOAUTH2 against Dovecot's oauth2 passdb, which introspects every token at the endpoint.
#[tokio::test]
async fn xoauth2_logs_in_to_dovecot_and_a_refused_token_is_reported_and_dropped() -> Result<()> {
    let endpoint = TokenEndpoint::start(3600);
    let env = TestEnv::start_own_oauth(&endpoint)?;
    let me = env.new_user();
    endpoint.grant("rt-0", &me.login);
    let dir = tempfile::tempdir()?;
    let imap = format!("{{ host: 127.0.0.1, port: {}, tls: implicit }}", env.imaps_port);
    let extra = format!(
        "    ca_file: {}\n    smtp: {{ host: 127.0.0.1, port: {}, tls: implicit }}\n    from: {}\n",
        env.ca_file.display(),
        env.smtps_port,
        me.address
    );
    let mut work = account(dir.path(), &endpoint, Some("rt-0"), &imap, &extra);
    work.username = me.login.clone();
    let credentials = Credentials::new(&work, Secret::new(String::new()));
    let login = Login::new(&work, &credentials);
    let mut session = Session::connect(&login, Timeouts::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", env.log_tails()))?;
    session.select("INBOX").await?;
    let introspected = endpoint.requests("/introspect");
    assert_eq!(introspected.len(), 1, "Dovecot asked the endpoint");
    assert_eq!(introspected[0].form["token"], "at-1");

    // SMTP: Postfix authenticates through Dovecot, the same passdb.
    let smtp = Smtp::new(&work, &credentials);
    let connection = smtp.connect().await;
    assert!(connection.is_ok(), "{:#}\n{}", anyhow::Error::from(connection.err().unwrap()), env.log_tails());
    assert_eq!(endpoint.requests("/token").len(), 1, "IMAP and SMTP share the access token");

    // The endpoint stops vouching for the token (introspection says inactive) while tidings
    // still holds it: the server's refusal is reported with what it said, the token dropped,
    // and the next login refreshes first.
    endpoint.set_expires_in(0);
    forget_access_token(credentials.oauth2.as_ref().unwrap()).await;
    let error = Session::connect(&login, Timeouts::default()).await.expect_err("an inactive token is refused");
    assert!(error.is_auth(), "{error:#}");
    let text = error.to_string();
    // Dovecot's JSON challenge, answered with an empty line and decoded: `status 401`.
    assert!(text.contains("with XOAUTH2: the server refused the access token ("), "{text}");
    assert!(text.contains("status 401"), "{text}");
    assert!(text.contains("account `work`") && text.contains(&me.login), "{text}");
    assert!(!text.contains("at-2"), "no token in the message: {text}");
    endpoint.set_expires_in(3600);
    let mut again = Session::connect(&login, Timeouts::default()).await?;
    again.select("INBOX").await?;
    assert_eq!(endpoint.requests("/token").len(), 3, "refreshed after the refusal");
    Ok(())
}

/// An account of `provider` whose token endpoint is the test's, without a refresh token yet;
/// its config is written to `tidings.yaml` in `dir` too.
fn unauthorised(dir: &Path, endpoint: &TokenEndpoint, provider: &str) -> Account {
    std::fs::write(dir.join("client-secret"), "s3cret-client\n").unwrap();
    let yaml = format!(
        "state: state.db\naccounts:\n  work:\n    imap: {{ host: 127.0.0.1 }}\n    username: me@tidings.test\n    \
         oauth2:\n      provider: {provider}\n      client_id: tidings-test\n      client_secret_file: client-secret\n      \
         refresh_token_file: work.token\n      token_url: {}\n",
        endpoint.url("/token")
    );
    std::fs::write(dir.join("tidings.yaml"), &yaml).unwrap();
    let config = Config::from_yaml(&yaml, &dir.join("tidings.yaml")).unwrap_or_else(|e| panic!("{e}"));
    config.accounts.into_iter().next().unwrap()
}

/// `tidings auth` for Google: the printed address carries a PKCE challenge and a loopback
/// redirect; a browser (played by a thread) comes back with a code; the code is exchanged with
/// the verifier (the endpoint checks it against the challenge) and the refresh token stored.
#[tokio::test]
async fn auth_for_google_takes_the_loopback_redirect_with_pkce_and_stores_the_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    let work = unauthorised(dir.path(), &endpoint, "google");
    let browser = std::sync::Mutex::new(None);
    let say = |text: &str| {
        let Some(start) = text.find("https://accounts.google.com/") else { return };
        let url = reqwest::Url::parse(text[start..].split_whitespace().next().unwrap()).unwrap();
        let get = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
        assert_eq!(get("scope"), "https://mail.google.com/");
        assert_eq!(get("code_challenge_method"), "S256");
        assert_eq!(get("access_type"), "offline");
        endpoint.expect_code("4/code", &get("code_challenge"), "me@tidings.test");
        let back = format!("{}?state={}&code=4%2Fcode&scope=x", get("redirect_uri"), get("state"));
        *browser.lock().unwrap() = Some(std::thread::spawn(move || come_back(&back)));
    };
    let stored = tidings::auth::flow::authorise(&work, None, say).await?;
    let page = browser.lock().unwrap().take().expect("the address was printed").join().unwrap();
    assert!(page.contains("You can close this tab"), "{page}");
    assert_eq!(stored, dir.path().join("work.token"));
    assert_eq!(std::fs::read_to_string(&stored)?, "rt-new-1\n");
    let exchange = &endpoint.requests("/token")[0].form;
    assert_eq!(exchange["client_secret"], "s3cret-client");
    // The stored token works: the account refreshes with it.
    assert_eq!(access_token(&cache(&work), "work").await?.expose(), "at-2");
    assert_eq!(endpoint.requests("/token")[1].form["refresh_token"], "rt-new-1");
    Ok(())
}

/// The browser coming back to the loopback redirect `url` (with its query); the page it shows.
fn come_back(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    let mut s = std::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap());
    std::io::Write::write_all(&mut s, format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut s, &mut page).unwrap();
    page
}

/// `tidings auth work --port N` as a user on a headless server runs it (behind `ssh -L
/// N:127.0.0.1:N`): the listener is on 127.0.0.1:N and the redirect says so; the client secret
/// is Google's downloaded JSON as it is. A port in use is a clear error naming it, exit 1.
#[test]
fn auth_with_a_fixed_port_listens_there_and_reads_googles_client_json() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = TokenEndpoint::start(3600);
    unauthorised(dir.path(), &endpoint, "google");
    let json = r#"{"installed":{"client_id":"tidings-test","project_id":"tidings-1","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token","client_secret":"GOCSPX-from-json","redirect_uris":["http://localhost"]}}"#;
    std::fs::write(dir.path().join("client-secret"), json).unwrap();
    let config = dir.path().join("tidings.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--config", config.to_str().unwrap(), "auth", "work", "--port", &port.to_string()])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let printed = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.trim().starts_with("https://accounts.google.com/").then(|| line.trim().to_owned()))
        .expect("the address is printed");
    let url = reqwest::Url::parse(&printed).unwrap();
    let get = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    assert_eq!(get("redirect_uri"), format!("http://127.0.0.1:{port}/"));
    endpoint.expect_code("4/fixed", &get("code_challenge"), "me@tidings.test");
    // The browser at the far end of the tunnel reaches exactly 127.0.0.1:port.
    let page = come_back(&format!("http://127.0.0.1:{port}/?state={}&code=4%2Ffixed", get("state")));
    assert!(page.contains("You can close this tab"), "{page}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join("work.token")).unwrap(), "rt-new-1\n");
    let exchange = &endpoint.requests("/token")[0].form;
    assert_eq!(exchange["client_secret"], "GOCSPX-from-json", "the secret taken out of Google's JSON");
    assert_eq!(exchange["redirect_uri"], format!("http://127.0.0.1:{port}/"));
    println!("tidings auth --port {port}: listened there, token stored");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--config", config.to_str().unwrap(), "auth", "work", "--port", &busy.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{busy}: the port is in use")), "{stderr}");
    assert!(stderr.contains("choose another --port"), "{stderr}");
}

/// `tidings auth` for Microsoft: the device-code flow, polling at the interval given while the
/// person has not entered the code yet.
#[tokio::test]
async fn auth_for_microsoft_polls_the_device_code_and_stores_the_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    endpoint.expect_device("me@tidings.test", 1);
    let work = unauthorised(dir.path(), &endpoint, "microsoft");
    let said = std::sync::Mutex::new(Vec::new());
    let stored = tidings::auth::flow::authorise(&work, None, |text| said.lock().unwrap().push(text.to_owned())).await?;
    let said = said.into_inner().unwrap().join("\n");
    assert!(said.contains("enter the code ABCD-EFGH"), "{said}");
    assert_eq!(std::fs::read_to_string(&stored)?, "rt-new-1\n");
    let asked = &endpoint.requests("/devicecode")[0].form;
    assert!(asked["scope"].contains("offline_access"), "{asked:?}");
    let polls = endpoint.requests("/token");
    assert_eq!(polls.len(), 2, "one pending answer, then the grant");
    assert_eq!(polls[1].form["device_code"], "dc-1");
    Ok(())
}

/// `tidings auth` as users run it: the device flow's instructions on stderr, where the token
/// went on stdout, exit 0; an account without `oauth2:` or an unknown one exits 2.
#[test]
fn the_auth_command_runs_the_flow_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = TokenEndpoint::start(3600);
    endpoint.expect_device("me@tidings.test", 0);
    unauthorised(dir.path(), &endpoint, "microsoft");
    let config = dir.path().join("tidings.yaml");
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("accounts:\n", "accounts:\n  plain:\n    imap: { host: h }\n    username: u\n    password_env: P\n");
    std::fs::write(&config, yaml).unwrap();
    let run = |account: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["--config", config.to_str().unwrap(), "auth", account])
            .output()
            .unwrap()
    };
    let ok = run("work");
    let (stdout, stderr) = (String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    assert!(ok.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("enter the code ABCD-EFGH"), "{stderr}");
    assert!(stdout.contains("account `work`: refresh token stored in") && stdout.contains("work.token"), "{stdout}");
    assert!(!stdout.contains("rt-new") && !stderr.contains("rt-new"), "the token is never printed");
    assert_eq!(std::fs::read_to_string(dir.path().join("work.token")).unwrap(), "rt-new-1\n");
    let plain = run("plain");
    assert_eq!(plain.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("account `plain` has no `oauth2:` block"));
    let unknown = run("nope");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account `nope`"));
}

/// A refresh token from the environment cannot be written back: a rotated one goes to
/// `oauth2-ACCOUNT.token` beside the state database and is read before the variable from then
/// on. (`HOME` plays the variable: tests cannot set one safely while others run.)
#[tokio::test]
async fn a_rotated_token_from_the_environment_goes_to_the_store_file_and_wins_after_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = TokenEndpoint::start(3600);
    let from_env = std::env::var("HOME")?;
    endpoint.grant(&from_env, "me@tidings.test");
    endpoint.rotate(true);
    let yaml = format!(
        "state: state.db\naccounts:\n  work:\n    imap: {{ host: 127.0.0.1 }}\n    username: me@tidings.test\n    \
         oauth2:\n      provider: custom\n      client_id: tidings-test\n      refresh_token_env: HOME\n      \
         token_url: {}\n      scope: mail\n",
        endpoint.url("/token")
    );
    let load = || Config::from_yaml(&yaml, &dir.path().join("tidings.yaml")).unwrap().accounts.remove(0);
    let work = load();
    assert_eq!(access_token(&cache(&work), "work").await?.expose(), "at-1");
    let store = dir.path().join("oauth2-work.token");
    assert_eq!(std::fs::read_to_string(&store)?, "rt-1\n");
    let restarted = load();
    assert_eq!(access_token(&cache(&restarted), "work").await?.expose(), "at-2");
    assert_eq!(endpoint.requests("/token")[1].form["refresh_token"], "rt-1", "the store beat the variable");
    Ok(())
}
