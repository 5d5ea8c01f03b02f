//! Errors in the reports' tables (`tidings outbox`, `tidings status`), the root cause kept whole.
//!
//! A stored error is its chain joined with ": " (see [`crate::causes::error_chain`]): what failed
//! first, the innermost cause last. Cut from the end to a column's width, the root cause is what
//! goes ("... error sending request: client error (C…" for a refused connection). So an error
//! too long for its column keeps its first parts and its last, the middle elided; one whose root
//! cause alone does not fit is cut in the column and printed whole, wrapped, under its row.

use std::io::{self, Write};

use crate::causes::one_line;

/// Where the parts of an elided error meet.
const GAP: &str = ": … ";
/// The widest line of an error printed under its row, indent included.
const WRAP: usize = 100;

/// An error in a column: the cell, and the whole error to print under the row when the cell
/// cannot hold its root cause (see [`write_below`]).
pub fn cell(error: &str, max: usize) -> (String, Option<String>) {
    match compact(error, max) {
        Some(cell) => (cell, None),
        None => (one_line(error, max), Some(one_line(error, usize::MAX))),
    }
}

/// `error` on one line in at most `max` characters, its root cause (the last part of the chain)
/// never cut: whole when it fits, else its first parts and its last ones with the middle elided
/// ("cannot connect to webhook `ops`: … Connection refused (os error 111)"); `None` when the
/// root cause and the first part (what failed) do not fit together.
pub fn compact(error: &str, max: usize) -> Option<String> {
    let flat = one_line(error, usize::MAX);
    if flat.chars().count() <= max {
        return Some(flat);
    }
    let parts: Vec<&str> = flat.split(": ").collect();
    let len = |parts: &[&str]| parts.iter().map(|p| p.chars().count() + 2).sum::<usize>().saturating_sub(2);
    let gap = GAP.chars().count();
    let total = |head: usize, tail: usize| len(&parts[..head]) + gap + len(&parts[tail..]);
    let mut tail = parts.len().checked_sub(1).filter(|last| *last > 0)?;
    // What failed, whole: cut, it says nothing ("the SMTP serv…").
    max.checked_sub(gap + len(&parts[tail..])).filter(|room| *room >= parts[0].chars().count())?;
    // What failed first, then as much of the way to the root cause as still fits.
    let mut head = 1;
    while head + 1 < tail && total(head + 1, tail) <= max {
        head += 1;
    }
    while tail > head + 1 && total(head, tail - 1) <= max {
        tail -= 1;
    }
    Some(format!("{}{GAP}{}", parts[..head].join(": "), parts[tail..].join(": ")))
}

/// Writes `error` (from [`cell`]) wrapped at word boundaries, each line indented by `indent`
/// and the first marked `error:`.
pub fn write_below(out: &mut dyn Write, error: &str, indent: &str) -> io::Result<()> {
    let first = format!("{indent}error: ");
    let rest = format!("{indent}       ");
    let mut line = first.clone();
    for word in error.split(' ').filter(|w| !w.is_empty()) {
        let fresh = line == first || line == rest;
        if !fresh && line.chars().count() + 1 + word.chars().count() > WRAP {
            writeln!(out, "{line}")?;
            line = rest.clone();
        } else if !fresh {
            line.push(' ');
        }
        line.push_str(word);
    }
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a webhook to a closed port stores (reqwest's chain under tidings' own words).
    const REFUSED: &str = "cannot connect to webhook `ops`: error sending request: client error (Connect): \
                           tcp connect error: Connection refused (os error 111)";

    #[test]
    fn a_long_chain_keeps_what_failed_and_its_root_cause() {
        assert_eq!(
            compact(REFUSED, 72).as_deref(),
            Some("cannot connect to webhook `ops`: … Connection refused (os error 111)")
        );
        let gave_up = format!("gave up after 3 attempts: {REFUSED}");
        let shown = compact(&gave_up, 72).unwrap();
        assert_eq!(shown, "gave up after 3 attempts: … Connection refused (os error 111)");
        let wide = compact(&gave_up, 100).unwrap();
        assert_eq!(
            wide,
            "gave up after 3 attempts: cannot connect to webhook `ops`: … Connection refused (os error 111)"
        );
        let wider = compact(&gave_up, 120).unwrap();
        assert_eq!(
            wider,
            "gave up after 3 attempts: cannot connect to webhook `ops`: error sending request: … Connection refused (os error 111)"
        );
        assert!(wider.chars().count() <= 120, "{wider}");
    }

    #[test]
    fn an_error_that_fits_is_shown_whole_on_one_line() {
        assert_eq!(compact("500 Internal\n Server Error", 72).as_deref(), Some("500 Internal Server Error"));
        assert_eq!(cell("timed out", 72), ("timed out".to_owned(), None));
    }

    #[test]
    fn a_first_part_too_long_to_keep_whole_sends_the_error_under_the_row() {
        let error = format!("cannot move to {}: NO [TRYCREATE] no such mailbox", "x".repeat(40));
        assert_eq!(compact(&error, 72), None);
        let shown = compact(&error, 90).unwrap();
        assert_eq!(shown, format!("cannot move to {}: NO [TRYCREATE] no such mailbox", "x".repeat(40)), "fits whole");
        let error = format!("cannot move to {}: NO: [TRYCREATE] no such mailbox", "x".repeat(40));
        let shown = compact(&error, 87).unwrap();
        assert_eq!(shown, format!("cannot move to {}: … [TRYCREATE] no such mailbox", "x".repeat(40)));
    }

    #[test]
    fn a_root_cause_too_long_for_the_column_goes_whole_under_the_row() {
        let said = "550 5.7.1 relay access denied ".repeat(4);
        let error = format!("the SMTP server refused the message: {said}");
        assert_eq!(compact(&error, 72), None);
        assert_eq!(compact(&"y".repeat(80), 72), None, "one long part: nothing to keep apart");
        let (shown, below) = cell(&error, 72);
        assert_eq!(shown.chars().count(), 72, "{shown}");
        let below = below.unwrap();
        assert_eq!(below, error.trim_end());
        let mut out = Vec::new();
        write_below(&mut out, &below, "    ").unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 1 && lines.iter().all(|l| l.chars().count() <= WRAP), "{text}");
        assert!(lines[0].starts_with("    error: the SMTP server refused"), "{text}");
        assert!(lines[1..].iter().all(|l| l.starts_with("           ") && !l[11..].starts_with(' ')), "{text}");
        let words: Vec<&str> = text.split_whitespace().skip(1).collect();
        assert_eq!(words.join(" "), below, "every word, in order");
    }
}
