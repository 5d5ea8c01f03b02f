//! An account's SMTP server, live: connect and EHLO, TLS, AUTH, then QUIT. The daemon's own
//! [`Smtp::connect`] does it; no MAIL FROM is ever sent, so nothing is delivered.

use super::imap::with_fingerprint;
use super::report::{Mark, Table, server};
use super::{STEP, no_certificate, timed_out};
use crate::causes::error_chain;
use crate::config::{Account, Secret, Tls};
use crate::exec::mail::smtp::{Smtp, SmtpError};

/// Runs the checks of `account`'s SMTP side into `table`, if it has one.
pub async fn probe(account: &Account, password: Secret<String>, table: &mut Table) {
    let Some(smtp) = &account.smtp else { return };
    let mut account = account.clone();
    account.watch.command_timeout = STEP;
    let tls = match smtp.tls {
        Tls::Implicit => "implicit TLS",
        Tls::StartTls => "STARTTLS",
        Tls::None => "none (allow_insecure)",
    };
    let credentials = crate::auth::Credentials::new(&account, password);
    match Smtp::new(&account, &credentials).connect().await {
        Ok(conn) => {
            table.push("smtp connect", Mark::Ok, format!("{}: EHLO answered", server(smtp)));
            table.push("smtp tls", Mark::Ok, tls);
            table.push("smtp auth", Mark::Ok, format!("accepted as {} (no mail sent)", account.username));
            conn.quit().await;
        }
        Err(error) => {
            let chain = error_chain(&error);
            let connected = format!("{}: EHLO answered", server(smtp));
            match &error {
                SmtpError::Connect { .. } | SmtpError::NoServer { .. } => table.push("smtp connect", Mark::Fail, chain),
                SmtpError::Timeout { what: "log in", .. } => {
                    table.push("smtp connect", Mark::Ok, connected);
                    table.push("smtp tls", Mark::Ok, tls);
                    table.push("smtp auth", Mark::Fail, timed_out());
                }
                SmtpError::Timeout { what, .. } => {
                    table.push("smtp connect", Mark::Fail, format!("{what}: {}", timed_out()))
                }
                SmtpError::Auth { .. } | SmtpError::Token { .. } => {
                    table.push("smtp connect", Mark::Ok, connected);
                    table.push("smtp tls", Mark::Ok, tls);
                    table.push("smtp auth", Mark::Fail, chain);
                }
                SmtpError::Tls { .. } if super::tls::certificate_problem(&error).is_some() => {
                    let words = super::tls::certificate_problem(&error).unwrap_or_default();
                    // Pinned to no certificate, lettre's handshake passes and the pin check names it.
                    account.smtp =
                        Some(crate::config::Server { tls_fingerprint: Some(no_certificate()), ..smtp.clone() });
                    let presented = match Smtp::new(&account, &credentials).connect().await {
                        Err(SmtpError::Pin { presented, .. }) => Some(presented),
                        _ => None,
                    };
                    table.push("smtp connect", Mark::Ok, server(smtp));
                    table.push("smtp tls", Mark::Fail, with_fingerprint(&words, presented));
                }
                _ => {
                    table.push("smtp connect", Mark::Ok, server(smtp));
                    table.push("smtp tls", Mark::Fail, chain);
                }
            }
        }
    }
}
