//! The bounded queue between the listeners and the parse workers.
//!
//! One FIFO per worker; a connection (or a UDP sender) always goes to the same worker, so
//! its messages reach the sink in the order they were received, while different senders
//! are parsed in parallel. The bound is in messages, across all workers, enforced by a
//! semaphore: a listener waits for room (back-pressure: a TCP sender's window closes)
//! instead of the queue growing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use metrics::{gauge, Gauge, Histogram};
use tokio::sync::{mpsc, Semaphore};

use crate::source::Message;

#[derive(Clone)]
pub struct Dispatcher {
    shards: Arc<[mpsc::UnboundedSender<Vec<Message>>]>,
    room: Arc<Semaphore>,
    capacity: usize,
    depth: Gauge,
    accepted: Arc<AtomicU64>,
}

pub struct WorkQueue {
    rx: mpsc::UnboundedReceiver<Vec<Message>>,
    room: Arc<Semaphore>,
    capacity: usize,
    depth: Gauge,
}

/// The queue is closed: the workers have stopped (only at shutdown).
#[derive(Debug)]
pub struct Closed(pub Vec<Message>);

pub fn bounded(workers: usize, capacity: usize) -> (Dispatcher, Vec<WorkQueue>) {
    let capacity = capacity.max(1);
    let room = Arc::new(Semaphore::new(capacity));
    let depth = gauge!("sluice_queue_depth");
    gauge!("sluice_queue_capacity").set(capacity as f64);
    let (senders, queues): (Vec<_>, Vec<_>) = (0..workers.max(1))
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            (
                tx,
                WorkQueue {
                    rx,
                    room: room.clone(),
                    capacity,
                    depth: depth.clone(),
                },
            )
        })
        .unzip();
    (
        Dispatcher {
            shards: senders.into(),
            room,
            capacity,
            depth,
            accepted: Arc::new(AtomicU64::new(0)),
        },
        queues,
    )
}

impl Dispatcher {
    /// Queues a batch for the worker that owns `key` (a connection or sender id), waiting
    /// while the queue is full; each wait is recorded in `blocked` (seconds).
    pub async fn send(
        &self,
        key: u64,
        mut batch: Vec<Message>,
        blocked: &Histogram,
    ) -> Result<(), Closed> {
        while !batch.is_empty() {
            // A batch larger than the whole queue goes in slices.
            let take = batch.len().min(self.capacity);
            let rest = batch.split_off(take);
            let permits = take as u32;
            match self.room.try_acquire_many(permits) {
                Ok(p) => p.forget(),
                Err(_) => {
                    let started = Instant::now();
                    match self.room.acquire_many(permits).await {
                        Ok(p) => p.forget(),
                        Err(_) => return Err(Closed(batch)),
                    }
                    blocked.record(started.elapsed().as_secs_f64());
                }
            }
            self.update_depth();
            let shard = &self.shards[(key % self.shards.len() as u64) as usize];
            if let Err(e) = shard.send(batch) {
                self.room.add_permits(permits as usize);
                return Err(Closed(e.0));
            }
            self.accepted.fetch_add(take as u64, Ordering::Relaxed);
            batch = rest;
        }
        Ok(())
    }

    /// Messages queued so far (shared by every clone of this dispatcher).
    pub fn accepted(&self) -> Arc<AtomicU64> {
        self.accepted.clone()
    }

    /// Reads the depth without holding the queue open (a dispatcher clone would keep the
    /// workers from ever seeing the end of input at shutdown).
    pub fn depth_probe(&self) -> impl Fn() -> (usize, usize) + Send + Sync + 'static {
        let room = Arc::downgrade(&self.room);
        let capacity = self.capacity;
        move || {
            let free = room
                .upgrade()
                .map(|r| r.available_permits())
                .unwrap_or(capacity);
            (capacity - free, capacity)
        }
    }

    pub fn depth(&self) -> usize {
        self.capacity - self.room.available_permits()
    }

    fn update_depth(&self) {
        self.depth.set(self.depth() as f64);
    }
}

impl WorkQueue {
    /// The next batch, blocking the (non-async) worker thread; `None` once every
    /// dispatcher is gone and the queue is empty.
    pub fn recv_blocking(&mut self) -> Option<Vec<Message>> {
        self.rx.blocking_recv()
    }

    /// Gives back the room of `n` messages taken off the queue.
    pub fn release(&self, n: usize) {
        self.room.add_permits(n);
        self.depth
            .set((self.capacity - self.room.available_permits()) as f64);
    }
}
