//! Audio that waits for a connection: while (re)connecting, the caller's
//! chunks are read into a bounded buffer and replayed, in order, once the
//! new connection's `setupComplete` has arrived.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::LiveEvent;

pub(super) enum Waited<T> {
    Done(T),
    InputClosed,
    CallerGone,
}

/// Await `work` while buffering the caller's audio, so speech during a
/// (re)connect is not lost. Stops reading `audio_in` when the buffer is full
/// (backpressure); gives up early if the caller ends.
pub(super) async fn buffer_while<F: std::future::Future>(
    work: F,
    pending: &mut AudioBuffer,
    audio_in: &mut mpsc::Receiver<Vec<u8>>,
    events_out: &mpsc::Sender<LiveEvent>,
) -> Waited<F::Output> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            output = &mut work => return Waited::Done(output),
            () = events_out.closed() => return Waited::CallerGone,
            chunk = audio_in.recv(), if !pending.is_full() => match chunk {
                Some(chunk) => pending.push_back(chunk),
                None => return Waited::InputClosed,
            },
        }
    }
}

/// Audio waiting for a connection, bounded in bytes.
pub(super) struct AudioBuffer {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    capacity: usize,
}

impl AudioBuffer {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.bytes >= self.capacity
    }

    pub(super) fn push_back(&mut self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            self.bytes += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    pub(super) fn push_front(&mut self, chunk: Vec<u8>) {
        self.bytes += chunk.len();
        self.chunks.push_front(chunk);
    }

    pub(super) fn pop_front(&mut self) -> Option<Vec<u8>> {
        let chunk = self.chunks.pop_front()?;
        self.bytes -= chunk.len();
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_audio_buffer_counts_bytes_against_its_bound() {
        let mut buffer = AudioBuffer::new(4);
        buffer.push_back(vec![1, 2]);
        buffer.push_back(Vec::new());
        assert!(!buffer.is_full());
        buffer.push_back(vec![3, 4]);
        assert!(buffer.is_full());
        assert_eq!(buffer.pop_front(), Some(vec![1, 2]));
        buffer.push_front(vec![0]);
        assert_eq!(buffer.pop_front(), Some(vec![0]));
        assert_eq!(buffer.pop_front(), Some(vec![3, 4]));
        assert_eq!(buffer.pop_front(), None);
        assert!(!buffer.is_full());
    }
}
