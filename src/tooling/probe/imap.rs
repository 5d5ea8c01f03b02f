//! An account's IMAP server, live: DNS, TCP, TLS, login, the capabilities tidings uses, the
//! watched mailboxes, the connection budget. TLS and login are the daemon's own code
//! ([`Session::connect`]); only the name lookup and the TCP connect are tried here first, so that
//! a failure is named at the step where it happened.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::report::{Mark, Table};
use super::{STEP, no_certificate, timed_out};
use crate::causes::error_chain;
use crate::config::{Account, Fingerprint, Schedule, Secret, Tls};
use crate::imap::{self, Capabilities, Login, Session, Timeouts};

/// Runs the checks of `account`'s IMAP side into `table`.
pub async fn probe(account: &Account, password: Secret<String>, schedules: &[Schedule], table: &mut Table) {
    let server = &account.imap;
    let Some(addresses) = resolve(&server.host, server.port, table).await else { return };
    if !connect(&addresses, table).await {
        return;
    }
    let login = Login::new(account, &crate::auth::Credentials::new(account, password));
    let timeouts = Timeouts { connect: STEP, command: STEP, send_id: account.imap_id, ..Timeouts::default() };
    let mut session = match Session::connect(&login, timeouts).await {
        Ok(session) => session,
        Err(error) => return refused(&login, timeouts, &error, table).await,
    };
    table.push("tls", Mark::Ok, trusted(account));
    table.push("login", Mark::Ok, format!("logged in as {}", account.username));
    capabilities(session.capabilities(), account, table);
    mailboxes(&mut session, account, table).await;
    table.push("connections", budget_mark(account, schedules), crate::config::budget::summary(account, schedules));
    let _ = session.logout().await;
}

/// A note when some mailboxes are polled for want of connections, or the budget is too small.
fn budget_mark(account: &Account, schedules: &[Schedule]) -> Mark {
    use crate::config::budget::{ConnectionPlan, sweeps};
    if account.subscribed {
        return Mark::Ok;
    }
    let sweeps = sweeps(&account.name, schedules);
    let plan = ConnectionPlan::new(&account.mailboxes, account.connections, sweeps, account.watch.poll_interval);
    if plan.polled.is_empty() && !plan.over_budget() { Mark::Ok } else { Mark::Note }
}

/// The host's addresses, or `None` (and a failed row).
pub(super) async fn resolve(host: &str, port: u16, table: &mut Table) -> Option<Vec<SocketAddr>> {
    match tokio::time::timeout(STEP, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(found)) => {
            let found: Vec<SocketAddr> = found.collect();
            let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
            if host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok() {
                table.push("dns", Mark::Ok, format!("{host} is an address: nothing to resolve"));
            } else {
                table.push("dns", Mark::Ok, format!("{host} resolves to {}", shown.join(", ")));
            }
            Some(found)
        }
        Ok(Err(e)) => {
            table.push("dns", Mark::Fail, format!("cannot resolve {host}: {e}"));
            None
        }
        Err(_) => {
            table.push("dns", Mark::Fail, timed_out());
            None
        }
    }
}

/// Whether a TCP connection opens to one of `addresses` (the first that answers is named).
pub(super) async fn connect(addresses: &[SocketAddr], table: &mut Table) -> bool {
    let mut why = Vec::new();
    for address in addresses {
        match tokio::time::timeout(STEP, TcpStream::connect(address)).await {
            Ok(Ok(_)) => {
                table.push("tcp", Mark::Ok, format!("connected to {address}"));
                return true;
            }
            Ok(Err(e)) => why.push(format!("{address}: {e}")),
            Err(_) => why.push(format!("{address}: {}", timed_out())),
        }
    }
    table.push("tcp", Mark::Fail, format!("cannot connect: {}", why.join("; ")));
    false
}

/// Where the certificate's trust came from.
fn trusted(account: &Account) -> String {
    let how = match account.imap.tls {
        Tls::Implicit => "implicit TLS",
        Tls::StartTls => "STARTTLS",
        Tls::None => return "no TLS (allow_insecure): the password goes in clear".to_owned(),
    };
    match (&account.imap.tls_fingerprint, &account.ca_file) {
        (Some(pin), _) => format!("{how}, the certificate is the pinned {pin}"),
        (None, Some(ca)) => format!("{how}, certificate verified with ca_file {}", ca.display()),
        (None, None) => format!("{how}, certificate verified with the system's CAs"),
    }
}

/// Names the step `error` (from [`Session::connect`]) stopped at, with the server's answer.
async fn refused(login: &Login, timeouts: Timeouts, error: &imap::Error, table: &mut Table) {
    let chain = error_chain(error);
    match error {
        imap::Error::Auth { .. } | imap::Error::Xoauth2 { .. } | imap::Error::Token { .. } => {
            table.push("tls", Mark::Ok, "established");
            table.push("login", Mark::Fail, chain);
        }
        imap::Error::Timeout { what, .. } if what == "log in" => {
            table.push("tls", Mark::Ok, "established");
            table.push("login", Mark::Fail, timed_out());
        }
        imap::Error::Timeout { what, .. } => table.push("tls", Mark::Fail, format!("{what}: {}", timed_out())),
        imap::Error::Connect { .. } => table.push("tcp", Mark::Fail, chain),
        imap::Error::Pin { presented, .. } => {
            table.push("tls", Mark::Fail, format!("{chain}; to pin it: tls_fingerprint: {presented}"));
        }
        _ => match super::tls::certificate_problem(error) {
            Some(words) => {
                // Pinned to no certificate, the handshake is refused naming the one presented.
                let mut pinned = login.clone();
                pinned.server.tls_fingerprint = Some(no_certificate());
                let presented = match Session::connect(&pinned, timeouts).await {
                    Err(imap::Error::Pin { presented, .. }) => Some(presented),
                    _ => None,
                };
                table.push("tls", Mark::Fail, with_fingerprint(&words, presented));
            }
            None => table.push("tls", Mark::Fail, chain),
        },
    }
}

/// The refusal in words and the certificate's fingerprint, to pin once it is trusted.
pub(super) fn with_fingerprint(words: &str, presented: Option<Fingerprint>) -> String {
    match presented {
        Some(pin) => format!("{words}; to trust exactly this certificate: tls_fingerprint: {pin}"),
        None => words.to_owned(),
    }
}

/// One row per capability that matters, with what tidings does without it.
fn capabilities(caps: &Capabilities, account: &Account, table: &mut Table) {
    let poll = crate::config::budget::seconds(account.watch.poll_interval);
    let rows: [(&str, bool, Mark, String); 6] = [
        (
            "IDLE",
            caps.idle,
            Mark::Note,
            format!("not offered: new mail is found by polling every {poll} (poll_interval)"),
        ),
        (
            "MOVE",
            caps.move_,
            Mark::Note,
            if caps.uidplus {
                "not offered: moves are UID COPY, then \\Deleted and UID EXPUNGE of those messages".to_owned()
            } else {
                "not offered: moves are UID COPY, then \\Deleted; EXPUNGE only when no other message is \\Deleted"
                    .to_owned()
            },
        ),
        (
            "UIDPLUS",
            caps.uidplus,
            Mark::Note,
            "not offered: deletes expunge only when no other message is \\Deleted (else they stay flagged)".to_owned(),
        ),
        (
            "SPECIAL-USE",
            caps.special_use,
            Mark::Note,
            "not offered: name Trash, Sent and Archive folders by name (save_sent: \"Sent\")".to_owned(),
        ),
        (
            "X-GM-EXT-1",
            caps.gmail,
            Mark::Note,
            "not offered (Gmail only): no labels or X-GM-RAW searches; nothing else needs it".to_owned(),
        ),
        (
            "CONDSTORE",
            caps.condstore,
            Mark::Note,
            "not offered: flag changes are read in full; nothing else needs it".to_owned(),
        ),
    ];
    for (name, offered, mark, without) in rows {
        if offered {
            table.push(name, Mark::Ok, "offered");
        } else {
            table.push(name, mark, without);
        }
    }
}

/// Each watched mailbox with its message count (EXAMINE: read-only, nothing changes).
async fn mailboxes(session: &mut Session, account: &Account, table: &mut Table) {
    let names: Vec<String> = if account.subscribed {
        match session.subscribed().await {
            Ok(found) => found.into_iter().map(|f| f.name).collect(),
            Err(e) => {
                table.push("mailboxes: all", Mark::Fail, error_chain(&e));
                return;
            }
        }
    } else {
        account.mailboxes.iter().map(|m| m.name.clone()).collect()
    };
    for name in names {
        let step = format!("mailbox {name}");
        match session.examine(&name).await {
            Ok(selected) => {
                let n = selected.exists;
                table.push(step, Mark::Ok, format!("{n} message{}", if n == 1 { "" } else { "s" }));
            }
            Err(e) if e.is_transient() => {
                table.push(step, Mark::Fail, error_chain(&e));
                return;
            }
            Err(e) => table.push(step, Mark::Fail, format!("does not exist or cannot be opened: {}", error_chain(&e))),
        }
    }
}
