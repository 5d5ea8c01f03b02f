//! `tidings init`: a first config and a starter rule set, so that nothing is pieced together
//! from fragments.
//!
//! Input: the flags and, on a terminal, the answers to what they left out (the address, the
//! provider or IMAP server). Output: `DIR/tidings.yaml` (one account on a provider preset or a
//! plain server, the rules folder, the defaults of `state` and `plugins` as comments) and
//! `DIR/rules/` (two starter rules that file mailing lists and newsletters into folders, with
//! their fixtures in `rules/tests/`), then what was assumed and the commands to run next.
//!
//! What it must not do: overwrite anything (every target is checked before the first is
//! written, and each is created with `create_new`), write a config that `tidings check
//! --skip-secrets` refuses (the text is validated before anything is written), or prompt when
//! there is no terminal to answer.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::config::{Config, Provider, Tls};

mod render;
#[cfg(test)]
use render::{fill, scalar};
use render::{render, shell_word, title};

/// The starter rules and their fixtures: (path under `rules/`, text).
const RULES: &[(&str, &str)] = &[
    ("10-lists.rhai", include_str!("init/10-lists.rhai")),
    ("20-newsletters.rhai", include_str!("init/20-newsletters.rhai")),
    ("tests/10-lists.yaml", include_str!("init/10-lists.yaml")),
    ("tests/20-newsletters.yaml", include_str!("init/20-newsletters.yaml")),
];

/// The config around the account block.
const CONFIG: &str = include_str!("init/tidings.yaml");

/// The account name when `--name` is not given.
pub const DEFAULT_NAME: &str = "mail";

/// What `--provider` names: a preset (with a password; Outlook's with OAuth2, as Microsoft
/// refuses passwords), Gmail with OAuth2, or a plain server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// A provider preset.
    Preset(Provider),
    /// Gmail with OAuth2 (`tidings auth`) instead of an app password.
    GmailOAuth2,
    /// Any IMAP server (`--imap HOST`).
    Generic,
}

/// Every `--provider`, in the order `--help` lists them.
const SETUPS: [Setup; 9] = [
    Setup::Preset(Provider::Gmail),
    Setup::GmailOAuth2,
    Setup::Preset(Provider::Outlook),
    Setup::Preset(Provider::Fastmail),
    Setup::Preset(Provider::Mailcom),
    Setup::Preset(Provider::Gmx),
    Setup::Preset(Provider::Yahoo),
    Setup::Preset(Provider::Icloud),
    Setup::Generic,
];

impl Setup {
    /// Its name as `--provider` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Preset(provider) => provider.name(),
            Setup::GmailOAuth2 => "gmail-oauth2",
            Setup::Generic => "generic",
        }
    }
}

impl clap::ValueEnum for Setup {
    fn value_variants<'a>() -> &'a [Self] {
        &SETUPS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// A `--tls` or `--smtp-tls` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Security {
    /// TLS from the first byte.
    Implicit,
    /// STARTTLS before any credentials.
    Starttls,
    /// No encryption (written with `allow_insecure: true`).
    None,
}

/// The flags of `tidings init`; `None`: not given.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Options {
    /// The provider: a preset (gmail uses an app password, outlook OAuth2), Gmail with OAuth2,
    /// or a plain server [default: guessed from the address; on a terminal, asked].
    #[arg(long, value_enum, value_name = "PROVIDER", conflicts_with = "imap")]
    pub provider: Option<Setup>,
    /// The account's address (the login name too, unless --username is given).
    #[arg(long, value_name = "ADDR")]
    pub email: Option<String>,
    /// The account's name in the config; the password is read from TIDINGS_<NAME>_PASSWORD
    /// [default: mail].
    #[arg(long, value_name = "ACCOUNT")]
    pub name: Option<String>,
    /// Where to write [default: $XDG_CONFIG_HOME/tidings, else ~/.config/tidings].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A plain IMAP server's host name (instead of --provider).
    #[arg(long, value_name = "HOST")]
    pub imap: Option<String>,
    /// The IMAP port [default: 993 with implicit TLS, else 143].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// How the IMAP connection is secured [default: implicit].
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<Security>,
    /// A CA certificate (PEM) to trust for a plain server; written as an absolute path.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// The login name [default: the address].
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// A plain SMTP server's host name, for rules that reply or send [default: none].
    #[arg(long, value_name = "HOST")]
    pub smtp: Option<String>,
    /// The SMTP port [default: 465 with implicit TLS, else 587].
    #[arg(long, value_name = "N")]
    pub smtp_port: Option<u16>,
    /// How the SMTP connection is secured [default: starttls].
    #[arg(long, value_enum, value_name = "MODE")]
    pub smtp_tls: Option<Security>,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value is needed and there is no terminal to ask for it.
    #[error("cannot init without {flag}: {why}")]
    Missing {
        /// The flag, e.g. `--email`.
        flag: &'static str,
        /// Why it cannot be asked for or assumed.
        why: String,
    },
    /// A flag has a value that cannot be used.
    #[error("cannot use {option}: {reason}")]
    Option {
        /// The flag and its value.
        option: String,
        /// Why not.
        reason: String,
    },
    /// A file it would write is there already.
    #[error("cannot init: {} exists; tidings init never overwrites a file (move it away, or give --dir)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The config made from the flags does not validate (a bug, or a value the flags let through).
    #[error("cannot init: the config made from these flags is refused")]
    Config(#[source] crate::config::Error),
    /// The answer to a question cannot be read.
    #[error("cannot read the answer")]
    Prompt(#[source] std::io::Error),
    /// A file or folder cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the input is at fault (a flag, an answer, a file in the way): the binary exits
    /// with its usage status then.
    pub fn is_input(&self) -> bool {
        !matches!(self, Error::Write { .. })
    }
}

/// The account's servers and credentials, resolved from the flags.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Servers {
    /// A provider preset with a password.
    Preset(Provider),
    /// A provider preset with an `oauth2:` block.
    OAuth2(Provider),
    /// A plain server.
    Plain { imap: Server, smtp: Option<Server>, ca_file: Option<PathBuf> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Server {
    host: String,
    port: u16,
    tls: Tls,
}

/// Everything the files are made of.
#[derive(Clone, Debug)]
struct Settings {
    name: String,
    email: String,
    username: String,
    dir: PathBuf,
    servers: Servers,
}

/// Runs `tidings init`: completes the options (asking on `terminal` when there is one, else
/// assuming defaults), writes the files and reports to `out`.
pub fn run(options: Options, terminal: Option<&mut dyn BufRead>, out: &mut dyn Write) -> Result<(), Error> {
    let mut assumed = Vec::new();
    let settings = complete(options, terminal, out, &mut assumed)?;
    let password = variable(&settings.name, "PASSWORD");
    match &settings.servers {
        Servers::Preset(Provider::Gmail) => {
            assumed.push(format!("a Gmail app password in ${password} (--provider gmail-oauth2 for OAuth2)"));
        }
        Servers::OAuth2(_) => {}
        _ => assumed.push(format!("the password in ${password}")),
    }
    let config = render(&settings);
    let config_path = settings.dir.join("tidings.yaml");
    Config::from_yaml(&config, &config_path).map_err(Error::Config)?;
    let mut files = vec![(config_path.clone(), config.as_str())];
    files.extend(RULES.iter().map(|(path, text)| (settings.dir.join("rules").join(path), *text)));
    if let Some((path, _)) = files.iter().find(|(path, _)| path.symlink_metadata().is_ok()) {
        return Err(Error::Exists { path: path.clone() });
    }
    for (path, text) in &files {
        write_new(path, text)?;
    }
    report(&settings, &assumed, &files, out).map_err(|source| Error::Write { path: "stdout".into(), source })
}

/// Creates `path` (and its folders) with `text`, failing if it exists (a race with another
/// writer must not lose a file either).
fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    let failed = |source| Error::Write { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_owned(), source })?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}

/// Fills in what the flags left out: asked on a terminal, else assumed (and noted in `assumed`).
fn complete(
    mut options: Options,
    mut terminal: Option<&mut dyn BufRead>,
    out: &mut dyn Write,
    assumed: &mut Vec<String>,
) -> Result<Settings, Error> {
    let email = match (options.email.take(), terminal.as_deref_mut()) {
        (Some(email), _) => email,
        (None, Some(input)) => ask(input, out, "Your email address", None)?,
        (None, None) => {
            return Err(Error::Missing { flag: "--email", why: "there is no terminal to ask for the address".into() });
        }
    };
    let Some(domain) = domain(&email) else {
        return Err(Error::Option {
            option: format!("--email {email}"),
            reason: "it is not an email address (write the bare address, e.g. me@example.org)".into(),
        });
    };
    let name = match options.name.take() {
        Some(name) if valid_name(&name) => name,
        Some(name) => {
            return Err(Error::Option {
                option: format!("--name {name}"),
                reason: "an account name is letters, digits, `-` and `_`".into(),
            });
        }
        None => {
            assumed.push(format!("--name {DEFAULT_NAME}"));
            DEFAULT_NAME.to_owned()
        }
    };
    let setup = match (options.provider, &options.imap) {
        (Some(setup), _) => setup,
        (None, Some(_)) => Setup::Generic,
        (None, None) => {
            let guess = guess(&domain);
            match terminal.as_deref_mut() {
                Some(input) => {
                    let names = "gmail, gmail-oauth2, outlook, fastmail, mailcom, gmx, yahoo, icloud";
                    let question = format!("Provider ({names}) or your IMAP server's host name");
                    let default = guess.map_or_else(|| format!("imap.{domain}"), |s| s.name().to_owned());
                    let answer = ask(input, out, &question, Some(&default))?;
                    match parse_setup(&answer) {
                        Some(setup) => setup,
                        None => return complete_plain(options.clone_with_imap(answer), email, name, assumed),
                    }
                }
                None => {
                    let setup = guess.unwrap_or(Setup::Generic);
                    if setup != Setup::Generic {
                        assumed.push(format!("--provider {} (from the address)", setup.name()));
                    }
                    setup
                }
            }
        }
    };
    let preset = match setup {
        Setup::Generic => {
            let imap = match (&options.imap, terminal) {
                (Some(host), _) => host.clone(),
                (None, Some(input)) => {
                    ask(input, out, "Your IMAP server's host name", Some(&format!("imap.{domain}")))?
                }
                (None, None) => {
                    assumed.push(format!("--imap imap.{domain} (from the address)"));
                    format!("imap.{domain}")
                }
            };
            return complete_plain(options.clone_with_imap(imap), email, name, assumed);
        }
        Setup::GmailOAuth2 => Provider::Gmail,
        Setup::Preset(provider) => provider,
    };
    let plain_only = [
        ("--port", options.port.is_some()),
        ("--tls", options.tls.is_some()),
        ("--smtp", options.smtp.is_some()),
        ("--smtp-port", options.smtp_port.is_some()),
        ("--smtp-tls", options.smtp_tls.is_some()),
        ("--ca-file", options.ca_file.is_some()),
    ];
    if let Some((flag, _)) = plain_only.iter().find(|(_, given)| *given) {
        return Err(Error::Option {
            option: format!("{flag} with --provider {}", setup.name()),
            reason: "the preset sets the servers; for a server of your own give --imap HOST instead".into(),
        });
    }
    let servers = match setup {
        Setup::GmailOAuth2 | Setup::Preset(Provider::Outlook) => Servers::OAuth2(preset),
        _ => Servers::Preset(preset),
    };
    let username = username(options.username, &email, assumed);
    let dir = dir(options.dir, assumed)?;
    Ok(Settings { name, email, username, dir, servers })
}

impl Options {
    fn clone_with_imap(&self, host: String) -> Options {
        Options { imap: Some(host), ..self.clone() }
    }
}

/// The rest for a plain server (`options.imap` is set).
fn complete_plain(options: Options, email: String, name: String, assumed: &mut Vec<String>) -> Result<Settings, Error> {
    let host = options.imap.unwrap_or_default();
    if host.trim().is_empty() || host.contains(char::is_whitespace) {
        return Err(Error::Option { option: format!("--imap {host:?}"), reason: "it is not a host name".into() });
    }
    let imap = plain_server(host, options.port, options.tls, ("--", Security::Implicit, 993, 143), assumed);
    let smtp = match options.smtp {
        Some(host) => {
            let defaults = ("--smtp-", Security::Starttls, 465, 587);
            Some(plain_server(host, options.smtp_port, options.smtp_tls, defaults, assumed))
        }
        None if options.smtp_port.is_some() || options.smtp_tls.is_some() => {
            return Err(Error::Option {
                option: "--smtp-port or --smtp-tls without --smtp".into(),
                reason: "give the SMTP server's host with --smtp HOST".into(),
            });
        }
        None => {
            assumed.push("no --smtp: no SMTP server, so rules cannot reply, forward or send (see the config)".into());
            None
        }
    };
    let ca_file = match options.ca_file {
        Some(path) => Some(
            absolute(&path)
                .map_err(|reason| Error::Option { option: format!("--ca-file {}", path.display()), reason })?,
        ),
        None => None,
    };
    let username = username(options.username, &email, assumed);
    let dir = dir(options.dir, assumed)?;
    Ok(Settings { name, email, username, dir, servers: Servers::Plain { imap, smtp, ca_file } })
}

/// A plain server from its flags; what they leave out is assumed (and said): `defaults` are the
/// flags' prefix, the TLS mode, and the ports with implicit TLS and without.
fn plain_server(
    host: String,
    port: Option<u16>,
    tls: Option<Security>,
    (prefix, default, implicit, other): (&str, Security, u16, u16),
    assumed: &mut Vec<String>,
) -> Server {
    let tls = tls.unwrap_or_else(|| {
        assumed.push(format!("{prefix}tls {}", if default == Security::Implicit { "implicit" } else { "starttls" }));
        default
    });
    let port = port.unwrap_or_else(|| {
        let port = if tls == Security::Implicit { implicit } else { other };
        assumed.push(format!("{prefix}port {port}"));
        port
    });
    Server { host, port, tls: tls.into() }
}

impl From<Security> for Tls {
    fn from(security: Security) -> Tls {
        match security {
            Security::Implicit => Tls::Implicit,
            Security::Starttls => Tls::StartTls,
            Security::None => Tls::None,
        }
    }
}

fn username(given: Option<String>, email: &str, assumed: &mut Vec<String>) -> String {
    given.unwrap_or_else(|| {
        assumed.push(format!("--username {email}"));
        email.to_owned()
    })
}

fn dir(given: Option<PathBuf>, assumed: &mut Vec<String>) -> Result<PathBuf, Error> {
    let dir = given.unwrap_or_else(|| {
        let dir = default_dir();
        assumed.push(format!("--dir {}", dir.display()));
        dir
    });
    absolute(&dir).map_err(|reason| Error::Option { option: format!("--dir {}", dir.display()), reason })
}

/// `$XDG_CONFIG_HOME/tidings`, else `~/.config/tidings`: where `tidings` looks for its config.
pub fn default_dir() -> PathBuf {
    crate::config::xdg_dir("XDG_CONFIG_HOME", ".config").join("tidings")
}

/// `path` made absolute against the current directory: the config reads relative paths
/// against its own folder, so a path given relative to where init ran must not be written so.
pub fn absolute(path: &Path) -> Result<PathBuf, String> {
    if path.to_str().is_none() {
        return Err("the path is not UTF-8, which a YAML config cannot hold".into());
    }
    std::path::absolute(path).map_err(|e| format!("cannot make the path absolute: {e}"))
}

/// The variable the password is read from: `TIDINGS_<NAME>_<WHAT>`, the name upper-cased with
/// every other character than a letter or digit as `_`.
pub fn variable(account: &str, what: &str) -> String {
    let name: String =
        account.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("TIDINGS_{name}_{what}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The domain of an address that looks like one (the config's own test: a local part, and a
/// domain with a dot or `localhost`, no white space).
fn domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let valid = !local.is_empty()
        && (domain.contains('.') || domain == "localhost")
        && !domain.starts_with('.')
        && !email.contains(char::is_whitespace);
    valid.then(|| domain.to_lowercase())
}

/// The preset an address's domain belongs to, for the best-known ones.
fn guess(domain: &str) -> Option<Setup> {
    let provider = match domain {
        "gmail.com" | "googlemail.com" => Provider::Gmail,
        "outlook.com" | "hotmail.com" | "live.com" | "msn.com" => Provider::Outlook,
        "fastmail.com" | "fastmail.fm" => Provider::Fastmail,
        "mail.com" => Provider::Mailcom,
        "gmx.net" | "gmx.de" | "gmx.at" | "gmx.ch" => Provider::Gmx,
        "yahoo.com" | "ymail.com" | "rocketmail.com" => Provider::Yahoo,
        "icloud.com" | "me.com" | "mac.com" => Provider::Icloud,
        _ => return None,
    };
    Some(Setup::Preset(provider))
}

/// A provider's name as answered at the prompt; `None` for anything else (a host name).
fn parse_setup(answer: &str) -> Option<Setup> {
    <Setup as clap::ValueEnum>::from_str(answer.trim(), true).ok()
}

/// Asks `question` on the terminal until it gets an answer (an empty line takes `default`).
fn ask(input: &mut dyn BufRead, out: &mut dyn Write, question: &str, default: Option<&str>) -> Result<String, Error> {
    loop {
        match default {
            Some(default) => write!(out, "{question} [{default}]: "),
            None => write!(out, "{question}: "),
        }
        .and_then(|()| out.flush())
        .map_err(Error::Prompt)?;
        let mut line = String::new();
        if input.read_line(&mut line).map_err(Error::Prompt)? == 0 {
            return Err(Error::Prompt(std::io::ErrorKind::UnexpectedEof.into()));
        }
        match (line.trim(), default) {
            ("", Some(default)) => return Ok(default.to_owned()),
            ("", None) => continue,
            (answer, _) => return Ok(answer.to_owned()),
        }
    }
}

/// What was assumed, what was written, and the commands to run next.
fn report(
    settings: &Settings,
    assumed: &[String],
    files: &[(PathBuf, &str)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for assumption in assumed {
        writeln!(out, "assumed: {assumption}")?;
    }
    for (path, _) in files {
        writeln!(out, "wrote {}", path.display())?;
    }
    let config = shell_word(&settings.dir.join("tidings.yaml").to_string_lossy());
    let name = &settings.name;
    if let Servers::Plain { ca_file: Some(path), .. } = &settings.servers
        && !path.is_file()
    {
        writeln!(out, "note: the ca_file {} does not exist yet; `tidings check` fails until it does", path.display())?;
    }
    match &settings.servers {
        Servers::Preset(provider) | Servers::OAuth2(provider) => {
            writeln!(out, "note: {} needs {}", title(*provider), provider.preset().needs)?;
        }
        Servers::Plain { .. } => {}
    }
    if let Servers::OAuth2(_) = &settings.servers {
        writeln!(out, "note: put your OAuth client's id in `client_id` in {config} first (docs/oauth2.md)")?;
    }
    writeln!(out, "next:")?;
    match &settings.servers {
        Servers::OAuth2(provider) => {
            if *provider == Provider::Gmail {
                let variable = variable(name, "CLIENT_SECRET");
                writeln!(out, "  export {variable}=...      # your OAuth client's secret")?;
            }
            writeln!(out, "  tidings auth {name} --config {config}")?;
        }
        _ => {
            let variable = variable(name, "PASSWORD");
            writeln!(out, "  export {variable}=...      # or password_file: / password_command: in the config")?;
        }
    }
    writeln!(out, "  tidings check --connect --config {config}")?;
    writeln!(out, "  tidings dry-run --config {config} --since 30d")?;
    writeln!(out, "  tidings run --config {config}")?;
    Ok(())
}

#[cfg(test)]
#[path = "init_tests.rs"]
mod tests;
