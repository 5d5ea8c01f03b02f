//! A SCRIPTED IMAP PEER, NOT GMAIL: a small TCP server on 127.0.0.1 that speaks enough
//! IMAP4rev1 plus Gmail's documented extensions (developers.google.com/gmail/imap/imap-extensions)
//! to test what tidings does when a server advertises X-GM-EXT-1. It models Gmail's one
//! behaviour that matters here: folders are views of labels. A message carries labels; INBOX
//! shows the `\Inbox` ones, a user label's folder the ones with that label, the `\All` folder
//! every one not in Trash or Spam, the `\Trash` folder the ones labelled `\Trash`. The same
//! message has a different UID in each folder but one X-GM-MSGID.
//!
//! What it speaks: CAPABILITY (with X-GM-EXT-1), LOGIN, LIST (special-use folders under German,
//! localised names: `[Gmail]/Papierkorb` is `\Trash`), SELECT/EXAMINE, UID FETCH with FLAGS,
//! INTERNALDATE, RFC822.SIZE, X-GM-MSGID, X-GM-THRID, X-GM-LABELS and BODY.PEEK[] / [HEADER],
//! UID STORE +/-FLAGS and +/-X-GM-LABELS (SILENT or not), UID MOVE and COPY (add the target's
//! label; a move also drops the source's), UID EXPUNGE (drops the folder's label, as Gmail does),
//! UID SEARCH (every UID), IDLE (until DONE, nothing announced), NOOP, CREATE, SUBSCRIBE, ID,
//! LOGOUT. No TLS, no literals from the client, no pipelining subtleties beyond reading one line
//! at a time; anything else gets BAD. Every command line is recorded for assertions.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The login the peer accepts.
pub const GMAIL_USER: &str = "ann@gmail.test";
/// Its password.
pub const GMAIL_PASSWORD: &str = "app-password-1234";

/// One message as the peer keeps it.
#[derive(Clone, Debug)]
pub struct PeerMessage {
    /// X-GM-MSGID.
    pub msgid: u64,
    /// X-GM-THRID.
    pub thread_id: u64,
    /// Gmail labels: `\Inbox`, `\Trash`, `\Spam`, `\Sent`, user labels (UTF-8).
    pub labels: BTreeSet<String>,
    /// IMAP flags (`\Seen`, keywords).
    pub flags: BTreeSet<String>,
    /// The message.
    pub raw: Vec<u8>,
}

/// Which messages a folder shows.
#[derive(Clone, Debug)]
enum View {
    /// Those with this label.
    Label(String),
    /// All but Trash and Spam (`\All`).
    All,
}

#[derive(Debug)]
struct Folder {
    name: String,
    attributes: &'static str,
    view: View,
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<PeerMessage>,
    folders: Vec<Folder>,
    commands: Vec<String>,
}

/// The scripted peer; it serves until the test ends.
#[derive(Clone)]
pub struct GmailPeer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl GmailPeer {
    /// Starts the peer with Gmail's folders (German special-use names) and user labels `labels`.
    pub async fn start(labels: &[&str]) -> GmailPeer {
        let mut folders = vec![
            Folder { name: "INBOX".into(), attributes: "\\HasNoChildren", view: View::Label("\\Inbox".into()) },
            Folder { name: "[Gmail]/Alle Nachrichten".into(), attributes: "\\All \\HasNoChildren", view: View::All },
            Folder {
                name: "[Gmail]/Papierkorb".into(),
                attributes: "\\Trash \\HasNoChildren",
                view: View::Label("\\Trash".into()),
            },
            Folder {
                name: "[Gmail]/Spam".into(),
                attributes: "\\Junk \\HasNoChildren",
                view: View::Label("\\Spam".into()),
            },
            Folder {
                name: "[Gmail]/Gesendet".into(),
                attributes: "\\Sent \\HasNoChildren",
                view: View::Label("\\Sent".into()),
            },
        ];
        for label in labels {
            folders.push(Folder {
                name: (*label).into(),
                attributes: "\\HasNoChildren",
                view: View::Label((*label).into()),
            });
        }
        let state = Arc::new(Mutex::new(State { folders, ..State::default() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        GmailPeer { port, state }
    }

    /// Adds a message with these labels; returns its X-GM-MSGID.
    pub fn add(&self, raw: &[u8], labels: &[&str], thread_id: u64) -> u64 {
        let mut state = self.state.lock().unwrap();
        let msgid = 1_278_455_344_230_334_865 + state.messages.len() as u64;
        state.messages.push(PeerMessage {
            msgid,
            thread_id,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            flags: BTreeSet::new(),
            raw: raw.to_vec(),
        });
        msgid
    }

    /// The message with this X-GM-MSGID, as it is now.
    pub fn message(&self, msgid: u64) -> PeerMessage {
        self.state.lock().unwrap().messages.iter().find(|m| m.msgid == msgid).cloned().unwrap()
    }

    /// Every command line received so far (LOGIN's password masked).
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }
}

/// Folder `index`'s UIDVALIDITY and the UID of message `n` in it: different per folder, as on
/// Gmail, so that only X-GM-MSGID says two sightings are one message.
fn uidvalidity(folder: usize) -> u32 {
    600 + folder as u32
}
fn uid_of(folder: usize, n: usize) -> u32 {
    (folder as u32 + 1) * 100 + n as u32 + 1
}

impl State {
    fn shows(&self, folder: usize, message: &PeerMessage) -> bool {
        let hidden = message.labels.contains("\\Trash") || message.labels.contains("\\Spam");
        match &self.folders[folder].view {
            View::All => !hidden,
            View::Label(label) if label == "\\Trash" || label == "\\Spam" => message.labels.contains(label),
            View::Label(label) => !hidden && message.labels.contains(label),
        }
    }

    /// (sequence number, UID, message index) of the folder's messages.
    fn listing(&self, folder: usize) -> Vec<(usize, u32, usize)> {
        let shown = self.messages.iter().enumerate().filter(|(_, m)| self.shows(folder, m));
        shown.enumerate().map(|(seq, (n, _))| (seq + 1, uid_of(folder, n), n)).collect()
    }

    fn folder(&self, name: &str) -> Option<usize> {
        let name = name.trim_matches('"');
        self.folders.iter().position(|f| f.name == name || (f.name == "INBOX" && name.eq_ignore_ascii_case("INBOX")))
    }
}

/// Whether UID `uid` is in the set `set` (`1:*`, `3,5:7`), `*` being the folder's highest UID.
fn in_set(set: &str, uid: u32, highest: u32) -> bool {
    let value = |s: &str| if s == "*" { highest } else { s.parse().unwrap_or(0) };
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => {
            let (a, b) = (value(a), value(b));
            (a.min(b)..=a.max(b)).contains(&uid)
        }
        None => value(part) == uid,
    })
}

/// The words of a parenthesised list: atoms and quoted strings (unquoted), modified UTF-7 as sent.
fn list_items(list: &str) -> Vec<String> {
    let inner = list.trim().trim_start_matches('(').trim_end_matches(')');
    let (mut items, mut current, mut quoted, mut chars) = (Vec::new(), String::new(), false, inner.chars());
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => current.extend(chars.next()),
            ' ' if !quoted => items.extend((!current.is_empty()).then(|| std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    items.extend((!current.is_empty()).then_some(current));
    items
}

/// A label as Gmail writes it in X-GM-LABELS: system labels as atoms, user labels quoted in
/// modified UTF-7.
fn label_on_wire(label: &str) -> String {
    if label.starts_with('\\') {
        return label.to_owned();
    }
    format!("\"{}\"", tidings::imap::mutf7::encode(label))
}

fn label_from_wire(label: &str) -> String {
    if label.starts_with('\\') {
        return label.to_owned();
    }
    tidings::imap::mutf7::decode(label).unwrap_or_else(|_| label.to_owned())
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"* OK Gimap ready for requests from 127.0.0.1 (scripted peer)\r\n").await;
    let mut selected: Option<usize> = None;
    while let Ok(Some(line)) = lines.next_line().await {
        let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let verb = verb.to_ascii_uppercase();
        let recorded = if verb == "LOGIN" { format!("{tag} LOGIN ***") } else { line.clone() };
        state.lock().unwrap().commands.push(recorded);
        let mut out = String::new();
        let ok = match verb.as_str() {
            "CAPABILITY" => {
                out.push_str("* CAPABILITY IMAP4rev1 UNSELECT IDLE ID CHILDREN X-GM-EXT-1 UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED\r\n");
                Ok(())
            }
            "LOGIN" => {
                let words = list_items(args);
                if words.len() == 2 && words[0] == GMAIL_USER && words[1] == GMAIL_PASSWORD {
                    Ok(())
                } else {
                    Err("NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
                }
            }
            "ID" => {
                out.push_str("* ID (\"name\" \"scripted peer\")\r\n");
                Ok(())
            }
            "NOOP" | "CREATE" | "SUBSCRIBE" | "UNSELECT" => Ok(()),
            "LIST" => {
                if args.starts_with("\"\" \"\"") {
                    out.push_str("* LIST (\\Noselect) \"/\" \"\"\r\n");
                } else {
                    let state = state.lock().unwrap();
                    out.push_str("* LIST (\\HasChildren \\Noselect) \"/\" \"[Gmail]\"\r\n");
                    for f in &state.folders {
                        out.push_str(&format!("* LIST ({}) \"/\" \"{}\"\r\n", f.attributes, f.name));
                    }
                }
                Ok(())
            }
            "SELECT" | "EXAMINE" => {
                let state = state.lock().unwrap();
                match state.folder(args) {
                    Some(folder) => {
                        selected = Some(folder);
                        let listing = state.listing(folder);
                        let next = listing.iter().map(|(_, uid, _)| uid + 1).max().unwrap_or(uid_of(folder, 0));
                        out.push_str(&format!(
                            "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen)\r\n* {} EXISTS\r\n\
                             * OK [UIDVALIDITY {}] UIDs valid.\r\n* OK [UIDNEXT {next}] Predicted next UID.\r\n",
                            listing.len(),
                            uidvalidity(folder)
                        ));
                        Ok(())
                    }
                    None => Err("NO [NONEXISTENT] Unknown Mailbox (Failure)"),
                }
            }
            "IDLE" => {
                let _ = write.write_all(b"+ idling\r\n").await;
                loop {
                    match lines.next_line().await {
                        Ok(Some(done)) if done.eq_ignore_ascii_case("DONE") => break,
                        Ok(Some(_)) => {}
                        _ => return,
                    }
                }
                Ok(())
            }
            "LOGOUT" => {
                let _ = write.write_all(format!("* BYE LOGOUT Requested\r\n{tag} OK 73 good day\r\n").as_bytes()).await;
                return;
            }
            "UID" => match selected {
                Some(folder) => uid_command(&state, folder, args, &mut out),
                None => Err("BAD No mailbox selected"),
            },
            _ => Err("BAD Unknown command"),
        };
        let tagged = match ok {
            Ok(()) => format!("{tag} OK Success\r\n"),
            Err(refusal) => format!("{tag} {refusal}\r\n"),
        };
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(tagged.as_bytes());
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// UID FETCH, STORE, MOVE, COPY, EXPUNGE, SEARCH in `folder`.
fn uid_command(state: &Mutex<State>, folder: usize, args: &str, out: &mut String) -> Result<(), &'static str> {
    let mut state = state.lock().unwrap();
    let (verb, rest) = args.split_once(' ').unwrap_or((args, ""));
    let (set, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let listing = state.listing(folder);
    let highest = listing.iter().map(|(_, uid, _)| *uid).max().unwrap_or(0);
    let mut chosen: Vec<(usize, u32, usize)> =
        listing.iter().copied().filter(|(_, uid, _)| in_set(set, *uid, highest)).collect();
    match verb.to_ascii_uppercase().as_str() {
        "SEARCH" => {
            let uids: Vec<String> = listing.iter().map(|(_, uid, _)| uid.to_string()).collect();
            out.push_str(&format!("* SEARCH {}\r\n", uids.join(" ")));
        }
        "FETCH" => {
            let items = rest.to_ascii_uppercase();
            // `n:*` with n above the highest UID still names the newest message (RFC 3501).
            if chosen.is_empty() && set.ends_with(":*") {
                chosen.extend(listing.last().copied());
            }
            for (seq, uid, n) in chosen {
                let m = &state.messages[n];
                let mut fields = vec![format!("UID {uid}")];
                if items.contains("FLAGS") {
                    let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
                    fields.push(format!("FLAGS ({})", flags.join(" ")));
                }
                if items.contains("INTERNALDATE") {
                    fields.push("INTERNALDATE \"26-Nov-2026 10:00:00 +0000\"".into());
                }
                if items.contains("RFC822.SIZE") {
                    fields.push(format!("RFC822.SIZE {}", m.raw.len()));
                }
                if items.contains("X-GM-MSGID") {
                    fields.push(format!("X-GM-MSGID {}", m.msgid));
                }
                if items.contains("X-GM-THRID") {
                    fields.push(format!("X-GM-THRID {}", m.thread_id));
                }
                if items.contains("X-GM-LABELS") {
                    let labels: Vec<String> = m.labels.iter().map(|l| label_on_wire(l)).collect();
                    fields.push(format!("X-GM-LABELS ({})", labels.join(" ")));
                }
                let body = if items.contains("BODY.PEEK[HEADER]") {
                    let end = m.raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(m.raw.len(), |p| p + 4);
                    Some(("BODY[HEADER]", &m.raw[..end]))
                } else if items.contains("BODY.PEEK[]") {
                    Some(("BODY[]", &m.raw[..]))
                } else {
                    None
                };
                match body {
                    Some((name, bytes)) => out.push_str(&format!(
                        "* {seq} FETCH ({} {name} {{{}}}\r\n{})\r\n",
                        fields.join(" "),
                        bytes.len(),
                        String::from_utf8_lossy(bytes)
                    )),
                    None => out.push_str(&format!("* {seq} FETCH ({})\r\n", fields.join(" "))),
                }
            }
        }
        "STORE" => {
            let (item, list) = rest.split_once(' ').unwrap_or((rest, ""));
            let item = item.to_ascii_uppercase();
            let add = item.starts_with('+');
            let names = list_items(list);
            for (_, _, n) in &chosen {
                let m = &mut state.messages[*n];
                let target = if item.contains("X-GM-LABELS") { &mut m.labels } else { &mut m.flags };
                for name in &names {
                    let name = if item.contains("X-GM-LABELS") { label_from_wire(name) } else { name.clone() };
                    if add {
                        target.insert(name);
                    } else {
                        target.remove(&name);
                    }
                }
            }
        }
        "COPY" | "MOVE" => {
            let Some(target) = state.folder(rest) else { return Err("NO [TRYCREATE] No folder (Failure)") };
            let (add, drop) = (view_label(&state.folders[target].view), view_label(&state.folders[folder].view));
            let moving = verb.eq_ignore_ascii_case("MOVE");
            for (_, _, n) in &chosen {
                let m = &mut state.messages[*n];
                if let Some(label) = &add {
                    m.labels.insert(label.clone());
                }
                if moving && let Some(label) = &drop {
                    m.labels.remove(label);
                }
            }
            if moving {
                for (seq, _, _) in chosen.iter().rev() {
                    out.push_str(&format!("* {seq} EXPUNGE\r\n"));
                }
            }
        }
        "EXPUNGE" => {
            // Gmail: expunging in a label folder removes that label only; the message stays in
            // All Mail.
            let drop = view_label(&state.folders[folder].view);
            for (seq, _, n) in chosen.iter().rev() {
                let m = &mut state.messages[*n];
                if m.flags.remove("\\Deleted") {
                    if let Some(label) = &drop {
                        m.labels.remove(label);
                    }
                    out.push_str(&format!("* {seq} EXPUNGE\r\n"));
                }
            }
        }
        _ => return Err("BAD Unknown UID command"),
    }
    Ok(())
}

/// The label a folder stands for (none for All Mail).
fn view_label(view: &View) -> Option<String> {
    match view {
        View::Label(label) => Some(label.clone()),
        View::All => None,
    }
}

#[test]
fn uid_sets_and_lists_parse() {
    assert!(in_set("101:*", 105, 105) && in_set("3,5:7", 6, 9) && !in_set("3,5:7", 4, 9));
    assert_eq!(list_items("(\\Inbox \"Muy Importante\" paid)"), ["\\Inbox", "Muy Importante", "paid"]);
}
