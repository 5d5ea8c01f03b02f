//! How many rules run at once in the process: at most one per core.
//!
//! Rules are pure CPU work, and their limit is wall-clock time. Evaluations of different
//! accounts (and mailboxes) run in parallel on the blocking pool, which has far more threads
//! than the machine has cores: past one evaluation per core, more threads only slow each other
//! down, and a rule's wall clock would count the time its thread waited for a core, failing
//! rules that are not slow at all. So a rule takes a slot (one per core) for the time it runs,
//! and its wall clock starts once it has one. A slow rule holds one slot for at most its limit;
//! the other accounts' rules run beside it on the other cores.
//!
//! Each slot has a number, and runs its own copy of the compiled rules (see `resolver`): no two
//! threads ever run the same compiled plugin at once.

use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

/// The slots of the process.
pub(super) static SLOTS: LazyLock<Slots> =
    LazyLock::new(|| Slots::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get)));

/// A counting semaphore over numbered slots.
pub(super) struct Slots {
    count: usize,
    free: Mutex<Vec<usize>>,
    freed: Condvar,
}

/// A slot taken: given back when dropped.
pub(super) struct Slot<'a> {
    slots: &'a Slots,
    /// Its number, from 0.
    pub index: usize,
}

impl Slots {
    fn new(count: usize) -> Slots {
        let count = count.max(1);
        Slots { count, free: Mutex::new((0..count).rev().collect()), freed: Condvar::new() }
    }

    /// How many slots there are.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// Waits for a free slot and takes it (the lowest free number, so that a lightly loaded
    /// process uses, and compiles, few copies).
    pub(super) fn take(&self) -> Slot<'_> {
        let mut free = self.lock();
        loop {
            if let Some(index) = free.pop() {
                return Slot { slots: self, index };
            }
            free = self.freed.wait(free).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<usize>> {
        // The list changes in single statements: a poisoned lock still holds a good list.
        self.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.lock();
        free.push(self.index);
        // Highest first, so that `pop` gives the lowest.
        free.sort_unstable_by(|a, b| b.cmp(a));
        drop(free);
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Slots;

    #[test]
    fn no_more_than_the_slots_run_at_once_and_every_taker_gets_one() {
        let slots = Arc::new(Slots::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let held: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, running, most, held) = (slots.clone(), running.clone(), most.clone(), held.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let slot = slots.take();
                        assert_eq!(held[slot.index].fetch_add(1, Ordering::SeqCst), 0, "a slot held twice");
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        running.fetch_sub(1, Ordering::SeqCst);
                        held[slot.index].fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at once, never more");
        assert_eq!(*slots.lock(), [1, 0], "every slot given back");
    }
}
