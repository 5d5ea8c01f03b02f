//! The `tidings` binary: parses the command line, sets up logging, and hands over to the library.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use tidings::config::Config;
use tidings::rules::RuleSet;
use tidings::tooling;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = match (cli.command.is_tooling(), cli.verbose) {
        // The tooling commands report rule failures and the like in their output; logging them
        // too would bury it (a corpus run logs thousands of parser fallbacks).
        (true, 0) => "error",
        (false, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    tidings::telemetry::init(cli.log_format, filter);
    // reqwest is built without a default crypto provider; rustls needs exactly one: ring.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    // The daemon prints no report: a broken pipe in its errors (a command's stdin, say) is news.
    let reports = !matches!(cli.command, cli::Command::Run { .. });
    match dispatch(cli) {
        Ok(code) => code,
        // `tidings outbox --all | head`: the reader has all it wanted; nothing went wrong.
        Err(e) if reports && closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    // init writes the config that the other commands locate.
    if let cli::Command::Init(options) = cli.command {
        return init(options);
    }
    let path = Config::locate(cli.config.as_deref())?;
    match cli.command {
        cli::Command::Init(_) => unreachable!("dispatched above"),
        cli::Command::Check { skip_secrets, connect: false, .. } => check(&path, skip_secrets),
        cli::Command::Check { connect: true, account, ping_webhooks, .. } => {
            check_connect(&path, tooling::probe::Options { account, ping_webhooks })
        }
        cli::Command::Run { once } => {
            let config = Config::load(&path)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async {
                if once {
                    tidings::runtime::run_once(config).await?;
                } else {
                    tidings::runtime::run(config, shutdown_signal()?, reload_signal()?).await?;
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Test { paths, json, account, mailbox } => {
            let options = tooling::test_cmd::Options { paths, json, account, mailbox };
            test(&path, &options)
        }
        cli::Command::DryRun { account, mailbox, since, search, all: _, limit, json, quiet } => {
            let selection = match (since, search) {
                (Some(age), _) => tooling::dry_run::Selection::Since(age),
                (None, Some(criteria)) => tooling::dry_run::Selection::Search(criteria),
                (None, None) => tooling::dry_run::Selection::All,
            };
            let progress = std::io::stderr().is_terminal();
            let options = tooling::dry_run::Options { account, mailbox, selection, limit, json, quiet, progress };
            dry_run(&path, &options)
        }
        cli::Command::Outbox { change, all, json, limit } => {
            outbox(&path, change, tooling::outbox::ListOptions { all, json, limit })
        }
        cli::Command::Schedules { json } => schedules(&path, json),
        cli::Command::Status { json } => status(&path, json),
        cli::Command::History { message_id, uid, account, mailbox, json } => {
            let query = match (message_id, uid) {
                (Some(id), _) => tidings::store::MessageQuery::MessageId(id),
                // clap requires one of the two.
                (None, uid) => tidings::store::MessageQuery::Uid { uid: uid.unwrap_or_default(), account, mailbox },
            };
            history(&path, query, json)
        }
        cli::Command::Auth { account, port } => auth(&path, &account, port),
    }
}

/// `tidings init`: asks only when stdin and stdout are a terminal; 2 when nothing was written
/// because of the flags, an answer or a file in the way.
fn init(options: tooling::init::Options) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut stdin = std::io::stdin().lock();
    let input: Option<&mut dyn std::io::BufRead> = if terminal { Some(&mut stdin) } else { None };
    match tooling::init::run(options, input, &mut std::io::stdout().lock()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_input() => Ok(usage_error(e)),
        Err(e) => Err(e.into()),
    }
}

/// `tidings auth ACCOUNT`: the provider's flow, instructions on stderr, the token stored.
fn auth(path: &std::path::Path, name: &str, port: Option<u16>) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return Ok(usage_error(e)),
    };
    let Some(account) = config.account(name) else {
        let known: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        return Ok(usage_error(anyhow::anyhow!(
            "no account `{name}` in {} (known: {})",
            path.display(),
            known.join(", ")
        )));
    };
    if account.oauth2.is_none() {
        return Ok(usage_error(anyhow::anyhow!("account `{name}` has no `oauth2:` block: it logs in with a password")));
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let stored = runtime.block_on(tidings::auth::flow::authorise(account, port, |text| eprintln!("{text}")))?;
    println!("account `{name}`: refresh token stored in {}", stored.display());
    Ok(ExitCode::SUCCESS)
}

/// Exit status of the tooling commands when their input is wrong: the config, a rule, a
/// fixture, a path or an option (1 is kept for "ran, and found a problem").
const USAGE: u8 = 2;
/// `tidings status`: running, but a rule is failing now or actions were dead-lettered.
const DEGRADED: u8 = 3;

/// Prints the error as `main` would and returns the usage status.
fn usage_error(e: impl Into<anyhow::Error>) -> ExitCode {
    eprintln!("error: {:#}", e.into());
    ExitCode::from(USAGE)
}

/// Loads the config and compiles the rules, or says why not (with the usage status).
fn load_rules(path: &std::path::Path) -> Result<(Config, RuleSet), ExitCode> {
    let config = Config::load(path).map_err(usage_error)?;
    let rules = RuleSet::compile(&config).map_err(usage_error)?;
    Ok((config, rules))
}

/// `tidings test`: 0 when everything passed, 1 when a fixture differed or a rule failed.
fn test(path: &std::path::Path, options: &tooling::test_cmd::Options) -> anyhow::Result<ExitCode> {
    let (config, rules) = match load_rules(path) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let outcome = tooling::test_cmd::run(&config, &rules, options, &mut out);
    out.flush().context("cannot write the report")?;
    match outcome {
        Ok(outcome) if outcome.passed() => Ok(ExitCode::SUCCESS),
        Ok(_) => Ok(ExitCode::FAILURE),
        Err(e) if e.is_input() => Ok(usage_error(e)),
        Err(e) => Err(e.into()),
    }
}

/// `tidings dry-run`: 0 when it ran (whatever it found), 1 when the server failed.
fn dry_run(path: &std::path::Path, options: &tooling::dry_run::Options) -> anyhow::Result<ExitCode> {
    let (config, rules) = match load_rules(path) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = runtime.block_on(tooling::dry_run::run(&config, Arc::new(rules), options, &mut out));
    out.flush().context("cannot write the report")?;
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_input() => Ok(usage_error(e)),
        Err(e) => Err(e.into()),
    }
}

/// `tidings outbox`: lists, retries or drops. Reads only the config's state path (rules need not
/// compile, secrets are not read), and never takes the daemon's lock: it runs beside the daemon.
fn outbox(
    path: &std::path::Path,
    change: Option<cli::OutboxCommand>,
    options: tooling::outbox::ListOptions,
) -> anyhow::Result<ExitCode> {
    use tidings::store::ActionId;
    use tooling::outbox::Which;
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return Ok(usage_error(e)),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let ids = |ids: Vec<i64>| ids.into_iter().map(ActionId).collect::<Vec<_>>();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let changed = runtime.block_on(async {
        match change {
            None => tooling::outbox::list(&config.state, options, &mut out).await.map(|()| None),
            Some(cli::OutboxCommand::Retry { ids: _, all: true }) => {
                tooling::outbox::retry(&config.state, &Which::All, &mut out, &mut err).await.map(Some)
            }
            Some(cli::OutboxCommand::Retry { ids: given, all: false }) => {
                tooling::outbox::retry(&config.state, &Which::Ids(ids(given)), &mut out, &mut err).await.map(Some)
            }
            Some(cli::OutboxCommand::Drop { ids: given }) => {
                tooling::outbox::drop(&config.state, &ids(given), &mut out, &mut err).await.map(Some)
            }
        }
    })?;
    out.flush().context("cannot write the report")?;
    Ok(match changed {
        Some(changed) if changed.refused > 0 => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// `tidings schedules`: reads the config (rules need not compile, secrets are not read) and the
/// store's last runs, if there is a store; like `outbox`, it runs beside the daemon.
fn schedules(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return Ok(usage_error(e)),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    runtime.block_on(tooling::schedules::list(&config.schedules, &config.state, json, &mut out))?;
    out.flush().context("cannot write the report")?;
    Ok(ExitCode::SUCCESS)
}

/// `tidings status`: 0 when running and healthy, 3 degraded, 1 otherwise.
fn status(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return Ok(usage_error(e)),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let severity = runtime.block_on(tooling::status::status(&config, json, &mut out))?;
    out.flush().context("cannot write the report")?;
    Ok(match severity {
        tidings::health::Severity::Healthy => ExitCode::SUCCESS,
        tidings::health::Severity::Degraded => ExitCode::from(DEGRADED),
        tidings::health::Severity::Unhealthy => ExitCode::FAILURE,
    })
}

/// `tidings history`: 0 when a message was found, 1 when none was.
fn history(path: &std::path::Path, query: tidings::store::MessageQuery, json: bool) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return Ok(usage_error(e)),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let found = runtime.block_on(tooling::status::history(&config.state, query.clone(), json, &mut out))?;
    out.flush().context("cannot write the report")?;
    if found == 0 {
        eprintln!("tidings: no decided message found for {query} in {}", config.state);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn check(path: &std::path::Path, skip_secrets: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let rules = RuleSet::compile(&config)?;
    config.check_files(!skip_secrets, Some(rules.live.len()))?;
    if !skip_secrets {
        config.resolve_secrets()?;
    }
    summary(path, &config, &rules)?;
    Ok(ExitCode::SUCCESS)
}

/// `tidings check --connect`: the plain check (its failure is the usage status), then every
/// server live; 0 when all is well, 1 when a server check failed.
fn check_connect(path: &std::path::Path, options: tooling::probe::Options) -> anyhow::Result<ExitCode> {
    let loaded = load_rules(path).and_then(|(config, rules)| {
        config.check_files(true, Some(rules.live.len())).map_err(usage_error)?;
        let secrets = config.resolve_secrets().map_err(usage_error)?;
        Ok((config, rules, secrets))
    });
    let (config, rules, secrets) = match loaded {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    if let Some(name) = options.account.as_deref().filter(|name| config.account(name).is_none()) {
        let known: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        return Ok(usage_error(anyhow::anyhow!(
            "no account `{name}` in {} (known: {})",
            path.display(),
            known.join(", ")
        )));
    }
    summary(path, &config, &rules)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out).context("cannot write the report")?;
    let all_well = runtime.block_on(tooling::probe::run(&config, &secrets, &options, &mut out));
    out.flush().context("cannot write the report")?;
    Ok(if all_well.context("cannot write the report")? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The plain check's verdict: what the config holds, and per account how it is watched.
fn summary(path: &std::path::Path, config: &Config, rules: &RuleSet) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: ok ({} account{}, {} live rule{}, {} scheduled rule{}, {} schedule{}, {} webhook{}, {} command{})",
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
        config.commands.len(),
        plural(config.commands.len()),
    )
    .context("cannot write the verdict")?;
    for account in &config.accounts {
        let summary = tidings::config::budget::summary(account, &config.schedules);
        writeln!(out, "  account `{}`: {summary}", account.name).context("cannot write the verdict")?;
        if let Some(servers) = tooling::probe::report::preset_servers(account) {
            writeln!(out, "    {servers}").context("cannot write the verdict")?;
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Listens for SIGHUP from now on (`systemctl reload`, `kill -HUP`): each one asks the daemon to
/// read its config again. Installed before the daemon starts, for the same reason as below.
fn reload_signal() -> anyhow::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    // One waiting reload is enough: several SIGHUPs before it is done read the same file.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
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
