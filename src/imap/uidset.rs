//! UID sets as IMAP writes them: `1:5,7,9:12`, split into pieces short enough for one
//! command line.
//!
//! Only sets of known UIDs: the open range `n:*` is written by the fetch code itself. This
//! module builds strings; it does not decide which messages an action touches.

use std::fmt;

/// Longest UID set put into one command (servers limit command lines, often to 8 KB).
pub const MAX_SET_LEN: usize = 1000;

/// A set of UIDs, sorted and merged into ranges. UID 0 does not exist and is dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UidSet {
    ranges: Vec<(u32, u32)>,
}

impl UidSet {
    /// The set of `uids`, in any order, duplicates allowed.
    pub fn new(uids: impl IntoIterator<Item = u32>) -> UidSet {
        let mut sorted: Vec<u32> = uids.into_iter().filter(|&u| u != 0).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for uid in sorted {
            match ranges.last_mut() {
                Some((_, end)) if end.checked_add(1) == Some(uid) => *end = uid,
                _ => ranges.push((uid, uid)),
            }
        }
        UidSet { ranges }
    }

    /// Whether the set holds no UID.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many UIDs the set holds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    /// Whether `uid` is in the set.
    pub fn contains(&self, uid: u32) -> bool {
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&uid))
    }

    /// The set as strings of at most `max_len` characters each (a single range longer than
    /// that, at most 21 characters, still gets its own piece), in ascending UID order.
    pub fn chunks(&self, max_len: usize) -> Vec<String> {
        let mut pieces = Vec::new();
        let mut current = String::new();
        for &range in &self.ranges {
            let text = range_text(range);
            if !current.is_empty() && current.len() + 1 + text.len() > max_len {
                pieces.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(',');
            }
            current.push_str(&text);
        }
        if !current.is_empty() {
            pieces.push(current);
        }
        pieces
    }
}

impl FromIterator<u32> for UidSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> UidSet {
        UidSet::new(iter)
    }
}

impl fmt::Display for UidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&range_text(range))?;
        }
        Ok(())
    }
}

fn range_text((start, end): (u32, u32)) -> String {
    if start == end { start.to_string() } else { format!("{start}:{end}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_sorts_and_dedups() {
        let set = UidSet::new([12, 1, 2, 3, 4, 5, 7, 9, 10, 11, 3, 0]);
        assert_eq!(set.to_string(), "1:5,7,9:12");
        assert_eq!(set.len(), 10);
        assert!(set.contains(10) && !set.contains(8) && !set.contains(0));
        assert_eq!(UidSet::new([u32::MAX, u32::MAX - 1]).to_string(), "4294967294:4294967295");
        assert!(UidSet::new([]).is_empty());
        assert_eq!(UidSet::new([]).chunks(10), Vec::<String>::new());
        assert_eq!(UidSet::new([42]).to_string(), "42");
    }

    #[test]
    fn splits_long_sets_at_range_boundaries() {
        // Every other UID: no ranges, 1000 entries of up to 4 digits.
        let set: UidSet = (1..=2000).step_by(2).collect();
        let pieces = set.chunks(MAX_SET_LEN);
        assert!(pieces.len() > 1, "expected several pieces");
        assert!(pieces.iter().all(|p| p.len() <= MAX_SET_LEN), "a piece is too long");
        let back: UidSet = pieces.iter().flat_map(|p| p.split(',')).map(|u| u.parse::<u32>().unwrap()).collect();
        assert_eq!(back, set, "the pieces together are the set");
        assert_eq!(UidSet::new([1, 2, 3, 10]).chunks(3), vec!["1:3".to_string(), "10".to_string()]);
        assert_eq!(UidSet::new([1, 2, 3, 10]).chunks(100), vec!["1:3,10".to_string()]);
    }
}
