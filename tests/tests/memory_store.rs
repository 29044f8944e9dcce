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
        .run_with_admin()
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
    // Held, not only hidden: the expired records are gone from the tables.
    assert_eq!(store.stats().sessions, 300, "{:?}", store.stats());
    assert_eq!(store.ids().await.unwrap().len(), 300);
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
async fn capacity_bound_holds_and_the_newcomer_is_kept() {
    let store = MemoryStore::default().with_max_sessions(100);
    for i in 0..100 {
        put(&store, &format!("s{i:03}"), &record(Some(60_000), 0)).await;
    }
    for i in 0..500 {
        put(&store, &format!("n{i:03}"), &record(Some(3_600_000), 0)).await;
        assert!(store.stats().sessions <= 100, "{i}");
    }
    assert!(got(&store, "n499").await.is_some());
}

#[tokio::test]
async fn memory_goes_back_near_its_baseline_once_a_flood_has_expired() {
    // One shard step a millisecond: a full sweep cycle in 256 ms.
    let store = MemoryStore::default().with_sweep_interval(Duration::from_millis(256));
    let baseline = store.stats();
    for i in 0..20_000 {
        put(&store, &format!("flood{i}"), &record(Some(30), 0)).await;
    }
    let flooded = store.stats();
    assert!(flooded.bytes > baseline.bytes + 1_000_000, "{flooded:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No full sweep: the requests that follow take the due steps, a few each.
    for i in 0..40 {
        put(&store, &format!("after{i}"), &record(Some(60_000), 0)).await;
    }
    let after = store.stats();
    assert_eq!(after.sessions, 40, "{after:?}");
    assert!(
        after.bytes < baseline.bytes + 40 * 1024,
        "baseline {baseline:?}, flooded {flooded:?}, after {after:?}"
    );
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
async fn builders_configure_the_store_every_clone_shares() {
    let store = MemoryStore::default();
    let other = store.clone();
    for i in 0..100 {
        put(&store, &format!("s{i}"), &record(Some(60_000), i)).await;
    }
    let store = store
        .with_default_ttl(Duration::from_secs(60))
        .with_max_sessions(1000)
        .with_sweep_interval(Duration::from_secs(30));
    for i in 0..100 {
        for handle in [&store, &other] {
            let r = got(handle, &format!("s{i}")).await;
            assert_eq!(r.map(|r| r.fields["views"].clone()), Some(json!(i)), "s{i}");
        }
    }
    put(&store, "later", &record(Some(60_000), 7)).await;
    assert!(got(&other, "later").await.is_some());
    assert_eq!(other.len().await.unwrap(), 101);
    // The bound set through one handle holds for the other.
    let small = MemoryStore::default();
    let _configured = small.clone().with_max_sessions(10);
    for i in 0..50 {
        put(&small, &format!("x{i}"), &record(Some(60_000), 0)).await;
    }
    assert!(small.stats().sessions <= 10, "{:?}", small.stats());
}

mod flood {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tessera::{MemoryStore, Secret, Session, SessionData, SessionLayer};
    use tessera_tests::{Browser, send};

    #[derive(SessionData, Default)]
    struct Account {
        user: Option<String>,
    }

    async fn login(mut s: Session<Account>) -> &'static str {
        *s.user = Some("alice".to_owned());
        "in"
    }

    async fn me(s: Session<Account>) -> String {
        s.user.clone().unwrap_or_default()
    }

    #[tokio::test]
    async fn logged_in_sessions_survive_an_anonymous_flood_of_ten_times_the_capacity() {
        let store = MemoryStore::default().with_max_sessions(1000);
        // The seed's defaults: every anonymous visit is stored (`save_uninitialized`).
        let layer = SessionLayer::<Account>::new(
            Secret::new("a long random secret of 32 bytes or more").unwrap(),
        )
        .with_store(store.clone());
        let app = Router::new()
            .route("/login", get(login))
            .route("/me", get(me))
            .layer(layer);
        let mut users = Vec::new();
        for _ in 0..100 {
            let mut b = Browser::new(app.clone());
            b.get("/login").await;
            users.push(b);
        }
        for _ in 0..10_000 {
            send(&app, Request::get("/me").body(Body::empty()).unwrap()).await;
        }
        assert!(store.stats().sessions <= 1000, "{:?}", store.stats());
        let mut kept = 0;
        for b in &mut users {
            if b.get("/me").await.body == "alice" {
                kept += 1;
            }
        }
        assert_eq!(kept, 100, "logged-in sessions kept");
    }
}
