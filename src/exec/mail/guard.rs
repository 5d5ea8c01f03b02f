//! The reply guards of RFC 3834 and RFC 5230 (Sieve vacation): an automatic reply goes only to a
//! person who wrote to this account, never to a list, a robot, a bounce or itself.
//!
//! Pure functions of the captured [`Original`] and the account: no IO, no store (the
//! once-per-`days` memory and the daily cap are the store's, checked when sending). They apply to
//! replies; a forward or a new message goes where the rule says, under the daily cap only.

use crate::config::Account;
use crate::message::auto_reply_subject;
use crate::plan::{Original, Reply};

/// Why a reply is not sent; shown in the outbox, the logs and `tidings test`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Suppressed {
    /// What the guard saw, e.g. "the message has Precedence: bulk".
    pub reason: String,
}

fn suppressed(reason: impl Into<String>) -> Result<(), Suppressed> {
    Err(Suppressed { reason: reason.into() })
}

/// Whether `reply` may be sent at all: with the account, every guard ([`check`]); without one
/// (`tidings test` for an account the config lacks), those that need none ([`check_message`]).
/// A reply the rule recorded with no address to go to (no usable envelope sender, or none in
/// the header it chose) is suppressed with the reason noted then.
pub fn check_reply(reply: &Reply, account: Option<&Account>) -> Result<(), Suppressed> {
    if let Some(reason) = &reply.unusable {
        return suppressed(reason.clone());
    }
    match account {
        Some(account) => check(&reply.original, &reply.to, account),
        None => check_message(&reply.original, &reply.to),
    }
}

/// Whether a forward or a new message has anybody to go to: a rule that took its addresses
/// from the message (`forward(msg.from)`) may be left with none that is usable.
pub fn check_recipients(to: &[String], cc: &[String]) -> Result<(), Suppressed> {
    if to.is_empty() && cc.is_empty() {
        return suppressed("no usable recipient: the addresses the rule took from the message are not usable");
    }
    Ok(())
}

/// Whether a forward may be sent: not when the message already carries this account's loop
/// marker (`X-Loop: <one of its addresses>`), which a forward of this account adds. So a loop
/// between two accounts (A forwards to B, B forwards back) stops at A after two forwards, as
/// procmail's X-Loop and Sieve redirect's loop detection do.
pub fn check_forward(original: &Original, account: &Account) -> Result<(), Suppressed> {
    let own = own_addresses(account);
    for (name, value) in &original.guard_headers {
        if name == "x-loop" && own.iter().any(|mine| same_mailbox(mine, &loop_address(value))) {
            return suppressed(format!(
                "the message carries X-Loop: {} (this account's loop marker): account `{}` forwarded it before",
                value.trim(),
                account.name
            ));
        }
    }
    Ok(())
}

/// The X-Loop lines a forward of `original` carries: the original's, then `own` (the address
/// the forward is sent from), each once, at most [`MAX_LOOP_MARKERS`].
pub fn loop_markers(original: &Original, own: &str) -> Vec<String> {
    let mut markers: Vec<String> = Vec::new();
    let found = original.guard_headers.iter().filter(|(name, _)| name == "x-loop").map(|(_, v)| loop_address(v));
    for marker in found.chain([own.to_owned()]) {
        // A marker goes into a header as it is: plain ASCII without spaces, no longer than an
        // address can be (RFC 5321: 254), or it is left out; a sender's megabyte-long X-Loop
        // must not make the forward's header lines too long for the SMTP server.
        let plain = (1..=MAX_ADDRESS).contains(&marker.len()) && marker.chars().all(|c| c.is_ascii_graphic());
        if plain && !markers.iter().any(|m| same_mailbox(m, &marker)) {
            markers.push(marker);
        }
    }
    // Keep this account's own, which stops the loop, when a sender wrote many.
    if markers.len() > MAX_LOOP_MARKERS {
        markers.drain(..markers.len() - MAX_LOOP_MARKERS);
    }
    markers
}

/// The most X-Loop lines a forward carries.
const MAX_LOOP_MARKERS: usize = 20;

/// The longest address (RFC 5321's forward-path limit, without the angle brackets).
const MAX_ADDRESS: usize = 254;

/// The address of an X-Loop value (`a@b.example`, `<a@b.example>` or `Name <a@b.example>`).
fn loop_address(value: &str) -> String {
    let value = value.trim();
    match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => value[open + 1..close].trim().to_owned(),
        _ => value.to_owned(),
    }
}

/// Whether a reply to `recipient` (the original's envelope sender, or the header the rule
/// chose) may be sent at all. The first guard that holds gives the reason.
pub fn check(original: &Original, recipient: &str, account: &Account) -> Result<(), Suppressed> {
    check_message(original, recipient)?;
    let own = own_addresses(account);
    for (role, address) in [("recipient", recipient), ("sender", original.from.as_str())] {
        if own.iter().any(|mine| same_mailbox(mine, address)) {
            return suppressed(format!("the {role} {address} is one of this account's own addresses"));
        }
    }
    let addressed = original.to.iter().chain(&original.cc).any(|a| own.iter().any(|mine| same_mailbox(mine, a)));
    if !addressed {
        return suppressed(format!(
            "none of the account's addresses ({}) is in To or Cc: it came by Bcc, a list or a forward",
            own.join(", ")
        ));
    }
    Ok(())
}

/// The guards that need no account: the envelope sender, robot addresses and the headers of
/// automatic and list mail. `tidings test` applies these when it has no account to check.
pub fn check_message(original: &Original, recipient: &str) -> Result<(), Suppressed> {
    if original.return_path.as_deref() == Some("") {
        return suppressed("the envelope sender is <> (a bounce or another automatic message)");
    }
    if recipient.trim().is_empty() {
        return suppressed("the message has no sender to reply to");
    }
    let senders = [("recipient", Some(recipient)), ("sender", Some(original.from.as_str()))]
        .into_iter()
        .chain([("envelope sender", original.return_path.as_deref()), ("Sender", original.sender.as_deref())]);
    for (role, address) in senders {
        if let Some(address) = address.filter(|a| !a.is_empty())
            && let Some(kind) = robot(address)
        {
            return suppressed(format!("the {role} {address} is {kind}"));
        }
    }
    for (name, value) in &original.guard_headers {
        if let Some(reason) = automated(name, value) {
            return suppressed(reason);
        }
    }
    if let Some(prefix) = auto_reply_subject(&original.subject) {
        return suppressed(format!(
            "the subject starts with {prefix:?}: it is an automatic reply (Subject: {})",
            original.subject.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

/// What kind of robot an address belongs to, by its local part, if it is one.
fn robot(address: &str) -> Option<&'static str> {
    let local = local_part(address).to_ascii_lowercase();
    let bare = base(&local);
    let squeezed: String = bare.chars().filter(|c| !matches!(c, '-' | '_' | '.')).collect();
    match () {
        _ if bare == "mailer-daemon" || bare == "postmaster" => Some("a mail server (bounces come from it)"),
        _ if bare == "listserv" || bare == "majordomo" => Some("a mailing list manager"),
        _ if bare.starts_with("owner-") || bare.ends_with("-owner") => Some("a mailing list owner address"),
        _ if bare.ends_with("-request") => Some("a mailing list request address"),
        _ if bare.starts_with("bounce") || bare.ends_with("-bounces") || bare.contains("-bounces-") => {
            Some("a bounce address")
        }
        _ if ["noreply", "donotreply", "dontreply", "donotrespond", "noresponse"]
            .iter()
            .any(|n| squeezed.contains(n)) =>
        {
            Some("a no-reply address")
        }
        _ => None,
    }
}

/// Why a header marks the message as automatic or list mail, if it does; `name` is lower-case.
fn automated(name: &str, value: &str) -> Option<String> {
    let value = value.trim();
    let first_word = value.split([';', '(', ' ', '\t']).next().unwrap_or("").to_ascii_lowercase();
    let shown = |what: &str| Some(format!("the message has {what}: {value}"));
    match name {
        "auto-submitted" if first_word != "no" => shown("Auto-Submitted"),
        "precedence" if matches!(first_word.as_str(), "bulk" | "junk" | "list") => shown("Precedence"),
        "x-auto-response-suppress"
            if value.split([',', ' ']).any(|t| t.eq_ignore_ascii_case("all") || t.eq_ignore_ascii_case("oof")) =>
        {
            shown("X-Auto-Response-Suppress")
        }
        "x-apple-action" if first_word == "vacation" => shown("X-Apple-Action"),
        "x-ms-exchange-inbox-rules-loop" => {
            Some(format!("the message has X-MS-Exchange-Inbox-Rules-Loop: {value}: an Exchange rule sent it"))
        }
        "x-autoreply" | "x-autorespond" | "x-autoresponder" | "x-auto-reply" | "x-autogenerated" => {
            Some(format!("the message has an {name} header: it is an automatic reply"))
        }
        "x-loop" => Some("the message has an X-Loop header: another program is already answering it".to_owned()),
        "content-type" => Some("the message is a report (multipart/report: a bounce or a receipt)".to_owned()),
        "x-mailing-list" | "mailing-list" | "x-beenthere" => Some(format!("the message has {name}: it is list mail")),
        list if list.starts_with("list-") => Some(format!("the message has a {name} header: it is list mail")),
        _ => None,
    }
}

/// The From address of a reply to `original`. A `chosen` one (the rule's `from`) must be one of
/// the account's addresses, a plus-tag added or not. Otherwise the account address the original
/// was sent to (To or Cc, plus-tags ignored); else the account's `from`, else its first address.
pub fn from_address(original: &Original, account: &Account, chosen: Option<&str>) -> Result<String, String> {
    choose_from(Some(original), account, chosen)
}

/// The From address of a forward or a new message: `chosen` if it is one of the account's
/// addresses (see [`from_address`]), else the account's `from`.
pub fn sender_address(account: &Account, chosen: Option<&str>) -> Result<String, String> {
    choose_from(None, account, chosen)
}

fn choose_from(original: Option<&Original>, account: &Account, chosen: Option<&str>) -> Result<String, String> {
    let own = own_addresses(account);
    if let Some(chosen) = chosen {
        return match own.iter().any(|mine| same_mailbox(mine, chosen)) {
            true => Ok(chosen.to_owned()),
            false => Err(format!(
                "cannot send from {chosen}: it is not one of the addresses of account `{}` ({}); add it to `addresses`",
                account.name,
                own.join(", ")
            )),
        };
    }
    let sent_to =
        original.and_then(|o| o.to.iter().chain(&o.cc).find_map(|a| own.iter().find(|mine| same_mailbox(mine, a))));
    sent_to.or(account.from.as_ref()).or(own.first()).cloned().ok_or_else(|| {
        format!("cannot send from account `{}`: it has no `from` address; add `from: you@example.com`", account.name)
    })
}

/// The account's addresses and its `from`, each once.
fn own_addresses(account: &Account) -> Vec<String> {
    let mut own = account.addresses.clone();
    if let Some(from) = &account.from
        && !own.iter().any(|a| a.eq_ignore_ascii_case(from))
    {
        own.push(from.clone());
    }
    own
}

/// Whether two addresses name the same mailbox: case-insensitive, a `+tag` ignored.
pub fn same_mailbox(a: &str, b: &str) -> bool {
    let split = |s: &str| {
        let s = s.trim();
        match s.rsplit_once('@') {
            Some((local, domain)) => (base(local).to_ascii_lowercase(), domain.to_ascii_lowercase()),
            None => (base(s).to_ascii_lowercase(), String::new()),
        }
    };
    split(a) == split(b)
}

/// `local` without a `+tag`.
fn base(local: &str) -> &str {
    local.split_once('+').map_or(local, |(base, _)| base)
}

fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(local, _)| local)
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
