//! What a rule wrote with `print()` or `debug()`, kept for `tidings test` and dry runs to show
//! under the message. The daemon logs it (print at info, debug at debug, in the rule's span);
//! nothing shown here is kept past the evaluation.
//!
//! Kept per thread, as rules run on one thread from start to end: the engine's print and debug
//! hooks get the text alone, not the run's context (where the recorder is, see `actions`).
//! Bounded: a rule printing in a loop, or printing a whole body, cannot grow memory.

use std::cell::RefCell;

/// Lines kept per rule run; later ones are counted, not kept.
pub const MAX_LINES: usize = 50;
/// Characters kept of one line.
pub const MAX_CHARS: usize = 500;

thread_local! {
    static PRINTED: RefCell<(Vec<String>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Keeps one line a rule printed, cut to [`MAX_CHARS`], while fewer than [`MAX_LINES`] are kept.
pub fn record(text: &str) {
    PRINTED.with(|printed| {
        let (lines, dropped) = &mut *printed.borrow_mut();
        if lines.len() < MAX_LINES {
            let mut line: String = text.chars().take(MAX_CHARS).collect();
            if line.len() < text.len() {
                line.push('…');
            }
            lines.push(line);
        } else {
            *dropped += 1;
        }
    });
}

/// The lines kept since the last call (and a note of how many were not), emptying the store.
pub fn take() -> Vec<String> {
    PRINTED.with(|printed| {
        let (mut lines, dropped) = std::mem::take(&mut *printed.borrow_mut());
        if dropped > 0 {
            lines.push(format!("({dropped} more lines not shown)"));
        }
        lines
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_lines_are_bounded() {
        take();
        record("hello");
        record(&"x".repeat(MAX_CHARS + 10));
        for _ in 0..MAX_LINES + 5 {
            record("again");
        }
        let lines = take();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines[0], "hello");
        assert_eq!(lines[1].chars().count(), MAX_CHARS + 1);
        assert_eq!(lines[MAX_LINES], "(7 more lines not shown)");
        assert!(take().is_empty(), "taking empties the store");
    }
}
