//! What started an evaluation: live mail, or a schedule's fire. Rules read it with
//! `msg.trigger` or `trigger()`, and a schedule's rule reads what live rules collected.

use chrono::{DateTime, Utc};

pub use crate::store::Collected;

/// What started an evaluation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Trigger {
    /// A new message in a watched mailbox.
    #[default]
    Live,
    /// A schedule fired.
    Schedule {
        /// The schedule's name in the config.
        name: String,
        /// The fire time (also what `now()` returns).
        fired_at: DateTime<Utc>,
    },
}

impl Trigger {
    /// Whether a schedule started it.
    pub fn is_schedule(&self) -> bool {
        matches!(self, Trigger::Schedule { .. })
    }
}
