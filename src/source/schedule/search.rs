//! A schedule's `search:` as an IMAP UID SEARCH, so that the server selects the messages and a
//! sweep never fetches a whole mailbox to filter it here.
//!
//! Ages are measured from the fire time. With WITHIN (RFC 5032) the server takes them to the
//! second (`OLDER`, `YOUNGER`); without it IMAP only knows days (`BEFORE`, `SINCE`, by each
//! message's own date and zone), so the search is widened by a day on each side and its results
//! are narrowed here by their exact INTERNALDATE ([`Refine`]): a local filter of the hits,
//! never of the mailbox.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::Error;
use crate::config::schedule::{Search, check_raw};
use crate::imap::{Capabilities, Criteria};

/// What to ask the server, and how to narrow its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The UID SEARCH criteria.
    pub criteria: Criteria,
    /// The exact bounds the server's day-granular search could not apply.
    pub refine: Refine,
}

/// Exact INTERNALDATE bounds to apply to the search's results; none with WITHIN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refine {
    /// Keep only messages received before this (`older_than`).
    pub before: Option<DateTime<Utc>>,
    /// Keep only messages received at or after this (`newer_than`).
    pub since: Option<DateTime<Utc>>,
}

impl Refine {
    /// Whether there is anything to narrow down.
    pub fn is_needed(&self) -> bool {
        self.before.is_some() || self.since.is_some()
    }

    /// Whether a message received at `date` stays. One without a date stays: the server, which
    /// knows it, already matched it.
    pub fn keeps(&self, date: Option<DateTime<Utc>>) -> bool {
        let Some(date) = date else { return true };
        self.before.is_none_or(|b| date < b) && self.since.is_none_or(|s| date >= s)
    }
}

/// The search for schedule `name` at fire time `at`, for a server with `caps`; `now` is the
/// wall clock, since the server measures OLDER and YOUNGER from its own present.
pub fn build(
    name: &str,
    search: &Search,
    caps: &Capabilities,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Query, Error> {
    let mut c = Criteria::new();
    let mut refine = Refine::default();
    // How far the present is past the fire time (a catch-up runs late).
    let late = (now - at).max(Duration::zero());
    if let Some(age) = search.older_than {
        let cutoff = at - duration(age);
        if caps.within {
            c.push(format!("OLDER {}", seconds(duration(age) + late).max(0)));
        } else {
            // A message's day is in its own zone: up to a day after its UTC day.
            c.push(format!("BEFORE {}", imap_date(cutoff.date_naive() + Duration::days(2))));
            refine.before = Some(cutoff);
        }
    }
    if let Some(age) = search.newer_than {
        let cutoff = at - duration(age);
        if caps.within {
            c.push(format!("YOUNGER {}", seconds(duration(age) + late).max(1)));
        } else {
            c.push(format!("SINCE {}", imap_date(cutoff.date_naive() - Duration::days(1))));
            refine.since = Some(cutoff);
        }
    }
    match search.seen {
        Some(true) => c.push("SEEN"),
        Some(false) => c.push("UNSEEN"),
        None => &mut c,
    };
    match search.flagged {
        Some(true) => c.push("FLAGGED"),
        Some(false) => c.push("UNFLAGGED"),
        None => &mut c,
    };
    for (key, text) in [("FROM", &search.from), ("TO", &search.to), ("SUBJECT", &search.subject)] {
        if let Some(text) = text {
            c.push(key).push_text(text.as_str());
        }
    }
    // IMAP sizes are 32-bit numbers.
    if let Some(n) = search.larger {
        c.push(format!("LARGER {}", n.min(u64::from(u32::MAX))));
    }
    if let Some(n) = search.smaller {
        c.push(format!("SMALLER {}", n.min(u64::from(u32::MAX))));
    }
    if let Some(raw) = &search.raw {
        check_raw(raw).map_err(|reason| Error::Search { schedule: name.to_owned(), reason: reason.to_owned() })?;
        c.push(format!("({})", raw.trim()));
    }
    if let Some(gmail) = &search.raw_gmail {
        if !caps.gmail {
            return Err(Error::Search {
                schedule: name.to_owned(),
                reason: "`raw_gmail` needs Gmail's X-GM-RAW, and the server does not offer it (no X-GM-EXT-1)".into(),
            });
        }
        c.push("X-GM-RAW").push_text(gmail.as_str());
    }
    Ok(Query { criteria: c, refine })
}

fn duration(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// Whole seconds, rounded up: `OLDER` must not take in a message a second too young.
fn seconds(d: Duration) -> i64 {
    let whole = d.num_seconds();
    if d > Duration::seconds(whole) { whole + 1 } else { whole }
}

/// IMAP's date form: `7-Mar-2026`.
fn imap_date(day: NaiveDate) -> String {
    day.format("%-d-%b-%Y").to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration as Std;

    use super::*;

    fn caps(list: &[&str]) -> Capabilities {
        Capabilities::from_raw(list.iter().map(|c| c.to_string()).collect())
    }

    fn at() -> DateTime<Utc> {
        "2026-03-10T07:00:00Z".parse().unwrap()
    }

    fn query(search: &Search, caps: &Capabilities) -> Query {
        build("tidy", search, caps, at(), at()).unwrap()
    }

    const DAY: Std = Std::from_secs(86_400);

    #[test]
    fn with_within_ages_are_seconds_and_nothing_is_refined() {
        let search = Search { older_than: Some(7 * DAY), seen: Some(true), ..Search::default() };
        let q = query(&search, &caps(&["IMAP4rev1", "WITHIN"]));
        assert_eq!(q.criteria.to_string(), "OLDER 604800 SEEN");
        assert!(!q.refine.is_needed());
        // A catch-up an hour late still means seven days before the fire.
        let late = build("tidy", &search, &caps(&["WITHIN"]), at(), at() + Duration::hours(1)).unwrap();
        assert_eq!(late.criteria.to_string(), "OLDER 608400 SEEN");
        let newer = Search { newer_than: Some(Std::from_millis(1500)), ..Search::default() };
        assert_eq!(query(&newer, &caps(&["WITHIN"])).criteria.to_string(), "YOUNGER 2");
    }

    #[test]
    fn without_within_days_are_widened_and_refined_to_the_second() {
        let search = Search { older_than: Some(7 * DAY), newer_than: Some(30 * DAY), ..Search::default() };
        let q = query(&search, &caps(&["IMAP4rev1"]));
        // Cutoffs 3-Mar and 8-Feb: a day of margin for the messages' own zones.
        assert_eq!(q.criteria.to_string(), "BEFORE 5-Mar-2026 SINCE 7-Feb-2026");
        let before: DateTime<Utc> = "2026-03-03T07:00:00Z".parse().unwrap();
        let since: DateTime<Utc> = "2026-02-08T07:00:00Z".parse().unwrap();
        assert_eq!(q.refine, Refine { before: Some(before), since: Some(since) });
        assert!(q.refine.keeps(Some(before - Duration::seconds(1))));
        assert!(!q.refine.keeps(Some(before)), "exactly seven days old is not older than seven days");
        assert!(q.refine.keeps(Some(since)));
        assert!(!q.refine.keeps(Some(since - Duration::seconds(1))));
        assert!(q.refine.keeps(None));
    }

    #[test]
    fn flags_sizes_and_strings() {
        let search = Search {
            seen: Some(false),
            flagged: Some(true),
            from: Some("news@example.com".into()),
            to: Some("me".into()),
            subject: Some("Größe \"XL\"".into()),
            larger: Some(10_000),
            smaller: Some(u64::MAX),
            ..Search::default()
        };
        let q = query(&search, &caps(&[]));
        assert_eq!(
            q.criteria.to_string(),
            "CHARSET UTF-8 UNSEEN FLAGGED FROM \"news@example.com\" TO \"me\" SUBJECT {12+}\r\nGröße \"XL\" \
             LARGER 10000 SMALLER 4294967295"
        );
        let seen = Search { seen: Some(true), flagged: Some(false), ..Search::default() };
        assert_eq!(query(&seen, &caps(&[])).criteria.to_string(), "SEEN UNFLAGGED");
        assert_eq!(query(&Search::default(), &caps(&[])).criteria.to_string(), "ALL");
    }

    #[test]
    fn raw_is_anded_in_parentheses_and_checked() {
        let search =
            Search { seen: Some(true), raw: Some(" OR FROM \"a)\" HEADER X-Spam yes ".into()), ..Search::default() };
        assert_eq!(query(&search, &caps(&[])).criteria.to_string(), "SEEN (OR FROM \"a)\" HEADER X-Spam yes)");
        for (bad, why) in [
            ("", "empty"),
            ("SEEN) OR (ALL", "closes"),
            ("(SEEN", "open"),
            ("SUBJECT \"open", "not closed"),
            ("SUBJECT {5}", "literal"),
            ("SUBJECT Grüße", "ASCII"),
            ("SEEN\r\nA1 LOGOUT", "ASCII"),
        ] {
            let search = Search { raw: Some(bad.into()), ..Search::default() };
            let err = build("tidy", &search, &caps(&[]), at(), at()).unwrap_err().to_string();
            assert!(err.contains("schedule `tidy`") && err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn gmail_raw_only_where_the_server_has_it() {
        let search = Search { raw_gmail: Some("category:promotions older_than:7d".into()), ..Search::default() };
        let q = query(&search, &caps(&["IMAP4rev1", "X-GM-EXT-1"]));
        assert_eq!(q.criteria.to_string(), "X-GM-RAW \"category:promotions older_than:7d\"");
        let err = build("tidy", &search, &caps(&["IMAP4rev1"]), at(), at()).unwrap_err().to_string();
        assert!(err.contains("schedule `tidy`") && err.contains("X-GM-EXT-1"), "{err}");
    }
}
