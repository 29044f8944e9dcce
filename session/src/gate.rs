//! A rate limit for the events a client can cause at will: a bad cookie on every request,
//! a reserved key in every write. Each kind logs its first few events of a minute; the
//! rest are counted, and the count rides on the first event of the next minute, so that
//! a flood cannot fill the logs and is still visible in them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// A layer's rate-limited and once-only events.
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    /// Bad session cookies (tampered, oversized, unsigned).
    pub(crate) bad_cookies: LogGate,
    /// Sessions named by a valid id but gone from the store (expired, destroyed,
    /// revoked).
    pub(crate) gone: LogGate,
    /// Whether the layer has warned of a `Secure` cookie held back over plain http.
    pub(crate) warned_insecure: AtomicBool,
    /// Whether the layer has warned of `resave` and `save_uninitialized` left implicit.
    pub(crate) warned_defaults: AtomicBool,
}

/// The flatten-map keys that name a declared field or `cookie`, for every layer.
pub(crate) static RESERVED_KEYS: LogGate = LogGate::new();

/// How long one window lasts.
const WINDOW_MS: i64 = 60_000;
/// How many events a window logs.
const PER_WINDOW: u64 = 10;

/// The rate limit of one kind of event.
#[derive(Debug)]
pub(crate) struct LogGate {
    window_start: AtomicI64,
    admitted: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogGate {
    fn default() -> Self {
        Self::new()
    }
}

impl LogGate {
    pub(crate) const fn new() -> Self {
        Self {
            window_start: AtomicI64::new(i64::MIN),
            admitted: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event is to be logged, with `n` events of its kind left
    /// unlogged before it; `None` when it is to be counted only.
    pub(crate) fn admit(&self, now_ms: i64) -> Option<u64> {
        let start = self.window_start.load(Ordering::Relaxed);
        if now_ms.saturating_sub(start) >= WINDOW_MS
            && self
                .window_start
                .compare_exchange(start, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.admitted.store(0, Ordering::Relaxed);
        }
        if self.admitted.fetch_add(1, Ordering::Relaxed) < PER_WINDOW {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_ten_events_a_minute_and_reports_the_rest_with_the_next() {
        let gate = LogGate::new();
        let logged = (0..1000).filter(|_| gate.admit(0).is_some()).count();
        assert_eq!(logged, 10);
        assert_eq!(gate.admit(59_999), None);
        assert_eq!(gate.admit(60_000), Some(991));
        assert_eq!(gate.admit(60_001), Some(0));
    }
}
