//! Dates: the `Date` type (`msg.date`, `msg.received`, `now()`, `date("...")`), comparisons,
//! parts, ages and time zones.
//!
//! A date is an instant with the UTC offset it was written in: `msg.date.hour` is the hour the
//! sender's clock showed, `msg.date.in_tz("Europe/Berlin").hour` the hour in Berlin. Comparisons
//! compare instants, whatever the offsets. Ages count from `now()`, the trigger's time, which the
//! host sets for each evaluation so that a test or a dry run can fix it.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};
use rhai::{Engine, EvalAltResult, NativeCallContext};

use super::fail;
use super::reference::{Doc, doc, function, getter, named};

/// A date as scripts see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub DateTime<FixedOffset>);

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// The trigger's time of the evaluation running on this thread.
fn now(ctx: &NativeCallContext) -> Result<DateTime<Utc>> {
    super::actions::trigger_time(ctx).ok_or_else(|| fail("now() is only known while a rule runs"))
}

/// Reads `2026-12-24` (midnight UTC) or RFC 3339 (`2026-12-24T10:00:00+01:00`, `...Z`).
pub fn parse(text: &str) -> Result<Date> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(Date(at));
    }
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(day) => Ok(Date(Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN)).fixed_offset())),
        Err(_) => {
            Err(fail(format!("cannot read date `{text}`: write 2026-12-24 or 2026-12-24T10:00:00+01:00 (RFC 3339)")))
        }
    }
}

fn in_zone(date: &Date, zone: &str) -> Result<Date> {
    let tz: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| fail(format!("`{zone}` is not a time zone: use an IANA name such as Europe/Berlin")))?;
    Ok(Date(date.0.with_timezone(&tz).fixed_offset()))
}

fn format(date: &Date, spec: &str) -> Result<String> {
    let bad = || fail(format!("cannot format a date with `{spec}`: see chrono's strftime specifiers (%Y-%m-%d %H:%M)"));
    let items = chrono::format::StrftimeItems::new(spec).parse().map_err(|_| bad())?;
    let mut out = String::new();
    // Writing to a String fails only when an item cannot be formatted; `to_string` would panic.
    write!(out, "{}", date.0.format_with_items(items.iter())).map_err(|_| bad())?;
    Ok(out)
}

/// `date` moved by a duration written as in the config (`2h`, `30m`, `1h30m`, `7d`, `2w`),
/// forward (`sign` 1) or back (-1).
fn shift(date: &Date, duration: &str, sign: i32) -> Result<Date> {
    let bad = |why: String| {
        fail(format!(
            "cannot add `{duration}` to a date: {why}; write a duration such as \"2h\", \"30m\" or \"7d\" (to join text, write \"text \" + date)"
        ))
    };
    let span = crate::config::duration::parse(duration).map_err(bad)?;
    let span = chrono::Duration::from_std(span).map_err(|_| bad("it is too long".to_owned()))?;
    let moved = if sign > 0 { date.0.checked_add_signed(span) } else { date.0.checked_sub_signed(span) };
    moved.map(Date).ok_or_else(|| bad("the result is out of range".to_owned()))
}

fn age(ctx: &NativeCallContext, date: &Date, unit_seconds: i64) -> Result<i64> {
    Ok((now(ctx)? - date.0.with_timezone(&Utc)).num_seconds() / unit_seconds)
}

const NOW: Doc = doc(
    "now() -> Date",
    "The trigger's time: when the message arrived for live mail, the fire time for a schedule; fixed in tests.",
    r#"now().in_tz("Europe/Berlin").hour >= 18"#,
);
const DATE: Doc = doc(
    "date(text) -> Date",
    "A date from 2026-12-24 (midnight UTC) or RFC 3339 2026-12-24T10:00:00+01:00; an error otherwise.",
    r#"msg.date != () && msg.date < date("2026-01-01")"#,
);
const AGE_DAYS: Doc = doc(
    "date.age_days -> int",
    "Whole days from the date to now() (negative for a date in the future).",
    "msg.date != () && msg.date.age_days > 30",
);
const AGE_HOURS: Doc = doc(
    "date.age_hours -> int",
    "Whole hours from the date to now().",
    "msg.received != () && msg.received.age_hours >= 24",
);
const IN_TZ: Doc = doc(
    "date.in_tz(zone) -> Date",
    "The same instant in an IANA time zone, so that its parts are local there.",
    r#"msg.date != () && msg.date.in_tz("America/New_York").hour >= 9"#,
);
const FORMAT: Doc = doc(
    "date.format(spec) -> string",
    "The date formatted with strftime specifiers (%Y, %m, %d, %H, %M, %a ...).",
    r#"move_to("Archive/" + now().format("%Y/%m"))"#,
);
const TO_STRING: Doc = doc(
    "date.to_string() -> string",
    "RFC 3339, the way dates appear in strings and print.",
    r#"print("sent " + msg.date)"#,
);
const PLUS: Doc = doc(
    "date.plus(duration) -> Date",
    "The date a duration later: \"90s\", \"30m\", \"2h\", \"1h30m\", \"7d\", \"2w\" (as in the config).",
    r#"send(#{ to: "me@example.com", subject: "Reminder", body: msg.subject, at: now().plus("2h") })"#,
);
const MINUS: Doc = doc(
    "date.minus(duration) -> Date",
    "The date a duration earlier.",
    r#"msg.received != () && msg.received < now().minus("30m")"#,
);
const ADD: Doc = doc(
    "date + duration, date - duration",
    "The same as date.plus(duration) and date.minus(duration): now() + \"1d\" is this time tomorrow.",
    r#"msg.date != () && msg.date > now() - "7d""#,
);
const COMPARE: Doc = doc(
    "a < b, a <= b, a > b, a >= b, a == b, a != b",
    "Compares two dates as instants, whatever their offsets.",
    r#"msg.date != () && msg.date >= date("2026-12-24")"#,
);

/// A part of a date, in its own offset: its name, its reference entry, how to read it.
type Part = (&'static str, Doc, fn(&DateTime<FixedOffset>) -> i64);

const PARTS: &[Part] = &[
    (
        "year",
        doc("date.year -> int", "The year, in the date's own offset.", "msg.date != () && msg.date.year == 2026"),
        |d| i64::from(d.year()),
    ),
    ("month", doc("date.month -> int", "The month, 1 to 12.", "now().month == 12"), |d| i64::from(d.month())),
    ("day", doc("date.day -> int", "The day of the month, 1 to 31.", "now().day == 1"), |d| i64::from(d.day())),
    ("hour", doc("date.hour -> int", "The hour, 0 to 23.", "now().hour < 8"), |d| i64::from(d.hour())),
    ("minute", doc("date.minute -> int", "The minute, 0 to 59.", "now().minute == 0"), |d| i64::from(d.minute())),
    (
        "weekday",
        doc(
            "date.weekday -> int",
            "The day of the week, 1 (Monday) to 7 (Sunday).",
            r#"now().in_tz("Europe/Berlin").weekday >= 6"#,
        ),
        |d| i64::from(d.weekday().number_from_monday()),
    ),
];

/// Registers `Date`, `now()` and `date()`.
pub fn register(engine: &mut Engine) {
    let e = engine;
    e.register_type_with_name::<Date>("Date");
    // Volatile: the optimizer must never fold `now()` into a constant.
    named("now", NOW)
        .with_volatility(true)
        .register_into_engine(e, |ctx: NativeCallContext| now(&ctx).map(|n| Date(n.fixed_offset())));
    function(e, "date", DATE, |text: &str| parse(text));
    for &(name, doc, part) in PARTS {
        getter(e, name, doc, move |d: &mut Date| part(&d.0));
    }
    getter(e, "age_days", AGE_DAYS, |ctx: NativeCallContext, d: &mut Date| age(&ctx, d, 86_400));
    getter(e, "age_hours", AGE_HOURS, |ctx: NativeCallContext, d: &mut Date| age(&ctx, d, 3_600));
    function(e, "in_tz", IN_TZ, |d: &mut Date, zone: &str| in_zone(d, zone));
    function(e, "format", FORMAT, |d: &mut Date, spec: &str| format(d, spec));
    function(e, "to_string", TO_STRING, |d: &mut Date| d.0.to_rfc3339());
    function(e, "plus", PLUS, |d: &mut Date, by: &str| shift(d, by, 1));
    function(e, "minus", MINUS, |d: &mut Date, by: &str| shift(d, by, -1));
    function(e, "+", ADD, |d: Date, by: &str| shift(&d, by, 1));
    function(e, "-", ADD, |d: Date, by: &str| shift(&d, by, -1));
    function(e, "<", COMPARE, |a: Date, b: Date| a.0 < b.0);
    function(e, "<=", COMPARE, |a: Date, b: Date| a.0 <= b.0);
    function(e, ">", COMPARE, |a: Date, b: Date| a.0 > b.0);
    function(e, ">=", COMPARE, |a: Date, b: Date| a.0 >= b.0);
    function(e, "==", COMPARE, |a: Date, b: Date| a.0 == b.0);
    function(e, "!=", COMPARE, |a: Date, b: Date| a.0 != b.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_compare_and_convert() {
        let day = parse("2026-12-24").unwrap();
        assert_eq!(day.0.to_rfc3339(), "2026-12-24T00:00:00+00:00");
        let local = parse("2026-12-24T01:30:00+01:00").unwrap();
        assert!(local.0 > day.0 && local.0.hour() == 1);
        assert_eq!(in_zone(&day, "Asia/Tokyo").unwrap().0.hour(), 9);
        assert!(in_zone(&day, "Mars/Olympus").is_err());
        assert!(parse("24.12.2026").unwrap_err().to_string().contains("cannot read date `24.12.2026`"));
        assert_eq!(format(&day, "%Y/%m").unwrap(), "2026/12");
        assert!(format(&day, "%Q").is_err(), "an unknown specifier is an error, not a panic");
        let local = parse("2026-03-28T23:30:00+01:00").unwrap();
        assert_eq!(shift(&local, "1h30m", 1).unwrap().0.to_rfc3339(), "2026-03-29T01:00:00+01:00");
        assert_eq!(shift(&local, "2d", -1).unwrap().0.to_rfc3339(), "2026-03-26T23:30:00+01:00");
        let bad = shift(&local, " from Bob", 1).unwrap_err().to_string();
        assert!(bad.contains("cannot add ` from Bob` to a date") && bad.contains("\"text \" + date"), "{bad}");
        assert!(shift(&local, "30", 1).unwrap_err().to_string().contains("has no unit"));
    }
}
