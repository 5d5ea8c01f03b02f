//! Whom tidings trusts, against the harness's real Dovecot (IMAP) and Postfix (SMTP), each over
//! implicit TLS and STARTTLS: a certificate from a CA the platform does not know is refused, and
//! accepted with that CA as `ca_file` or with the leaf pinned by `tls_fingerprint`; a wrong pin
//! is refused naming account, host and both fingerprints; a certificate for another host name
//! is refused even from a trusted CA, unless pinned; a self-signed certificate (a home server's)
//! is refused as its own `ca_file` and accepted pinned; an IMAP server that does not offer
//! STARTTLS is refused before any login, never used in clear; a webhook receiver with a
//! certificate from an unknown CA is refused in the handshake.

use std::path::Path;
use std::time::Duration;

use tidings::auth::Credentials;
use tidings::causes::error_chain;
use tidings::config::{Account, Config, Fingerprint, Secret, Server, Tls};
use tidings::exec::mail::smtp::{Smtp, SmtpError};
use tidings::imap::{Error, Login, Session, Timeouts};
use tidings::store::{ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Leaf, OTHER_NAME, TestEnv, User, message};

/// One way the account connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    ImapImplicit,
    ImapStartTls,
    SmtpImplicit,
    SmtpStartTls,
}

const WAYS: [Way; 4] = [Way::ImapImplicit, Way::ImapStartTls, Way::SmtpImplicit, Way::SmtpStartTls];

/// Why a connection was refused: whether it is a TLS error, and a pin mismatch, and the whole
/// error chain.
#[derive(Debug)]
struct Refusal {
    tls: bool,
    pin: bool,
    text: String,
}

/// Connects `user` to 127.0.0.1 the `way` given, trusting `ca_file` or `pin`, and logs in;
/// `Ok` once logged in over TLS (then logs out).
async fn connect(
    env: &TestEnv,
    user: &User,
    way: Way,
    ca_file: Option<&Path>,
    pin: Option<Fingerprint>,
) -> Result<(), Refusal> {
    let (port, tls) = match way {
        Way::ImapImplicit => (env.imaps_port, Tls::Implicit),
        Way::ImapStartTls => (env.imap_port, Tls::StartTls),
        Way::SmtpImplicit => (env.smtps_port, Tls::Implicit),
        Way::SmtpStartTls => (env.submission_port, Tls::StartTls),
    };
    let server = Server { host: "127.0.0.1".into(), port, tls, tls_fingerprint: pin };
    if matches!(way, Way::ImapImplicit | Way::ImapStartTls) {
        let login = Login {
            account: "home".into(),
            server,
            username: user.login.clone(),
            password: Secret::new(user.password.clone()),
            oauth2: None,
            ca_file: ca_file.map(Path::to_owned),
        };
        let refusal =
            |e: Error| Refusal { tls: e.is_tls(), pin: matches!(e, Error::Pin { .. }), text: error_chain(&e) };
        let session = Session::connect(&login, Timeouts::default()).await.map_err(refusal)?;
        session.logout().await.expect("logout");
        return Ok(());
    }
    let mut account = account(env, user);
    account.smtp = Some(server);
    account.ca_file = ca_file.map(Path::to_owned);
    let refusal =
        |e: SmtpError| Refusal { tls: e.is_tls(), pin: matches!(e, SmtpError::Pin { .. }), text: error_chain(&e) };
    let conn = Smtp::new(&account, &Credentials::new(&account, Secret::new(user.password.clone())))
        .connect()
        .await
        .map_err(refusal)?;
    assert!(conn.is_encrypted(), "{way:?}: logged in without TLS");
    conn.quit().await;
    Ok(())
}

/// The account `home` of `user`, as a config would give it (its servers are set per test).
fn account(env: &TestEnv, user: &User) -> Account {
    let yaml = format!(
        "accounts:\n  home:\n    imap: {{ host: 127.0.0.1 }}\n    smtp: {{ host: 127.0.0.1 }}\n    username: {login}\n    \
         password_env: TIDINGS_TEST_UNUSED\n    from: {login}\n",
        login = user.login,
    );
    let config = Config::from_yaml(&yaml, &env.dir.join("tls-test.yaml")).unwrap_or_else(|e| panic!("{e:#}"));
    config.accounts[0].clone()
}

/// Asserts that every way is refused with a TLS error whose chain contains `why`.
async fn refused_every_way(env: &TestEnv, user: &User, ca_file: Option<&Path>, pin: Option<Fingerprint>, why: &str) {
    for way in WAYS {
        let refusal = connect(env, user, way, ca_file, pin).await.expect_err(&format!("{way:?} must be refused"));
        assert!(refusal.tls && refusal.text.contains(why), "{way:?}: expected a TLS error with {why:?}: {refusal:?}");
    }
}

/// Asserts that every way logs in.
async fn accepted_every_way(env: &TestEnv, user: &User, ca_file: Option<&Path>, pin: Option<Fingerprint>) {
    for way in WAYS {
        if let Err(refusal) = connect(env, user, way, ca_file, pin).await {
            panic!("{way:?} with ca_file {ca_file:?}, pin {pin:?} was refused: {refusal:?}\n{}", env.log_tails());
        }
    }
}

#[tokio::test]
async fn an_unknown_ca_is_refused_and_accepted_with_its_ca_file_or_the_leaf_pinned() {
    let env = TestEnv::shared();
    let user = env.new_user();
    // The platform's roots do not include the harness's CA.
    refused_every_way(env, &user, None, None, "UnknownIssuer").await;
    accepted_every_way(env, &user, Some(&env.ca_file), None).await;
    let leaf = Fingerprint::of(env.server_certificate());
    accepted_every_way(env, &user, None, Some(leaf)).await;
    // A pin replaces the CA file's verdict: the harness CA is no use with a wrong pin.
    let wrong = Fingerprint::of(b"not the server's certificate");
    for way in WAYS {
        let refusal = connect(env, &user, way, Some(&env.ca_file), Some(wrong)).await.expect_err("a wrong pin");
        assert!(refusal.tls && refusal.pin, "{way:?}: {refusal:?}");
        let port = match way {
            Way::ImapImplicit => env.imaps_port,
            Way::ImapStartTls => env.imap_port,
            Way::SmtpImplicit => env.smtps_port,
            Way::SmtpStartTls => env.submission_port,
        };
        let expected = format!("the server presented certificate {leaf}, but tls_fingerprint pins {wrong}");
        assert!(refusal.text.contains(&expected), "{way:?}: {}", refusal.text);
        assert!(refusal.text.contains(&format!("127.0.0.1:{port}")), "{way:?} names the host: {}", refusal.text);
        assert!(refusal.text.contains("account `home`") || refusal.text.contains("account home"), "{}", refusal.text);
    }
}

/// A certificate from a trusted CA is refused when it does not name the host connected to;
/// pinned, the host name is not asked.
#[tokio::test]
async fn host_names_are_verified_unless_the_leaf_is_pinned() {
    let env = TestEnv::start_own_with_leaf(Leaf::OtherName);
    let user = env.new_user();
    refused_every_way(&env, &user, Some(&env.ca_file), None, "certificate not valid for name \"127.0.0.1\"").await;
    accepted_every_way(&env, &user, None, Some(Fingerprint::of(env.server_certificate()))).await;
    // The refusal was about the name: the certificate names another host (DNS names are ASCII
    // in the DER).
    assert!(String::from_utf8_lossy(env.server_certificate()).contains(OTHER_NAME));
}

/// A home server's self-signed certificate (CA:TRUE, as `openssl req -x509` makes it): rustls
/// refuses it even as its own CA file; pinned, it is accepted.
#[tokio::test]
async fn a_self_signed_certificate_is_refused_as_a_ca_file_and_accepted_pinned() {
    let env = TestEnv::start_own_with_leaf(Leaf::SelfSigned);
    let user = env.new_user();
    refused_every_way(&env, &user, Some(&env.ca_file), None, "CaUsedAsEndEntity").await;
    refused_every_way(&env, &user, None, Some(Fingerprint::of(b"another certificate")), "pins").await;
    accepted_every_way(&env, &user, None, Some(Fingerprint::of(env.server_certificate()))).await;
}

/// A Dovecot that does not offer STARTTLS (as when a man in the middle strips it) is refused
/// before the password goes out, though it would take a plaintext login: no silent fallback.
#[tokio::test]
async fn an_imap_server_without_starttls_is_refused_before_login() {
    let env = TestEnv::start_own_without_starttls();
    let user = env.new_user();
    let refusal = connect(&env, &user, Way::ImapStartTls, Some(&env.ca_file), None).await.expect_err("no STARTTLS");
    assert!(refusal.tls, "{refusal:?}");
    assert!(
        refusal.text.contains("the server does not offer STARTTLS, and the password is never sent in clear"),
        "{}",
        refusal.text
    );
    let logins = || {
        let log = std::fs::read_to_string(env.dir.join("log/dovecot.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("Login: user=<") && l.contains(&user.login)).count()
    };
    assert_eq!(logins(), 0, "no login reached the server:\n{}", env.log_tails());
    // The same server takes the same password in clear when told to (`tls: none`): the refusal
    // above was tidings' own.
    let account = account(&env, &user);
    let mut login = Login::new(&account, &Credentials::new(&account, Secret::new(user.password.clone())));
    login.server = Server { host: "127.0.0.1".into(), port: env.imap_port, tls: Tls::None, tls_fingerprint: None };
    Session::connect(&login, Timeouts::default()).await.expect("a plaintext login").logout().await.unwrap();
    crate::harness::wait_until(Duration::from_secs(5), "the plaintext login in Dovecot's log", || async {
        logins() == 1
    })
    .await;
}

/// Webhooks trust the platform's roots only: a receiver whose certificate comes from an unknown
/// CA is refused in the handshake. The receiver here is Dovecot's IMAPS port, a real TLS server
/// with the harness's certificate: had the certificate been accepted, the request would have
/// failed at HTTP instead (Dovecot does not answer it), and the error would say so.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_to_a_receiver_with_an_unknown_ca_is_refused_in_the_handshake() {
    let env = TestEnv::shared();
    let user = env.new_user();
    env.deliver_lmtp(&user, &message("ann@example.com", &user.address, "hook me", "x")).await.unwrap();
    let rule = r#"webhook("hook", #{ s: msg.subject });"#;
    let hook =
        format!("webhooks:\n  hook: {{ url: \"https://127.0.0.1:{}/hook\", max_attempts: 1 }}\n", env.imaps_port);
    let setup = Setup::with_top(env, &user, &[("hook.rhai", rule)], "backfill: all", &hook);
    let (status, log) = Daemon::spawn(&setup.config, &["run", "--once"]).wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    let store = Store::open(&setup.state()).await.unwrap();
    let failed = store.list_outbox(Some(ActionState::Failed), 10).await.unwrap();
    let [webhook] = failed.as_slice() else { panic!("one failed webhook: {failed:#?}\n{log}") };
    let error = webhook.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("invalid peer certificate") && error.contains("UnknownIssuer"), "{error}");
}
