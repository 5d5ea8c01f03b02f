//! `tidings check --connect`: every account's servers and every webhook endpoint, live, step
//! by step (see [`imap`], [`smtp`], [`webhook`]), each failure named at its step in words,
//! printed as one table per account or endpoint and a verdict ([`report`]).
//!
//! What it must not do: change anything. Mailboxes are opened with EXAMINE, SMTP stops after
//! AUTH (no MAIL FROM), and a webhook gets an event only with `--ping-webhooks`.

pub mod imap;
pub mod report;
pub mod smtp;
mod tls;
pub mod webhook;

use std::io::{self, Write};
use std::time::Duration;

use crate::config::{Config, Fingerprint, Secrets};
use crate::exec::webhook::Webhooks;
use report::Table;

/// The deadline of each step.
pub const STEP: Duration = Duration::from_secs(10);

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only this account (and no webhooks); `None`: every account and endpoint.
    pub account: Option<String>,
    /// Post a signed test event to each webhook endpoint.
    pub ping_webhooks: bool,
}

/// Checks and writes the tables and the verdict; returns whether nothing failed.
pub async fn run(config: &Config, secrets: &Secrets, options: &Options, out: &mut dyn Write) -> io::Result<bool> {
    let mut tables = Vec::new();
    for account in &config.accounts {
        if options.account.as_ref().is_some_and(|only| *only != account.name) {
            continue;
        }
        let title = match report::preset_servers(account) {
            Some(servers) => format!("account `{}` ({servers})", account.name),
            None => format!("account `{}`", account.name),
        };
        let mut table = Table::new(title);
        let password =
            secrets.passwords.get(&account.name).cloned().unwrap_or_else(|| crate::config::Secret::new(String::new()));
        imap::probe(account, password.clone(), &config.schedules, &mut table).await;
        smtp::probe(account, password, &mut table).await;
        table.write(out)?;
        writeln!(out)?;
        tables.push(table);
    }
    if options.account.is_none() && !config.webhooks.is_empty() {
        match Webhooks::new(config, secrets) {
            Ok(webhooks) => {
                for name in config.webhooks.keys() {
                    let mut table = Table::new(format!("webhook `{name}`"));
                    webhook::probe(&webhooks, name, options.ping_webhooks, &mut table).await;
                    table.write(out)?;
                    writeln!(out)?;
                    tables.push(table);
                }
            }
            Err(e) => {
                let mut table = Table::new("webhooks");
                table.push("client", report::Mark::Fail, crate::causes::error_chain(&e));
                table.write(out)?;
                writeln!(out)?;
                tables.push(table);
            }
        }
    }
    let verdict = report::verdict(&tables);
    writeln!(out, "{verdict}")?;
    Ok(tables.iter().all(|t| t.failed().next().is_none()))
}

/// What a step that ran out of time says.
fn timed_out() -> String {
    format!("timed out after {} s", STEP.as_secs())
}

/// A pin no certificate matches: a handshake pinned to it is refused naming the certificate the
/// server presented, which is how its fingerprint is read with the daemon's own connect code.
fn no_certificate() -> Fingerprint {
    Fingerprint::of(b"tidings check --connect: a pin that matches no certificate")
}
