//! Moving bulk data onto the router: a sender that takes turns with the
//! others sharing its stream. How much each session may send is its
//! machine's decision ([`proto::session`]); the drivers (the agent's
//! command end, [`client_end`](crate::client_end)) ask it before they read.

use std::future::Future;
use std::task::Poll;

use crate::router::{Router, TURN_EXEMPT, Turn};
use proto::frame::Frame;

/// Poll `f` once: its output if it is ready now, else `None`.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// A bulk sender on a shared stream: it keeps its turn while it has data
/// ready, and gives it back the moment it would wait ([`Turn`]).
#[derive(Default)]
pub struct BulkSender {
    turn: Option<Turn>,
}

impl BulkSender {
    pub fn new() -> BulkSender {
        BulkSender::default()
    }

    /// Wait for `next` (the next read, the next frame). A turn is kept only
    /// if `next` is ready at once; otherwise it is given back first, so
    /// nobody waits behind an idle sender.
    pub async fn next<F: Future>(&mut self, next: F) -> F::Output {
        let mut next = std::pin::pin!(next);
        if self.turn.is_some() {
            if let Some(out) = poll_once(&mut next).await {
                return out;
            }
            self.turn = None;
        }
        next.await
    }

    /// Give the turn back (before waiting for anything else).
    pub fn release(&mut self) {
        self.turn = None;
    }

    /// Send a data frame: in turn once it is bigger than [`TURN_EXEMPT`],
    /// and paced into its stream's queue.
    pub async fn send(&mut self, router: &Router, frame: Frame) {
        let len = frame.payload.len();
        if self.turn.is_none() && len > TURN_EXEMPT {
            self.turn = router.take_turn(frame.header.dst).await;
        }
        router.send_paced(frame).await;
        if let Some(turn) = &mut self.turn
            && !turn.spend(len)
        {
            self.turn = None;
        }
    }
}
