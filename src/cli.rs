//! The command line: what the user can ask for. Policy (messages, exit codes) lives in `main`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use tidings::telemetry::LogFormat;

/// tidings watches your mailboxes and runs your rules on every new message: sort, flag, move,
/// reply, forward and fire webhooks, in real time or on a schedule.
#[derive(Debug, Parser)]
#[command(name = "tidings", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// The config file [default: $XDG_CONFIG_HOME/tidings/tidings.yaml].
    #[arg(long, short, global = true, env = "TIDINGS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// How log lines are written to stderr.
    #[arg(long, global = true, value_enum, env = "TIDINGS_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log more: -v for debug, -vv for protocol traces. RUST_LOG overrides this.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented config and a starter rule set (with fixtures) for one account.
    ///
    /// Writes DIR/tidings.yaml (a provider preset, or a plain server with --imap) and DIR/rules/
    /// (mailing lists and newsletters filed into folders; nothing deleted or sent), then prints
    /// what it assumed and the commands to run next. On a terminal it asks for what the flags
    /// did not give; without one it never asks. It never overwrites a file. Exit status: 0
    /// written, 2 a flag is missing or wrong or a file is in the way (nothing is written then).
    Init(tidings::tooling::init::Options),
    /// Validate the config and compile every rule; list every problem and exit non-zero if any.
    ///
    /// Every file and directory the config names must exist and be readable (CA files, secret
    /// files, the rules and plugins directories), and the rules directory must hold a live rule
    /// (unless schedules give the config work, or `rules: { dir: DIR, allow_empty: true }`).
    /// Nothing is connected to and no mail is touched. Secrets are read too (so a missing
    /// password is caught now) unless --skip-secrets is given.
    ///
    /// With --connect, each account's servers are then tried live: DNS, TCP, TLS (a refused
    /// certificate named in words, with its fingerprint), login, the capabilities tidings uses,
    /// each watched mailbox's message count, the connection budget; SMTP up to AUTH (nothing is
    /// sent); each webhook endpoint reached. One table per account, then a verdict. Exit
    /// status with --connect: 0 all well (notes allowed), 1 a server check failed, 2 the config
    /// is wrong.
    Check {
        /// Do not read passwords (for checking a config on a machine that lacks them).
        #[arg(long, conflicts_with = "connect")]
        skip_secrets: bool,
        /// Also connect to every server and webhook endpoint and log in (changes nothing).
        #[arg(long)]
        connect: bool,
        /// With --connect: post a signed `tidings.test` event to each webhook endpoint.
        #[arg(long, requires = "connect")]
        ping_webhooks: bool,
        /// With --connect: only this account (and no webhooks).
        #[arg(long, value_name = "NAME", requires = "connect")]
        account: Option<String>,
    },
    /// Run the daemon until SIGINT or SIGTERM; SIGHUP reloads its accounts.
    ///
    /// Every watched mailbox is caught up from its checkpoint and then watched with IMAP IDLE;
    /// what the rules decide is stored, then carried out exactly once.
    ///
    /// Signals: SIGINT or SIGTERM stops cleanly (at safe points; nothing decided is lost).
    /// SIGHUP (`systemctl reload`, `kill -HUP`) reloads the config's accounts and schedules:
    /// added accounts start, removed ones stop, changed ones restart, the others keep their
    /// sessions; settings shared by all accounts (state, rules, plugins, webhooks, ...) need a
    /// restart. Rules, plugins and data files reload by themselves when saved, without SIGHUP.
    Run {
        /// Process what is pending, carry out every resulting action, and exit (for cron and
        /// benchmarks). A TLS or login failure ends the run at once with a non-zero status.
        #[arg(long)]
        once: bool,
    },
    /// Run the live rules over .eml files and rule fixtures; print what they would do.
    ///
    /// Per message: the rules that matched, the plan in order, overridden dispositions and
    /// rule failures. Fixtures (YAML, see rules/README.md) pair sample messages with the plan
    /// expected and print a diff when it differs. No account and no network are needed.
    /// Exit status: 0 all passed, 1 a fixture differed or a rule failed, 2 the config, a rule,
    /// a fixture or a path cannot be loaded.
    Test {
        /// .eml files, folders (searched recursively for *.eml) and fixtures (*.yaml, *.yml).
        /// Without any, the fixtures in <rules>/tests/ are run.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print one JSON object per message and per fixture case, for scripts and CI.
        #[arg(long)]
        json: bool,
        /// Evaluate messages as this account's (msg.account, and its `rules:` globs)
        /// [default: test].
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// The mailbox messages are said to be in (msg.mailbox).
        #[arg(long, value_name = "NAME", default_value = "INBOX")]
        mailbox: String,
    },
    /// Run the live rules over a mailbox's existing messages and print what would happen.
    ///
    /// Nothing is changed: the mailbox is opened read-only (EXAMINE), messages are read with
    /// BODY.PEEK (no \Seen), and nothing is stored. Each plan shown is the one `tidings run`
    /// would store for the message; a summary counts messages per effect. Exit status: 0 done,
    /// 1 the server failed, 2 the config, a rule or an option is wrong.
    DryRun {
        /// The account [default: the config's only account].
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// The mailbox to look at (UTF-8, `/` between levels).
        #[arg(long, value_name = "NAME", default_value = "INBOX")]
        mailbox: String,
        /// Only messages that arrived within this time (30d, 12h) or since this date
        /// (2026-01-31).
        #[arg(long, value_name = "AGE|DATE", group = "selection")]
        since: Option<String>,
        /// Only messages matching this IMAP SEARCH, e.g. 'UNSEEN FROM "shop.example"'.
        #[arg(long, value_name = "CRITERIA", group = "selection")]
        search: Option<String>,
        /// Every message in the mailbox (the default).
        #[arg(long, group = "selection")]
        all: bool,
        /// Only the newest N of the selected messages.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print one JSON object per message, then a {"summary": ...} line.
        #[arg(long)]
        json: bool,
        /// Print only the summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show the outbox: actions waiting to run, failed, uncertain; retry or drop them.
    ///
    /// Lists pending, in-flight, sending, failed and uncertain actions, oldest first: id,
    /// account, kind, rule, target (webhook endpoint, command, first recipient, mailbox),
    /// state, attempts, next attempt, age and last error. Safe while the daemon runs.
    /// Exit status: 0 done, 1 an action could not be retried or dropped or the store failed,
    /// 2 the config cannot be loaded.
    Outbox {
        /// Retry or drop actions instead of listing them.
        #[command(subcommand)]
        change: Option<OutboxCommand>,
        /// Also list done, suppressed and dropped actions.
        #[arg(long)]
        all: bool,
        /// Print one JSON object per action, for scripts.
        #[arg(long)]
        json: bool,
        /// List at most the newest N actions.
        #[arg(long, value_name = "N", default_value_t = 500)]
        limit: usize,
    },
    /// List the schedules: cron, zone, what each runs, its next fires and its last run.
    ///
    /// Per schedule: the cron expression and time zone, the account and mailbox it sweeps (or
    /// "once" for a `run: once` schedule), the next 3 fire times as wall time and UTC offset in
    /// its zone, and the last fire with its outcome from the store ("never run" without one; no
    /// store is created). Safe while the daemon runs. Exit status: 0 listed, 1 the store
    /// failed, 2 the config cannot be loaded.
    Schedules {
        /// Print one JSON object per schedule, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show each account and mailbox: connection state, last message, checkpoint, errors; the
    /// outbox per account; the rules failing now (in the last hour) and the newest rule
    /// failures; and the verdict: healthy, degraded or unhealthy.
    ///
    /// Read from the store, where the daemon writes its watchers' states as they change, so it
    /// works from another shell while the daemon runs. Health is judged as /healthz does it
    /// (`health:` thresholds). Exit status: 0 running and healthy, 1 unhealthy, not running,
    /// or the store failed, 2 the config cannot be loaded, 3 degraded (a rule failed on a
    /// message in the last hour, or actions were dead-lettered).
    Status {
        /// Print one JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Explain what happened to a message: the rules that acted on it, its actions and their
    /// outcomes, the rules that failed on it.
    ///
    /// `tidings why` is the same command. Find it by Message-ID (with or without <>), or by --uid (narrowed with --account and
    /// --mailbox). Every decided message that matches is shown, oldest first (a message moved
    /// into another watched mailbox is decided there again, under its new UID). Exit status:
    /// 0 found, 1 none found or the store failed, 2 the config cannot be loaded.
    #[command(visible_alias = "why")]
    History {
        /// The Message-ID.
        #[arg(value_name = "MESSAGE-ID", required_unless_present = "uid", conflicts_with = "uid")]
        message_id: Option<String>,
        /// The message's UID instead.
        #[arg(long, value_name = "UID")]
        uid: Option<u32>,
        /// Only in this account.
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Only in this mailbox.
        #[arg(long, value_name = "NAME")]
        mailbox: Option<String>,
        /// Print one JSON object per message, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Get an OAuth2 refresh token for an account with an `oauth2:` block, and store it.
    ///
    /// Google: prints an address to open in a browser on this machine; after you allow access
    /// the browser comes back to a one-shot listener on 127.0.0.1 (PKCE). On a server without
    /// a browser, give --port and forward it first: `ssh -L N:127.0.0.1:N server`, then open
    /// the address on your own machine. Microsoft: prints a code to enter at
    /// microsoft.com/devicelogin from any machine. The token is written (mode 600) to the
    /// account's `refresh_token_file`, or, with `refresh_token_env`, to `oauth2-ACCOUNT.token`
    /// next to the state database, which is then read before the variable. Exit status: 0
    /// stored, 1 the authorisation failed, 2 the config or the account is wrong.
    Auth {
        /// The account, by its name in `accounts:`.
        #[arg(value_name = "ACCOUNT")]
        account: String,
        /// Google: the loopback listener's port on 127.0.0.1 (default: any free one), for an
        /// `ssh -L` tunnel. Not used by Microsoft's device-code flow.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
    },
}

/// What `tidings outbox` can change.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Put failed or uncertain actions back to pending, due now, with their attempts reset.
    ///
    /// An uncertain mail may have been sent already: retrying it may deliver it twice.
    Retry {
        /// The actions' ids, as `tidings outbox` lists them.
        #[arg(value_name = "ID", required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Every failed and uncertain action.
        #[arg(long)]
        all: bool,
    },
    /// Drop pending, failed or uncertain actions: they will never run.
    Drop {
        /// The actions' ids, as `tidings outbox` lists them.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<i64>,
    },
}

impl Command {
    /// Whether this is a tooling command, which reports through its own output: logs are
    /// kept to errors unless asked for with -v.
    pub fn is_tooling(&self) -> bool {
        matches!(
            self,
            Command::Test { .. }
                | Command::Init(_)
                | Command::DryRun { .. }
                | Command::Outbox { .. }
                | Command::Schedules { .. }
                | Command::Status { .. }
                | Command::History { .. }
        )
    }
}
