//! Gmail's IMAP extensions (X-GM-EXT-1): the attributes fetched with every message when the
//! server advertises them, and labels changed with `UID STORE +X-GM-LABELS`.
//!
//! On Gmail a folder is a view of a label: a message labelled `Receipts` and `\Inbox` shows up
//! in both folders under different UIDs but one X-GM-MSGID. Removing the `\Inbox` label is
//! what Gmail calls archiving. Gmail's own labels are written with a backslash (`\Inbox`,
//! `\Important`, `\Starred`), user labels as astrings in modified UTF-7, like mailbox names.
//! What to make of the attributes (deduplication, `msg.labels`) is decided elsewhere.

use async_imap::imap_proto::AttributeValue;

use super::uidset::{MAX_SET_LEN, UidSet};
use super::{Error, FlagOp, Result, Session, mutf7, wire};
use crate::message::GmailAttrs;

/// The items a meta FETCH asks for on a Gmail server, after the standard ones.
pub(super) const FETCH_ITEMS: &str = " X-GM-MSGID X-GM-THRID X-GM-LABELS";

/// Gmail's attributes from one FETCH response, when it carried X-GM-MSGID.
pub(super) fn attrs_of(attributes: &[AttributeValue<'_>]) -> Option<GmailAttrs> {
    let (mut msgid, mut thread_id, mut labels) = (None, None, Vec::new());
    for attribute in attributes {
        match attribute {
            AttributeValue::GmailMsgId(id) => msgid = Some(*id),
            AttributeValue::GmailThrId(id) => thread_id = Some(*id),
            AttributeValue::GmailLabels(list) => labels = list.iter().map(|l| label_from_wire(l)).collect(),
            _ => {}
        }
    }
    Some(GmailAttrs { msgid: msgid?, thread_id: thread_id.unwrap_or_default(), labels })
}

/// A label as rules see it: modified UTF-7 decoded (kept as sent when it is not valid).
fn label_from_wire(raw: &str) -> String {
    if raw.starts_with('\\') {
        return raw.to_owned();
    }
    mutf7::decode(raw).unwrap_or_else(|_| raw.to_owned())
}

/// A label as STORE takes it: Gmail's own (`\Inbox`) as an atom, a user label as a quoted
/// modified UTF-7 string. `None` for one that cannot be sent (control characters).
fn label_to_wire(label: &str) -> Option<String> {
    if label.is_empty() || label.chars().any(char::is_control) {
        return None;
    }
    if let Some(atom) = label.strip_prefix('\\') {
        let plain = !atom.is_empty() && atom.chars().all(|c| c.is_ascii_alphanumeric());
        return plain.then(|| label.to_owned());
    }
    Some(wire::quote(&mutf7::encode(label)))
}

/// The STORE commands for a label change, split by UID set length.
fn store_commands(uids: &UidSet, op: FlagOp, labels: &[String]) -> Vec<String> {
    let sign = if op == FlagOp::Add { '+' } else { '-' };
    let list = labels.join(" ");
    uids.chunks(MAX_SET_LEN).iter().map(|set| format!("UID STORE {set} {sign}X-GM-LABELS.SILENT ({list})")).collect()
}

impl Session {
    /// Adds or removes Gmail labels (`Receipts`, `\Inbox`, `\Starred`) on messages of the
    /// selected mailbox. Refused on a server without X-GM-EXT-1: there labels are keywords
    /// ([`Session::uid_store`]). Removing the label of the selected folder makes the message
    /// leave it, as on Gmail's web interface.
    pub async fn store_labels<S: AsRef<str>>(&mut self, uids: &UidSet, op: FlagOp, labels: &[S]) -> Result<()> {
        let sign = if op == FlagOp::Add { '+' } else { '-' };
        let names: Vec<&str> = labels.iter().map(AsRef::as_ref).collect();
        let what = format!("store {sign}labels {names:?} on {} messages in {}", uids.len(), self.selected_name());
        if !self.caps.gmail {
            return Err(self.unsupported(&what, "the server does not offer Gmail labels (X-GM-EXT-1)"));
        }
        let mut wire_labels = Vec::with_capacity(names.len());
        for name in &names {
            let Some(label) = label_to_wire(name) else {
                return Err(Error::Invalid { what, reason: format!("`{name}` is not a valid label") });
            };
            wire_labels.push(label);
        }
        self.require_selected(&what)?;
        if wire_labels.is_empty() || uids.is_empty() {
            return Ok(());
        }
        let commands = store_commands(uids, op, &wire_labels);
        self.exchange(&what, &commands, self.timeouts.command, |_| {}).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn attributes_are_read_and_labels_decoded() {
        let attributes = vec![
            AttributeValue::Uid(7),
            AttributeValue::GmailMsgId(1278455344230334865),
            AttributeValue::GmailThrId(1266894439832287888),
            AttributeValue::GmailLabels(vec![Cow::Borrowed("\\Inbox"), Cow::Borrowed("Gr&APwA3w-e"), "a&b".into()]),
        ];
        let attrs = attrs_of(&attributes).unwrap();
        assert_eq!((attrs.msgid, attrs.thread_id), (1278455344230334865, 1266894439832287888));
        assert_eq!(attrs.labels, ["\\Inbox", "Grüße", "a&b"]);
        assert_eq!(attrs_of(&[AttributeValue::Uid(7)]), None, "no X-GM-MSGID: not a Gmail answer");
    }

    #[test]
    fn labels_go_on_the_wire_quoted_and_encoded() {
        assert_eq!(label_to_wire("\\Inbox").as_deref(), Some("\\Inbox"));
        assert_eq!(label_to_wire("Muy Importante").as_deref(), Some("\"Muy Importante\""));
        assert_eq!(label_to_wire("Grüße/2026").as_deref(), Some("\"Gr&APwA3w-e/2026\""));
        assert_eq!(label_to_wire("say \"hi\"").as_deref(), Some("\"say \\\"hi\\\"\""));
        for bad in ["", "\\", "\\In box", "a\r\nb"] {
            assert_eq!(label_to_wire(bad), None, "{bad:?}");
        }
        let uids = UidSet::new([3, 4, 9]);
        let commands = store_commands(&uids, FlagOp::Remove, &["\\Inbox".to_owned()]);
        assert_eq!(commands, ["UID STORE 3:4,9 -X-GM-LABELS.SILENT (\\Inbox)"]);
    }
}
