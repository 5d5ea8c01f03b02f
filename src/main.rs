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
        cli::Command::Run => {
            let config = Config::load(&path)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(tidings::runtime::run(config, shutdown_signal()))?;
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

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
