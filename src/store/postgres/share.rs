//! Which accounts one instance of a fleet should hold: its fair share of them.
//!
//! Every instance runs the same decision on what it reads from the lease table, so none needs
//! to talk to the others: with `n` accounts and `live` instances, each aims for at most
//! ceil(n / live) accounts. An instance over its share releases the extra ones (a joining
//! instance takes them); one under it claims free or expired ones. Leases and their epochs make
//! the outcome safe whatever the timing: two instances that both decide to claim an account
//! race on its row, and one wins.

use std::collections::BTreeSet;

/// What one instance should do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moves {
    /// Accounts to claim (free or expired), in name order.
    pub claim: Vec<String>,
    /// Accounts to give up (the instance holds more than its share), in name order.
    pub release: Vec<String>,
}

/// The fair share: how many of `accounts` one of `live` instances holds at most.
pub fn share(accounts: usize, live: usize) -> usize {
    accounts.div_ceil(live.max(1))
}

/// The moves for an instance holding `mine`, given every account, those another live instance
/// holds (`taken`), and how many instances are live (this one included).
pub fn moves(accounts: &BTreeSet<String>, mine: &BTreeSet<String>, taken: &BTreeSet<String>, live: usize) -> Moves {
    let target = share(accounts.len(), live);
    let held: Vec<&String> = mine.iter().filter(|a| accounts.contains(*a)).collect();
    let mut moves = Moves::default();
    // Accounts no longer in the config are always given up.
    moves.release.extend(mine.iter().filter(|a| !accounts.contains(*a)).cloned());
    if held.len() > target {
        // The last ones by name: every instance agrees on which it keeps.
        moves.release.extend(held[target..].iter().map(|a| (*a).clone()));
    } else {
        let free = accounts.iter().filter(|a| !mine.contains(*a) && !taken.contains(*a));
        moves.claim.extend(free.take(target - held.len()).cloned());
    }
    moves.release.sort();
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_instance_aims_for_the_ceiling_of_its_share() {
        assert_eq!(share(10, 3), 4);
        assert_eq!(share(9, 3), 3);
        assert_eq!(share(2, 5), 1);
        assert_eq!(share(7, 0), 7, "no live instance counted: this one takes all");
    }

    #[test]
    fn a_lone_instance_takes_every_free_account() {
        let all = set(&["a", "b", "c"]);
        let moves = moves(&all, &set(&[]), &set(&[]), 1);
        assert_eq!(moves.claim, ["a", "b", "c"]);
        assert!(moves.release.is_empty());
    }

    #[test]
    fn a_joining_instance_makes_the_others_release_and_takes_what_is_freed() {
        let all = set(&["a", "b", "c", "d"]);
        // Instance 1 held everything; instance 2 joins (2 live): 1 keeps a, b and releases c, d.
        let first = moves(&all, &all, &set(&[]), 2);
        assert_eq!((first.claim.len(), first.release.clone()), (0, vec!["c".to_owned(), "d".to_owned()]));
        // Instance 2, once c and d are free, claims them.
        let second = moves(&all, &set(&[]), &set(&["a", "b"]), 2);
        assert_eq!(second.claim, ["c", "d"]);
    }

    #[test]
    fn a_dead_instances_accounts_are_claimed_by_the_survivors_up_to_their_share() {
        let all = set(&["a", "b", "c", "d", "e", "f"]);
        // Three instances held two each; the third died (its leases expire): two live now.
        let one = moves(&all, &set(&["a", "b"]), &set(&["c", "d"]), 2);
        assert_eq!(one.claim, ["e"], "up to 3 of 6");
        let two = moves(&all, &set(&["c", "d"]), &set(&["a", "b", "e"]), 2);
        assert_eq!(two.claim, ["f"]);
    }

    #[test]
    fn accounts_removed_from_the_config_are_released() {
        let moves = moves(&set(&["a"]), &set(&["a", "gone"]), &set(&[]), 1);
        assert_eq!(moves.release, ["gone"]);
        assert!(moves.claim.is_empty());
    }
}
