//! The memory the front door holds for its relayed sessions, and the policy that bounds it.
//!
//! Per session and direction there is a read and a write buffer of [`IO_BUFFER`] bytes, and a
//! [`Frame`] that holds the message being read: it grows as the message's bytes arrive (never
//! to the length a header only announces; [`wire::read_frame`]) and, after a message larger
//! than [`KEPT`], is shrunk back to [`KEPT`], so a large message costs its bytes only while it
//! is relayed.
//!
//! A [`BufferGauge`] counts the bytes all of them hold, for tests and operators. It is updated
//! when a buffer is made, grows, shrinks or goes, never per message of a size seen before, so
//! the relay's hot path costs one comparison.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncRead;

use super::wire;

/// The size of each read and write buffer of a relayed session (tokio's default).
pub const IO_BUFFER: usize = 8 * 1024;
/// The most a [`Frame`] keeps after a message: messages up to this size are read without an
/// allocation.
pub const KEPT: usize = 64 * 1024;

/// The bytes held in the front door's session buffers, shared by every session.
#[derive(Clone, Debug, Default)]
pub struct BufferGauge(Arc<AtomicUsize>);

impl BufferGauge {
    /// The bytes held now.
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts `held` bytes instead of `counted`.
    fn change(&self, counted: usize, held: usize) {
        if held > counted {
            self.0.fetch_add(held - counted, Ordering::Relaxed);
        } else if held < counted {
            self.0.fetch_sub(counted - held, Ordering::Relaxed);
        }
    }

    /// Counts `bytes` held until the returned guard is dropped: a session's fixed buffers.
    pub fn hold(&self, bytes: usize) -> Held {
        self.change(0, bytes);
        Held {
            gauge: self.clone(),
            bytes,
        }
    }
}

/// Fixed buffers counted in a [`BufferGauge`] until dropped.
#[derive(Debug)]
pub struct Held {
    gauge: BufferGauge,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.change(self.bytes, 0);
    }
}

/// The buffer one direction of a session reads its messages into, counted in a
/// [`BufferGauge`].
#[derive(Debug)]
pub struct Frame {
    bytes: Vec<u8>,
    gauge: BufferGauge,
    counted: usize,
}

impl Frame {
    /// An empty frame counted in `gauge`.
    pub fn new(gauge: BufferGauge) -> Self {
        Self {
            bytes: Vec::new(),
            gauge,
            counted: 0,
        }
    }

    /// Reads the next message as [`wire::read_frame`] does (`false` at a clean end of stream),
    /// counting what the frame holds each time it grows, while the message arrives.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        max_body: usize,
    ) -> io::Result<bool> {
        let (gauge, counted) = (&self.gauge, &mut self.counted);
        wire::read_frame_counted(reader, max_body, &mut self.bytes, |held| {
            gauge.change(*counted, held);
            *counted = held;
        })
        .await
    }

    /// The message read last: tag, length, body.
    pub fn message(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives back what a message larger than [`KEPT`] made the frame hold; call it once the
    /// message is dealt with.
    pub fn release(&mut self) {
        if self.bytes.capacity() > KEPT {
            self.bytes.clear();
            self.bytes.shrink_to(KEPT);
            self.recount();
        }
    }

    fn recount(&mut self) {
        let held = self.bytes.capacity();
        if held != self.counted {
            self.gauge.change(self.counted, held);
            self.counted = held;
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        self.gauge.change(self.counted, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_counts_what_it_holds_and_gives_back_a_large_message() {
        let gauge = BufferGauge::default();
        let held = gauge.hold(2 * IO_BUFFER);
        let mut frame = Frame::new(gauge.clone());
        let mut bytes = Vec::new();
        wire::put_message(&mut bytes, b'Q', &vec![b'x'; 3 * KEPT]);
        wire::put_message(&mut bytes, b'Q', b"SELECT 1\0");
        let mut reader = &bytes[..];
        assert!(frame.read(&mut reader, 4 * KEPT).await.expect("a message"));
        assert_eq!(frame.message().len(), 5 + 3 * KEPT);
        let large = gauge.bytes();
        assert!(large >= 2 * IO_BUFFER + 5 + 3 * KEPT, "{large}");
        frame.release();
        assert_eq!(gauge.bytes(), 2 * IO_BUFFER + KEPT);
        assert!(frame.read(&mut reader, 4 * KEPT).await.expect("a message"));
        assert_eq!(frame.message(), b"Q\0\0\0\x0dSELECT 1\0");
        frame.release();
        assert_eq!(
            gauge.bytes(),
            2 * IO_BUFFER + KEPT,
            "kept, not counted again"
        );
        drop(frame);
        drop(held);
        assert_eq!(gauge.bytes(), 0);
    }
}
