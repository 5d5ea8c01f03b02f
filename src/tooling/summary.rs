//! A dry run's summary: how many messages each effect would touch ("312 -> Newsletters",
//! "41 flagged", "3 webhook -> crm"), how many would be left alone, conflicts and failures.
//!
//! Effects are named from the action's JSON, so a new action kind is counted without a change
//! here: by its kind and, when it has one, its target (mailbox, endpoint, recipient...).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::Verdict;
use super::report::fields;
use crate::plan::Action;

/// Counts over every message of a dry run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Messages looked at.
    pub messages: usize,
    /// Messages no rule would change.
    pub untouched: usize,
    /// Messages per effect, e.g. `"-> Newsletters": 312`, `"flagged": 41`.
    pub effects: BTreeMap<String, usize>,
    /// Messages where a later rule overrode a move or delete.
    pub conflicts: usize,
    /// Rule failures (a rule failing on two messages counts twice).
    pub rule_failures: usize,
    /// Messages that would be moved or copied into another watched mailbox and judged there
    /// again, as the live watcher of that mailbox would.
    pub follow_ups: usize,
}

impl Summary {
    /// Counts one message: its verdict in its mailbox, then any in the mailboxes it lands in.
    pub fn add(&mut self, verdicts: &[&Verdict]) {
        self.messages += 1;
        let mut effects = BTreeSet::new();
        for verdict in verdicts {
            for (i, planned) in verdict.plan.actions.iter().enumerate() {
                if verdict.suppressed(i).is_some() {
                    // Counted apart: a dry run over a list folder shows that no reply goes out.
                    let by = if planned.action.kind() == "reply" { "the reply guards" } else { "the outbound guards" };
                    effects.insert(format!("{} suppressed by {by}", planned.action.kind()));
                } else {
                    effects.extend(effect(&planned.action));
                }
            }
            self.conflicts += usize::from(!verdict.plan.overridden.is_empty());
            self.rule_failures += verdict.failures.len();
        }
        self.follow_ups += usize::from(verdicts.len() > 1);
        if effects.is_empty() {
            self.untouched += 1;
        }
        for effect in effects {
            *self.effects.entry(effect).or_default() += 1;
        }
    }

    /// The summary for people: one line per effect, the most common first.
    pub fn write(&self, out: &mut dyn Write, heading: &str) -> io::Result<()> {
        let mut effects: Vec<(&String, &usize)> = self.effects.iter().collect();
        effects.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let width = self.messages.to_string().len();
        writeln!(out, "{heading}")?;
        for (effect, count) in effects {
            writeln!(out, "  {count:>width$} {effect}")?;
        }
        writeln!(out, "  {:>width$} nothing to do", self.untouched)?;
        if self.conflicts > 0 {
            writeln!(out, "  {:>width$} with a move or delete overridden by a later rule", self.conflicts)?;
        }
        if self.follow_ups > 0 {
            writeln!(out, "  {:>width$} judged again in the watched mailbox they land in", self.follow_ups)?;
        }
        writeln!(out, "  {:>width$} rule failures", self.rule_failures)
    }
}

/// What an action does, as the summary counts it: `-> Lists/rust`, `copied -> Backup`,
/// `flagged`, `marked read`, `labelled receipt`, `deleted`, `webhook -> crm`.
pub fn effect(action: &Action) -> Vec<String> {
    let map = fields(action);
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let flags = || -> Vec<String> {
        let list = map.get("flags").and_then(Value::as_array);
        list.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    match (action.kind(), text("mailbox")) {
        ("move", Some(mailbox)) => vec![format!("-> {mailbox}")],
        ("copy", Some(mailbox)) => vec![format!("copied -> {mailbox}")],
        ("delete", None) => vec!["deleted".to_owned()],
        ("archive", None) => vec!["archived".to_owned()],
        ("add_flags", _) => flags().iter().map(|f| flag_effect(f, true)).collect(),
        ("remove_flags", _) => flags().iter().map(|f| flag_effect(f, false)).collect(),
        // A reply always goes to the sender: by recipient, it would be one line per sender.
        ("reply", _) => vec!["reply".to_owned()],
        (kind, _) => {
            let name = kind.replace('_', " ");
            let target = ["mailbox", "endpoint", "name", "to"].iter().find_map(|k| match map.get(*k) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(items)) => {
                    Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                }
                _ => None,
            });
            vec![target.map_or_else(|| name.clone(), |t| format!("{name} -> {t}"))]
        }
    }
}

fn flag_effect(flag: &str, add: bool) -> String {
    match (flag, add) {
        ("\\Seen", true) => "marked read".to_owned(),
        ("\\Seen", false) => "marked unread".to_owned(),
        ("\\Flagged", true) => "flagged".to_owned(),
        ("\\Flagged", false) => "unflagged".to_owned(),
        (system, true) if system.starts_with('\\') => format!("flagged {system}"),
        (system, false) if system.starts_with('\\') => format!("unflagged {system}"),
        (keyword, true) => format!("labelled {keyword}"),
        (keyword, false) => format!("unlabelled {keyword}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Event;

    use crate::tooling::test_verdict as verdict;

    #[test]
    fn effects_are_counted_once_per_message() {
        let mut summary = Summary::default();
        let seen = || Action::AddFlags { flags: vec!["\\Seen".into()] };
        let news = || Action::Move { mailbox: "Newsletters".into() };
        summary.add(&[&verdict(vec![seen(), seen(), news()])]);
        summary.add(&[&verdict(vec![Action::Move { mailbox: "Old".into() }, news()])]);
        summary.add(&[&verdict(vec![])]);
        let labels = Action::AddFlags { flags: vec!["\\Flagged".into(), "receipt".into()] };
        summary.add(&[&verdict(vec![labels]), &verdict(vec![Action::Delete])]);
        let hook = Action::Webhook(Event::new("crm", serde_json::json!({})));
        assert_eq!(effect(&hook), ["webhook -> crm"]);
        assert_eq!(effect(&Action::Archive), ["archived"]);
        let counts: Vec<(&str, usize)> = summary.effects.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            counts,
            [("-> Newsletters", 2), ("deleted", 1), ("flagged", 1), ("labelled receipt", 1), ("marked read", 1)]
        );
        assert_eq!((summary.messages, summary.untouched, summary.conflicts, summary.follow_ups), (4, 1, 1, 1));
        let mut out = Vec::new();
        summary.write(&mut out, "summary:").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("summary:\n  2 -> Newsletters\n  1 deleted\n"), "{text}");
        // A reply the guards stop is counted apart from one that goes out.
        let reply = || {
            let original = crate::plan::Original::of(&crate::message::parse(
                b"Subject: x\n\n",
                crate::message::Meta::new(crate::message::MessageKey::new("t", "INBOX", 1, 1)),
            ));
            Action::Reply(crate::plan::Reply {
                to: "a@b.example".into(),
                unusable: None,
                subject: "Re: x".into(),
                body: "y".into(),
                days: 7,
                handle: "r".into(),
                original,
                html: None,
                from: None,
                at: None,
            })
        };
        let mut replies = Summary::default();
        let mut stopped = verdict(vec![reply()]);
        stopped.suppressed = vec![(0, "the message has Precedence: bulk".into())];
        replies.add(&[&stopped]);
        replies.add(&[&verdict(vec![reply()])]);
        let counts: Vec<(&str, usize)> = replies.effects.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(counts, [("reply", 1), ("reply suppressed by the reply guards", 1)]);
        assert!(
            text.ends_with(
                "  1 nothing to do\n  1 with a move or delete overridden by a later rule\n  \
                                1 judged again in the watched mailbox they land in\n  0 rule failures\n"
            ),
            "{text}"
        );
    }
}
