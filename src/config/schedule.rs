//! Named schedules: a cron expression, a time zone, and the search and rule a sweep runs.
//!
//! The sweeps themselves come with the scheduler; validating here means a bad cron, time zone or
//! account name fails `tidings check` today rather than at the first fire.

use std::path::{Component, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::diagnostics::{self as read, Fields, Problems};
use super::tree::{Key, Node, Pos, Value};

/// A validated schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The name in `schedules:`.
    pub name: String,
    /// The expression as written, for messages.
    pub cron_text: String,
    /// The parsed expression.
    pub cron: croner::Cron,
    /// The zone the expression is read in; `None` means the machine's own.
    pub timezone: Option<chrono_tz::Tz>,
    /// The account it works on.
    pub account: String,
    /// The mailbox it searches (INBOX when not given; unused with [`Run::Once`]).
    pub mailbox: String,
    /// Which messages the sweep selects (a server-side IMAP SEARCH; empty with [`Run::Once`]).
    pub search: Search,
    /// Whether the rule runs over each message the search selects, or once with no message.
    pub run: Run,
    /// The rule file, relative to the rules directory.
    pub rule: PathBuf,
    /// Where the config names it, for a rule file that is missing.
    pub rule_at: Pos,
    /// What to do about fires missed while tidings was not running.
    pub catch_up: CatchUp,
}

/// What one fire runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Run {
    /// A sweep: the rule runs once per message the search selects.
    #[default]
    PerMessage,
    /// The rule runs one time with no message (digests, notices): there is nothing to search.
    Once,
}

/// Missed fires after downtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Run once for all the missed fires.
    Once,
    /// Wait for the next fire.
    Skip,
}

/// A sweep's server-side search; every criterion given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    /// Arrived longer ago than this.
    pub older_than: Option<Duration>,
    /// Arrived within this.
    pub newer_than: Option<Duration>,
    /// `Some(true)`: only \Seen; `Some(false)`: only unseen.
    pub seen: Option<bool>,
    /// `Some(true)`: only \Flagged; `Some(false)`: only unflagged.
    pub flagged: Option<bool>,
    /// From contains this.
    pub from: Option<String>,
    /// To contains this.
    pub to: Option<String>,
    /// Subject contains this.
    pub subject: Option<String>,
    /// Larger than this many bytes.
    pub larger: Option<u64>,
    /// Smaller than this many bytes.
    pub smaller: Option<u64>,
    /// A raw IMAP SEARCH expression, ANDed with the rest.
    pub raw: Option<String>,
    /// A Gmail search (X-GM-RAW), used where the server has it.
    pub raw_gmail: Option<String>,
}

const SCHEDULE_KEYS: &[&str] = &["cron", "timezone", "account", "mailbox", "search", "run", "rule", "catch_up"];
const SEARCH_KEYS: &[&str] = &[
    "older_than",
    "newer_than",
    "seen",
    "unseen",
    "flagged",
    "from",
    "to",
    "subject",
    "larger",
    "smaller",
    "raw",
    "raw_gmail",
];

/// Validates one entry of `schedules:`; `accounts` are the names defined in the config.
pub fn validate(key: &Key, node: &Node, accounts: &[&str], problems: &mut Problems) -> Option<Schedule> {
    let name = key.name.as_str();
    let what = format!("schedule `{name}`");
    let mut fields = Fields::read(node, &what, SCHEDULE_KEYS, problems)?;
    // "has no X" points at the name, which is where the reader looks.
    fields.pos = key.pos;
    let text = |key: &str, problems: &mut Problems| match fields.get(key) {
        Some(n) => read::string(n, &format!("{what}: {key}"), problems).map(|s| (s, n.pos)),
        None => {
            problems.error(fields.pos, format!("{what} has no `{key}`"));
            None
        }
    };
    let cron = text("cron", problems).and_then(|(expr, pos)| match croner::Cron::from_str(&expr) {
        Ok(cron) => Some((expr, cron)),
        Err(e) => {
            problems.hint(
                pos,
                format!("{what}: cron `{expr}` is not valid: {e}"),
                "five fields: minute hour day-of-month month day-of-week, e.g. `0 7 * * 1-5`",
            );
            None
        }
    });
    let timezone = match fields.get("timezone") {
        Some(n) => {
            read::string(n, &format!("{what}: timezone"), problems).and_then(|tz| match chrono_tz::Tz::from_str(&tz) {
                Ok(zone) => Some(Some(zone)),
                Err(_) => {
                    problems.hint(
                        n.pos,
                        format!("{what}: `{tz}` is not a time zone"),
                        "use an IANA name such as Europe/Berlin or America/New_York",
                    );
                    None
                }
            })
        }
        None => Some(None),
    };
    let account = text("account", problems).and_then(|(account, pos)| {
        if accounts.contains(&account.as_str()) {
            Some(account)
        } else {
            problems.hint(
                pos,
                format!("{what}: there is no account `{account}`"),
                format!("defined accounts: {}", accounts.join(", ")),
            );
            None
        }
    });
    let run = match fields.get("run") {
        Some(n) => read::choice(n, &format!("{what}: run"), &["per_message", "once"], problems)
            .map(|c| if c == "once" { Run::Once } else { Run::PerMessage }),
        None => Some(Run::PerMessage),
    };
    if run == Some(Run::Once) {
        // A run without messages has no mailbox to search: a `mailbox` or `search` here means
        // the writer expects a sweep that will never happen.
        for (key, _) in fields.entries().iter().filter(|(k, _)| k.name == "mailbox" || k.name == "search") {
            problems.hint(
                key.pos,
                format!("{what}: `{}` makes no sense with `run: once`", key.name),
                "`run: once` runs the rule one time with no message; drop it, or use `run: per_message` to sweep",
            );
        }
    }
    let mailbox = match fields.get("mailbox") {
        Some(n) => read::string(n, &format!("{what}: mailbox"), problems),
        None => Some("INBOX".to_owned()),
    };
    let search = match fields.get("search") {
        Some(n) => search(n, &what, problems),
        None => Some(Search::default()),
    };
    let mut rule_at = Pos::default();
    let rule = text("rule", problems).and_then(|(rule, pos)| {
        rule_at = pos;
        let path = PathBuf::from(&rule);
        if path.is_absolute()
            || path.components().any(|c| matches!(c, Component::ParentDir))
            || path.components().count() < 2
        {
            problems.hint(
                pos,
                format!("{what}: rule `{rule}` must be a file in a subfolder of the rules directory"),
                "e.g. `sweeps/archive.rhai`: scheduled rules live in subfolders so they never run on live mail",
            );
            None
        } else {
            Some(path)
        }
    });
    let catch_up = match fields.get("catch_up") {
        Some(n) => read::choice(n, &format!("{what}: catch_up"), &["once", "skip"], problems)
            .map(|c| if c == "once" { CatchUp::Once } else { CatchUp::Skip }),
        None => Some(CatchUp::Once),
    };
    let (cron_text, cron) = cron?;
    Some(Schedule {
        name: name.to_owned(),
        cron_text,
        cron,
        timezone: timezone?,
        account: account?,
        mailbox: mailbox?,
        search: search?,
        run: run?,
        rule: rule?,
        rule_at,
        catch_up: catch_up?,
    })
}

fn search(node: &Node, what: &str, problems: &mut Problems) -> Option<Search> {
    let what = format!("{what}: search");
    let fields = Fields::read(node, &what, SEARCH_KEYS, problems)?;
    let mut ok = true;
    let mut search = Search::default();
    for (key, value) in fields.entries() {
        let label = format!("{what}: {}", key.name);
        let read_ok = match key.name.as_str() {
            "older_than" => read::duration(value, &label, problems).map(|d| search.older_than = Some(d)),
            "newer_than" => read::duration(value, &label, problems).map(|d| search.newer_than = Some(d)),
            "seen" => read::boolean(value, &label, problems).map(|b| search.seen = Some(b)),
            "unseen" => read::boolean(value, &label, problems).map(|b| search.seen = Some(!b)),
            "flagged" => read::boolean(value, &label, problems).map(|b| search.flagged = Some(b)),
            "from" => read::string(value, &label, problems).map(|s| search.from = Some(s)),
            "to" => read::string(value, &label, problems).map(|s| search.to = Some(s)),
            "subject" => read::string(value, &label, problems).map(|s| search.subject = Some(s)),
            "larger" => size(value, &label, problems).map(|n| search.larger = Some(n)),
            "smaller" => size(value, &label, problems).map(|n| search.smaller = Some(n)),
            "raw" => read::string(value, &label, problems)
                .and_then(|s| raw(s, value, &label, problems))
                .map(|s| search.raw = Some(s)),
            "raw_gmail" => read::string(value, &label, problems).map(|s| search.raw_gmail = Some(s)),
            _ => Some(()), // already reported as unknown by Fields::read
        };
        ok &= read_ok.is_some();
    }
    if fields.get("seen").is_some() && fields.get("unseen").is_some() {
        problems.error(fields.pos, format!("{what}: give `seen` or `unseen`, not both"));
        ok = false;
    }
    ok.then_some(search)
}

/// A `raw:` expression the sweep can send as it is; the same check runs again at each fire, but
/// here `tidings check` reports it, on its line, before anything runs.
fn raw(text: String, node: &Node, what: &str, problems: &mut Problems) -> Option<String> {
    match check_raw(&text) {
        Ok(()) => Some(text),
        Err(reason) => {
            problems.hint(
                node.pos,
                format!("{what}: {reason}"),
                "an IMAP SEARCH expression, e.g. `OR FROM \"a.example\" FROM \"b.example\"`",
            );
            None
        }
    }
}

/// Whether a `raw:` expression can be sent inside parentheses without changing the rest of the
/// command: printable ASCII, quotes closed, parentheses balanced, and no literal (`{5}`), which
/// would make the server wait for bytes that never come. A property of the setting, so it lives
/// here: the config reports it on its line, and the sweep checks again before sending it.
pub fn check_raw(raw: &str) -> Result<(), &'static str> {
    if raw.trim().is_empty() {
        return Err("`raw` is empty");
    }
    if !raw.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err("`raw` must be printable ASCII on one line (use `subject:` or `from:` for other text)");
    }
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    for c in raw.chars() {
        match (quoted, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => quoted = false,
            (true, _) => {}
            (false, '"') => quoted = true,
            (false, '(') => depth += 1,
            (false, ')') => {
                depth -= 1;
                if depth < 0 {
                    return Err("`raw` closes a parenthesis it did not open");
                }
            }
            (false, '{') => return Err("`raw` cannot hold a literal (`{n}`); quote the string"),
            _ => {}
        }
    }
    if quoted {
        return Err("`raw` has a quote that is not closed");
    }
    if depth != 0 {
        return Err("`raw` leaves a parenthesis open");
    }
    Ok(())
}

/// A size in bytes: a number, or text with a unit (`500k`, `10MB`).
pub(super) fn size(node: &Node, what: &str, problems: &mut Problems) -> Option<u64> {
    match &node.value {
        Value::Int(n) if *n >= 0 => u64::try_from(*n).ok(),
        Value::Str(text) => {
            let t = text.trim().to_ascii_lowercase();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let factor = match t[split..].trim() {
                "" | "b" => Some(1),
                "k" | "kb" => Some(1 << 10),
                "m" | "mb" => Some(1 << 20),
                "g" | "gb" => Some(1 << 30),
                _ => None,
            };
            let number: Option<u64> = t[..split].parse().ok();
            match number.zip(factor).and_then(|(n, f)| n.checked_mul(f)) {
                Some(bytes) => Some(bytes),
                None => {
                    problems.hint(node.pos, format!("{what}: `{text}` is not a size"), "e.g. `500k` or `10MB`");
                    None
                }
            }
        }
        other => {
            problems.error(node.pos, format!("{what} must be a size, found {}", other.kind()));
            None
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
