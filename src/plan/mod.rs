//! Plans: what the rules decided for one message, in the order it must be carried out.
//!
//! Input: the decisions rules recorded while they ran, in the order they were made. Output: a
//! [`Plan`], whose actions are stored in the outbox before any of them runs. This module decides
//! nothing and does no IO; it only applies Sieve-like semantics to what the rules said:
//!
//! 1. flag, keyword and label changes first (they must land before the message leaves the
//!    mailbox, or they would be applied to nothing);
//! 2. then copies;
//! 3. then at most one final disposition (move or delete). When rules decide several, the last
//!    one wins, and the overridden ones are reported as conflicts.
//!
//! Each action's idempotency key is derived from the message (account, mailbox, UIDVALIDITY,
//! UID) and the decision (rule, position), so storing the same plan twice stores it once.

use serde::{Deserialize, Serialize};

use crate::message::MessageKey;

/// One thing to do to a message. Serialised as the outbox payload: keep the JSON stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Add flags (`\Seen`, `\Flagged`, ...) and keywords (`$Label`, `GitHub`).
    AddFlags {
        /// The flags, system flags with their backslash.
        flags: Vec<String>,
    },
    /// Remove flags and keywords.
    RemoveFlags {
        /// The flags, system flags with their backslash.
        flags: Vec<String>,
    },
    /// Copy to another mailbox (UTF-8 path with `/` separators).
    Copy {
        /// Target mailbox.
        mailbox: String,
    },
    /// Move to another mailbox: the final disposition.
    Move {
        /// Target mailbox.
        mailbox: String,
    },
    /// Delete: move to the special-use \Trash mailbox (or expunge, if the account says so).
    Delete,
}

impl Action {
    /// The outbox kind, also the name used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddFlags { .. } => "add_flags",
            Action::RemoveFlags { .. } => "remove_flags",
            Action::Copy { .. } => "copy",
            Action::Move { .. } => "move",
            Action::Delete => "delete",
        }
    }

    /// Which step of the plan this belongs to; lower runs first.
    pub fn phase(&self) -> Phase {
        match self {
            Action::AddFlags { .. } | Action::RemoveFlags { .. } => Phase::Flags,
            Action::Copy { .. } => Phase::Copy,
            Action::Move { .. } | Action::Delete => Phase::Disposition,
        }
    }
}

/// The steps of a plan, in execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Flag, keyword and label changes.
    Flags,
    /// Copies.
    Copy,
    /// The final move or delete.
    Disposition,
}

/// A decision as a rule made it: which rule, its n-th decision, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The rule's name (its file name).
    pub rule: String,
    /// 0-based index of this decision among the rule's decisions for this message.
    pub position: usize,
    /// What it decided.
    pub action: Action,
}

/// An action in a plan, with its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Unique per message and decision: storing it twice is a no-op.
    pub key: String,
    /// The rule that decided it.
    pub rule: String,
    /// The action.
    pub action: Action,
}

/// The plan for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The message it is for.
    pub message: MessageKey,
    /// Actions in execution order.
    pub actions: Vec<Planned>,
    /// Dispositions that a later one overrode, as `rule: action`, for logs and `tidings test`.
    pub overridden: Vec<Decision>,
}

impl Plan {
    /// Orders the decisions into a plan (flags, copies, one disposition) and keys each action.
    pub fn build(message: MessageKey, decisions: Vec<Decision>) -> Plan {
        let mut actions = Vec::new();
        let mut copies: Vec<Decision> = Vec::new();
        let mut disposition: Option<Decision> = None;
        let mut overridden = Vec::new();
        for decision in decisions {
            match decision.action.phase() {
                Phase::Flags => actions.push(decision),
                Phase::Copy if copies.iter().any(|c| c.action == decision.action) => {}
                Phase::Copy => copies.push(decision),
                Phase::Disposition => overridden.extend(disposition.replace(decision)),
            }
        }
        actions.extend(copies);
        actions.extend(disposition);
        let actions = actions
            .into_iter()
            .map(|d| Planned { key: idempotency_key(&message, &d.rule, d.position), rule: d.rule, action: d.action })
            .collect();
        Plan { message, actions, overridden }
    }

    /// Whether the rules decided nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// `account/mailbox/uidvalidity/uid/rule#position`: the same message and decision always give the
/// same key, so a plan stored again after a crash adds nothing.
pub fn idempotency_key(message: &MessageKey, rule: &str, position: usize) -> String {
    format!("{}/{}/{}/{}/{}#{}", message.account, message.mailbox, message.uidvalidity, message.uid, rule, position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MessageKey {
        MessageKey { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, uid: 42 }
    }

    fn decide(rule: &str, position: usize, action: Action) -> Decision {
        Decision { rule: rule.into(), position, action }
    }

    #[test]
    fn flags_then_copies_then_the_last_disposition() {
        let plan = Plan::build(
            key(),
            vec![
                decide("a.rhai", 0, Action::Move { mailbox: "First".into() }),
                decide("a.rhai", 1, Action::Copy { mailbox: "Backup".into() }),
                decide("b.rhai", 0, Action::AddFlags { flags: vec!["\\Flagged".into()] }),
                decide("b.rhai", 1, Action::Copy { mailbox: "Backup".into() }),
                decide("b.rhai", 2, Action::Move { mailbox: "Second".into() }),
            ],
        );
        let kinds: Vec<(&str, &str)> = plan.actions.iter().map(|p| (p.rule.as_str(), p.action.kind())).collect();
        assert_eq!(kinds, [("b.rhai", "add_flags"), ("a.rhai", "copy"), ("b.rhai", "move")]);
        assert_eq!(plan.actions[2].action, Action::Move { mailbox: "Second".into() });
        assert_eq!(plan.overridden, vec![decide("a.rhai", 0, Action::Move { mailbox: "First".into() })]);
        assert_eq!(plan.actions[0].key, "work/INBOX/7/42/b.rhai#0");
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let a = Plan::build(key(), vec![decide("r", 0, Action::Delete)]);
        let b = Plan::build(key(), vec![decide("r", 0, Action::Delete)]);
        assert_eq!(a, b);
        let mut other = key();
        other.uidvalidity = 8;
        assert_ne!(idempotency_key(&other, "r", 0), a.actions[0].key);
    }

    #[test]
    fn payload_json_is_stable() {
        let json = serde_json::to_string(&Action::Move { mailbox: "Lists/rust".into() }).unwrap();
        assert_eq!(json, r#"{"kind":"move","mailbox":"Lists/rust"}"#);
        let back: Action = serde_json::from_str(r#"{"kind":"add_flags","flags":["\\Seen"]}"#).unwrap();
        assert_eq!(back, Action::AddFlags { flags: vec!["\\Seen".into()] });
    }
}
