//! The store's connections: a few pipelined tokio-postgres clients, each shared by every
//! request that lands on it, replaced when it fails.
//!
//! A request takes no connection for itself: it sends its statement on the next client in
//! turn, and tokio-postgres writes the statements of all the requests waiting on that
//! client in one go and reads their answers in one go. Several clients keep writes of
//! different sessions committing in parallel (each commit waits for the WAL flush of its
//! own backend). Each client prepares the store's statements once, when it connects, so
//! that a statement is one round trip.
//!
//! A client whose connection failed (a database restart, a cut connection) or whose
//! statement timed out is retired, and its slot connects again when next used, once for
//! all the requests waiting on it: the store recovers by itself, and one statement stuck
//! behind a lock holds up no other session for longer than the store's timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::Statements;

/// One connection and the store's statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) st: Prepared,
}

/// The store's statements, prepared on one connection.
pub(crate) struct Prepared {
    pub(crate) get: Statement,
    pub(crate) upsert: Statement,
    pub(crate) delete: Statement,
    pub(crate) patch: Statement,
    pub(crate) touch: Statement,
    pub(crate) rotate: Statement,
    pub(crate) destroy: Statement,
}

/// A connection in use, and where it came from (so that a failure can retire it).
pub(crate) struct Lease {
    pub(crate) conn: Arc<Conn>,
    slot: usize,
    generation: u64,
}

/// The clients of one store.
pub(crate) struct Clients {
    config: Config,
    sql: Arc<Statements>,
    /// The store's timeout, which the server also applies to each statement.
    timeout: Duration,
    slots: Box<[Slot]>,
    next: AtomicUsize,
}

struct Slot {
    /// The live connection and its generation (which failures name).
    current: RwLock<Option<(u64, Arc<Conn>)>>,
    /// One connection attempt at a time; holds the last generation.
    connecting: tokio::sync::Mutex<u64>,
}

impl Slot {
    fn empty() -> Self {
        Self {
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(0),
        }
    }

    fn read(&self) -> Option<(u64, Arc<Conn>)> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|(_, conn)| !conn.client.is_closed())
            .map(|(generation, conn)| (*generation, Arc::clone(conn)))
    }
}

/// Opens a connection to `config`'s database; its driving task logs how it ended.
pub(crate) async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "PostgreSQL session store connection closed"
            );
        }
    });
    Ok(client)
}

async fn prepare(
    client: Client,
    sql: &Statements,
    timeout: Duration,
) -> Result<Conn, tokio_postgres::Error> {
    // A statement the store gave up on is cancelled by the server too, so that it neither
    // holds up the statements behind it on the connection nor lands long after the
    // request was answered.
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            timeout.as_millis().clamp(1, i32::MAX as u128)
        ))
        .await?;
    let st = Prepared {
        get: client.prepare(&sql.get).await?,
        upsert: client.prepare(&sql.upsert).await?,
        delete: client.prepare(&sql.delete).await?,
        patch: client.prepare(&sql.patch).await?,
        touch: client.prepare(&sql.touch).await?,
        rotate: client.prepare(&sql.rotate).await?,
        destroy: client.prepare(&sql.destroy).await?,
    };
    Ok(Conn { client, st })
}

impl Clients {
    /// `size` slots (at least one); the first uses `first`, the others connect when
    /// first used.
    pub(crate) async fn new(
        config: Config,
        sql: Arc<Statements>,
        timeout: Duration,
        size: usize,
        first: Client,
    ) -> Result<Self, tokio_postgres::Error> {
        let first = prepare(first, &sql, timeout).await?;
        let slots: Box<[Slot]> = (0..size.max(1)).map(|_| Slot::empty()).collect();
        *slots[0].current.write().unwrap_or_else(|e| e.into_inner()) = Some((0, Arc::new(first)));
        Ok(Self {
            config,
            sql,
            timeout,
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// The next connection in turn, connecting its slot if needed.
    pub(crate) async fn get(&self) -> Result<Lease, tokio_postgres::Error> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let place = &self.slots[slot];
        if let Some((generation, conn)) = place.read() {
            return Ok(Lease {
                conn,
                slot,
                generation,
            });
        }
        let mut generation = place.connecting.lock().await;
        // Another request may have connected while this one waited.
        if let Some((generation, conn)) = place.read() {
            return Ok(Lease {
                conn,
                slot,
                generation,
            });
        }
        let conn = Arc::new(prepare(connect(&self.config).await?, &self.sql, self.timeout).await?);
        *generation += 1;
        *place.current.write().unwrap_or_else(|e| e.into_inner()) =
            Some((*generation, Arc::clone(&conn)));
        Ok(Lease {
            conn,
            slot,
            generation: *generation,
        })
    }

    /// Retires the connection of `lease` after it failed, so that its slot connects again
    /// (unless it already has). Statements still waiting on it finish or fail on their own.
    pub(crate) fn failed(&self, lease: &Lease) {
        let mut current = self.slots[lease.slot]
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|(generation, _)| *generation == lease.generation)
        {
            *current = None;
        }
    }
}
