use std::str::FromStr;

use chrono::{DateTime, Duration, Local, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use croner::Cron;

use super::{latest_at_or_before, missed, next_after};
use crate::config::CatchUp;

fn cron(text: &str) -> Cron {
    Cron::from_str(text).unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// The fires strictly after `from` up to `to`, in UTC, as RFC 3339 text for readable failures.
fn fires(cron_text: &str, zone: Option<Tz>, from: &str, to: &str) -> Vec<String> {
    let (cron, to) = (cron(cron_text), utc(to));
    let mut at = utc(from);
    let mut out = Vec::new();
    while let Some(next) = next_after(&cron, zone, at).filter(|n| *n <= to) {
        assert!(next > at, "{next} is not after {at}");
        out.push(next.to_rfc3339());
        at = next;
    }
    out
}

#[test]
fn daily_seven_in_berlin_keeps_wall_time_across_spring_forward() {
    // 2025-03-30: 02:00 CET becomes 03:00 CEST.
    let got = fires("0 7 * * *", Some(Berlin), "2025-03-28T12:00:00Z", "2025-03-31T23:00:00Z");
    assert_eq!(got, ["2025-03-29T06:00:00+00:00", "2025-03-30T05:00:00+00:00", "2025-03-31T05:00:00+00:00"]);
}

#[test]
fn daily_seven_in_berlin_keeps_wall_time_across_fall_back() {
    // 2025-10-26: 03:00 CEST becomes 02:00 CET.
    let got = fires("0 7 * * *", Some(Berlin), "2025-10-24T12:00:00Z", "2025-10-27T23:00:00Z");
    assert_eq!(got, ["2025-10-25T05:00:00+00:00", "2025-10-26T06:00:00+00:00", "2025-10-27T06:00:00+00:00"]);
}

#[test]
fn a_skipped_wall_time_fires_once_at_the_end_of_the_gap() {
    // 02:30 does not exist on 2025-03-30: it fires at 03:00 CEST (01:00 UTC), once.
    let got = fires("30 2 * * *", Some(Berlin), "2025-03-28T12:00:00Z", "2025-03-31T23:00:00Z");
    assert_eq!(got, ["2025-03-29T01:30:00+00:00", "2025-03-30T01:00:00+00:00", "2025-03-31T00:30:00+00:00"]);
}

#[test]
fn a_repeated_wall_time_fires_once_at_its_first_instant() {
    // 02:30 happens twice on 2025-10-26 (00:30 and 01:30 UTC): the first only.
    let got = fires("30 2 * * *", Some(Berlin), "2025-10-25T12:00:00Z", "2025-10-27T23:00:00Z");
    assert_eq!(got, ["2025-10-26T00:30:00+00:00", "2025-10-27T01:30:00+00:00"]);
}

#[test]
fn hourly_fires_once_per_wall_clock_hour_across_fall_back() {
    let got = fires("0 * * * *", Some(Berlin), "2025-10-25T21:30:00Z", "2025-10-26T04:00:00Z");
    // 00:00, 01:00, 02:00 CEST, then 03:00, 04:00, 05:00 CET: the repeated 02:00 CET (01:00 UTC) is
    // not a second fire.
    assert_eq!(
        got,
        [
            "2025-10-25T22:00:00+00:00",
            "2025-10-25T23:00:00+00:00",
            "2025-10-26T00:00:00+00:00",
            "2025-10-26T02:00:00+00:00",
            "2025-10-26T03:00:00+00:00",
            "2025-10-26T04:00:00+00:00",
        ]
    );
    let hours: Vec<u32> = got.iter().map(|t| utc(t).with_timezone(&Berlin).hour()).collect();
    assert_eq!(hours, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn hourly_neither_doubles_nor_misses_across_spring_forward() {
    // The missing 02:00 falls on 03:00 CEST, which is a fire of its own: one fire there.
    let got = fires("0 * * * *", Some(Berlin), "2025-03-29T22:30:00Z", "2025-03-30T02:00:00Z");
    assert_eq!(
        got,
        [
            "2025-03-29T23:00:00+00:00",
            "2025-03-30T00:00:00+00:00",
            "2025-03-30T01:00:00+00:00",
            "2025-03-30T02:00:00+00:00"
        ]
    );
    // At half past, the missing 02:30 still fires, at 03:00 CEST, before 03:30.
    let got = fires("30 * * * *", Some(Berlin), "2025-03-29T23:45:00Z", "2025-03-30T01:30:00Z");
    assert_eq!(got, ["2025-03-30T00:30:00+00:00", "2025-03-30T01:00:00+00:00", "2025-03-30T01:30:00+00:00"]);
}

#[test]
fn next_after_is_strictly_after() {
    let c = cron("0 7 * * *");
    let fire = utc("2025-06-02T05:00:00Z");
    assert_eq!(next_after(&c, Some(Berlin), fire - Duration::milliseconds(500)), Some(fire));
    assert_eq!(next_after(&c, Some(Berlin), fire), Some(fire + Duration::days(1)));
    assert_eq!(next_after(&c, Some(Berlin), fire + Duration::milliseconds(1)), Some(fire + Duration::days(1)));
}

#[test]
fn next_after_from_the_second_half_of_a_repeated_hour() {
    // 01:30 UTC is 02:30 CET, the repeat: the 02:00 fire is behind, the next is 03:00 CET.
    let c = cron("0 * * * *");
    assert_eq!(next_after(&c, Some(Berlin), utc("2025-10-26T01:30:00Z")), Some(utc("2025-10-26T02:00:00Z")));
}

#[test]
fn daily_nickname() {
    let got = fires("@daily", Some(Berlin), "2025-06-01T12:00:00Z", "2025-06-03T12:00:00Z");
    assert_eq!(got, ["2025-06-01T22:00:00+00:00", "2025-06-02T22:00:00+00:00"]);
}

#[test]
fn six_fields_carry_seconds() {
    let got = fires("30 15 10 * * *", Some(chrono_tz::UTC), "2025-06-01T00:00:00Z", "2025-06-02T23:00:00Z");
    assert_eq!(got, ["2025-06-01T10:15:30+00:00", "2025-06-02T10:15:30+00:00"]);
    let got = fires("*/20 * * * * *", Some(chrono_tz::UTC), "2025-06-01T00:00:00Z", "2025-06-01T00:01:00Z");
    assert_eq!(got, ["2025-06-01T00:00:20+00:00", "2025-06-01T00:00:40+00:00", "2025-06-01T00:01:00+00:00"]);
}

#[test]
fn sunday_is_zero_and_seven() {
    // 2025-06-01 and 2025-06-08 are Sundays.
    let want = ["2025-06-01T07:00:00+00:00", "2025-06-08T07:00:00+00:00"];
    for text in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
        assert_eq!(fires(text, Some(Berlin), "2025-05-30T00:00:00Z", "2025-06-09T00:00:00Z"), want, "{text}");
    }
}

#[test]
fn latest_at_or_before_includes_now() {
    let c = cron("0 7 * * *");
    let fire = utc("2025-06-02T05:00:00Z");
    assert_eq!(latest_at_or_before(&c, Some(Berlin), fire), Some(fire));
    assert_eq!(latest_at_or_before(&c, Some(Berlin), fire - Duration::seconds(1)), Some(fire - Duration::days(1)));
}

#[test]
fn latest_at_or_before_in_a_repeated_hour_is_the_first_instant() {
    // At 02:45 CET (the repeat), 02:30 fired at 02:30 CEST; the repeat is no fire.
    let c = cron("30 2 * * *");
    assert_eq!(latest_at_or_before(&c, Some(Berlin), utc("2025-10-26T01:45:00Z")), Some(utc("2025-10-26T00:30:00Z")));
    let hourly = cron("0 * * * *");
    assert_eq!(
        latest_at_or_before(&hourly, Some(Berlin), utc("2025-10-26T01:30:00Z")),
        Some(utc("2025-10-26T00:00:00Z"))
    );
}

#[test]
fn latest_at_or_before_in_a_gap_day() {
    let c = cron("30 2 * * *");
    assert_eq!(latest_at_or_before(&c, Some(Berlin), utc("2025-03-30T04:00:00Z")), Some(utc("2025-03-30T01:00:00Z")));
}

#[test]
fn latest_at_or_before_looks_back_400_days_only() {
    // The last 29 February before mid-2025 is 458 days back.
    let leap = cron("0 0 29 2 *");
    assert_eq!(latest_at_or_before(&leap, Some(chrono_tz::UTC), utc("2025-06-01T00:00:00Z")), None);
    assert_eq!(
        latest_at_or_before(&leap, Some(chrono_tz::UTC), utc("2024-06-01T00:00:00Z")),
        Some(utc("2024-02-29T00:00:00Z"))
    );
}

#[test]
fn first_start_runs_nothing() {
    let c = cron("0 7 * * *");
    assert_eq!(missed(&c, Some(Berlin), None, utc("2025-06-02T12:00:00Z"), CatchUp::Once), None);
}

#[test]
fn a_missed_fire_runs_once_with_catch_up_once_and_not_with_skip() {
    let c = cron("0 7 * * *");
    let last = utc("2025-06-01T05:00:00Z");
    let now = utc("2025-06-02T12:00:00Z");
    assert_eq!(missed(&c, Some(Berlin), Some(last), now, CatchUp::Once), Some(utc("2025-06-02T05:00:00Z")));
    assert_eq!(missed(&c, Some(Berlin), Some(last), now, CatchUp::Skip), None);
}

#[test]
fn nothing_missed_since_the_last_fire() {
    let c = cron("0 7 * * *");
    let last = utc("2025-06-02T05:00:00Z");
    assert_eq!(missed(&c, Some(Berlin), Some(last), utc("2025-06-02T12:00:00Z"), CatchUp::Once), None);
    // Restarted right at the fire it already ran.
    assert_eq!(missed(&c, Some(Berlin), Some(last), last, CatchUp::Once), None);
}

#[test]
fn many_missed_ticks_give_one_run_of_the_latest() {
    let c = cron("*/5 * * * *");
    let last = utc("2025-05-01T00:00:00Z");
    let now = utc("2025-06-02T12:03:00Z");
    let run = missed(&c, Some(Berlin), Some(last), now, CatchUp::Once);
    assert_eq!(run, Some(utc("2025-06-02T12:00:00Z")));
    // Once it ran (the store now says so), a restart finds nothing more to catch up on, and the
    // next fire is the next tick, not one of the thousands missed.
    assert_eq!(missed(&c, Some(Berlin), run, now, CatchUp::Once), None);
    assert_eq!(next_after(&c, Some(Berlin), now), Some(utc("2025-06-02T12:05:00Z")));
}

#[test]
fn a_last_fire_in_the_future_runs_nothing() {
    // The clock went backwards: the stored fire is ahead of now.
    let c = cron("0 7 * * *");
    let now = utc("2025-06-02T12:00:00Z");
    let last = now + Duration::days(3);
    assert_eq!(missed(&c, Some(Berlin), Some(last), now, CatchUp::Once), None);
}

#[test]
fn no_zone_reads_the_machine_zone() {
    let c = cron("15 7 * * *");
    let after = utc("2025-06-02T12:00:00Z");
    let fire = next_after(&c, None, after).unwrap();
    assert!(fire > after && fire <= after + Duration::days(1) + Duration::hours(3));
    let local = fire.with_timezone(&Local);
    assert_eq!((local.hour(), local.minute()), (7, 15), "{local}");
    let latest = latest_at_or_before(&c, None, after).unwrap();
    assert_eq!(Local.from_utc_datetime(&latest.naive_utc()).minute(), 15);
}
