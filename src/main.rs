//! The `tidings` binary: parses the command line, sets up logging, and hands over to the library.

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use tidings::config::Config;
use tidings::rules::RuleSet;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tidings::telemetry::init(cli.log_format, filter);
    // reqwest is built without a default crypto provider; rustls needs exactly one: ring.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let path = Config::locate(cli.config.as_deref())?;
    match cli.command {
        cli::Command::Check { skip_secrets } => check(&path, skip_secrets),
        cli::Command::Run { once } => {
            let config = Config::load(&path)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async {
                if once {
                    tidings::runtime::run_once(config).await?;
                } else {
                    tidings::runtime::run(config, shutdown_signal()?).await?;
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(path: &std::path::Path, skip_secrets: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let rules = RuleSet::compile(&config)?;
    if !skip_secrets {
        config.resolve_secrets()?;
    }
    println!(
        "{}: ok ({} account{}, {} live rule{}, {} scheduled rule{}, {} schedule{}, {} webhook{})",
        path.display(),
        config.accounts.len(),
        plural(config.accounts.len()),
        rules.live.len(),
        plural(rules.live.len()),
        rules.scheduled.len(),
        plural(rules.scheduled.len()),
        config.schedules.len(),
        plural(config.schedules.len()),
        config.webhooks.len(),
        plural(config.webhooks.len()),
    );
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM (systemd, docker stop) from now on, and returns a
/// future that resolves on the first. The handlers are installed here, before the daemon logs
/// that it started, so a signal sent right after that line is never the default "terminate".
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
        }
    })
}
