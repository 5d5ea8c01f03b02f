//! `fleet:`, the lease timings of instances sharing a PostgreSQL store (ignored with a SQLite
//! one, which has a single instance).

use std::time::Duration;

use super::diagnostics::{self, Fields, Problems};
use super::tree::Node;

const KEYS: &[&str] = &["lease", "heartbeat"];

/// How long an account's lease runs, and how often it is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// A lease not renewed for this long expires: another instance may take the account over
    /// (the longest a dead instance's accounts wait).
    pub lease: Duration,
    /// How often an instance renews its leases and rebalances; at most half the lease, so one
    /// missed heartbeat does not lose them.
    pub heartbeat: Duration,
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet { lease: Duration::from_secs(30), heartbeat: Duration::from_secs(10) }
    }
}

/// Reads `fleet:`.
pub(super) fn validate(node: &Node, problems: &mut Problems) -> Option<Fleet> {
    let fields = Fields::read(node, "fleet", KEYS, problems)?;
    let mut fleet = Fleet::default();
    if let Some(n) = fields.get("lease") {
        fleet.lease = diagnostics::duration(n, "fleet: lease", problems)?;
    }
    if let Some(n) = fields.get("heartbeat") {
        fleet.heartbeat = diagnostics::duration(n, "fleet: heartbeat", problems)?;
    }
    if fleet.heartbeat.is_zero() || fleet.heartbeat * 2 > fleet.lease {
        problems.hint(
            node.pos,
            format!(
                "fleet: heartbeat ({:?}) must be more than zero and at most half the lease ({:?})",
                fleet.heartbeat, fleet.lease
            ),
            "renew at least twice per lease, e.g. `fleet: { lease: 30s, heartbeat: 10s }`",
        );
        return None;
    }
    Some(fleet)
}
