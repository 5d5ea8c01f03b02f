//! What `tidings check --connect` prints: one table per account or endpoint (step, result,
//! detail) and a verdict; and the servers an account resolved to, which plain `check` shows too.

use std::io::{self, Write};

use crate::config::{Account, Server, Tls};

/// The result of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// It worked.
    Ok,
    /// It worked, with something worth knowing (a capability tidings works without).
    Note,
    /// It failed: tidings cannot work this way.
    Fail,
}

impl Mark {
    fn word(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Note => "note",
            Mark::Fail => "FAILED",
        }
    }
}

/// One row: the step, its result, what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// e.g. `tls`, `mailbox INBOX`.
    pub step: String,
    /// Its result.
    pub mark: Mark,
    /// Addresses, counts, the server's answer, what tidings does instead.
    pub detail: String,
}

/// The checks of one account or webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// e.g. ``account `work` ``.
    pub title: String,
    /// The steps, in the order they ran.
    pub rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Table {
        Table { title: title.into(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn push(&mut self, step: impl Into<String>, mark: Mark, detail: impl Into<String>) {
        self.rows.push(Row { step: step.into(), mark, detail: detail.into() });
    }

    /// The steps that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.mark == Mark::Fail)
    }

    /// Writes the title and the rows in aligned columns.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let width = self.rows.iter().map(|r| r.step.chars().count()).max().unwrap_or(0).max(4);
        writeln!(out, "{}", self.title)?;
        writeln!(out, "  {:width$}  {:6}  DETAIL", "STEP", "RESULT")?;
        for row in &self.rows {
            let line = format!("  {:width$}  {:6}  {}", row.step, row.mark.word(), row.detail);
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// The last line: `verdict: ok` when nothing failed (notes allowed), else what failed where.
pub fn verdict(tables: &[Table]) -> String {
    let notes = tables.iter().flat_map(|t| &t.rows).filter(|r| r.mark == Mark::Note).count();
    let failed: Vec<String> =
        tables.iter().flat_map(|t| t.failed().map(move |r| format!("{}: {}", t.title, r.step))).collect();
    match (failed.len(), notes) {
        (0, 0) => "verdict: ok, every check passed".to_owned(),
        (0, n) => format!("verdict: ok, every check passed ({n} note{})", if n == 1 { "" } else { "s" }),
        (n, _) => format!("verdict: FAILED, {n} check{} failed ({})", if n == 1 { "" } else { "s" }, failed.join("; ")),
    }
}

/// `host:port` and how it is secured, e.g. `imap.gmail.com:993 implicit TLS`.
pub fn server(server: &Server) -> String {
    let tls = match server.tls {
        Tls::Implicit => "implicit TLS",
        Tls::StartTls => "STARTTLS",
        Tls::None => "no TLS",
    };
    format!("{}:{} {tls}", server.host, server.port)
}

/// The servers a `provider:` preset resolved to (with the account's own overrides), or `None`
/// for an account that names its servers itself.
pub fn preset_servers(account: &Account) -> Option<String> {
    let provider = account.provider?;
    let smtp = account.smtp.as_ref().map(|s| format!(", smtp {}", server(s))).unwrap_or_default();
    Some(format!("provider {}: imap {}{smtp}", provider.name(), server(&account.imap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_and_the_verdict_names_what_failed() {
        let mut ok = Table::new("account `a`");
        ok.push("dns", Mark::Ok, "127.0.0.1");
        ok.push("X-GM-EXT-1", Mark::Note, "not offered");
        let mut text = Vec::new();
        ok.write(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "account `a`\n  STEP        RESULT  DETAIL\n  dns         ok      127.0.0.1\n  X-GM-EXT-1  note    not offered\n"
        );
        assert_eq!(verdict(std::slice::from_ref(&ok)), "verdict: ok, every check passed (1 note)");
        let mut bad = Table::new("account `b`");
        bad.push("login", Mark::Fail, "refused");
        assert_eq!(verdict(&[ok, bad]), "verdict: FAILED, 1 check failed (account `b`: login)");
    }

    #[test]
    fn a_preset_shows_the_servers_it_resolved_to() {
        let dir = std::path::Path::new("/etc/tidings/tidings.yaml");
        let yaml = "accounts:\n  g:\n    provider: gmail\n    username: me@gmail.com\n    password_env: P\n";
        let config = crate::config::Config::from_yaml(yaml, dir).unwrap();
        let shown = preset_servers(&config.accounts[0]).unwrap();
        assert!(
            shown.starts_with("provider gmail: imap imap.gmail.com:993 implicit TLS, smtp smtp.gmail.com:"),
            "{shown}"
        );
        let yaml = "accounts:\n  h:\n    imap: { host: h }\n    username: u\n    password_env: P\n";
        let config = crate::config::Config::from_yaml(yaml, dir).unwrap();
        assert_eq!(preset_servers(&config.accounts[0]), None);
    }
}
