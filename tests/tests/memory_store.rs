//! MemoryStore: the conformance suite, plus its own bounds (sweep, default TTL, capacity).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tessera::{
    FieldChange, MemoryStore, Outcome, Patch, Record, RecordView, SessionAdmin, SessionCookie,
    SessionStore, Touch,
};

async fn put(store: &MemoryStore, id: &str, record: &Record) {
    store.set(id, RecordView::from(record)).await.unwrap();
}

async fn got(store: &MemoryStore, id: &str) -> Option<Record> {
    store.get(id).await.unwrap().map(|l| l.to_record().unwrap())
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    tessera_store_tests::Suite::new(MemoryStore::default())
        .run()
        .await
        .assert_passed();
}

#[tokio::test]
async fn sweep_removes_expired_records_and_len_counts_live_ones() {
    let store = MemoryStore::default();
    for i in 0..20 {
        put(&store, &format!("short{i}"), &record(Some(20), i)).await;
        put(&store, &format!("long{i}"), &record(Some(60_000), i)).await;
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
        put(&store, &format!("old{i}"), &record(Some(5), i)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Each write past the interval sweeps one shard; writing for a while sweeps them all.
    // (256 shards: more writes than shards, each at least one step apart.)
    for i in 0..300 {
        put(&store, &format!("new{i}"), &record(Some(60_000), i)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ids = store.ids().await.unwrap();
    assert_eq!(ids.len(), 300);
    assert!(format!("{store:?}").contains("sessions: 300"), "{store:?}");
}

#[tokio::test]
async fn browser_session_records_expire_after_the_default_ttl() {
    let store = MemoryStore::default().with_default_ttl(Duration::from_millis(30));
    put(&store, "a", &record(None, 1)).await;
    assert!(got(&store, "a").await.is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(got(&store, "a").await.is_none());
}

#[tokio::test]
async fn capacity_bound_evicts_the_sessions_closest_to_expiry() {
    let store = MemoryStore::default().with_max_sessions(100);
    for i in 0..100 {
        // Later ids live longer.
        put(
            &store,
            &format!("s{i:03}"),
            &record(Some(60_000 + i64::from(i) * 1000), 0),
        )
        .await;
    }
    put(&store, "newcomer", &record(Some(3_600_000), 0)).await;
    let len = store.len().await.unwrap();
    assert!(len <= 100, "{len}");
    assert!(got(&store, "newcomer").await.is_some());
    assert!(
        got(&store, "s000").await.is_none(),
        "closest to expiry evicted first"
    );
    assert!(got(&store, "s099").await.is_some());
}

#[tokio::test]
async fn writing_an_already_expired_record_deletes_it() {
    let store = MemoryStore::default();
    put(&store, "x", &record(Some(60_000), 1)).await;
    put(&store, "x", &record(Some(-1), 1)).await;
    assert!(got(&store, "x").await.is_none());
    assert_eq!(store.len().await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_all_land() {
    let store = MemoryStore::default();
    put(&store, "s", &record(Some(60_000), 0)).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let cookie = record(Some(60_000), 0).cookie;
            let changes = [FieldChange::set(format!("f{i}"), json!(i))];
            store
                .patch("s", Patch::new(&cookie, &changes))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = got(&store, "s").await.unwrap();
    assert_eq!(r.fields.len(), 33);
}

#[tokio::test]
async fn touch_renews_only_the_expiry_and_never_creates_a_record() {
    let store = MemoryStore::default();
    let r = record(Some(60_000), 7);
    put(&store, "t", &r).await;
    let mut renewed = r.cookie.clone();
    renewed.set_max_age(Some(Duration::from_secs(120)));
    assert_eq!(
        store.touch("t", Touch::new(&renewed)).await.unwrap(),
        Outcome::Applied
    );
    let stored = got(&store, "t").await.unwrap();
    assert_eq!(stored.fields, r.fields);
    assert_eq!(
        stored.cookie.original_max_age_ms(),
        Some(60_000),
        "attributes kept"
    );
    let left = stored.cookie.max_age().unwrap();
    assert!(left > Duration::from_secs(100), "expiry renewed: {left:?}");
    assert_eq!(
        store.touch("missing", Touch::new(&renewed)).await.unwrap(),
        Outcome::Missing
    );
    assert!(got(&store, "missing").await.is_none());
}

#[tokio::test]
async fn an_empty_patch_with_a_changed_cookie_stores_the_new_cookie_and_keeps_fields() {
    let store = MemoryStore::default();
    let r = record(Some(60_000), 7);
    put(&store, "p", &r).await;
    let mut changed = r.cookie.clone();
    changed.set_max_age(Some(Duration::from_secs(120)));
    store.patch("p", Patch::new(&changed, &[])).await.unwrap();
    let stored = got(&store, "p").await.unwrap();
    assert_eq!(stored.fields, r.fields);
    assert_eq!(stored.cookie.original_max_age_ms(), Some(120_000));
}

#[tokio::test]
async fn builders_keep_the_sessions_already_stored() {
    let store = MemoryStore::default();
    for i in 0..100 {
        put(&store, &format!("s{i}"), &record(Some(60_000), i)).await;
    }
    let store = store
        .with_default_ttl(Duration::from_secs(60))
        .with_max_sessions(1000);
    for i in 0..100 {
        let r = got(&store, &format!("s{i}")).await;
        assert_eq!(r.map(|r| r.fields["views"].clone()), Some(json!(i)), "s{i}");
    }
    assert_eq!(store.len().await.unwrap(), 100);
}
