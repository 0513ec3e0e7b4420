//! The budget of request bytes held in memory across all connections
//! (`max-queued-request-bytes`), granted to each frame as its bytes arrive.
//!
//! Kafka takes a frame's whole size from its memory pool as soon as the length prefix has
//! arrived. A client that announces a large frame and then sends a byte a second holds that
//! memory until it is closed, and every other client waits for it: a handful of such
//! connections stall the broker. Here a frame gets its whole length at once only while at
//! least half the budget would stay free (the common case: one allocation, no copying as the
//! buffer grows). Beyond that, a frame holds only the bytes it has received plus one read-ahead
//! step, so slow senders can tie up at most half the budget (and only until their deadline),
//! and the other half stays for everyone else. Steps double with what has arrived (16 KiB,
//! then as much again as the frame holds), so a fast large frame needs few grants.
//!
//! Granting memory piecemeal could deadlock: frames each partly received, the budget spent,
//! each waiting for memory another holds. Grants therefore follow the banker's algorithm. A
//! frame declares its length when its prefix arrives, and a grant is made only if, afterwards,
//! the frames in progress could still all finish in some order with the budget there is. So
//! the frame nearest to completion can always go on, memory flows back as frames complete, and
//! a frame that waits for memory waits only for frames that are being read.
//!
//! This module only does the accounting; the connection loop in `kafka.rs` sizes the reads.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The shared budget. Cheap to lock: one map update and a walk over the frames in progress
/// whose remaining bytes exceed the free budget.
#[derive(Debug)]
pub struct RequestMemory {
    ledger: Mutex<Ledger>,
    /// Woken when a frame gives its memory back (the only event that can make a refused grant
    /// possible: another frame's grant never does).
    released: Notify,
}

impl RequestMemory {
    /// A budget of `capacity` bytes. Every frame must be at most `capacity` long (the config
    /// checks `max-queued-request-bytes >= max-request-bytes`).
    pub fn new(capacity: usize) -> Arc<RequestMemory> {
        Arc::new(RequestMemory {
            ledger: Mutex::new(Ledger::new(capacity)),
            released: Notify::new(),
        })
    }

    /// Declares a frame of `length` bytes; it holds nothing until [`FrameMemory::grow`].
    pub fn frame(self: &Arc<Self>, length: usize) -> FrameMemory {
        let id = self.lock().declare(length);
        FrameMemory {
            memory: Arc::clone(self),
            id,
            held: 0,
        }
    }

    /// Bytes not granted to any frame.
    #[cfg(test)]
    pub fn free_bytes(&self) -> usize {
        self.lock().free
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One frame's share of the budget; gives it back when dropped.
#[derive(Debug)]
pub struct FrameMemory {
    memory: Arc<RequestMemory>,
    id: u64,
    held: usize,
}

impl FrameMemory {
    /// Bytes granted so far.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes the rest of the frame at once if at least half the budget stays free; never
    /// waits.
    pub fn try_grow_all(&mut self) -> bool {
        match self.memory.lock().grant_rest_if_plenty(self.id) {
            Some(bytes) => {
                self.held += bytes;
                true
            }
            None => false,
        }
    }

    /// Waits until `bytes` more are granted. Cancel-safe: nothing is granted unless this
    /// returns.
    pub async fn grow(&mut self, bytes: usize) {
        loop {
            let released = self.memory.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            released.as_mut().enable();
            if self.memory.lock().grant(self.id, bytes) {
                self.held += bytes;
                return;
            }
            released.await;
        }
    }
}

impl Drop for FrameMemory {
    fn drop(&mut self) {
        self.memory.lock().release(self.id);
        if self.held > 0 {
            self.memory.released.notify_waiters();
        }
    }
}

/// What each frame in progress holds and still needs.
#[derive(Debug)]
struct Ledger {
    capacity: usize,
    free: usize,
    next_id: u64,
    /// Frame id to its declared length.
    lengths: HashMap<u64, usize>,
    /// (remaining bytes, id) of every frame: the order in which the safety check lets frames
    /// finish. A frame's held bytes are its length less its remaining bytes.
    by_remaining: BTreeSet<(usize, u64)>,
    remaining: HashMap<u64, usize>,
}

impl Ledger {
    fn new(capacity: usize) -> Ledger {
        Ledger {
            capacity,
            free: capacity,
            next_id: 0,
            lengths: HashMap::new(),
            by_remaining: BTreeSet::new(),
            remaining: HashMap::new(),
        }
    }

    /// Adds a frame that holds nothing yet. Never makes a safe state unsafe: the frame can
    /// always finish last, when every other frame has given its memory back.
    fn declare(&mut self, length: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.lengths.insert(id, length);
        self.remaining.insert(id, length);
        self.by_remaining.insert((length, id));
        id
    }

    /// Grants `bytes` to frame `id` if there is that much free and every frame could still
    /// finish afterwards.
    fn grant(&mut self, id: u64, bytes: usize) -> bool {
        let Some(&remaining) = self.remaining.get(&id) else {
            return false;
        };
        if bytes > self.free || bytes > remaining {
            return false;
        }
        self.set_remaining(id, remaining, remaining - bytes);
        self.free -= bytes;
        if self.safe() {
            return true;
        }
        self.free += bytes;
        self.set_remaining(id, remaining - bytes, remaining);
        false
    }

    /// Grants frame `id` all it still needs if at least half the budget stays free; returns
    /// how much that was.
    fn grant_rest_if_plenty(&mut self, id: u64) -> Option<usize> {
        let remaining = *self.remaining.get(&id)?;
        if self.free.saturating_sub(remaining) < self.capacity / 2 {
            return None;
        }
        self.grant(id, remaining).then_some(remaining)
    }

    /// Gives back everything frame `id` holds and forgets it.
    fn release(&mut self, id: u64) {
        let (Some(length), Some(remaining)) =
            (self.lengths.remove(&id), self.remaining.remove(&id))
        else {
            return;
        };
        self.by_remaining.remove(&(remaining, id));
        self.free += length - remaining;
    }

    fn set_remaining(&mut self, id: u64, from: usize, to: usize) {
        self.by_remaining.remove(&(from, id));
        self.by_remaining.insert((to, id));
        self.remaining.insert(id, to);
    }

    /// The banker's check for one resource: let frames finish in order of what they still
    /// need, each giving back what it holds. Smallest need first is the best order, so if it
    /// gets stuck, every order does.
    fn safe(&self) -> bool {
        let largest = self.by_remaining.last().map_or(0, |&(r, _)| r);
        let mut available = self.free;
        for &(remaining, id) in &self.by_remaining {
            if available >= largest {
                return true;
            }
            if remaining > available {
                return false;
            }
            available += self.lengths.get(&id).map_or(0, |length| length - remaining);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_that_announces_much_and_sends_little_holds_little() {
        let mut ledger = Ledger::new(100);
        let slow = ledger.declare(100);
        assert!(ledger.grant(slow, 10));
        // Another frame can still take everything but what the slow one holds.
        let fast = ledger.declare(90);
        assert!(ledger.grant(fast, 90));
        assert_eq!(ledger.free, 0);
        ledger.release(fast);
        assert_eq!(ledger.free, 90);
        ledger.release(slow);
        assert_eq!(ledger.free, 100);
    }

    #[test]
    fn frames_get_their_whole_length_at_once_while_half_the_budget_stays_free() {
        let mut ledger = Ledger::new(100);
        let a = ledger.declare(30);
        assert_eq!(ledger.grant_rest_if_plenty(a), Some(30));
        let b = ledger.declare(20);
        assert_eq!(ledger.grant_rest_if_plenty(b), Some(20), "50 stay free");
        let c = ledger.declare(1);
        assert_eq!(ledger.grant_rest_if_plenty(c), None, "49 would stay free");
        assert!(ledger.grant(c, 1), "piecemeal grants go on");
        assert_eq!(ledger.grant_rest_if_plenty(99), None, "an unknown frame");
    }

    #[test]
    fn grants_that_could_deadlock_are_refused() {
        // Two 60-byte frames in a 100-byte budget: if both held 50, neither could finish.
        let mut ledger = Ledger::new(100);
        let a = ledger.declare(60);
        let b = ledger.declare(60);
        assert!(ledger.grant(a, 40));
        assert!(
            ledger.grant(b, 40),
            "either can still finish: 20 free covers 20"
        );
        assert!(ledger.grant(a, 10), "a can finish with the 10 left");
        assert!(
            !ledger.grant(b, 10),
            "then a and b would each need 10 with none free"
        );
        assert!(
            ledger.grant(a, 10),
            "the frame nearest to the end always goes on"
        );
        ledger.release(a);
        assert!(ledger.grant(b, 20));
    }

    #[test]
    fn a_grant_larger_than_the_free_budget_or_the_frame_is_refused() {
        let mut ledger = Ledger::new(100);
        let a = ledger.declare(80);
        let b = ledger.declare(80);
        assert!(ledger.grant(a, 30));
        assert!(!ledger.grant(b, 80), "only 70 free");
        assert!(!ledger.grant(a, 51), "more than the frame's remaining 50");
        assert!(!ledger.grant(99, 1), "an unknown frame");
        ledger.release(99);
        assert_eq!(ledger.free, 70);
    }

    #[test]
    fn many_frames_always_leave_one_that_can_finish() {
        // Greedy grants in round-robin never reach a state where no frame can progress.
        let mut ledger = Ledger::new(1000);
        let frames: Vec<u64> = (0..7).map(|i| ledger.declare(300 + i * 50)).collect();
        let mut left: Vec<(u64, usize)> = frames.iter().map(|&f| (f, ledger.lengths[&f])).collect();
        let mut rounds = 0;
        while !left.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "no progress: {ledger:?}");
            let mut progressed = false;
            for (id, need) in left.iter_mut() {
                let step = (*need).min(64);
                if ledger.grant(*id, step) {
                    *need -= step;
                    progressed = true;
                }
            }
            for (id, _) in left.iter().filter(|(_, need)| *need == 0) {
                ledger.release(*id);
                progressed = true;
            }
            left.retain(|(_, need)| *need > 0);
            assert!(progressed, "deadlock: {ledger:?}");
        }
        assert_eq!(ledger.free, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_grant_waits_for_a_release() {
        let memory = RequestMemory::new(100);
        let mut a = memory.frame(100);
        a.grow(100).await;
        let mut b = memory.frame(50);
        let waiting = tokio::spawn(async move {
            b.grow(50).await;
            b.held()
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        assert_eq!(waiting.await.expect("task"), 50);
        assert_eq!(
            memory.free_bytes(),
            100,
            "b gave its memory back when dropped"
        );
    }
}
