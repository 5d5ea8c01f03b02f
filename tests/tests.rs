//! Integration tests: the one test binary (`autotests = false` in Cargo.toml).
//!
//! Run with `cargo test --test tests`; needs Dovecot, Postfix and Cyrus installed
//! (`tests/install-deps.sh`: not `apt-get install cyrus-imapd`, which removes Dovecot) and root.
//! Each module below says what it covers; add new ones the same way.

// archive() into the special-use \Archive folder; `run --once` fails a reply without SMTP and
// leaves an unreachable webhook pending, and still ends.
mod actions;
// `check` catching files (a missing ca_file at its line, a preset's servers) and `check --connect`
// catching servers: all green, an unknown CA, a wrong password, a missing mailbox, a webhook
// reached and pinged signed; a CA file gone under the daemon: a configuration error retried soon.
mod check;
// The binary as users run it: check verdicts and exit codes, run start-up, SIGTERM, store lock,
// secrets kept out of logs, a password file open to others warned about, state files owner-only,
// an empty (truncated) state file refused untouched, a data file linking out of rules/data refused,
// no colour codes in a piped log and TIDINGS_LOG_FORMAT, a report whose reader went away ends quietly,
// --help naming the signals and the why alias.
mod cli;
// Runs the real binary on a config for a harness user: log capture, SIGTERM, SIGKILL.
mod daemon;
// The docs a user follows: every relative link in README.md, CHANGELOG.md, docs/ and the rules
// and plugins READMEs reaches its file and heading; the README opens with the set-up commands; its
// minimal plain-IMAP and Gmail configs pass `tidings check` as written.
mod docs;
// Fault injection through a TCP proxy and the real daemon: connections cut mid-FETCH, mid-IDLE,
// mid-MOVE, mid-SMTP-DATA and mid-webhook; stalls during login, IDLE and a command noticed within
// the deadlines; Dovecot, Postfix and the receiver down under load; SIGKILLs at random moments.
// Each ends with an exact accounting (delivered, processed, duplicates, uncertain).
mod faults;
mod fleet;
// A full disk under the SQLite store (a 2 MiB tmpfs filled while the daemon runs): the mail
// delivered meanwhile kept, /healthz saying why, the account resuming by itself once space returns.
mod disk_full;
// Inputs kept from fuzzing (findings and a corpus sample) through the fuzz targets' own code
// (fuzz/src/lib.rs): config loader, message view, rule bridge. No servers.
mod fuzz_regressions;
// Gmail semantics against a scripted peer speaking Gmail's IMAP extensions (not Gmail): labels,
// thread ids, archive and delete by special-use, one message in two label folders acted on once.
mod gmail;
// Local Dovecot + Postfix on free 127.0.0.1 ports, CA, mail helpers.
mod harness;
// Provider presets through `tidings check`; `mailboxes: all` on Dovecot within a connection
// budget, the rest polled on one connection.
mod mailboxes;
// Outbound, through the real daemon: auto-replies delivered by Postfix (threaded, once per
// sender, saved to Sent), every reply guard, the daily limit; replies go to the envelope sender
// (30 senders who break reply() get none and every webhook still fires; the shipped vacation
// rule never answers a third-party Reply-To); a forward loop between two accounts ends after two
// forwards (X-Loop) and the daily cap stays usable; 20,000 To addresses are capped, not a failure.
// The send and save-to-Sent log lines carry the recipient count and the folder, not the address.
mod outbound_mail;
// The corpus through a reply-to-everything rule: no reply to list, bulk, bounce or automatic mail;
// the real auto-replies (Apple, Exchange, Lotus Notes, AOL ...) are never answered.
mod outbound_corpus;
// Webhooks and commands: signed payloads, receiver down then back, dead letters in `tidings
// outbox`, SIGKILL during a burst (at least once, duplicates counted), command stdin and timeout,
// commands with `--config tidings.yaml` (a bare file name) run in the config's directory,
// a form-urlencoded template percent-encodes a Subject `x&channel=evil` (no parameter added),
// no secret (password, OAuth2 tokens and client secret, webhook secret) in any line of a
// trace-level log of a full run that sorts, replies and signs. A webhook to a closed port: the
// outbox's LAST ERROR shows "Connection refused", the log lines name the endpoint.
mod outbound_events;
// Retention through the daemon: a done reply keeps no content, and a pruning pass with a 1 s
// retention deletes it but keeps the reply-once memory (a second message gets no reply).
mod retention;
// Health: /healthz unhealthy while Dovecot is down and healthy when it is back, /metrics parsed
// as Prometheus text, `tidings status` and `tidings history` explaining a sorted message.
mod health;
// Hostile input through the daemon: a 50 MB message, a 1 MB header, 10,000 MIME parts, odd
// folder names moved into and watched, an unparseable server line mid-IDLE and mid-FETCH.
mod hostile;
// Bounded memory through the daemon: a backlog of 200 x 9 MB with a rule reading the body,
// caught up with a peak RSS (VmHWM) under 300 MB, every message moved once; the same for 600
// messages of 1 MB headers with a rule reading the header.
mod memory;
// The shared store's PostgreSQL parts on the harness's own cluster: account leases with fencing
// epochs (takeover, stale owners refused, a takeover waiting for a write, one winner of a race);
// the schema's versions applied once by instances starting together.
mod postgres;
// Proves the harness itself works: TLS logins, APPEND, LMTP, SMTP, catch-all, IDLE, restart,
// PostgreSQL clusters run as the postgres user.
mod harness_selftest;
// A new user's first hour walked as a script: `init` for a plain server, the password variable,
// `check --connect` green, a rule added and tried with `tidings test` on a saved message, `dry-run`
// changing nothing, `run` sorting the next message.
mod first_hour;
// `tidings init` without a terminal: every provider and a plain server (own CA, SMTP) pass
// `check --skip-secrets` as written, `check` once the variables are set, and `tidings test` on the
// starter fixtures; a second init overwrites nothing; a missing --email and conflicting flags refused.
mod init;
// imap::Session on real Dovecot: logins, auth/TLS errors, fetch, IDLE, actions, UTF-8, timeouts.
mod imap_session;
// OAuth2 against a local token endpoint (expiry, rotation written back, revoked token, `tidings
// auth` for Google and Microsoft, a fixed --port, Google's client JSON) and XOAUTH2 logins to
// Dovecot's oauth2 passdb introspecting at that endpoint, IMAP and SMTP.
mod oauth;
// SIGKILL during a burst (exactly once), Dovecot restart while idling, the corpus through the
// pipeline.
mod recovery;
// Rules reloaded while the daemon runs: a changed rule sorts the next message on the same
// session; broken or escaping rules keep the previous set and are logged; check refuses imports
// outside plugins/. SIGHUP: accounts added and removed, the others' sessions kept; a removed
// account leaves `tidings status` (text and JSON, verdict healthy); a move's log line names its folder.
mod reload;
// Rules isolated through the daemon: a rule throwing on 30 messages stays active while status,
// /healthz, /metrics and history report it (each failure once); one account's rule stuck at its
// wall-clock limit does not hold up another account's move.
mod rule_isolation;
// The shipped rules/ and plugins/ over examples/mail: golden plans; the corpus through them.
pub mod rules_examples;
// exec::mail against Postfix and Dovecot: a reply over implicit TLS, STARTTLS and plaintext,
// threaded in the INBOX; refusals, wrong password, untrusted certificate, no STARTTLS, a silent
// server; APPEND to Sent.
mod smtp_send;
// Schedules: the sweep's SEARCH on Dovecot (literals with and without LITERAL+, dates refined
// to the second); a sweep archiving old read mail only; a restart that runs no fire twice; a
// digest collected across restarts and sent once; failed runs recorded, the schedule going on.
mod schedules;
// `tidings test` (samples, shipped fixtures, diffs, JSON lines, exit statuses, the corpus) and
// `tidings dry-run` against Dovecot (a correct summary, the mailbox unchanged).
mod tooling;
// TLS trust on Dovecot (IMAP) and Postfix (SMTP), implicit and STARTTLS: an unknown CA refused,
// accepted with its ca_file or the leaf pinned (tls_fingerprint), a wrong pin refused naming both
// fingerprints, another host name refused unless pinned, a self-signed certificate refused as a
// ca_file and accepted pinned; an IMAP server hiding STARTTLS refused before any login; a webhook
// receiver with an unknown CA refused.
mod tls;
// The core tests on Dovecot and on Cyrus IMAP 3.6: logins, fetch after a checkpoint, IDLE
// latency, move/copy/flag/delete, the no-MOVE/no-UIDPLUS fallbacks, ID, the daemon sorting mail.
mod two_servers;
// The live pipeline: idle-to-move latency, mail from while stopped, UIDVALIDITY reset, --once,
// non-ASCII folders.
mod watch;
