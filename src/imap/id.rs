//! The `ID` command (RFC 2971) after login, for servers that want to know the client.
//!
//! Some servers refuse to open mailboxes until a client has identified itself (163.com,
//! some Yahoo front ends); others log or misbehave on it, so it is sent only when the
//! account asks (`imap_id`, passed as [`Timeouts::send_id`](super::Timeouts::send_id)). It
//! tells only the program's name and version: never the user, host or operating system.

use std::collections::BTreeMap;

use async_imap::imap_proto::Response;
use tracing::{debug, info};

use super::{Error, Result, Session};

/// The ID command tidings sends: its name and version, nothing about the machine or user.
pub(super) fn id_command() -> String {
    format!("ID (\"name\" \"tidings\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION"))
}

impl Session {
    /// Sends `ID` and logs what the server says about itself. A server that does not offer
    /// ID is not asked (a BAD would teach nothing); a NO or BAD to it is logged and the
    /// session goes on, as ID is informational; a broken connection is an error.
    pub async fn send_id(&mut self) -> Result<Option<BTreeMap<String, String>>> {
        if !self.caps.has("ID") {
            info!(at = %self.at, "imap: the account asks for ID, but the server does not offer it; not sent");
            return Ok(None);
        }
        let mut server = None;
        let command = [id_command()];
        let result = self.exchange("send ID", &command, self.timeouts.command, |r| {
            if let Response::Id(fields) = r {
                let fields = fields.iter().flatten().map(|(k, v)| (k.to_string(), v.to_string()));
                server = Some(fields.collect::<BTreeMap<_, _>>());
            }
        });
        match result.await {
            Ok(()) => {
                debug!(at = %self.at, server = ?server, "imap: ID answered");
                Ok(server)
            }
            Err(e @ (Error::Timeout { .. } | Error::Broken { .. })) => Err(e),
            Err(e) if self.is_broken() => Err(e),
            Err(e) => {
                info!(at = %self.at, error = %e, "imap: the server refused ID; going on without it");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_names_only_the_program_and_its_version() {
        let command = id_command();
        assert_eq!(command, format!("ID (\"name\" \"tidings\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION")));
        assert!(command.is_ascii() && !command.contains('\r') && !command.contains('\n'));
    }
}
