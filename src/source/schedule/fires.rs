//! Fire times: when a schedule's cron expression fires, read in its time zone. Pure: no clock,
//! no IO; the caller passes `now`.
//!
//! croner walks the wall clock. Two wall-clock times need a rule of our own, because croner fires
//! an interval job (`0 * * * *`) on both instants of a repeated hour and skips one whose time
//! falls in a gap, and a schedule must neither double nor miss a fire at a DST switch:
//! - a wall time the clock skips (spring forward) fires once, at the first instant after the gap;
//! - a wall time the clock repeats (fall back) fires once, at its earlier instant.
//!
//! So every matching wall time maps to exactly one instant, and distinct wall times that map to
//! the same instant fire once. The walk is done on naive wall times and each is resolved here.

use chrono::{DateTime, Duration, Local, LocalResult, NaiveDateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::config::CatchUp;

/// How far back [`latest_at_or_before`] looks, and how far ahead [`next_after`] walks.
const HORIZON_DAYS: i64 = 400;

/// Longer than any UTC offset change (the largest in the tz database are 2 hours, a few
/// historical ones aside), so a search widened by it sees both halves of a repeated range.
const SHIFT_MARGIN: Duration = Duration::hours(3);

/// The first fire strictly after `after`, read in `zone` (None: the machine's zone). DST: a wall
/// time that does not exist fires once at the switch's next valid instant; a repeated wall time
/// fires once.
pub fn next_after(cron: &Cron, zone: Option<Tz>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match zone {
        Some(tz) => next_in(cron, &tz, after),
        None => next_in(cron, &Local, after),
    }
}

/// The latest fire at or before `now` (None if none in the last 400 days).
pub fn latest_at_or_before(cron: &Cron, zone: Option<Tz>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match zone {
        Some(tz) => latest_in(cron, &tz, now),
        None => latest_in(cron, &Local, now),
    }
}

/// What to do at start-up: `Some(fire)` = run the missed `fire` now (catch_up: once, and a fire
/// was missed since `last`); None = wait for `next_after(now)`. First start ever (last None): None.
///
/// A `last` later than `now` means the clock went backwards: nothing runs, because that fire
/// (or a later one) has already run. However many ticks were missed, at most one runs: the latest.
pub fn missed(
    cron: &Cron,
    zone: Option<Tz>,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    catch_up: CatchUp,
) -> Option<DateTime<Utc>> {
    let last = last?;
    if catch_up == CatchUp::Skip || last >= now {
        return None;
    }
    latest_at_or_before(cron, zone, now).filter(|fire| *fire > last)
}

fn next_in<Z: TimeZone>(cron: &Cron, zone: &Z, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Every wall time before `after`'s own maps to an instant at or before `after` (the mapping
    // is monotonic), so the walk starts there; wall times of a repeated range that map to
    // earlier instants are passed over below.
    let start = after.with_timezone(zone).naive_local().trunc_subsecs(0);
    let end = start + Duration::days(HORIZON_DAYS);
    let mut wall = cron.find_next_occurrence(&start, true).ok()?;
    while wall <= end {
        if let Some(fire) = resolve(zone, wall)
            && fire > after
        {
            return Some(fire);
        }
        wall = cron.find_next_occurrence(&wall, false).ok()?;
    }
    None
}

fn latest_in<Z: TimeZone>(cron: &Cron, zone: &Z, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // When `now` lies in the second half of a repeated range, later wall times of that range
    // map to earlier instants: start the backward walk past it.
    let start = now.with_timezone(zone).naive_local().trunc_subsecs(0) + SHIFT_MARGIN;
    let floor = now - Duration::days(HORIZON_DAYS);
    let mut wall = cron.find_previous_occurrence(&start, true).ok()?;
    loop {
        if let Some(fire) = resolve(zone, wall) {
            if fire < floor {
                return None;
            }
            if fire <= now {
                return Some(fire);
            }
        }
        wall = cron.find_previous_occurrence(&wall, false).ok()?;
    }
}

/// The one instant a wall time fires at: itself, the earlier of a repeated time, or the first
/// instant after a gap. None only for a wall time near the end of chrono's range.
fn resolve<Z: TimeZone>(zone: &Z, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => after_gap(zone, wall),
    }
}

/// The first instant after the gap `wall` falls in: the earliest valid wall time after it,
/// found by bisection (a gap is one contiguous range of invalid wall times).
fn after_gap<Z: TimeZone>(zone: &Z, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let valid = |w: NaiveDateTime| !matches!(zone.from_local_datetime(&w), LocalResult::None);
    // Seconds past `wall`: `lo` invalid, `hi` valid.
    let (mut lo, mut hi) = (0, SHIFT_MARGIN.num_seconds());
    if !valid(wall + Duration::seconds(hi)) {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if valid(wall + Duration::seconds(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let hi = wall + Duration::seconds(hi);
    match zone.from_local_datetime(&hi) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

#[cfg(test)]
#[path = "fires_tests.rs"]
mod tests;
