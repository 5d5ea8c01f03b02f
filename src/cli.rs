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
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
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
    /// Validate the config and compile every rule; list every problem and exit non-zero if any.
    ///
    /// Nothing is connected to and no mail is touched. Secrets are read too (so a missing
    /// password is caught now) unless --skip-secrets is given.
    Check {
        /// Do not read passwords (for checking a config on a machine that lacks them).
        #[arg(long)]
        skip_secrets: bool,
    },
    /// Run the daemon until SIGINT or SIGTERM.
    ///
    /// Every watched mailbox is caught up from its checkpoint and then watched with IMAP IDLE;
    /// what the rules decide is stored, then carried out exactly once.
    Run {
        /// Process what is pending, carry out every resulting action, and exit (for cron and
        /// benchmarks). A TLS or login failure ends the run at once with a non-zero status.
        #[arg(long)]
        once: bool,
    },
}
