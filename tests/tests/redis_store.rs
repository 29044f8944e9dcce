//! tessera-redis against a real Redis (`REDIS_URL`) and a real Redis Cluster
//! (`REDIS_CLUSTER_URLS`, started by `.ci/run`): the conformance suite in both layouts,
//! connect-redis' wire format, bytes per patch, and an outage through a TCP proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tessera::{
    FieldChange, Patch, Record, RecordView, Secret, Session, SessionCookie, SessionData,
    SessionLayer, SessionOptions, SessionStore, StoreErrorPolicy,
};
use tessera_redis::{Layout, RedisStore};
use tessera_store_tests::{RawWriter, Suite};
use tessera_tests::jsongen::Gen;
use tessera_tests::proxy::TcpProxy;
use tessera_tests::services::{redis_cluster_urls, redis_store, redis_url, unavailable, unique};
use tessera_tests::{Browser, id_of};

async fn single(test: &str, layout: Layout) -> Option<RedisStore> {
    Some(redis_store(test).await?.with_layout(layout))
}

async fn cluster(test: &str, layout: Layout) -> Option<RedisStore> {
    let Some(urls) = redis_cluster_urls() else {
        unavailable(
            test,
            "REDIS_CLUSTER_URLS is not set (.ci/run starts a local cluster)",
        );
        return None;
    };
    match RedisStore::connect_cluster(&urls).await {
        Ok(store) => Some(
            store
                .with_prefix(format!("{}:", unique("tessera-test-")))
                .with_layout(layout),
        ),
        Err(e) => {
            unavailable(
                test,
                &format!("the Redis Cluster at {urls:?} is not usable: {e}"),
            );
            None
        }
    }
}

/// A command connection beside the store, for raw writes and checks.
#[derive(Clone)]
enum Raw {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn single() -> Self {
        let client = redis::Client::open(redis_url()).unwrap();
        Self::Single(client.get_multiplexed_async_connection().await.unwrap())
    }

    async fn cluster() -> Self {
        let client = redis::cluster::ClusterClient::new(redis_cluster_urls().unwrap()).unwrap();
        Self::Cluster(client.get_async_connection().await.unwrap())
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self.clone() {
            Self::Single(mut c) => cmd.query_async(&mut c).await.unwrap(),
            Self::Cluster(mut c) => cmd.query_async(&mut c).await.unwrap(),
        }
    }

    /// Writes raw text as the store's layout keeps it: the value of a text key, or the
    /// entries of a hash (a text that is not an object goes to the `cookie` field).
    fn writer(self, store: &RedisStore) -> RawWriter {
        let store = store.clone();
        Arc::new(move |id: String, text: Vec<u8>| {
            let (raw, key, layout) = (self.clone(), store.key(&id), store.layout());
            Box::pin(async move {
                if layout == Layout::ConnectRedis {
                    let _: () = raw
                        .query(redis::cmd("SET").arg(&key).arg(text).arg("EX").arg(60))
                        .await;
                    return;
                }
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&key);
                match serde_json::from_slice::<
                    std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>,
                >(&text)
                {
                    Ok(entries) if !entries.is_empty() => {
                        for (k, v) in entries {
                            cmd.arg(k).arg(v.get());
                        }
                    }
                    _ => {
                        cmd.arg("cookie").arg(text);
                    }
                }
                let _: () = raw.query(&cmd).await;
                let _: () = raw.query(redis::cmd("EXPIRE").arg(&key).arg(60)).await;
            })
        })
    }
}

async fn conformance(store: RedisStore, raw: Raw) {
    let precision = store.expiry_precision();
    let writer = raw.writer(&store);
    Suite::new(store)
        .expiry_precision(precision)
        .with_raw_writer(writer)
        .run_with_admin()
        .await
        .assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_keeps_the_contract_in_the_connect_redis_layout() {
    let test = "redis_store_keeps_the_contract_in_the_connect_redis_layout";
    if let Some(store) = single(test, Layout::ConnectRedis).await {
        conformance(store, Raw::single().await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_keeps_the_contract_in_the_hash_layout() {
    let test = "redis_store_keeps_the_contract_in_the_hash_layout";
    if let Some(store) = single(test, Layout::Hash).await {
        conformance(store, Raw::single().await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_keeps_the_contract_in_both_layouts() {
    let test = "redis_cluster_store_keeps_the_contract_in_both_layouts";
    for layout in [Layout::ConnectRedis, Layout::Hash] {
        if let Some(store) = cluster(test, layout).await {
            conformance(store, Raw::cluster().await).await;
        }
    }
}

fn record(max_age: Option<Duration>) -> Record {
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(max_age);
    let mut r = Record {
        cookie,
        ..Record::default()
    };
    r.fields.insert("views".into(), json!(1));
    r.fields.insert("name".into(), json!("Zoë/1"));
    r
}

#[tokio::test]
async fn the_connect_redis_layout_writes_what_connect_redis_writes() {
    let test = "the_connect_redis_layout_writes_what_connect_redis_writes";
    let Some(store) = single(test, Layout::ConnectRedis).await else {
        return;
    };
    let store = store.with_ttl(Duration::from_secs(500));
    let raw = Raw::single().await;
    // A 60 s cookie: the value is express-session's JSON, the TTL its seconds.
    let r = record(Some(Duration::from_secs(60)));
    store.set("a", RecordView::from(&r)).await.unwrap();
    let text: String = raw.query(redis::cmd("GET").arg(store.key("a"))).await;
    assert_eq!(text, r.to_json());
    assert!(
        text.starts_with(r#"{"cookie":{"originalMaxAge":60000,"expires":""#),
        "{text}"
    );
    let ttl: i64 = raw.query(redis::cmd("TTL").arg(store.key("a"))).await;
    assert!((59..=60).contains(&ttl), "{ttl}");
    // 1.5 s rounds up to 2 s, as connect-redis' Math.ceil does.
    let r = record(Some(Duration::from_millis(1500)));
    store.set("b", RecordView::from(&r)).await.unwrap();
    let ttl: i64 = raw.query(redis::cmd("TTL").arg(store.key("b"))).await;
    assert_eq!(ttl, 2);
    // A browser-session cookie gets the store's ttl.
    store
        .set("c", RecordView::from(&record(None)))
        .await
        .unwrap();
    let ttl: i64 = raw.query(redis::cmd("TTL").arg(store.key("c"))).await;
    assert!((499..=500).contains(&ttl), "{ttl}");
    // A touch is an EXPIRE: the TTL is renewed and the text left as it was.
    let before: String = raw.query(redis::cmd("GET").arg(store.key("b"))).await;
    let mut later = r.cookie.clone();
    later.set_max_age(Some(Duration::from_secs(90)));
    store.touch("b", tessera::Touch::new(&later)).await.unwrap();
    let ttl: i64 = raw.query(redis::cmd("TTL").arg(store.key("b"))).await;
    assert!((89..=90).contains(&ttl), "{ttl}");
    let after: String = raw.query(redis::cmd("GET").arg(store.key("b"))).await;
    assert_eq!(before, after);
    // A record written with an expired cookie is deleted, not written.
    let mut gone = record(None);
    gone.cookie.set_max_age_ms(Some(-5));
    store.set("a", RecordView::from(&gone)).await.unwrap();
    let exists: i64 = raw.query(redis::cmd("EXISTS").arg(store.key("a"))).await;
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn a_one_field_patch_of_a_10_kb_session_sends_under_2_percent_of_its_bytes_in_the_hash_layout()
 {
    let test = "a_one_field_patch_of_a_10_kb_session_sends_under_2_percent_of_its_bytes";
    let upstream = redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next());
    let Some(upstream) = upstream else {
        unavailable(test, "REDIS_URL has no host:port");
        return;
    };
    let proxy = TcpProxy::start(upstream).await;
    let Ok(store) = RedisStore::connect(&format!("redis://{}", proxy.addr)).await else {
        unavailable(test, &format!("Redis at {upstream} is not reachable"));
        return;
    };
    let store = store
        .with_prefix(format!("{}:", unique("tessera-test-")))
        .with_layout(Layout::Hash);
    let mut r = record(Some(Duration::from_secs(3600)));
    let chunk = "x".repeat(500);
    for i in 0..20 {
        r.fields
            .insert(format!("field{i:02}"), json!({"text": chunk, "n": i}));
    }
    let record_bytes = r.to_json().len();
    store.set("big", RecordView::from(&r)).await.unwrap();
    // What the layer sends for `views += 1`: the renewed cookie (attributes unchanged)
    // and one field.
    let changes = [FieldChange::set("views", json!(2))];
    // (The first patch on a connection may load the script into Redis.)
    let warm = [FieldChange::set("views", json!(1))];
    store
        .patch(
            "big",
            Patch::new(&r.cookie, &warm).with_cookie_attributes_changed(false),
        )
        .await
        .unwrap();
    let before = proxy.sent();
    let patch = Patch::new(&r.cookie, &changes).with_cookie_attributes_changed(false);
    store.patch("big", patch).await.unwrap();
    let sent = proxy.sent() - before;
    assert!(
        sent * 100 <= record_bytes as u64 * 2,
        "sent {sent} bytes for a one-field change of a {record_bytes}-byte record"
    );
    let loaded = store
        .get("big")
        .await
        .unwrap()
        .unwrap()
        .to_record()
        .unwrap();
    assert_eq!(loaded.fields["views"], json!(2));
    assert_eq!(loaded.fields["field07"], r.fields["field07"]);
    eprintln!(
        "hash layout: {sent} bytes sent for a one-field patch of a {record_bytes}-byte record"
    );
}

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

fn outage_app(store: RedisStore, policy: StoreErrorPolicy) -> Router {
    let options = SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false)
        .with_store_error_policy(policy);
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store)
        .with_options(options);
    Router::new()
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
        .layer(layer)
}

#[tokio::test]
async fn a_redis_outage_answers_by_the_policy_and_service_resumes_without_a_restart() {
    let test = "a_redis_outage_answers_by_the_policy_and_service_resumes_without_a_restart";
    let Some(upstream) = redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|a| a.to_socket_addrs().ok())
        .and_then(|mut a| a.next())
    else {
        unavailable(test, "REDIS_URL has no host:port");
        return;
    };
    let proxy = TcpProxy::start(upstream).await;
    let Ok(store) = RedisStore::connect(&format!("redis://{}", proxy.addr)).await else {
        unavailable(test, &format!("Redis at {upstream} is not reachable"));
        return;
    };
    let store = store
        .with_prefix(format!("{}:", unique("tessera-test-")))
        .with_timeout(Duration::from_millis(300));
    for policy in [
        StoreErrorPolicy::Fail,
        StoreErrorPolicy::ContinueWithoutSession,
    ] {
        let mut b = Browser::new(outage_app(store.clone(), policy));
        assert_eq!(b.get("/").await.body, "1");
        let id = id_of(b.cookie.as_ref().unwrap());
        proxy.cut();
        let r = b.get("/").await;
        match policy {
            StoreErrorPolicy::Fail => assert_eq!(r.status, 500, "{}", r.body),
            _ => assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "no session")),
        }
        proxy.restore();
        // The connection manager reconnects: the session is intact and counts on.
        let mut answer = String::new();
        for _ in 0..50 {
            let r = b.get("/").await;
            if r.status == 200 && r.body != "no session" {
                answer = r.body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answer, "2", "the session survived the outage");
        assert_eq!(id_of(b.cookie.as_ref().unwrap()), id);
    }
    // A write that fails is never a silent 200: load, then cut before the write.
    let store2 = store.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(|mut s: Session<Visit>| async move {
                *s.views += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
                s.views.to_string()
            }),
        )
        .layer(
            SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
                .with_store(store2)
                .with_options(SessionOptions::default().with_resave(false)),
        );
    let mut b = Browser::new(app);
    assert_eq!(b.get("/slow").await.body, "1");
    let cookie = b.cookie.clone().unwrap();
    let slow = {
        let app = b.app.clone();
        tokio::spawn(async move {
            tessera_tests::send(
                &app,
                axum::http::Request::get("/slow")
                    .header("cookie", cookie)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut();
    let r = slow.await.unwrap();
    proxy.restore();
    assert_eq!(r.status, 500, "a failed write is reported: {}", r.body);
    assert_eq!(r.body, "session could not be saved");
}

#[tokio::test]
async fn redis_store_counts_lists_and_clears_only_its_own_sessions() {
    use tessera::SessionAdmin;
    let test = "redis_store_counts_lists_and_clears_only_its_own_sessions";
    let mut stores = Vec::new();
    for layout in [Layout::ConnectRedis, Layout::Hash] {
        stores.extend(single(test, layout).await);
        if redis_cluster_urls().is_some() {
            stores.extend(cluster(test, layout).await);
        }
    }
    for store in stores {
        let other = store
            .clone()
            .with_prefix(format!("{}:", unique("tessera-other-")));
        other
            .set("x", RecordView::from(&record(None)))
            .await
            .unwrap();
        for id in ["a", "b", "c"] {
            store
                .set(id, RecordView::from(&record(None)))
                .await
                .unwrap();
        }
        assert_eq!(store.len().await.unwrap(), 3, "{store:?}");
        let mut ids = store.ids().await.unwrap();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
        store.clear().await.unwrap();
        assert!(store.is_empty().await.unwrap());
        assert_eq!(
            other.len().await.unwrap(),
            1,
            "another prefix is left alone"
        );
        other.clear().await.unwrap();
    }
}

#[tokio::test]
async fn with_touch_after_a_read_only_request_renews_nothing_and_without_it_renews_the_ttl() {
    let test = "with_touch_after_a_read_only_request_renews_nothing_and_without_it_renews_the_ttl";
    for layout in [Layout::ConnectRedis, Layout::Hash] {
        let Some(store) = single(test, layout).await else {
            return;
        };
        let raw = Raw::single().await;
        for (after, renewed) in [(Some(Duration::from_secs(30)), false), (None, true)] {
            let options = SessionOptions::default()
                .with_resave(false)
                .with_save_uninitialized(false)
                .with_max_age(Some(Duration::from_secs(60)))
                .unwrap()
                .with_touch_after(after);
            let layer =
                SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
                    .with_store(store.clone())
                    .with_options(options);
            let app = Router::new()
                .route(
                    "/",
                    get(|mut s: Session<Visit>| async move {
                        *s.views += 1;
                        s.views.to_string()
                    }),
                )
                .route(
                    "/read",
                    get(|s: Session<Visit>| async move { s.views.to_string() }),
                )
                .layer(layer);
            let mut b = Browser::new(app);
            b.get("/").await;
            let key = store.key(&id_of(b.cookie.as_ref().unwrap()));
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(b.get("/read").await.body, "1");
            // Whole seconds in the text layout: 60 s renewed, 58.5 s (rounded) if not.
            let pttl: i64 = raw.query(redis::cmd("PTTL").arg(&key)).await;
            assert_eq!(
                pttl > 59_000,
                renewed,
                "{layout:?}, touch_after {after:?}: {pttl} ms left"
            );
        }
    }
}

#[tokio::test]
async fn the_patch_script_writes_exactly_what_patch_apply_to_json_writes() {
    let test = "the_patch_script_writes_exactly_what_patch_apply_to_json_writes";
    let Some(store) = single(test, Layout::ConnectRedis).await else {
        return;
    };
    let raw = Raw::single().await;
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(Some(Duration::from_secs(600)));
    let stored_cookie = cookie.to_json();
    let mut g = Gen::new(0x2545_f491_4f6c_dd1d);
    for round in 0..1500 {
        // A stored text: the cookie somewhere among the entries, keys maybe repeated,
        // some with escapes (the script declines those; the store falls back).
        let (text, changes) = g.record_and_changes(&stored_cookie);
        let id = format!("gen-{round}");
        let _: () = raw
            .query(
                redis::cmd("SET")
                    .arg(store.key(&id))
                    .arg(&text)
                    .arg("EX")
                    .arg(60),
            )
            .await;
        let patch = Patch::new(&cookie, &changes);
        let expected = patch.apply_to_json(text.as_bytes()).unwrap();
        assert_eq!(
            store.patch(&id, patch).await.unwrap(),
            tessera::Outcome::Applied
        );
        let written: Vec<u8> = raw.query(redis::cmd("GET").arg(store.key(&id))).await;
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&expected),
            "round {round}: {text} with {changes:?}"
        );
    }
}

/// A record tied to `user`, living `days` days.
fn tied(user: &str, days: u64) -> Record {
    let mut r = record(Some(Duration::from_secs(days * 86_400)));
    r.fields.insert(
        tessera::META_KEY.into(),
        json!({"created": 1_796_316_000_000_i64, "user": user}),
    );
    r
}

#[tokio::test]
async fn a_users_set_lives_as_long_as_its_longest_session_and_is_not_counted_as_one() {
    use tessera::SessionAdmin;
    let test = "a_users_set_lives_as_long_as_its_longest_session_and_is_not_counted_as_one";
    let mut stores = Vec::new();
    for layout in [Layout::ConnectRedis, Layout::Hash] {
        stores.extend(single(test, layout).await.map(|s| (s, false)));
        if redis_cluster_urls().is_some() {
            stores.extend(cluster(test, layout).await.map(|s| (s, true)));
        }
    }
    const DAY_MS: i64 = 86_400_000;
    for (store, on_cluster) in stores {
        let raw = if on_cluster {
            Raw::cluster().await
        } else {
            Raw::single().await
        };
        let user = unique("user");
        let key = store.user_key(&user);
        let pttl = || {
            let (raw, cmd) = (raw.clone(), redis::cmd("PTTL").arg(&key).clone());
            async move { raw.query::<i64>(&cmd).await }
        };
        let near = |ms: i64, days: i64| (days * DAY_MS - 5_000..=days * DAY_MS).contains(&ms);
        let three = tied(&user, 3);
        store.set("a", RecordView::from(&three)).await.unwrap();
        assert!(near(pttl().await, 3), "{store:?}: {} ms", pttl().await);
        // A renewal keeps the set alive as long as the renewed session...
        let five = tied(&user, 5).cookie;
        store
            .touch("a", tessera::Touch::new(&five).with_user(Some(&user)))
            .await
            .unwrap();
        assert!(near(pttl().await, 5), "{store:?}: {} ms", pttl().await);
        // ...and so does a patch; a shorter session never shortens it.
        let seven = tied(&user, 7).cookie;
        let change = [FieldChange::set("views", json!(2))];
        store
            .patch("a", Patch::new(&seven, &change).with_user(Some(&user)))
            .await
            .unwrap();
        assert!(near(pttl().await, 7), "{store:?}: {} ms", pttl().await);
        store
            .set("b", RecordView::from(&tied(&user, 2)))
            .await
            .unwrap();
        assert!(near(pttl().await, 7), "{store:?}: {} ms", pttl().await);
        // The set is not a session.
        assert_eq!(store.len().await.unwrap(), 2, "{store:?}");
        assert_eq!(store.user_sessions(&user).await.unwrap().len(), 2);
        store.clear().await.unwrap();
        assert_eq!(pttl().await, -2, "clear leaves the user's set behind");
    }
}
