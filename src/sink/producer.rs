//! A librdkafka producer whose delivery reports are served by a thread that sleeps until
//! librdkafka has one.
//!
//! rdkafka's `ThreadedProducer` polls in a loop of 100 ms waits, and each wait ends with a
//! busy spin: its deadline is rounded down to whole milliseconds, so the last millisecond
//! is spent asking librdkafka again with a zero timeout. That kept about 1 % of a core
//! busy with no events at all (docs/performance.md, session 24). Here librdkafka signals an
//! eventfd when its event queue goes from empty to not empty
//! (`rd_kafka_queue_io_event_enable`), the thread waits on that descriptor, and then serves
//! the queue until it is empty.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// What librdkafka writes to the eventfd: eventfd takes eight bytes, a non-zero count.
const WAKE: u64 = 1;

/// The wait between checks when no wake-up comes: only a safety net (a lost wake-up would
/// delay delivery reports by at most this), so long enough to cost nothing.
const IDLE_WAIT_MS: i32 = 1000;

/// librdkafka's main event queue, where the producer's delivery reports and errors go.
struct MainQueue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: librdkafka's queues are thread-safe; the handle is only a reference to one.
unsafe impl Send for MainQueue {}
unsafe impl Sync for MainQueue {}

impl MainQueue {
    fn len(&self) -> usize {
        // SAFETY: the handle is valid until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.0) }
    }

    /// Removes the eventfd registration: librdkafka must not write to a descriptor once it
    /// is closed (its number could by then belong to another file).
    fn stop_wake_ups(&self) {
        // SAFETY: the handle is valid until `drop`; fd -1 removes the registration.
        unsafe { rdsys::rd_kafka_queue_io_event_enable(self.0, -1, std::ptr::null(), 0) };
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_main` and is destroyed once; the
        // producer keeps its own reference to the queue.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0) }
    }
}

// Fields drop in this order after `drop`: the queue handle before the producer (whose
// client it references), the descriptor last.
pub struct PolledProducer<C: ProducerContext + 'static> {
    queue: Arc<MainQueue>,
    producer: Arc<BaseProducer<C>>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    pub fn new(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        Self::with_idle_wait(config, context, IDLE_WAIT_MS)
    }

    /// With `idle_wait_ms` between checks when no wake-up comes (-1: none, for tests that
    /// must see the wake-ups work alone).
    fn with_idle_wait(config: &ClientConfig, context: C, idle_wait_ms: i32) -> KafkaResult<Self> {
        let producer: BaseProducer<C> = config.create_with_context(context)?;
        let producer = Arc::new(producer);
        // SAFETY: plain system call; the descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(rdkafka::error::KafkaError::ClientCreation(format!(
                "cannot create an eventfd for delivery reports: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: the client is alive; the new handle is destroyed by `MainQueue::drop`. The
        // payload is copied by librdkafka. The descriptor outlives the registration: `drop`
        // removes it before the descriptor is closed.
        let queue = unsafe {
            let queue = MainQueue(rdsys::rd_kafka_queue_get_main(
                producer.client().native_ptr(),
            ));
            rdsys::rd_kafka_queue_io_event_enable(
                queue.0,
                wake.as_raw_fd(),
                (&WAKE as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
            Arc::new(queue)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, queue, wake, stop) =
                (producer.clone(), queue.clone(), wake.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sluice-kafka-dr".into())
                .spawn(move || serve(&producer, &queue, &wake, &stop, idle_wait_ms))
        };
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => {
                // The descriptor closes on return: librdkafka must not keep it.
                queue.stop_wake_ups();
                return Err(rdkafka::error::KafkaError::ClientCreation(format!(
                    "cannot start the delivery report thread: {e}"
                )));
            }
        };
        Ok(PolledProducer {
            queue,
            producer,
            wake,
            stop,
            thread: Some(thread),
        })
    }
}

/// Sending, flushing and counting are the `BaseProducer`'s own.
impl<C: ProducerContext + 'static> std::ops::Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

/// The delivery report thread: serves the queue until it is empty, then sleeps until
/// librdkafka (or `drop`) writes to the eventfd.
fn serve<C: ProducerContext>(
    producer: &BaseProducer<C>,
    queue: &MainQueue,
    wake: &OwnedFd,
    stop: &AtomicBool,
    idle_wait_ms: i32,
) {
    loop {
        // A zero timeout serves at most one event (a delivery report event carries a batch
        // of messages). librdkafka writes again only once the queue was empty and served.
        while queue.len() > 0 {
            producer.poll(Duration::ZERO);
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        let mut pollfd = libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the descriptor is open while this thread runs.
        unsafe { libc::poll(&mut pollfd, 1, idle_wait_ms) };
        let mut count = 0u64;
        // SAFETY: reads at most eight bytes into `count`; the descriptor is non-blocking,
        // and nothing to read (a timeout) is not an error worth reporting.
        unsafe {
            libc::read(
                wake.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // SAFETY: writes eight bytes to the open eventfd, waking the thread.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&WAKE as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Before the descriptor closes. The producer, dropped after this, serves its last
        // reports itself (rdkafka purges and flushes).
        self.queue.stop_wake_ups();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DeliveryResult};
    use rdkafka::ClientContext;

    use super::*;
    use std::sync::Mutex;

    struct Reports(Mutex<mpsc::Sender<Result<(), String>>>);

    impl ClientContext for Reports {}

    impl ProducerContext for Reports {
        type DeliveryOpaque = ();

        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
            let _ = self.0.lock().unwrap().send(outcome);
        }
    }

    /// Nobody calls `poll`, and the thread has no idle wait to fall back on: librdkafka's
    /// wake-ups alone get each delivery report served, also those that come after the
    /// queue was empty for a while. Dropping the producer wakes and ends the thread.
    #[test]
    fn delivery_reports_are_served_without_polling() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers());
        let (tx, rx) = mpsc::channel();
        let producer =
            PolledProducer::with_idle_wait(&config, Reports(Mutex::new(tx)), -1).unwrap();
        for round in 0..3 {
            for i in 0..10 {
                let payload = format!("{round}-{i}");
                producer
                    .send(BaseRecord::<(), _, ()>::to("t").payload(&payload))
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
            for _ in 0..10 {
                let report = rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a delivery report, served by the thread");
                assert_eq!(report, Ok(()));
            }
            // Idle, so that the next round's reports find the queue empty.
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(producer.in_flight_count(), 0);
        drop(producer);
    }
}
