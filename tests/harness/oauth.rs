//! A real OAuth2 token endpoint on a free 127.0.0.1 port (hand-written HTTP/1.1, own threads,
//! blocking sockets, as `receiver.rs`), and a Dovecot whose oauth2 passdb asks it.
//!
//! The endpoint keeps the grants a provider keeps: refresh tokens that are valid (revoke one
//! to see `invalid_grant`), access tokens it issued with their user and expiry. It serves
//! - `POST /token`, `grant_type=refresh_token` (RFC 6749 6): a new access token (`at-N`), and
//!   with rotation on a new refresh token (`rt-N`) that replaces the one used;
//! - `POST /token`, `grant_type=authorization_code` with a PKCE verifier checked against the
//!   challenge the test registered, and the device-code grant (`POST /devicecode` first);
//! - `POST /introspect`, `token=...` (RFC 7662), for Dovecot: `{"active": true, "username":
//!   ...}` for an access token it issued and that has not expired, else `{"active": false}`.
//!
//! Every request is recorded with its form fields, so tests can count refreshes and check
//! what was sent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::TestEnv;

/// One request: its path and form fields.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// e.g. `/token`.
    pub path: String,
    /// The form fields, decoded.
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct Grants {
    /// Valid refresh tokens and the user each was granted for.
    refresh: HashMap<String, String>,
    /// Issued access tokens: user and expiry.
    access: HashMap<String, (String, Instant)>,
    issued: u32,
    expires_in: u64,
    rotate: bool,
    requests: Vec<TokenRequest>,
    /// Authorization codes a browser was given: code -> (PKCE challenge, user).
    codes: HashMap<String, (String, String)>,
    /// Device codes: device code -> (user, polls still answered `authorization_pending`).
    devices: HashMap<String, (String, u32)>,
}

/// The endpoint; dropping it closes the port.
pub struct TokenEndpoint {
    /// Its port.
    pub port: u16,
    grants: Arc<Mutex<Grants>>,
    stop: Arc<AtomicBool>,
}

impl TokenEndpoint {
    /// Listens on a free port; access tokens live `expires_in` seconds; no refresh token yet.
    pub fn start(expires_in: u64) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a token endpoint port");
        let port = listener.local_addr().unwrap().port();
        let grants = Arc::new(Mutex::new(Grants { expires_in, ..Grants::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (grants.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let g = g.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &g);
                    });
                }
            }
        });
        TokenEndpoint { port, grants, stop }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Grants `refresh_token` for `user`.
    pub fn grant(&self, refresh_token: &str, user: &str) {
        self.grants.lock().unwrap().refresh.insert(refresh_token.into(), user.into());
    }

    /// Revokes `refresh_token` (a user removing the app's access).
    pub fn revoke(&self, refresh_token: &str) {
        self.grants.lock().unwrap().refresh.remove(refresh_token);
    }

    /// Rotates the refresh token on every refresh from now on.
    pub fn rotate(&self, on: bool) {
        self.grants.lock().unwrap().rotate = on;
    }

    /// Access tokens issued from now on live this long.
    pub fn set_expires_in(&self, seconds: u64) {
        self.grants.lock().unwrap().expires_in = seconds;
    }

    /// Accepts `code` once, for `user`, if the verifier sent with it matches the S256
    /// `challenge` (as Google's page would have recorded it).
    pub fn expect_code(&self, code: &str, challenge: &str, user: &str) {
        self.grants.lock().unwrap().codes.insert(code.into(), (challenge.into(), user.into()));
    }

    /// `POST /devicecode` hands out device code `dc-1` for `user`; polls get
    /// `authorization_pending` `pending` times before the grant.
    pub fn expect_device(&self, user: &str, pending: u32) {
        self.grants.lock().unwrap().devices.insert("dc-1".into(), (user.into(), pending));
    }

    /// The refresh tokens currently valid.
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        self.grants.lock().unwrap().refresh.keys().cloned().collect()
    }

    /// Every access token issued so far (to look for them where they must not be).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.grants.lock().unwrap().access.keys().cloned().collect()
    }

    /// Requests to `path` so far.
    pub fn requests(&self, path: &str) -> Vec<TokenRequest> {
        self.grants.lock().unwrap().requests.iter().filter(|r| r.path == path).cloned().collect()
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, grants: &Mutex<Grants>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut form = decode_form(query);
    form.extend(decode_form(&String::from_utf8_lossy(&body)));
    let (status, json) = answer(path, &form, grants);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
        json.len()
    )?;
    out.flush()
}

fn answer(path: &str, form: &HashMap<String, String>, grants: &Mutex<Grants>) -> (u16, String) {
    let mut g = grants.lock().unwrap();
    g.requests.push(TokenRequest { path: path.into(), form: form.clone() });
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    match path {
        "/token" if field("grant_type") == "refresh_token" => {
            let used = field("refresh_token");
            let Some(user) = g.refresh.get(&used).cloned() else {
                return (
                    400,
                    r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#.into(),
                );
            };
            g.issued += 1;
            let n = g.issued;
            let access = format!("at-{n}");
            let lifetime = Duration::from_secs(g.expires_in);
            g.access.insert(access.clone(), (user.clone(), Instant::now() + lifetime));
            let rotated = if g.rotate {
                let new = format!("rt-{n}");
                g.refresh.remove(&used);
                g.refresh.insert(new.clone(), user);
                format!(r#","refresh_token":"{new}""#)
            } else {
                String::new()
            };
            (
                200,
                format!(
                    r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{}{rotated}}}"#,
                    g.expires_in
                ),
            )
        }
        "/token" if field("grant_type") == "authorization_code" => {
            let Some((challenge, user)) = g.codes.remove(&field("code")) else {
                return (400, r#"{"error":"invalid_grant","error_description":"unknown code"}"#.into());
            };
            if s256(&field("code_verifier")) != challenge || !field("redirect_uri").starts_with("http://127.0.0.1:") {
                return (400, r#"{"error":"invalid_grant","error_description":"PKCE or redirect mismatch"}"#.into());
            }
            grant_new(&mut g, user)
        }
        "/token" if field("grant_type") == "urn:ietf:params:oauth:grant-type:device_code" => {
            match g.devices.get_mut(&field("device_code")) {
                Some((_, pending)) if *pending > 0 => {
                    *pending -= 1;
                    (400, r#"{"error":"authorization_pending"}"#.into())
                }
                Some(_) => {
                    let (user, _) = g.devices.remove(&field("device_code")).unwrap();
                    grant_new(&mut g, user)
                }
                None => (400, r#"{"error":"expired_token"}"#.into()),
            }
        }
        "/token" => (400, r#"{"error":"unsupported_grant_type"}"#.into()),
        "/devicecode" if g.devices.contains_key("dc-1") => (
            200,
            r#"{"device_code":"dc-1","user_code":"ABCD-EFGH","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":1,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."}"#.into(),
        ),
        "/introspect" => match g.access.get(&field("token")) {
            Some((user, until)) if Instant::now() < *until => {
                (200, format!(r#"{{"active":true,"username":"{user}","scope":"mail"}}"#))
            }
            _ => (200, r#"{"active":false}"#.into()),
        },
        _ => (404, "{}".into()),
    }
}

/// A first refresh token (`rt-new-N`) and access token for `user`.
fn grant_new(g: &mut Grants, user: String) -> (u16, String) {
    g.issued += 1;
    let n = g.issued;
    let (refresh, access) = (format!("rt-new-{n}"), format!("at-{n}"));
    g.refresh.insert(refresh.clone(), user.clone());
    g.access.insert(access.clone(), (user, Instant::now() + Duration::from_secs(g.expires_in)));
    (200, format!(r#"{{"access_token":"{access}","refresh_token":"{refresh}","expires_in":{}}}"#, g.expires_in))
}

/// `BASE64URL(SHA256(verifier))`, RFC 7636 4.2, computed here independently of tidings.
fn s256(verifier: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

fn decode_form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TestEnv {
    /// An own environment whose Dovecot also accepts AUTHENTICATE XOAUTH2, checking each
    /// token by POSTing it to `endpoint`'s `/introspect` (Dovecot's oauth2 passdb,
    /// `introspection_mode = post`). Password logins work as in every environment.
    pub fn start_own_oauth(endpoint: &TokenEndpoint) -> Result<TestEnv> {
        let mut env = TestEnv::start_own();
        env.stop_dovecot();
        let dir = env.layout.dir.join("dovecot");
        let oauth_conf = dir.join("oauth2.conf.ext");
        std::fs::write(
            &oauth_conf,
            format!(
                "introspection_mode = post\nintrospection_url = {}\nusername_attribute = username\n\
                 active_attribute = active\nactive_value = true\n",
                endpoint.url("/introspect")
            ),
        )?;
        let conf = dir.join("dovecot.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&format!(
            "\n# tests/harness/oauth.rs: XOAUTH2, tokens checked by the test's token endpoint.\n\
             auth_mechanisms = plain login xoauth2\n\
             passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {}\n}}\n",
            oauth_conf.display()
        ));
        std::fs::write(&conf, text).context("writing dovecot.conf")?;
        env.start_dovecot();
        Ok(env)
    }
}
