//! MemoryStore: the conformance suite, plus its own bounds (sweep, default TTL, capacity).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tessera::{MemoryStore, Record, SessionCookie, SessionStore};

fn record(max_age_ms: Option<i64>, views: u64) -> Record {
    let mut cookie = SessionCookie::default();
    cookie.set_max_age_ms(max_age_ms);
    let mut r = Record {
        cookie,
        ..Record::default()
    };
    r.fields.insert("views".into(), json!(views));
    r
}

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    tessera_tests::conformance::run(&MemoryStore::default()).await;
}

#[tokio::test]
async fn sweep_removes_expired_records_and_len_counts_live_ones() {
    let store = MemoryStore::default();
    for i in 0..20 {
        store
            .set(&format!("short{i}"), &record(Some(20), i))
            .await
            .unwrap();
        store
            .set(&format!("long{i}"), &record(Some(60_000), i))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(store.sweep(), 20);
    assert_eq!(store.len().await.unwrap(), 20);
    let mut ids = store.ids().await.unwrap();
    ids.sort();
    assert!(ids.iter().all(|id| id.starts_with("long")));
    store.clear().await.unwrap();
    assert_eq!(store.len().await.unwrap(), 0);
}

#[tokio::test]
async fn sweeping_happens_as_the_store_is_written() {
    let store = MemoryStore::default().with_sweep_interval(Duration::from_millis(16));
    for i in 0..200 {
        store
            .set(&format!("old{i}"), &record(Some(5), i))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Each write past the interval sweeps one shard; writing for a while sweeps them all.
    // (256 shards: more writes than shards, each at least one step apart.)
    for i in 0..300 {
        store
            .set(&format!("new{i}"), &record(Some(60_000), i))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ids = store.ids().await.unwrap();
    assert_eq!(ids.len(), 300);
    assert!(format!("{store:?}").contains("sessions: 300"), "{store:?}");
}

#[tokio::test]
async fn browser_session_records_expire_after_the_default_ttl() {
    let store = MemoryStore::default().with_default_ttl(Duration::from_millis(30));
    store.set("a", &record(None, 1)).await.unwrap();
    assert!(store.get("a").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.get("a").await.unwrap().is_none());
}

#[tokio::test]
async fn capacity_bound_evicts_the_sessions_closest_to_expiry() {
    let store = MemoryStore::default().with_max_sessions(100);
    for i in 0..100 {
        // Later ids live longer.
        store
            .set(
                &format!("s{i:03}"),
                &record(Some(60_000 + i64::from(i) * 1000), 0),
            )
            .await
            .unwrap();
    }
    store
        .set("newcomer", &record(Some(3_600_000), 0))
        .await
        .unwrap();
    let len = store.len().await.unwrap();
    assert!(len <= 100, "{len}");
    assert!(store.get("newcomer").await.unwrap().is_some());
    assert!(
        store.get("s000").await.unwrap().is_none(),
        "closest to expiry evicted first"
    );
    assert!(store.get("s099").await.unwrap().is_some());
}

#[tokio::test]
async fn writing_an_already_expired_record_deletes_it() {
    let store = MemoryStore::default();
    store.set("x", &record(Some(60_000), 1)).await.unwrap();
    store.set("x", &record(Some(-1), 1)).await.unwrap();
    assert!(store.get("x").await.unwrap().is_none());
    assert_eq!(store.len().await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_all_land() {
    let store = MemoryStore::default();
    store.set("s", &record(Some(60_000), 0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let patch = tessera::Patch {
                cookie: record(Some(60_000), 0).cookie,
                changes: vec![(format!("f{i}"), Some(json!(i)))],
            };
            store.patch("s", &patch).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = store.get("s").await.unwrap().unwrap();
    assert_eq!(r.fields.len(), 33);
}

#[tokio::test]
async fn touch_with_a_changed_cookie_stores_the_new_cookie_and_keeps_fields() {
    let store = MemoryStore::default();
    let r = record(Some(60_000), 7);
    store.set("t", &r).await.unwrap();
    // The same cookie: only the expiry moves.
    let mut same = r.cookie.clone();
    same.set_max_age(Some(std::time::Duration::from_secs(60)));
    store.touch("t", &same).await.unwrap();
    let got = store.get("t").await.unwrap().unwrap();
    assert_eq!(got.fields, r.fields);
    assert_eq!(
        got.cookie.original_max_age_ms(),
        r.cookie.original_max_age_ms()
    );
    // Different attributes are stored.
    let mut changed = same.clone();
    changed.set_max_age(Some(std::time::Duration::from_secs(120)));
    store.touch("t", &changed).await.unwrap();
    let got = store.get("t").await.unwrap().unwrap();
    assert_eq!(got.fields, r.fields);
    assert_eq!(got.cookie.original_max_age_ms(), Some(120_000));
    // Touching a missing session does not create it.
    store.touch("missing", &changed).await.unwrap();
    assert!(store.get("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn builders_keep_the_sessions_already_stored() {
    let store = MemoryStore::default();
    for i in 0..100 {
        store
            .set(&format!("s{i}"), &record(Some(60_000), i))
            .await
            .unwrap();
    }
    let store = store
        .with_default_ttl(Duration::from_secs(60))
        .with_max_sessions(1000);
    for i in 0..100 {
        let r = store.get(&format!("s{i}")).await.unwrap();
        assert_eq!(r.map(|r| r.fields["views"].clone()), Some(json!(i)), "s{i}");
    }
    assert_eq!(store.len().await.unwrap(), 100);
}
