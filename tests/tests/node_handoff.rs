//! Node and Rust on one store: sessions made by the real express-session (with
//! connect-redis or connect-pg-simple) continue in Tessera, and the other way round.
//!
//! Needs Node (`TESSERA_EXPRESS_SCRIPT`, see `.ci/run`), Redis and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use sqlx::postgres::PgPool;
use tessera::{HmacSigner, Record, RecordView, Secret, SessionCookie, SessionStore, Signer};
use tessera_postgres::PostgresStore;
use tessera_tests::node::{NodeApp, http_get, script};
use tessera_tests::services::{database_url, unavailable, unique};

/// The cookie express-session sends for `id` under `secret`.
fn cookie_for(id: &str, secret: &str) -> String {
    let signed = HmacSigner.sign(id, &Secret::new(secret).unwrap());
    let value = format!("s:{signed}")
        .replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('+', "%2B");
    format!("connect.sid={value}")
}

/// `url` pointing at database `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
    format!("{base}/{db}")
}

/// The wall-clock `expire` of `sid`, in seconds, as stored.
async fn stored_expire(pool: &PgPool, sid: &str) -> f64 {
    sqlx::query_scalar("SELECT extract(epoch FROM expire)::float8 FROM \"session\" WHERE sid = $1")
        .bind(sid)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn node_and_rust_agree_on_expiry_when_the_database_time_zone_is_not_utc() {
    let test = "node_and_rust_agree_on_expiry_when_the_database_time_zone_is_not_utc";
    let script = match script() {
        Ok(s) => s,
        Err(why) => return unavailable(test, &why),
    };
    let admin = match PostgresStore::pool_for(&database_url()).await {
        Ok(pool) => pool,
        Err(e) => return unavailable(test, &format!("PostgreSQL is not reachable: {e}")),
    };
    let db = unique("tessera_tz_");
    sqlx::query(&format!("CREATE DATABASE \"{db}\""))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE \"{db}\" SET timezone TO 'America/New_York'"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let url = with_database(&database_url(), &db);
    let pool = PostgresStore::pool_for(&url).await.unwrap();
    let store = PostgresStore::from_pool(pool.clone())
        .create_table_if_missing(true)
        .prune_interval(None)
        .build()
        .await
        .unwrap();
    assert_eq!(
        store.time_zone(),
        "America/New_York",
        "read from the database"
    );

    let node = NodeApp::start(
        &script,
        &[
            "--store",
            "pg",
            "--pg-url",
            &url,
            "--secret",
            "s",
            "--max-age",
            "60000",
        ]
        .map(String::from),
    )
    .await;
    // Node creates a session; the Rust store sees it live.
    let r = http_get(node.port, "/views", None, &[]).await;
    let node_id = r.json()["id"].as_str().unwrap().to_owned();
    let loaded = store
        .get(&node_id)
        .await
        .unwrap()
        .expect("Node's session is live");
    assert_eq!(loaded.to_record().unwrap().fields["views"], json!(1));
    // (The trap: a store that assumed UTC would find it expired by the zone's offset.)
    let naive = PostgresStore::from_pool(pool.clone())
        .time_zone("UTC")
        .prune_interval(None)
        .build()
        .await
        .unwrap();
    assert!(
        naive.get(&node_id).await.unwrap().is_none(),
        "in UTC, Node's New York wall clock looks five hours old"
    );

    // Rust writes a session with the same max-age; both rows carry the same wall clock.
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(Some(Duration::from_secs(60)));
    let mut record = Record {
        cookie,
        ..Record::default()
    };
    record.fields.insert("views".into(), json!(7));
    let rust_id = unique("rust-");
    store
        .set(&rust_id, RecordView::from(&record))
        .await
        .unwrap();
    let (node_expire, rust_expire) = (
        stored_expire(&pool, &node_id).await,
        stored_expire(&pool, &rust_id).await,
    );
    assert!(
        (node_expire - rust_expire).abs() <= 1.0,
        "Node wrote {node_expire}, Rust {rust_expire}"
    );
    // Node reads the Rust session.
    let r = http_get(node.port, "/get", Some(&cookie_for(&rust_id, "s")), &[]).await;
    assert_eq!(
        r.json(),
        json!({"views": 7}),
        "Node continues the Rust session"
    );

    drop(node);
    drop((store, naive));
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
