//! Integration tests: the one test binary (`autotests = false` in Cargo.toml).
//!
//! Run with `cargo test --test tests`; needs Dovecot and Postfix installed
//! (`apt-get install dovecot-imapd dovecot-lmtpd postfix`) and root.
//! Each module below says what it covers; add new ones the same way.

mod cli;
mod harness; // local Dovecot + Postfix on free 127.0.0.1 ports, CA, mail helpers
mod harness_selftest;
mod imap_session; // imap::Session on real Dovecot: logins, auth/TLS errors, fetch, IDLE, actions, UTF-8, timeouts
mod rules_examples; // the shipped rules/ and plugins/ over examples/mail: golden plans; the corpus through them, no failures // proves the harness itself works: TLS logins, APPEND, LMTP, SMTP, catch-all, IDLE, restart // the binary as users run it: check verdicts and exit codes, run start-up, SIGTERM, store lock, secrets kept out of logs
