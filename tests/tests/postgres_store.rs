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
use tessera::{
    Record, RecordView, Secret, Session, SessionAdmin, SessionCookie, SessionData, SessionLayer,
    SessionOptions, SessionStore, StoreErrorPolicy,
};
use tessera_postgres::PostgresStore;
use tessera_store_tests::{RawWriter, Suite};
use tessera_tests::proxy::TcpProxy;
use tessera_tests::services::{database_url, pg_client, unavailable, unique};
use tessera_tests::{Browser, id_of};
use tokio_postgres::Client;

/// A plain connection, for the test's own statements.
async fn client(test: &str, url: &str) -> Option<Arc<Client>> {
    match pg_client(url).await {
        Ok(client) => Some(Arc::new(client)),
        Err(e) => {
            unavailable(test, &format!("PostgreSQL at {url} is not reachable: {e}"));
            None
        }
    }
}

/// A store on a table of its own, created for the test, and a plain connection.
async fn store(test: &str) -> Option<(PostgresStore, String, Arc<Client>)> {
    let db = client(test, &database_url()).await?;
    let table = unique("tessera_test_");
    let store = PostgresStore::from_url(&database_url())
        .unwrap()
        .table(&table)
        .create_table_if_missing(true)
        .build()
        .await
        .unwrap();
    Some((store, table, db))
}

fn raw_writer(store: &PostgresStore, db: &Arc<Client>) -> RawWriter {
    let store = store.clone();
    let db = Arc::clone(db);
    Arc::new(move |id: String, text: Vec<u8>| {
        let store = store.clone();
        let db = Arc::clone(&db);
        Box::pin(async move {
            // The column is `json`: text that is not JSON cannot be stored at all.
            let Ok(text) = String::from_utf8(text) else {
                return;
            };
            let sql = format!(
                "INSERT INTO {} (sid, sess, expire) VALUES ($1, $2::text::json, now() AT TIME ZONE $3::text + interval '60 seconds')",
                store.table()
            );
            let _ = db.execute(&sql, &[&id, &text, &store.time_zone()]).await;
        })
    })
}

async fn drop_table(store: &PostgresStore, db: &Client) {
    let sql = format!("DROP TABLE IF EXISTS {}", store.table());
    db.batch_execute(&sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_contract() {
    let Some((store, _, db)) = store("postgres_store_keeps_the_contract").await else {
        return;
    };
    let report = Suite::new(store.clone())
        .expiry_precision(Duration::from_secs(1))
        .with_raw_writer(raw_writer(&store, &db))
        .run_with_admin()
        .await;
    drop_table(&store, &db).await;
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
async fn expire_of(store: &PostgresStore, db: &Client, id: &str) -> f64 {
    let sql = format!(
        "SELECT extract(epoch FROM expire AT TIME ZONE $2::text)::float8 FROM {} WHERE sid = $1",
        store.table()
    );
    db.query_one(&sql, &[&id, &store.time_zone()])
        .await
        .unwrap()
        .get(0)
}

/// The stored text of `id`.
async fn sess_of(store: &PostgresStore, db: &Client, id: &str) -> String {
    let sql = format!("SELECT sess::text FROM {} WHERE sid = $1", store.table());
    db.query_one(&sql, &[&id]).await.unwrap().get(0)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn rows_are_written_as_connect_pg_simple_writes_them() {
    let Some((store, _, db)) = store("rows_are_written_as_connect_pg_simple_writes_them").await
    else {
        return;
    };
    let r = record(Some(Duration::from_millis(60_500)));
    store.set("a", RecordView::from(&r)).await.unwrap();
    let sess = sess_of(&store, &db, "a").await;
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
    assert_eq!(expire_of(&store, &db, "a").await, expected);
    // Without expires: now + ttl (one day).
    store
        .set("b", RecordView::from(&record(None)))
        .await
        .unwrap();
    let left = expire_of(&store, &db, "b").await - now_secs();
    assert!((86_399.0..=86_401.0).contains(&left), "{left}");
    // A touch moves expire only.
    let mut later = r.cookie.clone();
    later.set_max_age(Some(Duration::from_secs(600)));
    store.touch("a", tessera::Touch::new(&later)).await.unwrap();
    let left = expire_of(&store, &db, "a").await - now_secs();
    assert!((599.0..=601.0).contains(&left), "{left}");
    let after = sess_of(&store, &db, "a").await;
    assert_eq!(after, sess, "a touch leaves the text alone");
    drop_table(&store, &db).await;
}

#[tokio::test]
async fn expired_rows_are_pruned_in_the_background_until_the_store_is_dropped() {
    let test = "expired_rows_are_pruned_in_the_background_until_the_store_is_dropped";
    let Some((store, table, db)) = store(test).await else {
        return;
    };
    let insert_expired = format!(
        "INSERT INTO {} (sid, sess, expire) VALUES ($1, '{{}}', now() AT TIME ZONE $2::text - interval '1 hour')",
        store.table()
    );
    let count = format!("SELECT count(*) FROM {}", store.table());
    let zone = store.time_zone().to_owned();
    for id in ["x", "y"] {
        db.execute(&insert_expired, &[&id, &zone]).await.unwrap();
    }
    assert_eq!(store.prune().await.unwrap(), 2);
    // A store that prunes every 50 ms (jittered to 25..75 ms).
    let fast = PostgresStore::from_url(&database_url())
        .unwrap()
        .table(&table)
        .prune_interval(Some(Duration::from_millis(50)))
        .build()
        .await
        .unwrap();
    db.execute(&insert_expired, &[&"z", &zone]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: i64 = db.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "pruned in the background");
    // Dropped, it prunes no more (once a prune already under way, which holds the store
    // until it ends, has finished).
    drop(fast);
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.execute(&insert_expired, &[&"w", &zone]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: i64 = db.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(left, 1, "the task stopped with the last handle");
    drop_table(&store, &db).await;
}

#[tokio::test]
async fn postgres_store_counts_lists_and_clears() {
    let Some((store, _, db)) = store("postgres_store_counts_lists_and_clears").await else {
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
    drop_table(&store, &db).await;
}

#[tokio::test]
async fn table_and_schema_names_are_quoted() {
    let test = "table_and_schema_names_are_quoted";
    let Some(db) = client(test, &database_url()).await else {
        return;
    };
    let schema = unique("Tessera Schema \"");
    db.batch_execute(&format!(
        "CREATE SCHEMA \"{}\"",
        schema.replace('"', "\"\"")
    ))
    .await
    .unwrap();
    let store = PostgresStore::from_url(&database_url())
        .unwrap()
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
    db.batch_execute(&format!(
        "DROP SCHEMA \"{}\" CASCADE",
        schema.replace('"', "\"\"")
    ))
    .await
    .unwrap();
}

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

#[tokio::test]
async fn a_cut_database_connection_answers_by_the_policy_and_the_store_recovers() {
    let test = "a_cut_database_connection_answers_by_the_policy_and_the_store_recovers";
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
    let Some(db) = client(test, &url).await else {
        return;
    };
    let store = PostgresStore::from_url(&proxied)
        .unwrap()
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
        let layer =
            SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
                .with_store(store.clone())
                .with_options(
                    SessionOptions::default()
                        .with_resave(false)
                        .with_save_uninitialized(false)
                        .with_store_error_policy(policy),
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
    drop_table(&store, &db).await;
}

#[tokio::test]
async fn the_patch_statement_writes_exactly_what_patch_apply_to_json_writes() {
    let test = "the_patch_statement_writes_exactly_what_patch_apply_to_json_writes";
    let Some((store, _, db)) = store(test).await else {
        return;
    };
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(Some(Duration::from_secs(600)));
    let stored_cookie = cookie.to_json();
    let insert = format!(
        "INSERT INTO {} (sid, sess, expire) VALUES ($1, $2::text::json, now() AT TIME ZONE $3::text + interval '60 seconds')",
        store.table()
    );
    let insert = db.prepare(&insert).await.unwrap();
    let mut g = tessera_tests::jsongen::Gen::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..1000 {
        let (text, changes) = g.record_and_changes(&stored_cookie);
        let id = format!("gen-{round}");
        db.execute(&insert, &[&id, &text, &store.time_zone()])
            .await
            .unwrap();
        let patch = tessera::Patch::new(&cookie, &changes);
        let expected = patch.apply_to_json(text.as_bytes()).unwrap();
        assert_eq!(
            store.patch(&id, patch).await.unwrap(),
            tessera::Outcome::Applied
        );
        let written = sess_of(&store, &db, &id).await;
        assert_eq!(
            written,
            String::from_utf8_lossy(&expected),
            "round {round}: {text} with {changes:?}"
        );
    }
    drop_table(&store, &db).await;
}

#[tokio::test]
async fn a_patch_stuck_behind_a_row_lock_times_out_holds_up_no_other_session_and_never_lands_later()
{
    let test =
        "a_patch_stuck_behind_a_row_lock_times_out_holds_up_no_other_session_and_never_lands_later";
    let Some(db) = client(test, &database_url()).await else {
        return;
    };
    // One connection, so that every statement would queue behind the stuck one.
    let store = PostgresStore::from_url(&database_url())
        .unwrap()
        .table(&unique("tessera_test_"))
        .create_table_if_missing(true)
        .connections(1)
        .timeout(Duration::from_millis(400))
        .build()
        .await
        .unwrap();
    for id in ["a", "b"] {
        store
            .set(id, RecordView::from(&record(None)))
            .await
            .unwrap();
    }
    // Another client holds a's row.
    let locker = pg_client(&database_url()).await.unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM {} WHERE sid = 'a' FOR UPDATE",
            store.table()
        ))
        .await
        .unwrap();
    let cookie = SessionCookie::default();
    let change = [tessera::FieldChange {
        key: "views".into(),
        value: Some(json!(99)),
    }];
    let started = std::time::Instant::now();
    let stuck = store
        .patch("a", tessera::Patch::new(&cookie, &change))
        .await;
    assert!(stuck.is_err(), "{stuck:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The other session is served at once.
    let started = std::time::Instant::now();
    let b = store.get("b").await.unwrap().expect("b is live");
    assert_eq!(b.to_record().unwrap().fields["views"], json!(1));
    assert_eq!(
        store
            .patch("b", tessera::Patch::new(&cookie, &change))
            .await
            .unwrap(),
        tessera::Outcome::Applied
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // The lock goes away; the statement the store gave up on does not land afterwards.
    tokio::time::sleep(Duration::from_millis(300)).await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = store.get("a").await.unwrap().expect("a is live");
    assert_eq!(a.to_record().unwrap().fields["views"], json!(1));
    drop_table(&store, &db).await;
}
