//! Fetching messages from the selected mailbox, never setting `\Seen` (BODY.PEEK only).
//!
//! Two steps, each one round trip: first UID, FLAGS, INTERNALDATE and RFC822.SIZE for the
//! range, then the bodies, pipelined in batches by UID set; a message larger than the
//! caller's limit comes with its header only (`truncated`). A burst of a hundred new
//! messages is two FETCH commands. This module fetches what it is asked for; which messages
//! matter and what happens to them is decided elsewhere.
//!
//! No fetch of bodies holds more than [`FETCH_BUDGET`] bytes (by RFC822.SIZE) beyond its first
//! message: many messages are fetched as [`Groups`], one group at a time, so that the caller
//! decides and drops one before it fetches the next, and memory does not grow with the backlog.
//! A header pass ([`Session::fetch_headers`]) takes at most [`HEADER_CAP`] bytes of each header:
//! a message whose header is longer (a sender can write a header of megabytes) comes without its
//! bytes, to be fetched whole in such groups, like a message whose body a rule wants.

use std::collections::{HashMap, VecDeque};

use async_imap::imap_proto::{AttributeValue, Response};
use chrono::{DateTime, Utc};

use super::uidset::{MAX_SET_LEN, UidSet};
use super::{Result, Session, gmail, wire};
use crate::message::{GmailAttrs, MessageKey};

/// The most messages one [`Session::fetch_after`] returns (the oldest first); call it again
/// from the highest UID returned until it returns nothing.
pub const FETCH_LIMIT: usize = 500;
/// The most message bytes (by RFC822.SIZE) one fetch loads, beyond its first message (which
/// may be up to the caller's `max_bytes` alone).
pub const FETCH_BUDGET: u64 = 64 * 1024 * 1024;
/// The most bytes of one message's header a header pass fetches. Real headers are a few KiB
/// (the longest of 3,585 real messages in the test corpus is 21 KiB), so a slice of
/// [`FETCH_LIMIT`] holds at most 32 MiB of headers, whatever the senders wrote, in the one round
/// trip it always took.
pub const HEADER_CAP: u64 = 64 * 1024;
/// UIDs per body FETCH command.
const BODY_BATCH: usize = 200;

/// One message as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Its UID in the selected mailbox.
    pub uid: u32,
    /// System flags as `\Seen`, `\Answered`, ...; keywords as the server sent them
    /// (`$Forwarded`); `\Recent` is left out.
    pub flags: Vec<String>,
    /// When the server received it.
    pub internal_date: Option<DateTime<Utc>>,
    /// Its full size (RFC822.SIZE), also when only the header was fetched.
    pub size: u64,
    /// The raw message, or only its header when `truncated`.
    pub raw: Vec<u8>,
    /// Whether `raw` is only the header, the message being larger than the limit.
    pub truncated: bool,
    /// Whether `raw` is only the header because only it was asked for
    /// ([`Session::fetch_headers`]): the body can still be fetched if a rule wants it.
    pub body_deferred: bool,
    /// Gmail's labels, thread and message id, fetched when the server offers X-GM-EXT-1.
    pub gmail: Option<GmailAttrs>,
}

impl Fetched {
    /// What the message view needs besides the bytes, for the message at `key`.
    pub fn meta(&self, key: MessageKey) -> crate::message::Meta {
        crate::message::Meta {
            key,
            flags: self.flags.clone(),
            internal_date: self.internal_date,
            size: Some(self.size),
            truncated: self.truncated,
            body_deferred: self.body_deferred,
            gmail: self.gmail.clone(),
        }
    }
}

/// A header pass's answer ([`Session::fetch_headers`]), each part ascending by UID.
#[derive(Debug, Default)]
pub struct Headers {
    /// The messages whose header came whole (or, over `max_bytes`, `truncated`).
    pub fetched: Vec<Fetched>,
    /// The messages whose header is longer than [`HEADER_CAP`]: sizes and flags only, `raw`
    /// empty, to be fetched whole ([`Groups::of_headers`]).
    pub long: Vec<Fetched>,
}

/// Step one's answer for one message.
#[derive(Clone, Debug)]
struct Meta {
    uid: u32,
    flags: Vec<String>,
    internal_date: Option<DateTime<Utc>>,
    size: u64,
    gmail: Option<GmailAttrs>,
}

impl Session {
    /// Messages with a UID above `last_uid` in the selected mailbox, ascending, at most
    /// [`FETCH_LIMIT`] (and about 64 MiB) per call. Bodies larger than `max_bytes` come as
    /// headers only, with `truncated` set. `\Seen` is never set.
    pub async fn fetch_after(&mut self, last_uid: u32, max_bytes: u64) -> Result<Vec<Fetched>> {
        let what = format!("fetch messages after UID {last_uid} in {}", self.selected_name());
        self.require_selected(&what)?;
        // Whatever EXISTS said so far, this fetch sees it.
        self.new_mail = false;
        let Some(first) = last_uid.checked_add(1) else { return Ok(Vec::new()) };
        // `first:*` always matches the newest message, even one at or below `last_uid`.
        let mut metas = self.fetch_meta(&what, vec![format!("{first}:*")]).await?;
        metas.retain(|m| m.uid > last_uid);
        within_budget(&mut metas, max_bytes);
        self.fetch_bodies(&what, metas, max_bytes).await
    }

    /// The messages with these UIDs, ascending, as far as [`FETCH_BUDGET`] allows (the oldest,
    /// at least one); UIDs that do not exist are skipped. To fetch them all, a group at a
    /// time, use [`Session::groups`].
    pub async fn fetch_uids(&mut self, uids: &[u32], max_bytes: u64) -> Result<Vec<Fetched>> {
        let mut groups = self.groups(uids, max_bytes).await?;
        Ok(self.fetch_group(&mut groups).await?.unwrap_or_default())
    }

    /// The messages with these UIDs that exist, to be fetched whole group by group with
    /// [`Session::fetch_group`]: one round trip for their sizes, nothing of their bytes yet.
    pub async fn groups(&mut self, uids: &[u32], max_bytes: u64) -> Result<Groups> {
        let what = format!("fetch the sizes of {} messages in {}", uids.len(), self.selected_name());
        self.require_selected(&what)?;
        let set = UidSet::new(uids.iter().copied());
        if set.is_empty() {
            return Ok(Groups::default());
        }
        let mut metas = self.fetch_meta(&what, set.chunks(MAX_SET_LEN)).await?;
        metas.retain(|m| set.contains(m.uid));
        Ok(Groups { pending: metas.into(), max_bytes })
    }

    /// The next group of `groups`, whole (a message over their `max_bytes` with its header only,
    /// `truncated`), in one round trip; `None` when all were fetched. A message expunged
    /// meanwhile is skipped. The sizes and flags of the group are known already, so the first
    /// step of a fetch is not repeated.
    pub async fn fetch_group(&mut self, groups: &mut Groups) -> Result<Option<Vec<Fetched>>> {
        if groups.is_empty() {
            return Ok(None);
        }
        let what = format!("fetch messages whole in {}", self.selected_name());
        self.require_selected(&what)?;
        let group = groups.take();
        let what = format!("fetch {} messages whole in {}", group.len(), self.selected_name());
        self.fetch_bodies(&what, group, groups.max_bytes).await.map(Some)
    }

    /// The UIDs above `last_uid` in the selected mailbox, ascending: one `UID SEARCH`, so that
    /// a backlog of thousands is known without fetching anything of it.
    pub async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>> {
        // Whatever EXISTS said so far, this search sees it.
        self.new_mail = false;
        let Some(first) = last_uid.checked_add(1) else { return Ok(Vec::new()) };
        let mut uids = self.search_uids(&format!("UID {first}:*")).await?;
        // `first:*` always matches the newest message, even one at or below `last_uid`.
        uids.retain(|&uid| uid > last_uid);
        Ok(uids)
    }

    /// Flags, date, size and the header block of each of these UIDs that exists, ascending, in
    /// one round trip: the bodies stay on the server (`body_deferred`) until a rule asks for
    /// one. Messages over `max_bytes` are `truncated` as with [`Session::fetch_uids`]. At most
    /// [`HEADER_CAP`] bytes of each header are fetched: a longer one is in [`Headers::long`].
    pub async fn fetch_headers(&mut self, uids: &[u32], max_bytes: u64) -> Result<Headers> {
        let what = format!("fetch the headers of {} messages in {}", uids.len(), self.selected_name());
        self.require_selected(&what)?;
        let set = UidSet::new(uids.iter().copied());
        if set.is_empty() {
            return Ok(Headers::default());
        }
        let extra = if self.caps.gmail { gmail::FETCH_ITEMS } else { "" };
        let commands: Vec<String> = set
            .chunks(MAX_SET_LEN)
            .iter()
            .map(|set| {
                format!("UID FETCH {set} (UID FLAGS INTERNALDATE RFC822.SIZE{extra} BODY.PEEK[HEADER]<0.{HEADER_CAP}>)")
            })
            .collect();
        self.fetch_commands += commands.len() as u64;
        // Headers are a few KiB each: allow a MiB's time per 256 messages.
        let mib = u32::try_from(uids.len() / 256 + 1).unwrap_or(u32::MAX);
        let limit = self.timeouts.command.saturating_add(self.timeouts.fetch_per_mb.saturating_mul(mib));
        let mut fetched: HashMap<u32, Fetched> = HashMap::with_capacity(uids.len());
        self.exchange(&what, &commands, limit, |r| {
            // A FETCH without size or header is an unsolicited flag update: not ours.
            if let (Some(meta), Some((_, raw))) = (meta_of(r), body_of(r))
                && set.contains(meta.uid)
            {
                let truncated = meta.size > max_bytes;
                // As many bytes as asked for: the header may go on, so none of it is judged.
                let long = raw.len() as u64 >= HEADER_CAP;
                fetched.insert(
                    meta.uid,
                    Fetched {
                        uid: meta.uid,
                        flags: meta.flags,
                        internal_date: meta.internal_date,
                        size: meta.size,
                        raw: if long { Vec::new() } else { raw },
                        truncated,
                        body_deferred: !truncated && !long,
                        gmail: meta.gmail,
                    },
                );
            }
        })
        .await?;
        let mut headers = Headers::default();
        for f in fetched.into_values() {
            match f.raw.is_empty() {
                true => headers.long.push(f),
                false => headers.fetched.push(f),
            }
        }
        headers.fetched.sort_by_key(|f| f.uid);
        headers.long.sort_by_key(|f| f.uid);
        if !headers.long.is_empty() {
            tracing::debug!(count = headers.long.len(), cap = HEADER_CAP, "headers over the cap: fetched whole later");
        }
        Ok(headers)
    }

    /// The INTERNALDATE of each of these UIDs that exists, ascending, without their bodies:
    /// to narrow a day-granular SEARCH (BEFORE, SINCE) down to the exact time.
    pub async fn internal_dates(&mut self, uids: &[u32]) -> Result<Vec<(u32, Option<DateTime<Utc>>)>> {
        let what = format!("fetch the dates of {} messages in {}", uids.len(), self.selected_name());
        self.require_selected(&what)?;
        let set = UidSet::new(uids.iter().copied());
        if set.is_empty() {
            return Ok(Vec::new());
        }
        let metas = self.fetch_meta(&what, set.chunks(MAX_SET_LEN)).await?;
        Ok(metas.into_iter().filter(|m| set.contains(m.uid)).map(|m| (m.uid, m.internal_date)).collect())
    }

    /// Step one: UID, FLAGS, INTERNALDATE and RFC822.SIZE for the sets (and Gmail's attributes
    /// on Gmail); sorted by UID.
    async fn fetch_meta(&mut self, what: &str, sets: Vec<String>) -> Result<Vec<Meta>> {
        let extra = if self.caps.gmail { gmail::FETCH_ITEMS } else { "" };
        let commands: Vec<String> =
            sets.iter().map(|set| format!("UID FETCH {set} (UID FLAGS INTERNALDATE RFC822.SIZE{extra})")).collect();
        self.fetch_commands += commands.len() as u64;
        let mut metas: HashMap<u32, Meta> = HashMap::new();
        self.exchange(what, &commands, self.timeouts.command, |r| {
            if let Some(meta) = meta_of(r) {
                metas.insert(meta.uid, meta);
            }
        })
        .await?;
        let mut metas: Vec<Meta> = metas.into_values().collect();
        metas.sort_by_key(|m| m.uid);
        Ok(metas)
    }

    /// Step two: the bodies (or headers of the oversized), all batches pipelined under one
    /// deadline that grows with the bytes expected. Callers keep `metas` within the budget.
    async fn fetch_bodies(&mut self, what: &str, metas: Vec<Meta>, max_bytes: u64) -> Result<Vec<Fetched>> {
        if metas.is_empty() {
            return Ok(Vec::new());
        }
        let (full, headers): (Vec<&Meta>, Vec<&Meta>) = metas.iter().partition(|m| m.size <= max_bytes);
        let mut commands = body_commands(&full, "BODY.PEEK[]");
        // The header of a message over `max_bytes` is cut there too: a sender can make a header
        // as long as the message, and the budget counts no more than `max_bytes` for it.
        let cut = max_bytes.min(u64::from(u32::MAX));
        commands.extend(body_commands(&headers, &format!("BODY.PEEK[HEADER]<0.{cut}>")));
        self.fetch_commands += commands.len() as u64;
        let bytes: u64 = full.iter().map(|m| m.size).sum();
        let mib = u32::try_from(bytes.div_ceil(1024 * 1024)).unwrap_or(u32::MAX);
        let limit = self.timeouts.command.saturating_add(self.timeouts.fetch_per_mb.saturating_mul(mib));
        let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
        self.exchange(what, &commands, limit, |r| {
            if let Some((uid, body)) = body_of(r) {
                bodies.insert(uid, body);
            }
        })
        .await?;
        // A message expunged between the two steps has no body: it is gone, skip it.
        let fetched = metas.into_iter().filter_map(|m| {
            let raw = bodies.remove(&m.uid)?;
            Some(Fetched {
                truncated: m.size > max_bytes,
                body_deferred: false,
                uid: m.uid,
                flags: m.flags,
                internal_date: m.internal_date,
                size: m.size,
                raw,
                gmail: m.gmail,
            })
        });
        Ok(fetched.collect())
    }
}

/// Keeps the oldest messages up to [`FETCH_LIMIT`] and [`FETCH_BUDGET`] (always the first).
fn within_budget(metas: &mut Vec<Meta>, max_bytes: u64) {
    metas.truncate(FETCH_LIMIT);
    let keep = budget_prefix(metas.iter(), max_bytes);
    metas.truncate(keep);
}

/// How many of the oldest `metas` fit [`FETCH_BUDGET`] together (at least one, if any): a
/// message over `max_bytes` costs at most `max_bytes`, where its header is cut.
fn budget_prefix<'a>(metas: impl Iterator<Item = &'a Meta>, max_bytes: u64) -> usize {
    let mut total = 0u64;
    let mut count = 0;
    for m in metas {
        total = total.saturating_add(m.size.min(max_bytes));
        if total > FETCH_BUDGET && count > 0 {
            break;
        }
        count += 1;
    }
    count
}

/// Messages whose sizes are known, to be fetched whole a [`FETCH_BUDGET`] at a time
/// ([`Session::fetch_group`]), oldest first.
#[derive(Debug, Default)]
pub struct Groups {
    pending: VecDeque<Meta>,
    max_bytes: u64,
}

impl Groups {
    /// Messages fetched before with their header only, or not even that ([`Headers::long`]),
    /// to be fetched whole; their bytes are not kept here.
    pub fn of_headers(known: Vec<Fetched>, max_bytes: u64) -> Groups {
        let mut pending: Vec<Meta> = known
            .into_iter()
            .map(|f| Meta { uid: f.uid, flags: f.flags, internal_date: f.internal_date, size: f.size, gmail: f.gmail })
            .collect();
        pending.sort_by_key(|m| m.uid);
        Groups { pending: pending.into(), max_bytes }
    }

    /// The UID of the oldest message not fetched yet.
    pub fn next_uid(&self) -> Option<u32> {
        self.pending.front().map(|m| m.uid)
    }

    /// Whether every message was fetched.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes the next group off the front.
    fn take(&mut self) -> Vec<Meta> {
        let count = budget_prefix(self.pending.iter(), self.max_bytes);
        self.pending.drain(..count).collect()
    }
}

/// `UID FETCH <set> (UID <item>)` for the messages, in batches of [`BODY_BATCH`] UIDs.
fn body_commands(metas: &[&Meta], item: &str) -> Vec<String> {
    metas
        .chunks(BODY_BATCH)
        .flat_map(|batch| UidSet::new(batch.iter().map(|m| m.uid)).chunks(MAX_SET_LEN))
        .map(|set| format!("UID FETCH {set} (UID {item})"))
        .collect()
}

/// Step one's attributes from a FETCH response with a UID and a size.
fn meta_of(response: &Response<'_>) -> Option<Meta> {
    let Response::Fetch(_, attributes) = response else { return None };
    let (mut uid, mut size, mut flags, mut date) = (None, None, Vec::new(), None);
    for attribute in attributes {
        match attribute {
            AttributeValue::Uid(u) => uid = Some(*u),
            AttributeValue::Rfc822Size(s) => size = Some(u64::from(*s)),
            AttributeValue::Flags(list) => flags = list.iter().filter_map(|f| wire::flag_name(f)).collect(),
            AttributeValue::InternalDate(d) => date = wire::internal_date(d),
            _ => {}
        }
    }
    // A FETCH without size is an unsolicited flag update, not an answer to step one.
    Some(Meta { uid: uid?, size: size?, flags, internal_date: date, gmail: gmail::attrs_of(attributes) })
}

/// The UID and body section from a FETCH response of step two.
fn body_of(response: &Response<'_>) -> Option<(u32, Vec<u8>)> {
    let Response::Fetch(_, attributes) = response else { return None };
    let uid = attributes.iter().find_map(|a| if let AttributeValue::Uid(u) = a { Some(*u) } else { None })?;
    let body = attributes.iter().find_map(|a| match a {
        AttributeValue::BodySection { data, .. } => Some(data.as_deref().unwrap_or_default().to_vec()),
        _ => None,
    })?;
    Some((uid, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, size: u64) -> Meta {
        Meta { uid, flags: Vec::new(), internal_date: None, size, gmail: None }
    }

    #[test]
    fn body_commands_batch_by_uid_set() {
        let metas: Vec<Meta> = (1..=450).map(|u| meta(u, 10)).collect();
        let refs: Vec<&Meta> = metas.iter().collect();
        let commands = body_commands(&refs, "BODY.PEEK[]");
        assert_eq!(
            commands,
            [
                "UID FETCH 1:200 (UID BODY.PEEK[])",
                "UID FETCH 201:400 (UID BODY.PEEK[])",
                "UID FETCH 401:450 (UID BODY.PEEK[])"
            ]
        );
        assert!(body_commands(&[], "BODY.PEEK[]").is_empty());
    }

    #[test]
    fn budget_keeps_the_oldest_and_at_least_one() {
        let mut many: Vec<Meta> = (1..=600).map(|u| meta(u, 10)).collect();
        within_budget(&mut many, 1000);
        assert_eq!(many.len(), FETCH_LIMIT);
        assert_eq!(many.last().map(|m| m.uid), Some(FETCH_LIMIT as u32));
        let mut big: Vec<Meta> = (1..=3).map(|u| meta(u, FETCH_BUDGET)).collect();
        within_budget(&mut big, u64::MAX);
        assert_eq!(big.len(), 1, "one message over budget still comes");
        // Oversized ones cost only `max_bytes`, where their header is cut.
        let mut oversized: Vec<Meta> = (1..=5).map(|u| meta(u, FETCH_BUDGET)).collect();
        within_budget(&mut oversized, 1000);
        assert_eq!(oversized.len(), 5);
        let mut oversized: Vec<Meta> = (1..=8).map(|u| meta(u, FETCH_BUDGET)).collect();
        within_budget(&mut oversized, 10 << 20);
        assert_eq!(oversized.len(), 6, "6 x 10 MiB fit 64 MiB, 7 do not");
    }

    fn fetched(uid: u32, size: u64) -> Fetched {
        let m = meta(uid, size);
        Fetched {
            uid: m.uid,
            flags: m.flags,
            internal_date: None,
            size,
            raw: b"Subject: x\r\n\r\n".to_vec(),
            truncated: false,
            body_deferred: true,
            gmail: None,
        }
    }

    #[test]
    fn groups_fit_the_budget_oldest_first() {
        const MB: u64 = 1_000_000;
        // Handed over in any order, taken in UID order; 7 x 9 MB fit 64 MiB, 8 do not.
        let known: Vec<Fetched> = (1..=20).rev().map(|u| fetched(u, 9 * MB)).collect();
        let mut groups = Groups::of_headers(known, 10 << 20);
        let mut sizes = Vec::new();
        while !groups.is_empty() {
            let first = groups.next_uid();
            let group = groups.take();
            assert_eq!(group.first().map(|m| m.uid), first);
            assert!(group.iter().map(|m| m.size).sum::<u64>() <= FETCH_BUDGET);
            sizes.push(group.len());
        }
        assert_eq!(sizes, [7, 7, 6]);
        assert!(groups.take().is_empty() && groups.next_uid().is_none());

        // A message over the budget comes alone; one over max_bytes costs max_bytes (its header
        // is cut there), whatever its size.
        let known = vec![fetched(1, 100 * MB), fetched(2, 9 * MB), fetched(3, 200 * MB), fetched(4, MB)];
        let mut groups = Groups::of_headers(known, 40 * MB);
        let uids = |g: Vec<Meta>| g.iter().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!(uids(groups.take()), [1, 2]);
        assert_eq!(uids(groups.take()), [3, 4]);
        assert!(groups.is_empty());
    }
}
