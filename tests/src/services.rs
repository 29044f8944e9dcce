//! The outside services some tests need (Redis, Redis Cluster, PostgreSQL, Node), read
//! from the environment. Without one, a test says why it skips; with
//! `TESSERA_REQUIRE_SERVICES=1` (as `.ci/run` sets) it fails instead.

/// Whether a missing service is a failure.
pub fn required() -> bool {
    std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips the calling test (a line on the terminal, past the harness's capture), or fails
/// it when services are required.
///
/// # Panics
///
/// When `TESSERA_REQUIRE_SERVICES=1`.
pub fn unavailable(test: &str, why: &str) {
    assert!(!required(), "{test}: {why}");
    // Written to the terminal directly: the test harness captures `eprintln!` of a test
    // that passes, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (set TESSERA_REQUIRE_SERVICES=1 to fail instead)"
    );
}

/// `REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// The nodes of the test Redis Cluster: `REDIS_CLUSTER_URLS`, comma-separated.
pub fn redis_cluster_urls() -> Option<Vec<String>> {
    let urls = std::env::var("REDIS_CLUSTER_URLS").ok()?;
    let urls: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    (!urls.is_empty()).then_some(urls)
}

/// `DATABASE_URL`, or the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A plain connection to the database of `url`, for a test to look at rows or set the
/// stage (its driving task runs on the current runtime).
///
/// # Errors
///
/// When the database does not answer.
pub async fn pg_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A prefix no other test run uses, for keys and table names.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{tag}{}{:x}{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Redis store on a prefix of its own (`None`, after saying why, without Redis).
pub async fn redis_store(test: &str) -> Option<tessera_redis::RedisStore> {
    match tessera_redis::RedisStore::connect(&redis_url()).await {
        Ok(store) => Some(store.with_prefix(format!("{}:", unique("tessera-test-")))),
        Err(e) => {
            unavailable(
                test,
                &format!("Redis at {} is not reachable: {e}", redis_url()),
            );
            None
        }
    }
}

/// A PostgreSQL store on a table of its own, created for the test (`None`, after saying
/// why, without PostgreSQL). Drop the table with [`drop_postgres_table`].
pub async fn postgres_store(test: &str) -> Option<tessera_postgres::PostgresStore> {
    let built = match tessera_postgres::PostgresStore::from_url(&database_url()) {
        Ok(builder) => {
            builder
                .table(&unique("tessera_test_"))
                .create_table_if_missing(true)
                .build()
                .await
        }
        Err(e) => Err(e),
    };
    match built {
        Ok(store) => Some(store),
        Err(e) => {
            unavailable(
                test,
                &format!("PostgreSQL at {} is not reachable: {e}", database_url()),
            );
            None
        }
    }
}

/// Drops the table of a store made by [`postgres_store`].
///
/// # Panics
///
/// When the database does not answer.
pub async fn drop_postgres_table(store: &tessera_postgres::PostgresStore) {
    let client = pg_client(&database_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL went away: {e}"));
    let sql = format!("DROP TABLE IF EXISTS {}", store.table());
    if let Err(e) = client.batch_execute(&sql).await {
        panic!("could not drop {}: {e}", store.table());
    }
}

/// A clock a test moves by hand ([`tessera::SessionLayer::with_clock`]), starting now.
#[derive(Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<std::time::SystemTime>>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(
            std::time::SystemTime::now(),
        )))
    }
}

impl ManualClock {
    /// The time it shows.
    pub fn now(&self) -> std::time::SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves it forward by `by`, at once.
    pub fn advance(&self, by: std::time::Duration) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += by;
    }

    /// The clock function for the layer.
    pub fn reader(&self) -> impl Fn() -> std::time::SystemTime + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }
}
