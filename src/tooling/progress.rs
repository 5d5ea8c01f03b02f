//! A progress bar on stderr for long dry runs, drawn in place with `\r`; nothing when stderr is
//! not a terminal (the caller decides).

use std::io::Write;
use std::time::{Duration, Instant};

/// Redraw at most this often: a terminal cannot show more, and each draw is a write.
const EVERY: Duration = Duration::from_millis(100);

/// The bar's state.
pub struct Progress {
    total: usize,
    done: usize,
    enabled: bool,
    drawn: Option<Instant>,
}

impl Progress {
    /// A bar over `total` messages; `enabled` false makes every call a no-op.
    pub fn new(total: usize, enabled: bool) -> Progress {
        Progress { total, done: 0, enabled: enabled && total > 0, drawn: None }
    }

    /// `n` more messages are done.
    pub fn advance(&mut self, n: usize) {
        self.done = (self.done + n).min(self.total);
        if self.enabled && (self.done == self.total || self.drawn.is_none_or(|t| t.elapsed() >= EVERY)) {
            self.drawn = Some(Instant::now());
            let line = bar(self.done, self.total, 30);
            // Progress is a courtesy: a failed write to the terminal must not end the run.
            let _ = write!(std::io::stderr(), "\r{line}");
        }
    }

    /// Clears the bar, so what follows starts on a clean line.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
        self.enabled = false;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `[#########.....................] 1200/3958 messages`
fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("[{}{}] {done}/{total} messages", "#".repeat(filled), ".".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(bar(0, 4, 4), "[....] 0/4 messages");
        assert_eq!(bar(2, 4, 4), "[##..] 2/4 messages");
        assert_eq!(bar(4, 4, 4), "[####] 4/4 messages");
        assert_eq!(bar(0, 0, 4), "[####] 0/0 messages");
    }
}
