//! SASL XOAUTH2 (Google's and Microsoft's mechanism for IMAP and SMTP).
//!
//! The client sends `user=<name>^Aauth=Bearer <token>^A^A`. A server that refuses the token
//! does not answer NO at once: it sends a continuation carrying a base64 JSON error
//! (`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`) and waits for
//! the client to answer with an empty line; only then comes the tagged NO. [`Imap`] does that
//! and keeps the JSON, so the error can say what the server said.

use crate::config::Secret;

/// The initial client response: `user=<user>\x01auth=Bearer <token>\x01\x01`.
pub fn initial_response(user: &str, token: &Secret<String>) -> Secret<String> {
    Secret::new(format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose()))
}

/// The IMAP authenticator: the token first, an empty line to any further challenge.
pub struct Imap {
    response: Option<Secret<String>>,
    /// The server's error challenge, decoded, once it sent one.
    pub refusal: Option<String>,
}

impl Imap {
    /// An authenticator logging in `user` with access `token`.
    pub fn new(user: &str, token: &Secret<String>) -> Imap {
        Imap { response: Some(initial_response(user, token)), refusal: None }
    }
}

impl async_imap::Authenticator for &mut Imap {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        match self.response.take() {
            Some(response) => response.expose().as_bytes().to_vec(),
            None => {
                // The JSON error: keep it for the message, answer with an empty line.
                self.refusal = Some(String::from_utf8_lossy(challenge).into_owned());
                Vec::new()
            }
        }
    }
}

/// What a server's XOAUTH2 error challenge says, for a person: `status 401, scope ...`; the
/// raw text (cut short) if it is not the JSON expected.
pub fn describe(refusal: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(refusal) {
        Ok(fields) if !fields.is_empty() => {
            let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
            fields.iter().map(|(k, v)| format!("{k} {}", text(v))).collect::<Vec<_>>().join(", ")
        }
        _ => refusal.chars().filter(|c| !c.is_control()).take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::Authenticator;

    #[test]
    fn sends_the_token_then_an_empty_line_and_keeps_the_refusal() {
        let mut auth = Imap::new("me@example.com", &Secret::new("ya29.token".into()));
        assert_eq!((&mut auth).process(b""), b"user=me@example.com\x01auth=Bearer ya29.token\x01\x01".to_vec());
        let json = br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
        assert_eq!((&mut auth).process(json), Vec::<u8>::new());
        let said = describe(auth.refusal.as_deref().unwrap());
        assert_eq!(said, "schemes Bearer, scope https://mail.google.com/, status 400");
    }

    #[test]
    fn describes_what_is_not_json_without_control_characters() {
        assert_eq!(describe("bad\r\ntoken"), "badtoken");
    }
}
