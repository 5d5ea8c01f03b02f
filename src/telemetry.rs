//! Logging: the subscriber, and the span and field names every module uses.
//!
//! Spans nest account > mailbox > message > rule/action, so one grep for an account or a UID
//! shows everything that happened to it. Message bodies and secrets are never fields.
//!
//! Layer: data (see the map in lib.rs): it imports nothing from the layers above.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Field: the account name.
pub const ACCOUNT: &str = "account";
/// Field: the mailbox name.
pub const MAILBOX: &str = "mailbox";
/// Field: a message UID.
pub const UID: &str = "uid";
/// Field: the mailbox UIDVALIDITY.
pub const UIDVALIDITY: &str = "uidvalidity";
/// Field: a rule's name.
pub const RULE: &str = "rule";
/// Field: an action's kind.
pub const ACTION: &str = "action";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber, writing to stderr. `RUST_LOG` overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let colour = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    // A second init (tests calling twice) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Text => builder.with_span_events(FmtSpan::NONE).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
}

/// Whether log lines get colour codes: only on a terminal (a file or the journal would keep the
/// codes as text), and never when `NO_COLOR` is set to anything but "" (no-color.org).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// The span around everything one account does.
pub fn account_span(account: &str) -> tracing::Span {
    tracing::info_span!("account", account)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_and_not_with_no_color() {
        assert!(super::colour(true, None));
        assert!(super::colour(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count");
        assert!(!super::colour(true, Some(OsStr::new("1"))));
        assert!(!super::colour(false, None), "a file or the journal gets no codes");
    }
}
