//! RFC 6587 framing for syslog over a byte stream (TCP and TLS), without I/O: the caller
//! pushes bytes as they arrive and takes complete frames out.
//!
//! The mode is detected once per connection from its first frame, as rsyslog and syslog-ng
//! do: a frame that starts with digits and a space is octet counting (`123 <34>1 …`);
//! anything else is non-transparent framing, ended by LF, CRLF or NUL. Detection is per
//! connection rather than per frame so that a newline-framed message that happens to start
//! with a number (`5 failed logins`) is never taken for a length.
//!
//! Memory is bounded whatever the input: a frame longer than `max_frame` is cut at
//! `max_frame` bytes and flagged truncated, and the rest of it is discarded until the next
//! frame starts. The buffer never holds more than `max_frame` plus one pushed chunk.
//!
//! Frames are not copied out: each is a [`Bytes`] view of the buffer the bytes were read
//! into, which stays allocated until the last of its frames is dropped. Copying each frame
//! into its own allocation was most of the listener thread's time (a malloc whose free
//! list the parse thread had filled from another core, then a copy into memory that core
//! owned last).

use bytes::{Buf, Bytes, BytesMut};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No frame seen yet.
    Undetected,
    OctetCounting,
    NonTransparent,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Undetected => "undetected",
            Mode::OctetCounting => "octet_counting",
            Mode::NonTransparent => "non_transparent",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Bytes,
    /// Cut at the size limit, or incomplete when the connection ended.
    pub truncated: bool,
}

/// Longest octet count accepted: nine digits (< 1 GB), so a run of digits in garbage input
/// cannot announce an absurd length.
const MAX_COUNT_DIGITS: usize = 9;

#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    mode: Mode,
    max_frame: usize,
    /// Octet counting: bytes of an over-long frame still to discard.
    skip: usize,
    /// Non-transparent: discarding the rest of an over-long frame up to its delimiter.
    discarding_line: bool,
    /// Bytes thrown away after truncation (for the metric).
    discarded: u64,
    /// Frames in octet-counting mode that did not start with a count and were read up to
    /// the next delimiter instead.
    framing_errors: u64,
}

impl Framer {
    pub fn new(max_frame: usize) -> Framer {
        Framer {
            buf: BytesMut::new(),
            start: 0,
            mode: Mode::Undetected,
            max_frame: max_frame.max(1),
            skip: 0,
            discarding_line: false,
            discarded: 0,
            framing_errors: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Bytes discarded so far and reset the count.
    pub fn take_discarded(&mut self) -> u64 {
        std::mem::take(&mut self.discarded)
    }

    pub fn take_framing_errors(&mut self) -> u64 {
        std::mem::take(&mut self.framing_errors)
    }

    /// True when part of a frame is buffered (the connection is mid-message).
    pub fn has_partial(&self) -> bool {
        self.buf[self.start..].iter().any(|&b| !is_separator(b))
    }

    /// Frees the buffer when everything in it has been consumed (a quiet connection keeps
    /// no memory of its last burst). Separator bytes left over carry nothing.
    pub fn release_buffer(&mut self) {
        if !self.has_partial() && self.skip == 0 && !self.discarding_line {
            self.buf = BytesMut::new();
            self.start = 0;
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        let mut data = data;
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            self.discarded += n as u64;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// The buffer, with room for at least `least` more bytes, for a read to append to
    /// directly: the same as reading elsewhere and calling `push`, without copying the
    /// bytes a second time. Bytes an over-long frame still has to discard are dropped by
    /// `next_frame`, so the buffer holds at most one frame plus one read, as with `push`.
    ///
    /// A new allocation, when one is needed, has room for `room`: the reads after this
    /// one fill it on until less than `least` is left. Frames keep the allocation they were
    /// read into alive, so its unfilled end is memory held for nothing: asking for `room`
    /// each time would start a new one after every read shorter than `room`.
    pub fn read_buffer(&mut self, least: usize, room: usize) -> &mut BytesMut {
        self.compact();
        if self.buf.capacity() - self.buf.len() < least {
            self.buf.reserve(room.max(least));
        }
        &mut self.buf
    }

    /// Drops consumed bytes from the front: a pointer moves, nothing is copied.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.advance(self.start);
            self.start = 0;
        }
    }

    /// Bytes `body..end` of the buffer as a frame, and everything before `next` consumed.
    fn cut(&mut self, body: usize, end: usize, next: usize) -> Bytes {
        self.buf.advance(body);
        let frame = self.buf.split_to(end - body).freeze();
        self.buf.advance(next - end);
        self.start = 0;
        frame
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.skip > 0 {
            let n = self.skip.min(self.buf.len() - self.start);
            self.skip -= n;
            self.discarded += n as u64;
            self.start += n;
            if self.skip > 0 {
                return None;
            }
        }
        if self.discarding_line {
            let rest = &self.buf[self.start..];
            match memchr::memchr2(b'\n', 0, rest) {
                Some(at) => {
                    self.discarded += at as u64;
                    self.start += at + 1;
                    self.discarding_line = false;
                }
                None => {
                    self.discarded += rest.len() as u64;
                    self.start = self.buf.len();
                    return None;
                }
            }
        }
        // Separators between frames (stray newlines after an octet-counted frame,
        // empty lines) carry nothing.
        while self.start < self.buf.len() && is_separator(self.buf[self.start]) {
            self.start += 1;
        }
        if self.start == self.buf.len() {
            return None;
        }
        if self.mode == Mode::Undetected {
            match octet_count(&self.buf[self.start..]) {
                Count::Incomplete => return None,
                Count::Length { .. } => self.mode = Mode::OctetCounting,
                Count::Absent => self.mode = Mode::NonTransparent,
            }
        }
        if self.mode == Mode::OctetCounting {
            match octet_count(&self.buf[self.start..]) {
                Count::Incomplete => return None,
                Count::Length { len, header } => {
                    return self.counted_frame(len, header);
                }
                Count::Absent => {
                    // A sender that lost its framing: read this frame to its delimiter.
                    let frame = self.line_frame();
                    self.framing_errors += u64::from(frame.is_some());
                    return frame;
                }
            }
        }
        self.line_frame()
    }

    fn counted_frame(&mut self, len: usize, header: usize) -> Option<Frame> {
        let body = self.start + header;
        let available = self.buf.len() - body;
        if len <= self.max_frame {
            if available < len {
                return None;
            }
            // Senders such as rsyslog's RFC 5424 template end the counted message with a
            // newline; it is framing residue, not message, as in the other modes.
            let mut end = body + len;
            while end > body && is_separator(self.buf[end - 1]) {
                end -= 1;
            }
            let bytes = self.cut(body, end, body + len);
            if bytes.is_empty() {
                return self.next_frame();
            }
            return Some(Frame {
                bytes,
                truncated: false,
            });
        }
        if available < self.max_frame {
            return None;
        }
        let end = body + self.max_frame;
        let bytes = self.cut(body, end, end);
        self.skip = len - self.max_frame;
        Some(Frame {
            bytes,
            truncated: true,
        })
    }

    fn line_frame(&mut self) -> Option<Frame> {
        let rest = &self.buf[self.start..];
        let limit = rest.len().min(self.max_frame + 1);
        match memchr::memchr2(b'\n', 0, &rest[..limit]) {
            Some(at) if at <= self.max_frame => {
                let mut end = at;
                if end > 0 && rest[end - 1] == b'\r' {
                    end -= 1;
                }
                let start = self.start;
                let bytes = self.cut(start, start + end, start + at + 1);
                Some(Frame {
                    bytes,
                    truncated: false,
                })
            }
            _ if rest.len() > self.max_frame => {
                let start = self.start;
                let end = start + self.max_frame;
                let bytes = self.cut(start, end, end);
                self.discarding_line = true;
                Some(Frame {
                    bytes,
                    truncated: true,
                })
            }
            _ => None,
        }
    }

    /// At connection close: the partial frame still buffered, flagged truncated so that
    /// nothing the sender managed to deliver is lost.
    pub fn finish(&mut self) -> Option<Frame> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        if self.discarding_line || self.skip > 0 {
            self.start = self.buf.len();
            return None;
        }
        let mut rest = &self.buf[self.start..];
        self.start = self.buf.len();
        if self.mode == Mode::OctetCounting {
            if let Count::Length { header, .. } = octet_count(rest) {
                rest = &rest[header..];
            }
        }
        while let Some((&last, init)) = rest.split_last() {
            if is_separator(last) {
                rest = init;
            } else {
                break;
            }
        }
        if rest.is_empty() {
            return None;
        }
        Some(Frame {
            bytes: Bytes::copy_from_slice(&rest[..rest.len().min(self.max_frame)]),
            truncated: true,
        })
    }
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | 0)
}

enum Count {
    Incomplete,
    Length { len: usize, header: usize },
    Absent,
}

/// `DIGITS SP` at the start of `data`: the RFC 6587 MSG-LEN.
fn octet_count(data: &[u8]) -> Count {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_COUNT_DIGITS || data[0] == b'0' {
        return Count::Absent;
    }
    match data.get(digits) {
        None => Count::Incomplete,
        Some(b' ') => {
            let len = data[..digits]
                .iter()
                .fold(0usize, |n, d| n * 10 + (d - b'0') as usize);
            Count::Length {
                len,
                header: digits + 1,
            }
        }
        Some(_) => Count::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer) -> Vec<(String, bool)> {
        std::iter::from_fn(|| framer.next_frame())
            .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.truncated))
            .collect()
    }

    fn ok(s: &str) -> (String, bool) {
        (s.to_string(), false)
    }

    #[test]
    fn newline_crlf_and_nul_delimiters() {
        let mut f = Framer::new(1024);
        f.push(b"<13>one\n<13>two\r\n<13>three\0<13>fo");
        assert_eq!(
            frames(&mut f),
            vec![ok("<13>one"), ok("<13>two"), ok("<13>three")]
        );
        assert_eq!(f.mode(), Mode::NonTransparent);
        assert!(f.has_partial());
        f.push(b"ur\n\n\n");
        assert_eq!(frames(&mut f), vec![ok("<13>four")]);
        assert!(!f.has_partial());
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn a_quiet_connection_gives_its_buffer_back_but_never_a_partial_frame() {
        let mut f = Framer::new(1 << 16);
        f.push(&[b'x'; 5000]);
        f.push(b"\n<13>rest");
        assert_eq!(frames(&mut f).len(), 1);
        f.release_buffer();
        assert!(f.buf.capacity() > 0, "a partial frame stays");
        f.push(b"\n\n");
        assert_eq!(frames(&mut f), vec![ok("<13>rest")]);
        f.release_buffer();
        assert_eq!(f.buf.capacity(), 0);
        f.push(b"<13>next\n");
        assert_eq!(frames(&mut f), vec![ok("<13>next")]);
        // Octet counting: a frame's announced length is state outside the buffer.
        let mut f = Framer::new(1 << 16);
        f.push(b"11 <13>on");
        assert_eq!(frames(&mut f), vec![]);
        f.release_buffer();
        f.push(b"e two");
        assert_eq!(frames(&mut f), vec![ok("<13>one two")]);
    }

    #[test]
    fn frames_are_views_of_the_buffer_reads_fill_on() {
        let mut f = Framer::new(1024);
        f.read_buffer(64, 256)
            .extend_from_slice(b"<13>one\n<13>two\n<13>th");
        let one = f.next_frame().unwrap().bytes;
        let two = f.next_frame().unwrap().bytes;
        assert_eq!(f.next_frame(), None);
        // Not copied: the second frame starts one delimiter after the first, in one buffer.
        assert_eq!(two.as_ptr(), one.as_ptr().wrapping_add(one.len() + 1));
        // The next read appends to the same allocation while 64 bytes or more are left.
        f.read_buffer(64, 256).extend_from_slice(b"ree\n");
        let three = f.next_frame().unwrap().bytes;
        assert_eq!(three.as_ptr(), two.as_ptr().wrapping_add(two.len() + 1));
        // Less than 64 left: a new allocation, into which the partial frame moves; the
        // frames already out keep their bytes.
        f.read_buffer(64, 256).extend_from_slice(&[b'x'; 200]);
        f.read_buffer(64, 256).extend_from_slice(b"y\n");
        let long = f.next_frame().unwrap().bytes;
        assert_eq!(long.len(), 201);
        assert_ne!(long.as_ptr(), three.as_ptr().wrapping_add(three.len() + 1));
        assert_eq!(
            [&one[..], &two[..], &three[..]],
            [&b"<13>one"[..], b"<13>two", b"<13>three"]
        );
    }

    #[test]
    fn octet_counting_split_anywhere() {
        let stream = b"7 <13>one8 <13>two\n\n9 <13>three";
        for split in 0..stream.len() {
            let mut f = Framer::new(1024);
            f.push(&stream[..split]);
            let mut got = frames(&mut f);
            f.push(&stream[split..]);
            got.extend(frames(&mut f));
            assert_eq!(f.mode(), Mode::OctetCounting);
            // "8 <13>two\n" counts the newline, and it is dropped as in line mode.
            assert_eq!(
                got,
                vec![ok("<13>one"), ok("<13>two"), ok("<13>three")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn reading_into_the_buffer_frames_as_push_does() {
        // Every framing mode, an over-long frame in each, split at every point: appending
        // through read_buffer gives the frames, flags and counts that push gives.
        let streams: [&[u8]; 3] = [
            b"<13>one\n<13>this one is too long\r\n<13>two\0\n<13>tail",
            b"7 <13>one30 <13>this counted one is too long8 <13>two\n\n9 <13>thr",
            b"3 abc<13>lost its count\n4 defg",
        ];
        for stream in streams {
            for split in 0..stream.len() {
                let run = |direct: bool| {
                    let mut f = Framer::new(12);
                    let mut got = Vec::new();
                    for piece in [&stream[..split], &stream[split..]] {
                        if direct {
                            f.read_buffer(piece.len(), piece.len())
                                .extend_from_slice(piece);
                        } else {
                            f.push(piece);
                        }
                        got.extend(frames(&mut f));
                    }
                    got.extend(f.finish().map(|frame| {
                        (
                            String::from_utf8_lossy(&frame.bytes).into_owned(),
                            frame.truncated,
                        )
                    }));
                    (got, f.take_discarded(), f.take_framing_errors())
                };
                assert_eq!(run(true), run(false), "split at {split} of {stream:?}");
            }
        }
    }

    #[test]
    fn a_line_starting_with_a_number_stays_a_line() {
        let mut f = Framer::new(1024);
        f.push(b"<13>first\n5 failed logins\n");
        assert_eq!(frames(&mut f), vec![ok("<13>first"), ok("5 failed logins")]);
        let mut f = Framer::new(1024);
        f.push(b"2024-01-25T10:00:00Z host app: hi\n");
        assert_eq!(
            f.next_frame().unwrap().bytes,
            &b"2024-01-25T10:00:00Z host app: hi"[..]
        );
    }

    #[test]
    fn over_long_line_is_cut_and_resynchronises() {
        let mut f = Framer::new(8);
        f.push(b"<13>abcdefghij");
        assert_eq!(frames(&mut f), vec![("<13>abcd".to_string(), true)]);
        f.push(b"klmn\n<13>ok\n");
        assert_eq!(frames(&mut f), vec![ok("<13>ok")]);
        assert_eq!(f.take_discarded(), 10);
    }

    #[test]
    fn over_long_counted_frame_is_cut_and_skipped() {
        let mut f = Framer::new(4);
        f.push(b"10 abcdef");
        assert_eq!(frames(&mut f), vec![("abcd".to_string(), true)]);
        f.push(b"ghij3 xyz");
        assert_eq!(frames(&mut f), vec![ok("xyz")]);
        assert_eq!(f.take_discarded(), 6);
    }

    #[test]
    fn exactly_the_limit_is_not_truncated() {
        let mut f = Framer::new(4);
        f.push(b"abcd\nwxyz\n");
        assert_eq!(frames(&mut f), vec![ok("abcd"), ok("wxyz")]);
        let mut f = Framer::new(4);
        f.push(b"4 wxyz");
        assert_eq!(frames(&mut f), vec![ok("wxyz")]);
    }

    #[test]
    fn partial_frame_at_close_is_kept_as_truncated() {
        let mut f = Framer::new(1024);
        f.push(b"<13>complete\n<13>half a mess");
        assert_eq!(frames(&mut f), vec![ok("<13>complete")]);
        assert_eq!(
            f.finish(),
            Some(Frame {
                bytes: Bytes::from_static(b"<13>half a mess"),
                truncated: true
            })
        );
        let mut f = Framer::new(1024);
        f.push(b"50 <13>only part");
        assert_eq!(frames(&mut f), vec![]);
        assert_eq!(f.finish().unwrap().bytes, &b"<13>only part"[..]);
    }

    #[test]
    fn lost_count_falls_back_to_the_delimiter() {
        let mut f = Framer::new(1024);
        f.push(b"3 abc<13>no count");
        assert_eq!(frames(&mut f), vec![ok("abc")]);
        f.push(b" here\n4 defg");
        assert_eq!(frames(&mut f), vec![ok("<13>no count here"), ok("defg")]);
        assert_eq!(f.take_framing_errors(), 1);
    }

    #[test]
    fn buffer_stays_bounded_on_endless_input() {
        let mut f = Framer::new(100);
        let chunk = [b'x'; 64];
        let mut cut = 0;
        for _ in 0..10_000 {
            f.push(&chunk);
            while let Some(frame) = f.next_frame() {
                assert!(frame.truncated);
                cut += 1;
            }
            assert!(
                f.buf.len() <= 100 + 2 * 64,
                "buffer grew to {}",
                f.buf.len()
            );
        }
        assert_eq!(cut, 1);
        let mut f = Framer::new(100);
        f.push(b"999999999 ");
        for _ in 0..10_000 {
            f.push(&chunk);
            while f.next_frame().is_some() {}
            assert!(f.buf.len() <= 100 + 2 * 64 + 10);
        }
    }
}
