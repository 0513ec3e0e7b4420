//! Group commit: a few threads that fsync logs on request.
//!
//! A producer that needs durability appends its batch, asks the syncer to sync the log and
//! waits for the log's durable mark to pass its offsets. Requests that arrive while an fsync is
//! running are served together by the next one, so concurrent produces share fsyncs and
//! durability costs latency rather than throughput. Each fsync's duration is recorded in
//! [`Syncer::fsync_seconds`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use spate_metrics::Histogram;

use crate::log::Log;

struct Queue {
    pending: VecDeque<Arc<Log>>,
    shutdown: bool,
}

/// Runs fsyncs off the async workers and coalesces requests per log.
pub struct Syncer {
    queue: Mutex<Queue>,
    ready: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
    fsync_seconds: Histogram,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts `threads` sync threads (at least one).
    pub fn start(threads: usize) -> Arc<Syncer> {
        let syncer = Arc::new(Syncer {
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                shutdown: false,
            }),
            ready: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            fsync_seconds: Histogram::new(),
        });
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let worker = Arc::clone(&syncer);
            let handle = std::thread::Builder::new()
                .name(format!("spate-sync-{i}"))
                .spawn(move || worker.run())
                .expect("spawning a sync thread");
            handles.push(handle);
        }
        *syncer.threads.lock() = handles;
        syncer
    }

    /// How long the fsyncs of group commit took (the `fsync` call alone, not the wait for it).
    pub fn fsync_seconds(&self) -> &Histogram {
        &self.fsync_seconds
    }

    /// Asks for `log` to be fsync'd soon. Cheap when a sync is already queued.
    pub fn request(&self, log: &Arc<Log>) {
        if log.sync_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut queue = self.queue.lock();
        queue.pending.push_back(Arc::clone(log));
        drop(queue);
        self.ready.notify_one();
    }

    fn run(&self) {
        loop {
            let log = {
                let mut queue = self.queue.lock();
                loop {
                    if let Some(log) = queue.pending.pop_front() {
                        break log;
                    }
                    if queue.shutdown {
                        return;
                    }
                    self.ready.wait(&mut queue);
                }
            };
            // Clear before syncing: appends that land during this fsync queue the log again.
            log.sync_queued.store(false, Ordering::Release);
            if let Err(err) = log.sync_recorded(now_ms(), Some(&self.fsync_seconds)) {
                tracing::error!(log = log.name(), error = %err, "sync failed");
            }
        }
    }

    /// Finishes queued syncs and stops the threads.
    pub fn shutdown(&self) {
        self.queue.lock().shutdown = true;
        self.ready.notify_all();
        let handles = std::mem::take(&mut *self.threads.lock());
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
