//! The store's own connections, opened with the application's pool options.
//!
//! sqlx 0.8 pings every connection it takes back into a pool (a `Sync` round trip, on a
//! spawned task), so that each statement through a `PgPool` costs two round trips to the
//! database, and the spawned task costs CPU. Measured through this project's benchmark,
//! a read-only session request made 2.0 round trips through the pool. A session store
//! runs one short statement per request, so it keeps a few connections of its own and
//! hands them out without that ping: a statement is one round trip.
//!
//! A connection whose statement did not finish (an error of the connection, or a
//! statement timeout that dropped it mid-way) is dropped, and the slot connects again
//! when it is next used, so the store recovers after a database restart by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::Mutex;

/// A few connections, each used by one statement at a time.
pub(crate) struct Conns {
    options: Arc<PgConnectOptions>,
    slots: Box<[Mutex<Slot>]>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    conn: Option<PgConnection>,
    /// A statement was started and has not finished: the connection's state is unknown.
    busy: bool,
}

impl Conns {
    /// `size` slots (at least one), connecting lazily with `options`.
    pub(crate) fn new(options: Arc<PgConnectOptions>, size: usize) -> Self {
        Self {
            options,
            slots: (0..size.max(1))
                .map(|_| Mutex::new(Slot::default()))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `statement` on a free connection (waiting for one when all are in use).
    pub(crate) async fn run<T>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => self.slots[start % n].lock().await,
        };
        if slot.busy {
            // The last statement on it was cancelled half-way: do not trust the connection.
            slot.conn = None;
            slot.busy = false;
        }
        let slot = &mut *slot;
        let conn = match &mut slot.conn {
            Some(conn) => conn,
            empty => empty.insert(self.options.connect().await?),
        };
        slot.busy = true;
        let result = statement(conn).await;
        slot.busy = false;
        if let Err(error) = &result {
            if !matches!(error, sqlx::Error::Database(_) | sqlx::Error::RowNotFound) {
                // The connection itself failed: connect again next time.
                slot.conn = None;
            }
        }
        result
    }
}
