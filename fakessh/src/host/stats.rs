//! What the host knows about its contexts and sessions: for each context,
//! its chain, since when it is up, sessions open and in total, bytes in
//! and out, and when it was last used (`mitogen-fakessh status`, the idle
//! timeout); and how many sessions are open at all (a run waits for them
//! after COMMAND exits).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use router::hop::Chain;
use router::message::ContextId;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// One context, as `status` shows it (and as its JSON carries it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContextStatus {
    pub context: ContextId,
    pub chain: String,
    /// Seconds since it was connected.
    pub uptime_seconds: u64,
    pub sessions_open: u32,
    pub sessions_total: u64,
    /// Bytes its sessions received (stdin) and sent (stdout, stderr).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Seconds since a session last ended or began on it (or a longer
    /// chain through it).
    pub idle_seconds: u64,
}

struct Entry {
    chain: Chain,
    since: Instant,
    sessions_open: u32,
    sessions_total: u64,
    bytes_in: u64,
    bytes_out: u64,
    last_used: Instant,
}

/// The host's books.
#[derive(Default)]
pub struct Stats {
    contexts: Mutex<HashMap<ContextId, Entry>>,
    open: AtomicUsize,
    changed: Notify,
}

/// Bytes one session moved; its relay and deliveries count into it.
#[derive(Default, Debug)]
pub struct SessionBytes {
    pub input: AtomicU64,
    pub output: AtomicU64,
}

impl SessionBytes {
    pub fn add_input(&self, n: usize) {
        self.input.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_output(&self, n: usize) {
        self.output.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// An open session: counted from its request until dropped.
pub struct SessionGuard {
    stats: Arc<Stats>,
    /// The context it runs on, once known.
    context: Option<ContextId>,
    pub bytes: Arc<SessionBytes>,
}

impl Stats {
    /// A context came up for `chain`.
    pub fn connected(&self, context: ContextId, chain: &Chain) {
        let now = Instant::now();
        self.lock().insert(
            context,
            Entry {
                chain: chain.clone(),
                since: now,
                sessions_open: 0,
                sessions_total: 0,
                bytes_in: 0,
                bytes_out: 0,
                last_used: now,
            },
        );
    }

    /// A context is gone.
    pub fn forget(&self, context: ContextId) {
        self.lock().remove(&context);
    }

    /// A session arrived.
    pub fn session(self: &Arc<Self>) -> SessionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        SessionGuard {
            stats: self.clone(),
            context: None,
            bytes: Default::default(),
        }
    }

    /// Sessions open now, on any context or still being routed.
    pub fn open_sessions(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Wait until no session is open.
    pub async fn all_sessions_ended(&self) {
        loop {
            let changed = self.changed.notified();
            if self.open_sessions() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Every context, oldest first.
    pub fn snapshot(&self) -> Vec<ContextStatus> {
        let now = Instant::now();
        let contexts = self.lock();
        let mut list: Vec<ContextStatus> = contexts
            .iter()
            .map(|(id, e)| ContextStatus {
                context: *id,
                chain: e.chain.to_string(),
                uptime_seconds: now.duration_since(e.since).as_secs(),
                sessions_open: e.sessions_open,
                sessions_total: e.sessions_total,
                bytes_in: e.bytes_in,
                bytes_out: e.bytes_out,
                idle_seconds: now.duration_since(e.last_used).as_secs(),
            })
            .collect();
        list.sort_by_key(|c| (std::cmp::Reverse(c.uptime_seconds), c.context));
        list
    }

    /// Contexts with no session open that nothing used for `idle` (a
    /// session through a longer chain counts as a use).
    pub fn idle_contexts(&self, idle: Duration) -> Vec<(ContextId, Chain)> {
        let now = Instant::now();
        let contexts = self.lock();
        contexts
            .iter()
            .filter(|(_, e)| e.sessions_open == 0 && now.duration_since(e.last_used) >= idle)
            .map(|(id, e)| (*id, e.chain.clone()))
            .collect()
    }

    /// Mark `chain` and every chain it goes through as used now.
    fn touch(contexts: &mut HashMap<ContextId, Entry>, chain: &Chain) {
        let now = Instant::now();
        for entry in contexts.values_mut() {
            if chain.hops.starts_with(&entry.chain.hops) {
                entry.last_used = now;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContextId, Entry>> {
        self.contexts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionGuard {
    /// The session runs on `context`.
    pub fn runs_on(&mut self, context: ContextId) {
        let mut contexts = self.stats.lock();
        if let Some(entry) = contexts.get_mut(&context) {
            entry.sessions_open += 1;
            entry.sessions_total += 1;
            let chain = entry.chain.clone();
            Stats::touch(&mut contexts, &chain);
            self.context = Some(context);
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(context) = self.context {
            let mut contexts = self.stats.lock();
            if let Some(entry) = contexts.get_mut(&context) {
                entry.sessions_open = entry.sessions_open.saturating_sub(1);
                entry.bytes_in += self.bytes.input.load(Ordering::Relaxed);
                entry.bytes_out += self.bytes.output.load(Ordering::Relaxed);
                let chain = entry.chain.clone();
                Stats::touch(&mut contexts, &chain);
            }
        }
        self.stats.open.fetch_sub(1, Ordering::SeqCst);
        self.stats.changed.notify_waiters();
    }
}

/// Seconds since the epoch, for `status --json`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_per_context_and_through_prefixes() {
        let stats = Arc::new(Stats::default());
        let ssh: Chain = "ssh:web1".parse().unwrap();
        let sudo: Chain = "ssh:web1,sudo:root".parse().unwrap();
        stats.connected(1, &ssh);
        stats.connected(2, &sudo);
        assert_eq!(stats.idle_contexts(Duration::ZERO).len(), 2);
        let mut s = stats.session();
        assert_eq!(stats.open_sessions(), 1);
        s.runs_on(2);
        s.bytes.add_input(10);
        s.bytes.add_output(20);
        assert!(
            stats
                .idle_contexts(Duration::ZERO)
                .iter()
                .all(|(id, _)| *id == 1)
        );
        drop(s);
        assert_eq!(stats.open_sessions(), 0);
        let snap = stats.snapshot();
        let sudo_row = snap.iter().find(|c| c.context == 2).unwrap();
        assert_eq!(
            (
                sudo_row.sessions_total,
                sudo_row.bytes_in,
                sudo_row.bytes_out
            ),
            (1, 10, 20)
        );
        assert!(stats.idle_contexts(Duration::from_secs(60)).is_empty());
        stats.forget(2);
        assert_eq!(stats.snapshot().len(), 1);
    }
}
