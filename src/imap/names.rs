//! Mailbox names: from the UTF-8 paths of rules and config (`Lists/rust`, always `/`) to the
//! server's form (modified UTF-7, its hierarchy delimiter, its personal namespace prefix such
//! as `INBOX.` on Courier-style servers) and back; and reading that prefix with NAMESPACE.
//!
//! NAMESPACE is the one exchange done beside async-imap: imap-proto cannot parse its answer
//! and would leave the stream stuck on it. It is sent right after login, when no response is
//! buffered, and its answer is read byte by byte up to its own tagged line, so nothing meant
//! for async-imap is consumed. It must not be used anywhere else.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connect::Conn;
use super::mutf7;

/// How this server names mailboxes, learnt once after login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Names {
    /// The hierarchy delimiter (from `LIST "" ""`); `None` for a flat server.
    pub delimiter: Option<char>,
    /// The personal namespace prefix in server form, e.g. `INBOX.`; usually empty.
    pub prefix: String,
}

impl Names {
    /// The server's name for a UTF-8 path: `/` becomes the delimiter, the prefix goes in front
    /// (not for INBOX and its children, nor when the path already starts with it), and the
    /// whole is modified UTF-7.
    pub fn to_server(&self, path: &str) -> String {
        let mut parts: Vec<&str> = path.split('/').collect();
        let inbox = parts[0].eq_ignore_ascii_case("INBOX");
        if inbox {
            parts[0] = "INBOX";
        }
        let joined = match self.delimiter {
            Some(d) => parts.join(d.encode_utf8(&mut [0; 4])),
            None => parts.join("/"),
        };
        let encoded = mutf7::encode(&joined);
        if inbox || self.prefix.is_empty() || encoded.starts_with(&self.prefix) {
            encoded
        } else {
            format!("{}{encoded}", self.prefix)
        }
    }

    /// The UTF-8 path for a name the server sent: decoded (kept as sent if it is not valid
    /// modified UTF-7), prefix removed, delimiter turned into `/`.
    pub fn to_path(&self, server_name: &str) -> String {
        let inbox = server_name.eq_ignore_ascii_case("INBOX");
        let bare = match server_name.strip_prefix(self.prefix.as_str()) {
            Some(rest) if !inbox && !self.prefix.is_empty() && !rest.is_empty() => rest,
            _ => server_name,
        };
        let decoded = mutf7::decode(bare).unwrap_or_else(|_| bare.to_owned());
        match self.delimiter {
            Some(d) if d != '/' => decoded.replace(d, "/"),
            _ => decoded,
        }
    }
}

/// The personal namespace `(prefix, delimiter)` from the server, raw as described above.
/// `Ok(None)` when the server has no personal namespace or answers in a form (literals) this
/// small reader does not take; an `Err` leaves the connection unusable.
pub(super) async fn personal_namespace(conn: &mut Conn) -> io::Result<Option<(String, Option<char>)>> {
    const TAG: &str = "tdns1";
    let stream = conn.get_mut();
    stream.write_all(format!("{TAG} NAMESPACE\r\n").as_bytes()).await?;
    stream.flush().await?;
    let mut found = None;
    loop {
        let line = read_line(stream).await?;
        if let Some(rest) = line.strip_prefix(TAG) {
            if !rest.trim_start().starts_with("OK") {
                return Ok(None);
            }
            return Ok(found);
        }
        if let Some(rest) = strip_prefix_ignore_case(&line, "* NAMESPACE ") {
            found = parse_personal(rest);
        }
    }
}

/// One response line without CRLF, at most 16 KiB.
async fn read_line(stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if line.len() >= 16 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "NAMESPACE answer line too long"));
        }
        line.push(byte);
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// The first personal namespace of `(("INBOX." ".")) NIL NIL`; `None` for `NIL` or a form
/// not understood.
fn parse_personal(rest: &str) -> Option<(String, Option<char>)> {
    let rest = rest.trim_start().strip_prefix("((")?;
    let (prefix, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let delimiter = match quoted(rest) {
        Some((d, _)) => d.chars().next(),
        None if rest.get(..3)?.eq_ignore_ascii_case("NIL") => None,
        None => return None,
    };
    Some((prefix, delimiter))
}

/// A quoted string at the start of `s` (with `\"` and `\\` escapes) and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn courier() -> Names {
        Names { delimiter: Some('.'), prefix: "INBOX.".into() }
    }

    #[test]
    fn paths_map_to_server_names() {
        let dovecot = Names { delimiter: Some('/'), prefix: String::new() };
        assert_eq!(dovecot.to_server("Überweisungen/2026"), "&ANw-berweisungen/2026");
        assert_eq!(dovecot.to_server("inbox"), "INBOX");
        assert_eq!(courier().to_server("Lists/rust"), "INBOX.Lists.rust");
        assert_eq!(courier().to_server("INBOX"), "INBOX");
        assert_eq!(courier().to_server("Inbox/Sub"), "INBOX.Sub");
        assert_eq!(courier().to_server("Archiv/Grüße"), "INBOX.Archiv.Gr&APwA3w-e");
        let flat = Names { delimiter: None, prefix: String::new() };
        assert_eq!(flat.to_server("a/b"), "a/b");
    }

    #[test]
    fn server_names_map_back_to_paths() {
        assert_eq!(courier().to_path("INBOX.Lists.rust"), "Lists/rust");
        assert_eq!(courier().to_path("INBOX"), "INBOX");
        assert_eq!(courier().to_path("INBOX.Archiv.Gr&APwA3w-e"), "Archiv/Grüße");
        let dovecot = Names { delimiter: Some('/'), prefix: String::new() };
        assert_eq!(dovecot.to_path("&ANw-berweisungen/2026"), "Überweisungen/2026");
        assert_eq!(dovecot.to_path("bad&name"), "bad&name", "kept as sent when not modified UTF-7");
        for path in ["Lists/rust", "Überweisungen/2026", "a & b/c"] {
            assert_eq!(courier().to_path(&courier().to_server(path)), path);
        }
    }

    #[test]
    fn namespace_answers_parse() {
        assert_eq!(parse_personal("((\"INBOX.\" \".\")) NIL NIL"), Some(("INBOX.".into(), Some('.'))));
        assert_eq!(parse_personal("((\"\" \"/\")) ((\"~\" \"/\")) NIL"), Some((String::new(), Some('/'))));
        assert_eq!(parse_personal("((\"\" NIL)) NIL NIL"), Some((String::new(), None)));
        assert_eq!(parse_personal("NIL NIL NIL"), None);
        assert_eq!(parse_personal("(({6}\r\n"), None);
        assert_eq!(quoted("\"a\\\"b\" rest"), Some(("a\"b".into(), " rest")));
    }
}
