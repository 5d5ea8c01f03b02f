//! What to do on servers that lack an extension a change would normally use.
//!
//! **No UIDPLUS** (so no UID EXPUNGE): a plain EXPUNGE removes *every* message flagged
//! `\Deleted` in the mailbox, including ones another client flagged and means to undelete.
//! So a move without MOVE or UIDPLUS is UID COPY + UID STORE `\Deleted`, and a delete is
//! UID STORE `\Deleted`; then `UID SEARCH DELETED` lists what is flagged, and EXPUNGE is sent
//! only if every flagged message is one of ours. Otherwise ours stay flagged `\Deleted` (hidden
//! by most clients, gone at the next expunge by anyone) and the others are untouched; this is
//! logged. The one gap: a message another client flags between the SEARCH and the EXPUNGE
//! (one round trip) is expunged with ours; no command without UIDPLUS can close it.
//!
//! **PERMANENTFLAGS**: a keyword the selected mailbox would not keep (not listed, and no `\*`)
//! is refused before anything is sent, naming the keyword and the mailbox, instead of a STORE
//! that the server accepts and forgets at the end of the session.

use super::uidset::UidSet;

/// Whether a plain EXPUNGE removes only `ours`: every UID flagged `\Deleted` is one of them.
pub(super) fn expunge_is_safe(deleted: &[u32], ours: &UidSet) -> bool {
    deleted.iter().all(|&uid| ours.contains(uid))
}

/// The first keyword among `flags` that the mailbox would not keep, given its PERMANENTFLAGS
/// (`None`: the server sent none, so nothing is known to be refused). System flags (`\Seen`,
/// ...) are left to the server: they are the standard ones and a refusal comes as NO.
pub(super) fn refused_keyword<'f>(permanent: Option<&[String]>, flags: &[&'f str]) -> Option<&'f str> {
    let permanent = permanent?;
    if permanent.iter().any(|f| f == "\\*") {
        return None;
    }
    let kept = |flag: &str| permanent.iter().any(|p| p.eq_ignore_ascii_case(flag));
    flags.iter().copied().find(|flag| !flag.starts_with('\\') && !kept(flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expunge_only_when_every_deleted_message_is_ours() {
        let ours = UidSet::new([4, 5, 9]);
        assert!(expunge_is_safe(&[4, 5, 9], &ours));
        assert!(expunge_is_safe(&[5], &ours), "some of ours already gone");
        assert!(expunge_is_safe(&[], &ours));
        assert!(!expunge_is_safe(&[3, 4, 5, 9], &ours), "3 was flagged by someone else");
    }

    #[test]
    fn keywords_outside_permanentflags_are_refused() {
        let strict: Vec<String> = ["\\Seen", "\\Deleted", "$Forwarded"].map(String::from).to_vec();
        assert_eq!(refused_keyword(Some(&strict), &["\\Seen", "sorted"]), Some("sorted"));
        assert_eq!(
            refused_keyword(Some(&strict), &["$forwarded", "\\Flagged"]),
            None,
            "case-insensitive; system flags pass"
        );
        let open: Vec<String> = ["\\Seen", "\\*"].map(String::from).to_vec();
        assert_eq!(refused_keyword(Some(&open), &["anything"]), None);
        assert_eq!(refused_keyword(None, &["anything"]), None, "no PERMANENTFLAGS: nothing known");
        assert_eq!(refused_keyword(Some(&[]), &["x"]), Some("x"), "an empty list keeps nothing");
    }
}
