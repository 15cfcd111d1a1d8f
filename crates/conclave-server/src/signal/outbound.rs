//! A socket's outbound side: the bounded queue the hub fills and the socket task drains, and
//! the overflow signal that ends a socket whose reader is too slow.
//!
//! Owns: the rule that a full queue never leaves a socket half-attached. When a frame (or the
//! goodbye) does not fit, the queue is marked overflowed; the socket task sees that before any
//! queued frame and closes at once. The hub, in the same step, detaches the connection and
//! starts its reconnect grace, so a slow reader frees its seat like any dropped client.
//! Must not touch: framing (each protocol's socket shell) or session rules (room).

use conclave_core::signal::{DisconnectReason, ServerMessage};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, mpsc};

/// What a socket task receives. Messages are protocol-neutral: each socket shell writes them
/// in its own wire protocol (a session may mix protocols).
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Message(Arc<ServerMessage>),
    /// Send `sessionDisconnected` with this reason, then close.
    Close(DisconnectReason),
    /// The reader fell too far behind: close now, without a goodbye that could not be queued.
    Overflowed,
}

struct Overflow {
    flag: AtomicBool,
    notify: Notify,
}

/// The hub's end: cheap to clone, never blocks.
#[derive(Clone)]
pub struct OutboundTx {
    queue: mpsc::Sender<Outbound>,
    overflow: Arc<Overflow>,
}

impl std::fmt::Debug for OutboundTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundTx").field("overflowed", &self.is_overflowed()).finish()
    }
}

/// The socket task's end.
pub struct OutboundRx {
    queue: mpsc::Receiver<Outbound>,
    overflow: Arc<Overflow>,
}

/// A new queue holding at most `capacity` outbound messages.
pub fn channel(capacity: usize) -> (OutboundTx, OutboundRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Overflow { flag: AtomicBool::new(false), notify: Notify::new() });
    (OutboundTx { queue: tx, overflow: overflow.clone() }, OutboundRx { queue: rx, overflow })
}

/// The frame could not be queued: the socket is being closed for overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflowed;

impl OutboundTx {
    /// Queues a message. A full queue marks the socket overflowed (it closes) and says so; a
    /// socket that is already gone is not an error (its task ended on its own).
    pub fn send(&self, msg: Arc<ServerMessage>) -> Result<(), Overflowed> {
        self.push(Outbound::Message(msg))
    }

    /// Queues the goodbye; when it does not fit, the socket closes for overflow instead.
    pub fn close(&self, reason: DisconnectReason) {
        let _ = self.push(Outbound::Close(reason));
    }

    fn push(&self, o: Outbound) -> Result<(), Overflowed> {
        if self.is_overflowed() {
            return Err(Overflowed);
        }
        match self.queue.try_send(o) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.flag.store(true, Ordering::SeqCst);
                self.overflow.notify.notify_one();
                Err(Overflowed)
            }
        }
    }

    pub fn is_overflowed(&self) -> bool {
        self.overflow.flag.load(Ordering::SeqCst)
    }

    /// Whether both ends belong to one socket.
    pub fn same_channel(&self, other: &OutboundTx) -> bool {
        self.queue.same_channel(&other.queue)
    }
}

impl OutboundRx {
    /// Resolves once the queue has overflowed (to abandon a write the peer is not reading).
    pub async fn overflow(&self) {
        loop {
            let notified = self.overflow.notify.notified();
            if self.overflow.flag.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// The next thing to do; an overflow wins over anything still queued.
    pub async fn recv(&mut self) -> Option<Outbound> {
        if self.overflow.flag.load(Ordering::SeqCst) {
            return Some(Outbound::Overflowed);
        }
        tokio::select! {
            biased;
            () = self.overflow.notify.notified() => Some(Outbound::Overflowed),
            o = self.queue.recv() => o,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n: u64) -> Arc<ServerMessage> {
        Arc::new(ServerMessage::Ack { id: n })
    }

    #[tokio::test]
    async fn a_full_queue_overflows_and_the_reader_sees_it_before_queued_frames() {
        let (tx, mut rx) = channel(2);
        assert_eq!(tx.send(m(1)), Ok(()));
        assert_eq!(tx.send(m(2)), Ok(()));
        assert_eq!(tx.send(m(3)), Err(Overflowed));
        assert!(tx.is_overflowed());
        assert_eq!(rx.recv().await, Some(Outbound::Overflowed));
        assert_eq!(tx.send(m(4)), Err(Overflowed), "an overflowed socket takes nothing more");
    }

    #[tokio::test]
    async fn a_goodbye_that_does_not_fit_still_closes_the_socket() {
        let (tx, mut rx) = channel(1);
        tx.send(m(1)).unwrap();
        tx.close(DisconnectReason::ForceDisconnected);
        assert_eq!(rx.recv().await, Some(Outbound::Overflowed));
    }

    #[tokio::test]
    async fn frames_arrive_in_order_until_the_goodbye() {
        let (tx, mut rx) = channel(4);
        tx.send(m(1)).unwrap();
        tx.close(DisconnectReason::ClientDisconnected);
        assert_eq!(rx.recv().await, Some(Outbound::Message(m(1))));
        assert_eq!(rx.recv().await, Some(Outbound::Close(DisconnectReason::ClientDisconnected)));
        drop(tx);
        assert_eq!(rx.recv().await, None);
    }
}
