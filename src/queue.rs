//! The bounded queue between the listeners and the parse workers.
//!
//! One FIFO per worker; a connection (or a UDP sender) always goes to the same worker, so
//! its messages reach the sink in the order they were received, while different senders
//! are parsed in parallel. The queue is bounded twice, across all workers: in messages and
//! in bytes, each by a semaphore. A listener waits for room in both (back-pressure: a TCP
//! sender's window closes) instead of the queue growing. The byte bound is what keeps
//! memory in check when messages are large: 65,536 places of 64 KiB would be 4 GiB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{gauge, Gauge, Histogram};
use tokio::sync::{mpsc, Semaphore};

use crate::source::Message;

/// What a queued message holds besides its bytes: the message itself.
const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>();

/// How long a listener or a parse worker that outpaces its input waits for more before it
/// hands a small batch on: the latency a trickle pays, once per stage, so that each stage
/// wakes about once a millisecond instead of once per message.
pub const TRICKLE_WAIT: Duration = Duration::from_millis(1);

/// The largest byte bound: one acquire of the semaphore takes at most `u32::MAX` permits.
pub const MAX_BYTES_LIMIT: usize = u32::MAX as usize;

/// A batch on its way to a worker, with the room it takes.
type Queued = (Vec<Message>, Room);

#[derive(Clone)]
pub struct Dispatcher {
    shards: Arc<[mpsc::UnboundedSender<Queued>]>,
    bounds: Arc<Bounds>,
    accepted: Arc<AtomicU64>,
}

pub struct WorkQueue {
    rx: mpsc::UnboundedReceiver<Queued>,
    bounds: Arc<Bounds>,
}

/// Both bounds, what is free of each, and the gauges that show what is taken.
struct Bounds {
    places: Semaphore,
    capacity: usize,
    bytes: Semaphore,
    max_bytes: usize,
    depth: Gauge,
    queued_bytes: Gauge,
}

/// The room a batch takes in the queue: given back once its messages are parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    messages: u32,
    bytes: u32,
}

/// How full the queue is: taken and total, in messages and in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub messages: usize,
    pub capacity: usize,
    pub bytes: usize,
    pub max_bytes: usize,
}

impl Fill {
    /// The fuller of the two bounds, as a fraction.
    pub fn fraction(&self) -> f64 {
        let by_count = self.messages as f64 / self.capacity as f64;
        let by_bytes = self.bytes as f64 / self.max_bytes as f64;
        by_count.max(by_bytes)
    }
}

/// The queue is closed: the workers have stopped (only at shutdown).
#[derive(Debug)]
pub struct Closed(pub Vec<Message>);

/// A queue of at most `capacity` messages and `max_bytes` bytes (messages and their
/// bookkeeping), shared by `workers` FIFOs.
pub fn bounded(workers: usize, capacity: usize, max_bytes: usize) -> (Dispatcher, Vec<WorkQueue>) {
    let capacity = capacity.clamp(1, u32::MAX as usize);
    let max_bytes = max_bytes.clamp(1, MAX_BYTES_LIMIT);
    gauge!("sluice_queue_capacity").set(capacity as f64);
    gauge!("sluice_queue_max_bytes").set(max_bytes as f64);
    let bounds = Arc::new(Bounds {
        places: Semaphore::new(capacity),
        capacity,
        bytes: Semaphore::new(max_bytes),
        max_bytes,
        depth: gauge!("sluice_queue_depth"),
        queued_bytes: gauge!("sluice_queue_bytes"),
    });
    let (senders, queues): (Vec<_>, Vec<_>) = (0..workers.max(1))
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            (
                tx,
                WorkQueue {
                    rx,
                    bounds: bounds.clone(),
                },
            )
        })
        .unzip();
    (
        Dispatcher {
            shards: senders.into(),
            bounds,
            accepted: Arc::new(AtomicU64::new(0)),
        },
        queues,
    )
}

impl Bounds {
    /// What one message takes of the byte bound. One larger than the whole bound takes all
    /// of it, so it still goes in, alone. A stream listener's messages are views of its read
    /// buffers, whose unfilled ends (at most a quarter of each) are not counted: measuring
    /// them would take a look into each buffer, for a bound that stays within 25 %.
    fn charge(&self, message: &Message) -> usize {
        (message.bytes.len() + MESSAGE_OVERHEAD).min(self.max_bytes)
    }

    /// How many of `batch`'s first messages fit in an empty queue (at least one), and the
    /// bytes they take.
    fn first_slice(&self, batch: &[Message]) -> (usize, usize) {
        let mut bytes = 0;
        for (i, message) in batch.iter().enumerate() {
            let charge = self.charge(message);
            if i == self.capacity || (i > 0 && bytes + charge > self.max_bytes) {
                return (i, bytes);
            }
            bytes += charge;
        }
        (batch.len(), bytes)
    }

    fn fill(&self) -> Fill {
        Fill {
            messages: self.capacity - self.places.available_permits(),
            capacity: self.capacity,
            bytes: self.max_bytes - self.bytes.available_permits(),
            max_bytes: self.max_bytes,
        }
    }

    fn update_gauges(&self) {
        let fill = self.fill();
        self.depth.set(fill.messages as f64);
        self.queued_bytes.set(fill.bytes as f64);
    }

    fn give_back(&self, room: Room) {
        self.places.add_permits(room.messages as usize);
        self.bytes.add_permits(room.bytes as usize);
    }

    /// Takes `room` of both bounds: at once when free, else waiting (the wait recorded in
    /// `blocked`). Fails only when the queue is closed.
    async fn take(&self, room: Room, blocked: &Histogram) -> Result<(), ()> {
        let free_now = match self.places.try_acquire_many(room.messages) {
            Ok(places) => match self.bytes.try_acquire_many(room.bytes) {
                Ok(bytes) => {
                    places.forget();
                    bytes.forget();
                    true
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        if free_now {
            return Ok(());
        }
        let started = Instant::now();
        // Places first, then bytes: only the workers give room back, and they never wait
        // for it, so a listener holding places while it waits for bytes cannot deadlock.
        let places = self
            .places
            .acquire_many(room.messages)
            .await
            .map_err(|_| ())?;
        let bytes = self.bytes.acquire_many(room.bytes).await.map_err(|_| ())?;
        places.forget();
        bytes.forget();
        blocked.record(started.elapsed().as_secs_f64());
        Ok(())
    }
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
        let bounds = &self.bounds;
        while !batch.is_empty() {
            // A batch larger than the whole queue goes in slices.
            let (take, bytes) = bounds.first_slice(&batch);
            let rest = batch.split_off(take);
            let room = Room {
                messages: take as u32,
                bytes: bytes as u32,
            };
            if bounds.take(room, blocked).await.is_err() {
                batch.extend(rest);
                return Err(Closed(batch));
            }
            bounds.update_gauges();
            let shard = &self.shards[(key % self.shards.len() as u64) as usize];
            if let Err(e) = shard.send((batch, room)) {
                bounds.give_back(room);
                let (mut unsent, _) = e.0;
                unsent.extend(rest);
                return Err(Closed(unsent));
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

    /// Reads how full the queue is without holding it open (a dispatcher clone would keep
    /// the workers from ever seeing the end of input at shutdown).
    pub fn fill_probe(&self) -> impl Fn() -> Option<Fill> + Send + Sync + 'static {
        let bounds = Arc::downgrade(&self.bounds);
        move || bounds.upgrade().map(|b| b.fill())
    }
}

impl WorkQueue {
    /// The next batch and the room it takes, blocking the (non-async) worker thread;
    /// `None` once every dispatcher is gone and the queue is empty.
    pub fn recv_blocking(&mut self) -> Option<Queued> {
        self.rx.blocking_recv()
    }

    /// The next batch if one is queued now (`None` when empty or closed).
    pub fn try_recv(&mut self) -> Option<Queued> {
        self.rx.try_recv().ok()
    }

    /// Gives back the room of a batch taken off the queue.
    pub fn release(&self, room: Room) {
        self.bounds.give_back(room);
        self.bounds.update_gauges();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::source::{ReceiveInfo, Transport};

    fn message(len: usize) -> Message {
        let info = ReceiveInfo::new("test", Transport::Tcp);
        Message::new(vec![b'x'; len], Arc::new(info), 0)
    }

    fn charge(len: usize) -> usize {
        len + MESSAGE_OVERHEAD
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_byte_bound_holds_senders_back_until_a_worker_gives_room() {
        let max_bytes = 3 * charge(1000);
        let (dispatcher, mut queues) = bounded(1, 100, max_bytes);
        let blocked = metrics::histogram!("test_blocked");
        dispatcher
            .send(1, (0..2).map(|_| message(1000)).collect(), &blocked)
            .await
            .unwrap();
        assert_eq!(
            dispatcher.bounds.fill(),
            Fill {
                messages: 2,
                capacity: 100,
                bytes: 2 * charge(1000),
                max_bytes
            }
        );
        // Two more do not fit beside the two queued: the send waits.
        let second = {
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move {
                let blocked = metrics::histogram!("test_blocked");
                let batch = (0..2).map(|_| message(1000)).collect();
                dispatcher.send(1, batch, &blocked).await.unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        let queue = &mut queues[0];
        let (batch, room) = tokio::task::block_in_place(|| queue.recv_blocking()).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(
            room,
            Room {
                messages: 2,
                bytes: 2 * charge(1000) as u32
            }
        );
        queue.release(room);
        tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the send finishes once room is given back")
            .unwrap();
        assert_eq!(dispatcher.bounds.fill().bytes, 2 * charge(1000));
        assert_eq!(dispatcher.accepted().load(Ordering::Relaxed), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_goes_in_slices_that_fit_both_bounds() {
        let max_bytes = 2 * charge(100);
        let (dispatcher, mut queues) = bounded(1, 3, max_bytes);
        let sender = tokio::spawn(async move {
            let blocked = metrics::histogram!("test_blocked");
            // Five small ones (two fit by bytes), then one larger than the whole bound.
            let mut batch: Vec<Message> = (0..5).map(|_| message(100)).collect();
            batch.push(message(10 * max_bytes));
            dispatcher.send(7, batch, &blocked).await.unwrap();
        });
        let mut slices = Vec::new();
        for _ in 0..4 {
            let queue = &mut queues[0];
            let (batch, room) = tokio::task::block_in_place(|| queue.recv_blocking()).unwrap();
            slices.push((batch.len(), room.bytes as usize));
            queue.release(room);
        }
        sender.await.unwrap();
        assert_eq!(
            slices,
            vec![
                (2, 2 * charge(100)),
                (2, 2 * charge(100)),
                (1, charge(100)),
                // Larger than the bound: it takes all of it, alone.
                (1, max_bytes),
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_queue_hands_every_unsent_message_back() {
        let (dispatcher, queues) = bounded(1, 2, 1 << 20);
        drop(queues);
        let blocked = metrics::histogram!("test_blocked");
        let batch = (0..5).map(|_| message(10)).collect();
        let Closed(unsent) = dispatcher.send(1, batch, &blocked).await.unwrap_err();
        assert_eq!(unsent.len(), 5);
        assert_eq!(dispatcher.bounds.fill().messages, 0);
    }
}
