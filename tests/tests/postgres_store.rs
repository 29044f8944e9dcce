//! tessera-postgres against a real PostgreSQL (`DATABASE_URL`): the conformance suite,
//! connect-pg-simple's row format, the time-zone trap with the real connect-pg-simple,
//! pruning, and a cut connection through a TCP proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use serde_json::json;
use sqlx::postgres::PgPool;
use tessera::{
    Record, RecordView, Secret, Session, SessionAdmin, SessionCookie, SessionData, SessionLayer,
    SessionOptions, SessionStore, StoreErrorPolicy,
};
use tessera_postgres::PostgresStore;
use tessera_store_tests::{RawWriter, Suite};
use tessera_tests::proxy::TcpProxy;
use tessera_tests::services::{database_url, unavailable, unique};
use tessera_tests::{Browser, id_of};

async fn pool(test: &str, url: &str) -> Option<PgPool> {
    match PostgresStore::pool_for(url).await {
        Ok(pool) => Some(pool),
        Err(e) => {
            unavailable(test, &format!("PostgreSQL at {url} is not reachable: {e}"));
            None
        }
    }
}

/// A store on a table of its own, created for the test.
async fn store(test: &str) -> Option<(PostgresStore, String)> {
    let pool = pool(test, &database_url()).await?;
    let table = unique("tessera_test_");
    let store = PostgresStore::from_pool(pool)
        .table(&table)
        .create_table_if_missing(true)
        .build()
        .await
        .unwrap();
    Some((store, table))
}

fn raw_writer(store: &PostgresStore) -> RawWriter {
    let store = store.clone();
    Arc::new(move |id: String, text: Vec<u8>| {
        let store = store.clone();
        Box::pin(async move {
            // The column is `json`: text that is not JSON cannot be stored at all.
            let Ok(text) = String::from_utf8(text) else {
                return;
            };
            let sql = format!(
                "INSERT INTO {} (sid, sess, expire) VALUES ($1, $2::json, now() AT TIME ZONE $3 + interval '60 seconds')",
                store.table()
            );
            let _ = sqlx::query(&sql)
                .bind(id)
                .bind(text)
                .bind(store.time_zone())
                .execute(store.pool())
                .await;
        })
    })
}

async fn drop_table(store: &PostgresStore) {
    let sql = format!("DROP TABLE IF EXISTS {}", store.table());
    sqlx::query(&sql).execute(store.pool()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_contract() {
    let Some((store, _)) = store("postgres_store_keeps_the_contract").await else {
        return;
    };
    let report = Suite::new(store.clone())
        .expiry_precision(Duration::from_secs(1))
        .with_raw_writer(raw_writer(&store))
        .run()
        .await;
    drop_table(&store).await;
    report.assert_passed();
}

fn record(max_age: Option<Duration>) -> Record {
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(max_age);
    let mut r = Record {
        cookie,
        ..Record::default()
    };
    r.fields.insert("views".into(), json!(1));
    r
}

/// `expire` of `id`, as Unix seconds read in the store's zone.
async fn expire_of(store: &PostgresStore, id: &str) -> f64 {
    let sql = format!(
        "SELECT extract(epoch FROM expire AT TIME ZONE $2)::float8 FROM {} WHERE sid = $1",
        store.table()
    );
    sqlx::query_scalar(&sql)
        .bind(id)
        .bind(store.time_zone())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn rows_are_written_as_connect_pg_simple_writes_them() {
    let Some((store, _)) = store("rows_are_written_as_connect_pg_simple_writes_them").await else {
        return;
    };
    let r = record(Some(Duration::from_millis(60_500)));
    store.set("a", RecordView::from(&r)).await.unwrap();
    let sess: String = sqlx::query_scalar(&format!(
        "SELECT sess::text FROM {} WHERE sid = 'a'",
        store.table()
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        sess,
        r.to_json(),
        "the json column keeps the text as written"
    );
    // expire: the cookie's expires, rounded up to whole seconds.
    let expires = r
        .cookie
        .expires()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    let expected = (expires.as_millis() as f64 / 1000.0).ceil();
    assert_eq!(expire_of(&store, "a").await, expected);
    // Without expires: now + ttl (one day).
    store
        .set("b", RecordView::from(&record(None)))
        .await
        .unwrap();
    let left = expire_of(&store, "b").await - now_secs();
    assert!((86_399.0..=86_401.0).contains(&left), "{left}");
    // A touch moves expire only.
    let mut later = r.cookie.clone();
    later.set_max_age(Some(Duration::from_secs(600)));
    store.touch("a", tessera::Touch::new(&later)).await.unwrap();
    let left = expire_of(&store, "a").await - now_secs();
    assert!((599.0..=601.0).contains(&left), "{left}");
    let after: String = sqlx::query_scalar(&format!(
        "SELECT sess::text FROM {} WHERE sid = 'a'",
        store.table()
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(after, sess, "a touch leaves the text alone");
    drop_table(&store).await;
}

#[tokio::test]
async fn expired_rows_are_pruned_in_the_background_until_the_store_is_dropped() {
    let test = "expired_rows_are_pruned_in_the_background_until_the_store_is_dropped";
    let Some((store, table)) = store(test).await else {
        return;
    };
    let insert_expired = format!(
        "INSERT INTO {} (sid, sess, expire) VALUES ($1, '{{}}', now() AT TIME ZONE $2 - interval '1 hour')",
        store.table()
    );
    let count = format!("SELECT count(*) FROM {}", store.table());
    let pool = store.pool().clone();
    for id in ["x", "y"] {
        sqlx::query(&insert_expired)
            .bind(id)
            .bind(store.time_zone())
            .execute(&pool)
            .await
            .unwrap();
    }
    assert_eq!(store.prune().await.unwrap(), 2);
    // A store that prunes every 50 ms (jittered to 25..75 ms).
    let fast = PostgresStore::from_pool(pool.clone())
        .table(&table)
        .prune_interval(Some(Duration::from_millis(50)))
        .build()
        .await
        .unwrap();
    sqlx::query(&insert_expired)
        .bind("z")
        .bind(fast.time_zone())
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: i64 = sqlx::query_scalar(&count).fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0, "pruned in the background");
    // Dropped, it prunes no more.
    let zone = fast.time_zone().to_owned();
    drop(fast);
    sqlx::query(&insert_expired)
        .bind("w")
        .bind(&zone)
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: i64 = sqlx::query_scalar(&count).fetch_one(&pool).await.unwrap();
    assert_eq!(left, 1, "the task stopped with the last handle");
    drop_table(&store).await;
}

#[tokio::test]
async fn postgres_store_counts_lists_and_clears() {
    let Some((store, _)) = store("postgres_store_counts_lists_and_clears").await else {
        return;
    };
    for id in ["a", "b", "c"] {
        store
            .set(id, RecordView::from(&record(None)))
            .await
            .unwrap();
    }
    assert_eq!(store.len().await.unwrap(), 3);
    let mut ids = store.ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"]);
    store.clear().await.unwrap();
    assert!(store.is_empty().await.unwrap());
    drop_table(&store).await;
}

#[tokio::test]
async fn table_and_schema_names_are_quoted() {
    let test = "table_and_schema_names_are_quoted";
    let Some(pool) = pool(test, &database_url()).await else {
        return;
    };
    let schema = unique("Tessera Schema \"");
    sqlx::query(&format!(
        "CREATE SCHEMA \"{}\"",
        schema.replace('"', "\"\"")
    ))
    .execute(&pool)
    .await
    .unwrap();
    let store = PostgresStore::from_pool(pool.clone())
        .schema(&schema)
        .table("odd \"table\"; DROP TABLE x; --")
        .create_table_if_missing(true)
        .build()
        .await
        .unwrap();
    store
        .set("a", RecordView::from(&record(None)))
        .await
        .unwrap();
    assert!(store.get("a").await.unwrap().is_some());
    sqlx::query(&format!(
        "DROP SCHEMA \"{}\" CASCADE",
        schema.replace('"', "\"\"")
    ))
    .execute(&pool)
    .await
    .unwrap();
}

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

#[tokio::test]
async fn a_cut_database_connection_answers_by_the_policy_and_the_pool_recovers() {
    let test = "a_cut_database_connection_answers_by_the_policy_and_the_pool_recovers";
    let url = database_url();
    let Some(host) = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|h| h.to_socket_addrs().ok())
        .and_then(|mut a| a.next())
    else {
        unavailable(test, "DATABASE_URL has no user@host:port");
        return;
    };
    let proxy = TcpProxy::start(host).await;
    let proxied = url.replacen(&host.to_string(), &proxy.addr.to_string(), 1);
    let Some(pool) = pool(test, &proxied).await else {
        return;
    };
    let store = PostgresStore::from_pool(pool)
        .table(&unique("tessera_test_"))
        .create_table_if_missing(true)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    for policy in [
        StoreErrorPolicy::Fail,
        StoreErrorPolicy::ContinueWithoutSession,
    ] {
        let layer = SessionLayer::<Visit>::new(Secret::new("keyboard cat").unwrap())
            .with_store(store.clone())
            .with_options(
                SessionOptions::default()
                    .resave(false)
                    .save_uninitialized(false)
                    .store_error_policy(policy),
            );
        let app = Router::new()
            .route(
                "/",
                get(|s: Option<Session<Visit>>| async move {
                    match s {
                        Some(mut s) => {
                            *s.views += 1;
                            s.views.to_string()
                        }
                        None => "no session".to_owned(),
                    }
                }),
            )
            .layer(layer);
        let mut b = Browser::new(app);
        assert_eq!(b.get("/").await.body, "1");
        let id = id_of(b.cookie.as_ref().unwrap());
        proxy.cut();
        let r = b.get("/").await;
        match policy {
            StoreErrorPolicy::Fail => assert_eq!(r.status, 500, "{}", r.body),
            _ => assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "no session")),
        }
        proxy.restore();
        let mut answer = String::new();
        for _ in 0..50 {
            let r = b.get("/").await;
            if r.status == 200 && r.body != "no session" {
                answer = r.body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answer, "2", "the session survived the cut");
        assert_eq!(id_of(b.cookie.as_ref().unwrap()), id);
    }
    drop_table(&store).await;
}

#[tokio::test]
async fn the_patch_statement_writes_exactly_what_patch_apply_to_json_writes() {
    let test = "the_patch_statement_writes_exactly_what_patch_apply_to_json_writes";
    let Some((store, _)) = store(test).await else {
        return;
    };
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(Some(Duration::from_secs(600)));
    let stored_cookie = cookie.to_json();
    let insert = format!(
        "INSERT INTO {} (sid, sess, expire) VALUES ($1, $2::json, now() AT TIME ZONE $3 + interval '60 seconds')",
        store.table()
    );
    let read = format!("SELECT sess::text FROM {} WHERE sid = $1", store.table());
    let mut g = tessera_tests::jsongen::Gen::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..1000 {
        let (text, changes) = g.record_and_changes(&stored_cookie);
        let id = format!("gen-{round}");
        sqlx::query(&insert)
            .bind(&id)
            .bind(&text)
            .bind(store.time_zone())
            .execute(store.pool())
            .await
            .unwrap();
        let patch = tessera::Patch::new(&cookie, &changes);
        let expected = patch.apply_to_json(text.as_bytes()).unwrap();
        assert_eq!(
            store.patch(&id, patch).await.unwrap(),
            tessera::Outcome::Applied
        );
        let written: String = sqlx::query_scalar(&read)
            .bind(&id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(
            written,
            String::from_utf8_lossy(&expected),
            "round {round}: {text} with {changes:?}"
        );
    }
    drop_table(&store).await;
}
