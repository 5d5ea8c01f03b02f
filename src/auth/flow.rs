//! `tidings auth ACCOUNT`: the first refresh token, from a person at a browser.
//!
//! Google: the loopback redirect with PKCE (RFC 8252, RFC 7636). Its device flow does not allow
//! the `https://mail.google.com/` scope. A one-shot listener on 127.0.0.1 receives the code.
//! Microsoft: the device-code flow (RFC 8628): a code to enter at a URL, polled for.
//! The refresh token goes where the account reads it: its `refresh_token_file`, or for
//! `refresh_token_env` the store file next to the state database (read before the variable).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::token::{client_secret, write_atomically};
use super::{Error, http};
use crate::config::oauth2::Provider;
use crate::config::{Account, OAuth2, Secret};

/// How long a person has to finish in the browser.
const PATIENCE: Duration = Duration::from_secs(600);

/// Runs the account's flow; `say` prints instructions for the person. `port` fixes Google's
/// loopback listener (for an `ssh -L` tunnel; `None`: any free port). Returns where the
/// refresh token was stored.
pub async fn authorise(account: &Account, port: Option<u16>, say: impl Fn(&str)) -> Result<std::path::PathBuf, Error> {
    let flow = |reason: String| Error::Flow { account: account.name.clone(), reason };
    let Some(oauth) = &account.oauth2 else {
        return Err(flow("it has no `oauth2:` block".into()));
    };
    let refresh = match oauth.provider {
        Provider::Google => loopback(oauth, &account.name, port, &say).await?,
        Provider::Microsoft => {
            if let Some(port) = port {
                say(&format!("(--port {port} is not used: Microsoft's device-code flow needs no listener)"));
            }
            device_code(oauth, &account.name, &say).await?
        }
        Provider::Custom => {
            return Err(flow(
                "a `provider: custom` issuer has no known authorisation flow; get a refresh token with the \
                 provider's own tool and put it in `refresh_token_file`"
                    .into(),
            ));
        }
    };
    write_atomically(&oauth.store, refresh.expose()).map_err(|source| Error::Store {
        account: account.name.clone(),
        path: oauth.store.clone(),
        source,
    })?;
    Ok(oauth.store.clone())
}

/// PKCE: a random verifier and its S256 challenge.
pub fn pkce() -> (Secret<String>, String) {
    let verifier = URL_SAFE_NO_PAD.encode(random::<32>());
    let challenge = challenge_of(&verifier);
    (Secret::new(verifier), challenge)
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 4.2).
fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    bytes
}

async fn loopback(
    oauth: &OAuth2,
    account: &str,
    port: Option<u16>,
    say: &impl Fn(&str),
) -> Result<Secret<String>, Error> {
    let flow = |reason: String| Error::Flow { account: account.into(), reason };
    let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).await.map_err(|e| match port {
        Some(port) if e.kind() == std::io::ErrorKind::AddrInUse => flow(format!(
            "cannot listen on 127.0.0.1:{port}: the port is in use (by an `ssh -L` tunnel on this same machine, or \
             another program); choose another --port"
        )),
        _ => flow(format!("cannot listen on 127.0.0.1:{}: {e}", port.unwrap_or(0))),
    })?;
    let port = listener.local_addr().map_err(|e| flow(e.to_string()))?.port();
    let redirect = format!("http://127.0.0.1:{port}/");
    let (verifier, challenge) = pkce();
    let state = URL_SAFE_NO_PAD.encode(random::<16>());
    let authorize = Provider::Google.authorize_url().unwrap_or_default();
    let url = reqwest::Url::parse_with_params(
        authorize,
        [
            ("client_id", oauth.client_id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("response_type", "code"),
            ("scope", oauth.scope.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("state", state.as_str()),
        ],
    )
    .map_err(|e| flow(e.to_string()))?;
    say(&format!("Open this address in a browser on this machine and allow access:\n\n  {url}\n"));
    say(&format!("Waiting for the browser to come back to {redirect} ..."));
    let code = tokio::time::timeout(PATIENCE, receive_code(&listener, &state))
        .await
        .map_err(|_| flow(format!("no answer from the browser within {} minutes", PATIENCE.as_secs() / 60)))?
        .map_err(flow)?;
    let client_secret = client_secret(oauth, account)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose().as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", oauth.client_id.as_str()),
        ("code_verifier", verifier.expose().as_str()),
    ];
    if let Some(secret) = &client_secret {
        form.push(("client_secret", secret.expose()));
    }
    let (status, answer) = http::post(account, &oauth.token_url, &form).await?;
    let granted = http::granted(account, &oauth.token_url, status, answer)?;
    granted.refresh.ok_or_else(|| flow("the provider granted no refresh token".into()))
}

/// Accepts browser requests until one carries `code` and our `state`; answers each with a page.
async fn receive_code(listener: &TcpListener, state: &str) -> Result<Secret<String>, String> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&mut stream).read_line(&mut line).await.map_err(|e| e.to_string())?;
        let target = line.split_whitespace().nth(1).unwrap_or("/");
        let query = reqwest::Url::parse(&format!("http://127.0.0.1{target}")).map_err(|e| e.to_string())?;
        let get = |key: &str| query.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned());
        let (page, outcome) = match (get("code"), get("state"), get("error")) {
            (Some(code), Some(s), _) if s == state => {
                ("tidings: access granted. You can close this tab.", Some(Ok(code)))
            }
            (_, _, Some(error)) => {
                ("tidings: access was not granted.", Some(Err(format!("the provider said {error}"))))
            }
            _ => ("tidings: waiting for the authorisation.", None),
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        match outcome {
            Some(Ok(code)) => return Ok(Secret::new(code)),
            Some(Err(e)) => return Err(e),
            None => continue,
        }
    }
}

async fn device_code(oauth: &OAuth2, account: &str, say: &impl Fn(&str)) -> Result<Secret<String>, Error> {
    let flow = |reason: String| Error::Flow { account: account.into(), reason };
    // The device-code endpoint sits beside the token endpoint (a tenant's own, or `common`).
    let endpoint = match oauth.token_url.strip_suffix("/token") {
        Some(base) => format!("{base}/devicecode"),
        None => Provider::Microsoft.authorize_url().unwrap_or_default().to_owned(),
    };
    let endpoint = endpoint.as_str();
    let form = [("client_id", oauth.client_id.as_str()), ("scope", oauth.scope.as_str())];
    let (_, answer) = http::post(account, endpoint, &form).await?;
    if let Some(error) = answer.error {
        return Err(Error::Refused { account: account.into(), error, description: answer.error_description });
    }
    let (Some(device), Some(user_code), Some(uri)) = (answer.device_code, answer.user_code, answer.verification_uri)
    else {
        return Err(flow("the device-code answer lacks device_code, user_code or verification_uri".into()));
    };
    match answer.message {
        Some(message) => say(&message),
        None => say(&format!("Open {uri} and enter the code {user_code}")),
    }
    let mut interval = Duration::from_secs(answer.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(interval).await;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", oauth.client_id.as_str()),
            ("device_code", device.as_str()),
        ];
        let (status, answer) = http::post(account, &oauth.token_url, &form).await?;
        match answer.error.as_deref() {
            Some("authorization_pending") => continue,
            // RFC 8628 3.5: slow down by 5 seconds.
            Some("slow_down") => interval += Duration::from_secs(5),
            _ => {
                let granted = http::granted(account, &oauth.token_url, status, answer)?;
                return granted.refresh.ok_or_else(|| flow("the provider granted no refresh token".into()));
            }
        }
    }
    Err(flow(format!("the code was not entered within {} minutes", PATIENCE.as_secs() / 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(challenge_of(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let (verifier, challenge) = pkce();
        assert_eq!(verifier.expose().len(), 43);
        assert_eq!(challenge_of(verifier.expose()), challenge);
    }

    #[tokio::test]
    async fn the_loopback_listener_takes_the_code_with_our_state_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let browser = tokio::spawn(async move {
            let mut pages = Vec::new();
            for target in ["/favicon.ico", "/?code=wrong&state=other", "/?code=4%2Fabc&state=s1"] {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                s.write_all(format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.unwrap();
                let mut page = String::new();
                tokio::io::AsyncReadExt::read_to_string(&mut s, &mut page).await.unwrap();
                pages.push(page);
            }
            pages
        });
        let code = receive_code(&listener, "s1").await.unwrap();
        assert_eq!(code.expose(), "4/abc");
        let pages = browser.await.unwrap();
        assert!(pages[2].ends_with("You can close this tab."), "{}", pages[2]);
        assert!(pages[1].contains("waiting"), "{}", pages[1]);
    }
}
