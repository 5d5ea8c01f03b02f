//! The text `tidings init` writes: the config around its account block, in YAML that
//! `Config::from_yaml` takes back, with the comments a first reader needs.

use super::{CONFIG, Servers, Settings, domain, variable};
use std::fmt::Write as _;

use crate::config::{Provider, Tls};

/// The config file's text.
pub(super) fn render(settings: &Settings) -> String {
    let config = settings.dir.join("tidings.yaml");
    fill(
        CONFIG,
        &[
            ("config", &shell_word(&config.to_string_lossy())),
            ("name", &settings.name),
            ("account", account(settings).trim_end_matches('\n')),
        ],
    )
}

/// The account's lines (indented under its name) up to `mailboxes`.
pub(super) fn account(s: &Settings) -> String {
    let mut text = String::new();
    let t = &mut text;
    let password = variable(&s.name, "PASSWORD");
    match &s.servers {
        Servers::Preset(provider) | Servers::OAuth2(provider) => {
            let preset = provider.preset();
            line(t, &format!("provider: {}", provider.name()));
            comment(
                t,
                &format!(
                    "The preset fills in the servers, IMAP {} and SMTP {}, and at most {} connections; anything \
                     written here still wins. {} needs: {}.",
                    endpoint(&preset.imap.host, preset.imap.port, preset.imap.tls),
                    endpoint(&preset.smtp.host, preset.smtp.port, preset.smtp.tls),
                    preset.connections,
                    title(*provider),
                    preset.needs
                ),
            );
        }
        Servers::Plain { imap, smtp, ca_file } => {
            line(t, "imap:");
            line(t, &format!("  host: {}", scalar(&imap.host)));
            line(t, &format!("  port: {}", imap.port));
            line(t, &format!("  tls: {}   # implicit (TLS from the first byte) | starttls | none", tls_name(imap.tls)));
            match smtp {
                Some(smtp) => {
                    line(t, "smtp:   # used only by rules that reply, forward or send");
                    line(t, &format!("  host: {}", scalar(&smtp.host)));
                    line(t, &format!("  port: {}", smtp.port));
                    line(t, &format!("  tls: {}", tls_name(smtp.tls)));
                }
                None => {
                    comment(t, "An SMTP server, needed only by rules that reply, forward or send:");
                    let domain = domain(&s.email).unwrap_or_default();
                    line(t, &format!("# smtp: {{ host: smtp.{domain}, port: 587, tls: starttls }}"));
                }
            }
            if [Some(imap), smtp.as_ref()].into_iter().flatten().any(|server| server.tls == Tls::None) {
                comment(
                    t,
                    "WARNING: `tls: none` sends the password and every message in clear text, readable by anyone \
                     on the way. Only for a server on this machine or a network you trust; anywhere else use \
                     implicit or starttls and remove this line.",
                );
                line(t, "allow_insecure: true");
            }
            match ca_file {
                Some(path) => {
                    line(
                        t,
                        &format!(
                            "ca_file: {}   # trust this CA (PEM) for the servers",
                            scalar(&path.to_string_lossy())
                        ),
                    );
                }
                None => {
                    line(t, "# ca_file: /etc/ssl/my-ca.pem   # a private CA (PEM) to trust for the servers");
                    comment(
                        t,
                        "A self-signed server is pinned instead: imap: { host: ..., tls_fingerprint: \"sha256:...\" }",
                    );
                }
            }
        }
    }
    line(t, &format!("username: {}", scalar(&s.username)));
    match &s.servers {
        Servers::OAuth2(Provider::Gmail) => {
            comment(
                t,
                "OAuth2 instead of a password (docs/oauth2.md): create an OAuth client of type \"Desktop app\" in a \
                 Google Cloud project, put its id below and its secret in the variable, then run `tidings auth \
                 NAME`, which stores the refresh token in the file."
                    .replace("NAME", &s.name)
                    .as_str(),
            );
            line(t, "oauth2:");
            line(t, "  provider: google");
            line(t, "  client_id: YOUR-CLIENT-ID.apps.googleusercontent.com   # replace with your client's id");
            line(t, &format!("  client_secret_env: {}", variable(&s.name, "CLIENT_SECRET")));
            line(
                t,
                &format!("  refresh_token_file: {}.token   # written (mode 600) by `tidings auth {}`", s.name, s.name),
            );
        }
        Servers::OAuth2(_) => {
            comment(
                t,
                "OAuth2 (docs/oauth2.md): Microsoft refuses passwords. Register an application in Entra ID that \
                 allows public client flows, with the delegated permissions IMAP.AccessAsUser.All, SMTP.Send and \
                 offline_access; put its id below, then run `tidings auth NAME` (a code to enter at \
                 microsoft.com/devicelogin), which stores the refresh token in the file."
                    .replace("NAME", &s.name)
                    .as_str(),
            );
            line(t, "oauth2:");
            line(t, "  provider: microsoft");
            line(t, "  client_id: 00000000-0000-0000-0000-000000000000   # replace with your application's id");
            line(
                t,
                &format!("  refresh_token_file: {}.token   # written (mode 600) by `tidings auth {}`", s.name, s.name),
            );
        }
        servers => {
            let what = match servers {
                Servers::Preset(Provider::Gmail) => {
                    "A Gmail app password (myaccount.google.com/apppasswords; it needs 2-Step Verification), from \
                     this environment variable; --provider gmail-oauth2 writes an OAuth2 block instead."
                }
                Servers::Preset(_) => "The password (an app password where the provider has them), from this variable.",
                _ => "The password, from this environment variable.",
            };
            comment(
                t,
                &format!(
                    "{what} Or instead: password_file: PATH (a file holding only the password) or password_command: \
                     \"pass show mail\" (its first line of output)."
                ),
            );
            line(t, &format!("password_env: {password}"));
        }
    }
    line(t, &format!("from: {}   # the address replies are sent as; never auto-replied to", scalar(&s.email)));
    text
}

pub(super) fn line(text: &mut String, line: &str) {
    let _ = writeln!(text, "    {line}");
}

/// `text` as `#` comment lines of the account block, wrapped at 100 columns.
pub(super) fn comment(text: &mut String, comment: &str) {
    let mut current = String::from("    #");
    for word in comment.split_whitespace() {
        if current.len() + 1 + word.len() > 100 && current.len() > 5 {
            let _ = writeln!(text, "{current}");
            current = String::from("    #");
        }
        current.push(' ');
        current.push_str(word);
    }
    let _ = writeln!(text, "{current}");
}

pub(super) fn endpoint(host: &str, port: u16, tls: Tls) -> String {
    let how = match tls {
        Tls::Implicit => "TLS",
        Tls::StartTls => "STARTTLS",
        Tls::None => "no TLS",
    };
    format!("{host}:{port} ({how})")
}

pub(super) fn tls_name(tls: Tls) -> &'static str {
    match tls {
        Tls::Implicit => "implicit",
        Tls::StartTls => "starttls",
        Tls::None => "none",
    }
}

pub(super) fn title(provider: Provider) -> &'static str {
    match provider {
        Provider::Gmail => "Gmail",
        Provider::Outlook => "Outlook",
        Provider::Fastmail => "Fastmail",
        Provider::Mailcom => "mail.com",
        Provider::Gmx => "GMX",
        Provider::Yahoo => "Yahoo",
        Provider::Icloud => "iCloud",
    }
}

/// A YAML scalar for a string: plain when it cannot be read as anything else, else a
/// double-quoted one (JSON's string syntax is YAML's).
pub(super) fn scalar(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '/')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._@+-/".contains(c))
        && s.parse::<f64>().is_err()
        && !["true", "false", "null", "yes", "no", "on", "off"].contains(&s.to_ascii_lowercase().as_str());
    if plain { s.to_owned() } else { serde_json::Value::from(s).to_string() }
}

/// `s` as one shell word, quoted when it needs to be, for commands to copy.
pub(super) fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._@+-/=:,".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `template` with each `{key}` replaced by its value, in one pass (a value is never scanned).
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        match values.iter().find(|(key, _)| rest[1..].starts_with(key) && rest[1 + key.len()..].starts_with('}')) {
            Some((key, value)) => {
                out.push_str(value);
                rest = &rest[key.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
