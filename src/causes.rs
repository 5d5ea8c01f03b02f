//! An error with its causes, on one line: how every layer logs and records a failure.
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
