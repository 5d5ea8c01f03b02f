//! An error with its causes, on one line: how every layer logs, records and shows a failure.
//!
//! A leaf: it imports nothing from the crate, so any module may use it without a cycle.

/// An error and its causes on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers such as async-imap's `io: {0}` show their source already: say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `text` on one line (runs of whitespace and control characters become one space), at most
/// `max` characters, the last an ellipsis when it was cut.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect::<Vec<_>>();
    let flat = flat.join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::{error_chain, one_line};

    /// An error with an optional cause, shown as `text`.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn the_chain_goes_outermost_first_and_a_cause_its_wrapper_shows_is_said_once() {
        let root = Layer("connection refused", None);
        let io = Layer("io: connection refused", Some(Box::new(root)));
        let top = Layer("cannot connect to imap.example", Some(Box::new(io)));
        assert_eq!(error_chain(&top), "cannot connect to imap.example: io: connection refused");
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }

    #[test]
    fn errors_are_shown_on_one_line_and_cut() {
        assert_eq!(one_line("550 5.1.1\r\n  no such\tuser\n", 80), "550 5.1.1 no such user");
        assert_eq!(one_line("abcdefghij", 10), "abcdefghij");
        assert_eq!(one_line("abcdefghijk", 10), "abcdefghi…");
        assert_eq!(one_line("ééééé", 3), "éé…", "cut by character, not byte");
        assert_eq!(one_line("", 10), "");
    }
}
