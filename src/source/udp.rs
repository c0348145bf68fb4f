//! UDP syslog (RFC 5426): one datagram is one message.
//!
//! Several sockets share the port with SO_REUSEPORT, each read by a thread of its own, so
//! one core is not the limit. Each socket asks for a large SO_RCVBUF to ride out bursts
//! (default 8 MiB: a vendor's burst of a few hundred 2 KB events overflows Linux's
//! 208 KiB default), and the datagrams the kernel still drops because that buffer was full
//! are counted, since UDP senders never learn of them. The kernel reports the socket's
//! drop count on each datagram (SO_RXQ_OVFL), but only on datagrams that arrive after a
//! drop; drops at the end of a burst show only in SO_MEMINFO, which is therefore also read
//! after each batch and once a second.

use std::collections::HashMap;
use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::metrics::{refused, truncated, udp_dropped, ListenerMetrics};
use super::{now_ms, Message, ReceiveInfo};
use crate::config::Cidr;
use crate::queue::{Dispatcher, TRICKLE_WAIT};

/// Datagrams read per wake-up before the batch is queued.
const BATCH: usize = 64;

/// Datagrams taken per recvmmsg call. Each needs a buffer of its own as large as the
/// largest datagram accepted (at most 64 KiB): 1 MiB per socket at the default limit.
const PER_SYSCALL: usize = 16;

/// No UDP datagram is longer (65,535 less the 8-byte UDP header); a larger limit buys
/// nothing but memory.
const LARGEST_DATAGRAM: usize = 65_535;

/// SO_RCVBUF asked for when the listener sets none.
pub const DEFAULT_RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// How often the kernel's drop count is read when no datagram arrives.
const DROP_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a wait for datagrams lasts before the listener looks whether it must stop.
const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Fewer datagrams than this in one wake-up mean the listener outpaces its senders: it
/// then sleeps [`TRICKLE_WAIT`] before receiving again, so that it wakes (and wakes a parse
/// worker) once per several dozen datagrams, not per two or three.
const SMALL_RECEIVE: usize = 32;
/// The sleep is taken only when the socket's buffer holds far more than can arrive in it
/// (4 MiB is about 2,400 datagrams of 1 KiB with the kernel's bookkeeping, some 15 ms at
/// 165k datagrams/s): with a smaller buffer (net.core.rmem_max capped it) the listener
/// receives again at once, so the sleep never costs a datagram.
const TRICKLE_MIN_BUFFER: usize = 4 * 1024 * 1024;

pub struct DatagramListener {
    pub info: ReceiveInfo,
    pub metrics: ListenerMetrics,
    pub dispatcher: Dispatcher,
    pub allow: Vec<Cidr>,
    pub max_message_bytes: usize,
    /// One sender's datagrams go to one parse worker (in order); else each receive batch
    /// goes to the next worker in turn.
    pub sender_order: bool,
}

/// Binds `count` sockets to one address with SO_REUSEPORT. With port 0 the first socket
/// picks the port and the others join it.
pub fn bind(
    address: SocketAddr,
    count: usize,
    receive_buffer: Option<usize>,
) -> io::Result<Vec<UdpSocket>> {
    let mut address = address;
    let mut sockets = Vec::new();
    for _ in 0..count.max(1) {
        let domain = socket2::Domain::for_address(address);
        let socket =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        let bytes = receive_buffer.unwrap_or(DEFAULT_RECEIVE_BUFFER);
        socket.set_recv_buffer_size(bytes)?;
        // Linux caps the request at net.core.rmem_max, then doubles it for bookkeeping.
        let granted = socket.recv_buffer_size()?;
        if granted < bytes {
            tracing::warn!(
                requested = bytes,
                granted,
                "SO_RCVBUF capped by the kernel; raise net.core.rmem_max"
            );
        }
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, option and a c_int-sized value.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RXQ_OVFL,
                &on as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::warn!(error = %io::Error::last_os_error(), "SO_RXQ_OVFL unavailable; kernel drops will not be counted");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        if address.port() == 0 {
            address = socket
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("no local address"))?;
        }
        sockets.push(UdpSocket::from_std(socket.into())?);
    }
    Ok(sockets)
}

struct Datagram {
    len: usize,
    truncated: bool,
    peer: Option<SocketAddr>,
    /// The socket's cumulative drop count, when the kernel reported one.
    drops: Option<u32>,
}

/// Receives up to [`PER_SYSCALL`] datagrams with one recvmmsg(2) call into buffers it
/// owns; the headers' pointers are set again before each call, so moving the struct is safe.
struct Receiver {
    slot_bytes: usize,
    buffers: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; 8]>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `headers` point only into this struct's own heap
// buffers, are rewritten before every call, and are never shared: moving the whole receiver
// to another thread moves what they point to with it.
unsafe impl Send for Receiver {}

impl Receiver {
    fn new(slot_bytes: usize) -> Receiver {
        // SAFETY: all-zero is a valid value of these plain C structs.
        let (addr, iov, header) = unsafe {
            (
                zeroed::<libc::sockaddr_storage>(),
                zeroed::<libc::iovec>(),
                zeroed::<libc::mmsghdr>(),
            )
        };
        Receiver {
            slot_bytes,
            buffers: vec![0; slot_bytes * PER_SYSCALL],
            addrs: vec![addr; PER_SYSCALL],
            controls: vec![[0; 8]; PER_SYSCALL],
            iovs: vec![iov; PER_SYSCALL],
            headers: vec![header; PER_SYSCALL],
        }
    }

    /// Receives what is waiting (at most `limit`); `WouldBlock` when nothing is.
    fn receive(&mut self, fd: std::os::fd::RawFd, limit: usize) -> io::Result<usize> {
        let count = limit.clamp(1, PER_SYSCALL);
        for i in 0..count {
            self.iovs[i] = libc::iovec {
                iov_base: self.buffers[i * self.slot_bytes..].as_mut_ptr().cast(),
                iov_len: self.slot_bytes,
            };
            let header = &mut self.headers[i].msg_hdr;
            header.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut self.iovs[i];
            header.msg_iovlen = 1;
            header.msg_control = self.controls[i].as_mut_ptr().cast();
            header.msg_controllen = size_of::<[u64; 8]>() as _;
            header.msg_flags = 0;
            self.headers[i].msg_len = 0;
        }
        // SAFETY: each of the `count` headers points into this struct's own buffers, sized
        // as stated, which live and stay in place for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The length of datagram `i`'s payload, as `datagram(i)` returns it.
    fn payload_len(&self, i: usize) -> usize {
        (self.headers[i].msg_len as usize).min(self.slot_bytes)
    }

    /// The `i`-th datagram of the last call and its bytes.
    fn datagram(&self, i: usize) -> (Datagram, &[u8]) {
        let header = &self.headers[i];
        let msg = &header.msg_hdr;
        let len = self.payload_len(i);
        let mut drops = None;
        // SAFETY: the control messages are read only within msg_controllen as the kernel
        // set it, in this slot's control buffer; the address is read as the family says.
        let peer = unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL
                {
                    drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const u32));
                }
                cmsg = libc::CMSG_NXTHDR(msg, cmsg);
            }
            let addr = &self.addrs[i];
            match addr.ss_family as libc::c_int {
                libc::AF_INET => {
                    let a = &*(addr as *const libc::sockaddr_storage as *const libc::sockaddr_in);
                    Some(SocketAddr::V4(SocketAddrV4::new(
                        Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                        u16::from_be(a.sin_port),
                    )))
                }
                libc::AF_INET6 => {
                    let a = &*(addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6);
                    Some(SocketAddr::V6(SocketAddrV6::new(
                        Ipv6Addr::from(a.sin6_addr.s6_addr),
                        u16::from_be(a.sin6_port),
                        a.sin6_flowinfo,
                        a.sin6_scope_id,
                    )))
                }
                _ => None,
            }
        };
        let start = i * self.slot_bytes;
        (
            Datagram {
                len,
                truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
                peer,
                drops,
            },
            &self.buffers[start..start + len],
        )
    }
}

/// The socket's cumulative count of datagrams dropped for want of buffer (SO_MEMINFO).
fn kernel_drops(fd: std::os::fd::RawFd) -> Option<u32> {
    // SK_MEMINFO_VARS is 9 on current kernels; room for more costs nothing.
    let mut info = [0u32; 16];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0 && len as usize > libc::SK_MEMINFO_DROPS as usize * 4)
        .then(|| info[libc::SK_MEMINFO_DROPS as usize])
}

impl DatagramListener {
    /// The listener's receive info with `peer` set, made once per sender.
    fn sender_info(&self, peer: &str) -> Arc<ReceiveInfo> {
        let mut info = self.info.clone();
        info.peer = Some(Arc::from(peer));
        Arc::new(info)
    }

    fn allows(&self, ip: std::net::IpAddr) -> bool {
        crate::config::allowed(&self.allow, ip)
    }

    /// Reads one socket until shutdown, on a thread of the runtime's blocking pool. As a
    /// task, the listener's thread woke for every datagram that arrived (the socket stayed
    /// in the runtime's epoll set) even while the task had nothing to do: one sender at
    /// 165k datagrams/s cost 350,000 wake-ups a second. A thread of its own polls the socket
    /// only when it wants to read.
    pub async fn serve(self: Arc<Self>, socket: UdpSocket, shutdown: watch::Receiver<bool>) {
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::error!(listener = %self.info.listener, error = %e, "UDP socket failed");
                return;
            }
        };
        let runtime = tokio::runtime::Handle::current();
        let listener = self.info.listener.clone();
        let receiving =
            tokio::task::spawn_blocking(move || self.receive_until(&socket, &runtime, shutdown));
        if let Err(e) = receiving.await {
            tracing::error!(listener = %listener, error = %e, "UDP listener thread failed");
        }
    }

    fn receive_until(
        &self,
        socket: &std::net::UdpSocket,
        runtime: &tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) {
        let fd = socket.as_raw_fd();
        let may_wait = socket2::SockRef::from(socket)
            .recv_buffer_size()
            .is_ok_and(|granted| granted >= TRICKLE_MIN_BUFFER);
        let mut drops_read = std::time::Instant::now();
        let mut receiver = Receiver::new(self.max_message_bytes.min(LARGEST_DATAGRAM));
        let mut counted_drops: u32 = 0;
        let count_drops = |total: u32, counted: &mut u32| {
            if total > *counted {
                self.metrics
                    .udp_dropped(udp_dropped::KERNEL_BUFFER_FULL, u64::from(total - *counted));
                *counted = total;
            }
        };
        // Receive info (with the peer) and verdict per sender, so a busy sender costs no
        // allocation per datagram; bounded, cleared when full. None: refused.
        let mut peers: HashMap<SocketAddr, Option<Arc<ReceiveInfo>>> = HashMap::new();
        let mut batch_number: u64 = 0;
        loop {
            // A change (the stop) or a dropped sender both end the listener.
            if !matches!(shutdown.has_changed(), Ok(false)) {
                break;
            }
            match wait_readable(fd, SHUTDOWN_POLL) {
                Ok(true) => {}
                Ok(false) => {
                    if drops_read.elapsed() >= DROP_POLL {
                        if let Some(total) = kernel_drops(fd) {
                            count_drops(total, &mut counted_drops);
                        }
                        drops_read = std::time::Instant::now();
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(listener = %self.info.listener, error = %e, "UDP socket failed");
                    break;
                }
            }
            let mut batches: HashMap<u64, Vec<Message>> = HashMap::new();
            let received_ms = now_ms();
            batch_number = batch_number.wrapping_add(1);
            let mut taken = 0;
            // Counted once per batch: a shared counter's cache line bouncing between the
            // cores for each datagram was a visible part of the listener thread's time.
            let (mut accepted, mut accepted_bytes) = (0u64, 0u64);
            while taken < BATCH {
                let received = match receiver.receive(fd, BATCH - taken) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(listener = %self.info.listener, error = %e, "UDP receive failed");
                        break;
                    }
                };
                taken += received;
                // One allocation for the datagrams of this call, each message a view of it:
                // an allocation per datagram, freed on the parse thread, cost more than the
                // copy.
                let mut copies =
                    BytesMut::with_capacity((0..received).map(|i| receiver.payload_len(i)).sum());
                for i in 0..received {
                    let (datagram, payload) = receiver.datagram(i);
                    if let Some(total) = datagram.drops {
                        count_drops(total, &mut counted_drops);
                    }
                    if peers.len() > 4096 {
                        peers.clear();
                    }
                    let peer = datagram.peer;
                    let info = match peer {
                        Some(addr) => peers
                            .entry(addr)
                            .or_insert_with(|| {
                                self.allows(addr.ip())
                                    .then(|| self.sender_info(&addr.to_string()))
                            })
                            .clone(),
                        None => Some(self.sender_info("unknown")),
                    };
                    let Some(info) = info else {
                        self.metrics.datagram_refused(refused::ALLOWLIST);
                        continue;
                    };
                    accepted_bytes += datagram.len as u64;
                    accepted += 1;
                    self.metrics.message_size.record(datagram.len as f64);
                    let mut bytes = payload;
                    // Some senders end datagrams with a newline (or NUL); it is framing, not
                    // message.
                    while let Some((&last, init)) = bytes.split_last() {
                        if matches!(last, b'\n' | b'\r' | 0) {
                            bytes = init;
                        } else {
                            break;
                        }
                    }
                    copies.extend_from_slice(bytes);
                    let mut message = Message::new(copies.split().freeze(), info, received_ms);
                    if datagram.truncated {
                        message.truncated = true;
                        self.metrics.truncated(truncated::TOO_LONG);
                    }
                    let key = if self.sender_order {
                        peer.map(shard_key).unwrap_or(0)
                    } else {
                        batch_number
                    };
                    batches.entry(key).or_default().push(message);
                }
                if received < PER_SYSCALL.min(BATCH - taken + received) {
                    // Fewer than asked for: the socket is drained.
                    break;
                }
            }
            if let Some(total) = kernel_drops(fd) {
                count_drops(total, &mut counted_drops);
            }
            drops_read = std::time::Instant::now();
            self.metrics.messages.increment(accepted);
            self.metrics.bytes.increment(accepted_bytes);
            self.metrics.batches.increment(batches.len() as u64);
            for (key, batch) in batches {
                if let Err(closed) = runtime.block_on(self.dispatcher.send(
                    key,
                    batch,
                    &self.metrics.queue_blocked,
                )) {
                    self.metrics
                        .udp_dropped(udp_dropped::QUEUE_CLOSED, closed.0.len() as u64);
                    return;
                }
            }
            if may_wait && taken < SMALL_RECEIVE {
                std::thread::sleep(TRICKLE_WAIT);
            }
        }
    }
}

/// Waits until `fd` is readable (true) or `timeout` passed (false).
fn wait_readable(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and its count.
    let rc = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
    match rc {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Keeps one sender on one parse worker (its datagrams stay in order).
fn shard_key(addr: SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    addr.hash(&mut h);
    h.finish()
}
