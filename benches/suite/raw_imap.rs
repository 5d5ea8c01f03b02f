//! A minimal blocking IMAP client over plain TCP for the suite's own chores: loading the corpus
//! mailbox with pipelined APPENDs, resetting folders, and counting what the tools left where.
//! It is not what is measured, so it favours being short over being general.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, bail};

/// A logged-in plain-IMAP connection.
pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Raw {
    /// Connects to 127.0.0.1:`port` and logs in.
    pub fn login(port: u16, user: &str, password: &str) -> Result<Raw> {
        let stream = TcpStream::connect(("127.0.0.1", port)).context("cannot connect to the IMAP port")?;
        let mut raw = Raw { reader: BufReader::new(stream.try_clone()?), writer: stream, tag: 0 };
        raw.line()?;
        raw.command(&format!("LOGIN {} {}", quote(user), quote(password)))?;
        Ok(raw)
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        anyhow::ensure!(self.reader.read_line(&mut line)? > 0, "the server closed the connection");
        Ok(line)
    }

    /// Sends a command, returns its untagged lines; an error unless it ends OK.
    pub fn command(&mut self, command: &str) -> Result<Vec<String>> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes())?;
        self.until(&tag, command)
    }

    fn until(&mut self, tag: &str, what: &str) -> Result<Vec<String>> {
        let mut untagged = Vec::new();
        loop {
            let line = self.line()?;
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if rest.starts_with("OK") {
                    return Ok(untagged);
                }
                bail!("{what} failed: {}", rest.trim_end());
            }
            untagged.push(line);
        }
    }

    /// APPENDs every message to `mailbox`: MULTIAPPEND commands of up to 500 messages each,
    /// with non-synchronising literals (LITERAL+), so each batch is one transaction.
    pub fn append_all(&mut self, mailbox: &str, messages: &[&[u8]]) -> Result<()> {
        for batch in messages.chunks(500) {
            self.tag += 1;
            let tag = format!("b{}", self.tag);
            let mut buffer = format!("{tag} APPEND {}", quote(mailbox)).into_bytes();
            for raw in batch {
                buffer.extend_from_slice(format!(" {{{}+}}\r\n", raw.len()).as_bytes());
                buffer.extend_from_slice(raw);
            }
            buffer.extend_from_slice(b"\r\n");
            self.writer.write_all(&buffer)?;
            self.until(&tag, "APPEND")?;
        }
        Ok(())
    }

    /// Every selectable mailbox's name (LIST "" "*", without \Noselect or \NonExistent ones).
    pub fn mailboxes(&mut self) -> Result<Vec<String>> {
        let lines = self.command("LIST \"\" \"*\"")?;
        Ok(lines
            .iter()
            .filter_map(|l| l.strip_prefix("* LIST "))
            .filter(|l| {
                let attributes = l.split(')').next().unwrap_or_default().to_ascii_lowercase();
                !attributes.contains("\\noselect") && !attributes.contains("\\nonexistent")
            })
            .filter_map(|l| l.trim_end().rsplit_once(' ').map(|(_, name)| name.trim_matches('"').to_owned()))
            .collect())
    }

    /// The number of messages in `mailbox`.
    pub fn count(&mut self, mailbox: &str) -> Result<usize> {
        let lines = self.command(&format!("STATUS {} (MESSAGES)", quote(mailbox)))?;
        lines
            .iter()
            .find_map(|l| l.split("MESSAGES ").nth(1))
            .and_then(|n| n.trim_end().trim_end_matches(')').parse().ok())
            .with_context(|| format!("no MESSAGES in the STATUS of {mailbox}"))
    }

    /// The number of messages in the selected mailbox matching `criteria`.
    pub fn search_count(&mut self, criteria: &str) -> Result<usize> {
        let lines = self.command(&format!("UID SEARCH {criteria}"))?;
        Ok(lines.iter().filter_map(|l| l.strip_prefix("* SEARCH")).map(|l| l.split_whitespace().count()).sum())
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
