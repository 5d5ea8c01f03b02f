//! The open-file limit. Every IMAP connection is a socket, and the soft RLIMIT_NOFILE is often
//! 1024 (systemd's and most shells' default) while the hard limit is far higher: a daemon
//! watching hundreds of mailboxes would fail to connect with EMFILE long before any real limit.
//! So the soft limit is raised to the hard one at start, which any process may do, and a
//! config that still needs more is warned about once instead of failing connection by connection.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::config::Config;

/// Files held besides IMAP connections: the store, its lock, stdio, the rules' watcher, SMTP
/// and webhook sockets, the runtime's own descriptors.
const RESERVE: u64 = 64;

/// Raises the soft RLIMIT_NOFILE to the hard limit and warns if `config` may need more.
pub fn raise_open_files(config: &Config) {
    let needed = needed(config);
    let before = getrlimit(Resource::Nofile);
    let raised = match (before.current, before.maximum) {
        (Some(soft), hard) if hard.is_none_or(|hard| hard > soft) => {
            let wanted = Rlimit { current: hard, maximum: hard };
            match setrlimit(Resource::Nofile, wanted) {
                Ok(()) => tracing::debug!(from = soft, to = ?hard, "open-file limit raised to the hard limit"),
                Err(e) => tracing::debug!(error = %e, soft, hard = ?hard, "cannot raise the open-file limit"),
            }
            getrlimit(Resource::Nofile).current
        }
        (soft, _) => {
            tracing::debug!(soft = ?soft, "open-file limit already at the hard limit");
            soft
        }
    };
    if let Some(limit) = raised.filter(|&limit| limit < needed) {
        tracing::warn!(
            limit,
            needed,
            "the open-file limit (ulimit -n) is lower than the connections the accounts may open: \
             raise the hard limit (LimitNOFILE= in a systemd unit) or lower `connections:`"
        );
    }
}

/// The most files the daemon may hold: every account's connection budget (IMAP), one SMTP
/// connection per account, and [`RESERVE`].
fn needed(config: &Config) -> u64 {
    let imap: u64 = config.accounts.iter().map(|a| u64::from(a.connections) + 1).sum();
    imap + RESERVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let yaml = "accounts:\n  a:\n    provider: gmail\n    username: u@gmail.com\n    password_env: P\n    \
                    connections: 4\n    mailboxes: [INBOX]\n";
        let config = Config::from_yaml(yaml, std::path::Path::new("/t.yaml")).unwrap();
        assert_eq!(needed(&config), 4 + 1 + RESERVE);
        raise_open_files(&config);
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current, now.maximum);
    }
}
