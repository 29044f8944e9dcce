//! Node and Rust on one store: sessions made by the real express-session (with
//! connect-redis or connect-pg-simple) continue in Tessera, and the other way round,
//! as during a migration where both serve the same users behind one load balancer.
//!
//! Needs Node (`TESSERA_EXPRESS_SCRIPT`, see `.ci/run`), Redis and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::{Value, json};
use tessera::{
    HmacSigner, LoadedRecord, Record, RecordView, Secret, Secrets, Session, SessionCookie,
    SessionData, SessionLayer, SessionOptions, SessionStore, Signer,
};
use tessera_postgres::PostgresStore;
use tessera_redis::RedisStore;
use tessera_tests::node::{HttpReply, NodeApp, http_get, script};
use tessera_tests::services::{database_url, pg_client, redis_url, unavailable, unique};
use tokio_postgres::Client;

/// The cookie express-session sends for `id` under `secret`.
fn cookie_for(id: &str, secret: &str) -> String {
    let signed = HmacSigner.sign(id, &Secret::short_for_migration(secret).unwrap());
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
async fn stored_expire(db: &Client, sid: &str) -> f64 {
    db.query_one(
        "SELECT extract(epoch FROM expire)::float8 FROM \"session\" WHERE sid = $1",
        &[&sid],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn node_and_rust_agree_on_expiry_when_the_database_time_zone_is_not_utc() {
    let test = "node_and_rust_agree_on_expiry_when_the_database_time_zone_is_not_utc";
    let script = match script() {
        Ok(s) => s,
        Err(why) => return unavailable(test, &why),
    };
    let admin = match pg_client(&database_url()).await {
        Ok(client) => client,
        Err(e) => return unavailable(test, &format!("PostgreSQL is not reachable: {e}")),
    };
    let db = unique("tessera_tz_");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{db}\""))
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{db}\" SET timezone TO 'America/New_York'"
        ))
        .await
        .unwrap();
    let url = with_database(&database_url(), &db);
    let pool = pg_client(&url).await.unwrap();
    let store = PostgresStore::from_url(&url)
        .unwrap()
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
    let naive = PostgresStore::from_url(&url)
        .unwrap()
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
    drop((store, naive, pool));
    admin
        .batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// One store, both sides.

/// The shared store of a test: Redis in connect-redis' layout, or PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Redis,
    Pg,
}

/// A fresh namespace on a store (a Redis prefix, a PostgreSQL table), reachable from both
/// sides.
struct Shared {
    kind: Kind,
    /// The Redis prefix, or the table name.
    name: String,
    redis: Option<RedisStore>,
    pg: Option<PostgresStore>,
}

impl Shared {
    async fn open(kind: Kind, test: &str) -> Option<Self> {
        if let Err(why) = script() {
            unavailable(test, &why);
            return None;
        }
        match kind {
            Kind::Redis => {
                let name = format!("{}:", unique("tessera-handoff-"));
                match RedisStore::connect(&redis_url()).await {
                    Ok(store) => Some(Self {
                        kind,
                        redis: Some(store.with_prefix(name.clone())),
                        pg: None,
                        name,
                    }),
                    Err(e) => {
                        unavailable(test, &format!("Redis is not reachable: {e}"));
                        None
                    }
                }
            }
            Kind::Pg => {
                let name = unique("tessera_handoff_");
                let builder = PostgresStore::from_url(&database_url()).unwrap();
                let store = match builder
                    .table(&name)
                    .create_table_if_missing(true)
                    .prune_interval(None)
                    .build()
                    .await
                {
                    Ok(store) => store,
                    Err(e) => {
                        unavailable(test, &format!("PostgreSQL is not reachable: {e}"));
                        return None;
                    }
                };
                Some(Self {
                    kind,
                    name,
                    redis: None,
                    pg: Some(store),
                })
            }
        }
    }

    /// Node's flags for this store.
    fn node_flags(&self) -> Vec<String> {
        match self.kind {
            Kind::Redis => vec![
                "--store".into(),
                "redis".into(),
                "--redis-url".into(),
                redis_url(),
                "--prefix".into(),
                self.name.clone(),
            ],
            Kind::Pg => vec![
                "--store".into(),
                "pg".into(),
                "--pg-url".into(),
                database_url(),
                "--table".into(),
                self.name.clone(),
            ],
        }
    }

    /// The stored text of `id`.
    async fn text(&self, id: &str) -> Option<String> {
        let loaded = match self.kind {
            Kind::Redis => self.redis.as_ref().unwrap().get(id).await.unwrap(),
            Kind::Pg => self.pg.as_ref().unwrap().get(id).await.unwrap(),
        }?;
        Some(String::from_utf8(loaded.text().unwrap().to_vec()).unwrap())
    }

    /// Seconds left before the store drops `id`.
    async fn ttl(&self, id: &str) -> f64 {
        let deadline = match self.kind {
            Kind::Redis => self.redis.as_ref().unwrap().get(id).await.unwrap(),
            Kind::Pg => self.pg.as_ref().unwrap().get(id).await.unwrap(),
        }
        .and_then(|l| l.deadline())
        .expect("a live session with a deadline");
        deadline
            .duration_since(SystemTime::now())
            .map_or(0.0, |d| d.as_secs_f64())
    }

    async fn drop_namespace(self) {
        if let Some(store) = &self.pg {
            pg_client(&database_url())
                .await
                .unwrap()
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", store.table()))
                .await
                .unwrap();
        }
        if let Some(store) = &self.redis {
            use tessera::SessionAdmin;
            store.clear().await.unwrap();
        }
    }
}

/// The Rust side: a struct that declares only `views` and `user`; every other stored key
/// is Node's, and must survive Rust's writes byte for byte.
#[derive(SessionData, Default)]
struct Shop {
    views: u64,
    user: Option<String>,
}

fn rust_router(options: SessionOptions, secrets: Secrets, store: impl SessionStore) -> Router {
    async fn state(s: &Session<Shop>) -> Value {
        json!({"views": *s.views, "user": *s.user, "id": s.id(), "tied": s.user()})
    }
    let layer = SessionLayer::<Shop>::new(secrets)
        .with_store(store)
        .with_options(options);
    Router::new()
        .route(
            "/views",
            get(|mut s: Session<Shop>| async move {
                *s.views += 1;
                axum::Json(state(&s).await)
            }),
        )
        .route(
            "/get",
            get(|s: Session<Shop>| async move { axum::Json(state(&s).await) }),
        )
        .route(
            "/login",
            get(
                |mut s: Session<Shop>, Query(q): Query<Vec<(String, String)>>| async move {
                    s.rotate_id().await.unwrap();
                    let name = q.into_iter().next().map(|(_, v)| v);
                    if let Some(name) = &name {
                        s.set_user(name.clone());
                    }
                    s.user.set(name);
                    axum::Json(state(&s).await)
                },
            ),
        )
        .route(
            "/regenerate",
            get(|mut s: Session<Shop>| async move {
                s.regenerate().await.unwrap();
                axum::Json(state(&s).await)
            }),
        )
        .route(
            "/destroy",
            get(|mut s: Session<Shop>| async move {
                s.destroy().await.unwrap();
                "bye"
            }),
        )
        .layer(layer)
}

/// The Rust side on TCP, with `flags` as in express_compat (`--secret`, `--max-age`,
/// `--rolling`, `--resave`).
async fn start_rust(shared: &Shared, flags: &[&str]) -> u16 {
    let mut options = SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false);
    let mut secrets = Vec::new();
    let mut args = flags.iter();
    while let Some(flag) = args.next() {
        match *flag {
            "--secret" => secrets.push(Secret::short_for_migration(args.next().unwrap()).unwrap()),
            "--max-age" => {
                let ms: u64 = args.next().unwrap().parse().unwrap();
                options = options
                    .with_max_age(Some(Duration::from_millis(ms)))
                    .unwrap();
            }
            "--rolling" => options = options.with_rolling(true),
            "--resave" => options = options.with_resave(true),
            other => panic!("unknown flag {other}"),
        }
    }
    let secrets = Secrets::new(secrets).unwrap();
    let app = match shared.kind {
        Kind::Redis => rust_router(options, secrets, shared.redis.clone().unwrap()),
        Kind::Pg => rust_router(options, secrets, shared.pg.clone().unwrap()),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn start_node(shared: &Shared, flags: &[&str]) -> NodeApp {
    let mut args = shared.node_flags();
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    NodeApp::start(&script().unwrap(), &args).await
}

/// The id inside a `connect.sid=…` pair.
fn id_of(cookie: &str) -> String {
    tessera_tests::id_of(cookie)
}

/// The JSON text of `key` in a stored text.
fn entry(text: &str, key: &str) -> Option<String> {
    let loaded = LoadedRecord::from_json(text.as_bytes().to_vec()).unwrap();
    loaded
        .field_json(key)
        .map(|b| String::from_utf8(b.into_owned()).unwrap())
}

/// Node makes the session, Rust continues it, Node reads Rust's change: nested and
/// unicode values intact, Node's keys kept byte for byte.
async fn node_to_rust(kind: Kind) {
    let test = format!("node_to_rust on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    let node = start_node(&shared, &["--secret", "s"]).await;
    let rust = start_rust(&shared, &["--secret", "s"]).await;
    let nested = r#"{"a":[1,{"b":"Zoë 🦀 \"q\" /"}],"n":null}"#;
    let path = format!(
        "/set?profile={}&views=1&title=%22%C3%A9t%C3%A9%2F2024%22",
        urlencode(nested)
    );
    let r = http_get(node.port, &path, None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie().expect("Node sent a cookie");
    let id = id_of(&cookie);
    let before = shared.text(&id).await.expect("Node stored the session");
    let r = http_get(rust, "/views", Some(&cookie), &[]).await;
    assert_eq!(
        r.json()["views"],
        2,
        "Rust continued Node's session: {}",
        r.body
    );
    let after = shared.text(&id).await.unwrap();
    for key in ["profile", "title"] {
        assert_eq!(
            entry(&after, key),
            entry(&before, key),
            "`{key}` kept byte for byte:\n{before}\n{after}"
        );
    }
    let r = http_get(node.port, "/get", Some(&cookie), &[]).await;
    let data = r.json();
    assert_eq!(data["views"], 2, "Node sees Rust's change");
    assert_eq!(data["title"], "été/2024");
    assert_eq!(
        data["profile"],
        serde_json::from_str::<Value>(nested).unwrap()
    );
    shared.drop_namespace().await;
}

/// Rust makes the session (and a login rotates its id), Node continues it, Rust reads
/// Node's change.
async fn rust_to_node(kind: Kind) {
    let test = format!("rust_to_node on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    let node = start_node(&shared, &["--secret", "s"]).await;
    let rust = start_rust(&shared, &["--secret", "s"]).await;
    let r = http_get(rust, "/views", None, &[]).await;
    let cookie = r.cookie().unwrap();
    let r = http_get(
        rust,
        "/login?user=Zo%C3%AB%20%F0%9F%A6%80",
        Some(&cookie),
        &[],
    )
    .await;
    let cookie = r.cookie().expect("a rotated cookie");
    let r = http_get(node.port, "/get", Some(&cookie), &[]).await;
    let mut seen = r.json();
    // Tessera's own entry (`set_user` at the login) is one more key to Node.
    let meta = seen
        .as_object_mut()
        .unwrap()
        .remove("_tessera")
        .expect("Node loads Tessera's entry");
    assert_eq!(meta["user"], "Zoë 🦀", "{meta}");
    assert_eq!(
        seen,
        json!({"views": 1, "user": "Zoë 🦀"}),
        "Node reads Rust's session"
    );
    let r = http_get(
        node.port,
        "/set?views=5&cart=%5B%22tea%22%5D",
        Some(&cookie),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = http_get(rust, "/get", Some(&cookie), &[]).await;
    assert_eq!(r.json()["views"], 5, "Rust sees Node's change");
    assert_eq!(
        r.json()["tied"],
        "Zoë 🦀",
        "Node's write kept the user tie: {}",
        r.body
    );
    let r = http_get(rust, "/views", Some(&cookie), &[]).await;
    assert_eq!(r.json()["views"], 6);
    let r = http_get(node.port, "/get", Some(&cookie), &[]).await;
    let mut seen = r.json();
    let kept = seen.as_object_mut().unwrap().remove("_tessera");
    assert_eq!(
        kept,
        Some(meta),
        "Node and Rust writes kept Tessera's entry intact"
    );
    assert_eq!(seen, json!({"views": 6, "user": "Zoë 🦀", "cart": ["tea"]}));
    shared.drop_namespace().await;
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The secret a `Set-Cookie` value was signed with, among `secrets`.
fn signed_with<'a>(cookie: &str, secrets: &[&'a str]) -> Option<&'a str> {
    let id = id_of(cookie);
    secrets
        .iter()
        .copied()
        .find(|s| cookie_for(&id, s) == cookie.split(';').next().unwrap_or_default())
}

/// One side signs with `old`; the other verifies `[new, old]` and signs again with `new`.
async fn secret_rotation(kind: Kind) {
    let test = format!("secret_rotation on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    let rotate = ["--secret", "new", "--secret", "old", "--max-age", "60000"];
    let old_only = ["--secret", "old", "--max-age", "60000"];
    // Node signs with old; Rust reads it and re-signs with new.
    let node = start_node(&shared, &old_only).await;
    let rust = start_rust(&shared, &rotate).await;
    let r = http_get(node.port, "/views", None, &[]).await;
    let cookie = r.cookie().unwrap();
    assert_eq!(signed_with(&cookie, &["new", "old"]), Some("old"));
    let r = http_get(rust, "/views", Some(&cookie), &[]).await;
    assert_eq!(r.json()["views"], 2, "Rust verified the old signature");
    let resent = r
        .cookie()
        .expect("a modified session with max-age is sent again");
    assert_eq!(signed_with(&resent, &["new", "old"]), Some("new"));
    assert_eq!(id_of(&resent), id_of(&cookie));
    // Rust signs with old; Node reads it and re-signs with new.
    let node = start_node(&shared, &rotate).await;
    let rust = start_rust(&shared, &old_only).await;
    let r = http_get(rust, "/views", None, &[]).await;
    let cookie = r.cookie().unwrap();
    assert_eq!(signed_with(&cookie, &["new", "old"]), Some("old"));
    let r = http_get(node.port, "/views", Some(&cookie), &[]).await;
    assert_eq!(r.json()["views"], 2, "Node verified the old signature");
    let resent = r.cookie().unwrap();
    assert_eq!(signed_with(&resent, &["new", "old"]), Some("new"));
    shared.drop_namespace().await;
}

/// regenerate, destroy and logout on one side are seen on the other.
async fn regenerate_and_destroy_cross_over(kind: Kind) {
    let test = format!("regenerate_and_destroy on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    let node = start_node(&shared, &["--secret", "s"]).await;
    let rust = start_rust(&shared, &["--secret", "s"]).await;
    let fresh = |r: &HttpReply| r.json()["views"] == 0 || r.json() == json!({});
    // Node regenerates a Rust session: the old cookie no longer works on Rust.
    let cookie = http_get(rust, "/views", None, &[]).await.cookie().unwrap();
    let r = http_get(node.port, "/regenerate", Some(&cookie), &[]).await;
    let regenerated = r.cookie().unwrap();
    assert!(fresh(&http_get(rust, "/get", Some(&cookie), &[]).await));
    assert!(fresh(
        &http_get(rust, "/get", Some(&regenerated), &[]).await
    ));
    // Rust regenerates a Node session: the old cookie no longer works on Node.
    let cookie = http_get(node.port, "/views", None, &[])
        .await
        .cookie()
        .unwrap();
    http_get(rust, "/regenerate", Some(&cookie), &[]).await;
    assert!(fresh(
        &http_get(node.port, "/get", Some(&cookie), &[]).await
    ));
    // Node's logout ends the session for Rust, and Rust's for Node.
    let cookie = http_get(rust, "/views", None, &[]).await.cookie().unwrap();
    http_get(node.port, "/destroy", Some(&cookie), &[]).await;
    assert!(fresh(&http_get(rust, "/get", Some(&cookie), &[]).await));
    let cookie = http_get(node.port, "/views", None, &[])
        .await
        .cookie()
        .unwrap();
    http_get(rust, "/destroy", Some(&cookie), &[]).await;
    assert!(fresh(
        &http_get(node.port, "/get", Some(&cookie), &[]).await
    ));
    shared.drop_namespace().await;
}

/// The store's expiry agrees within a second whichever side wrote, with and without
/// max-age, and rolling and resave renew it alike.
async fn expiry_agrees(kind: Kind) {
    let test = format!("expiry_agrees on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    for flags in [
        &["--secret", "s", "--max-age", "60000"][..],
        &["--secret", "s"][..],
        &["--secret", "s", "--max-age", "60000", "--rolling"][..],
        &["--secret", "s", "--max-age", "60000", "--resave"][..],
    ] {
        let node = start_node(&shared, flags).await;
        let rust = start_rust(&shared, flags).await;
        let n = http_get(node.port, "/views", None, &[])
            .await
            .cookie()
            .unwrap();
        let r = http_get(rust, "/views", None, &[]).await.cookie().unwrap();
        let (tn, tr) = (shared.ttl(&id_of(&n)).await, shared.ttl(&id_of(&r)).await);
        assert!(
            (tn - tr).abs() <= 1.0,
            "{flags:?}: Node {tn} s, Rust {tr} s"
        );
        // A read-only request on the other side renews each the same way, and sends a
        // cookie (or not) the same way.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (before_n, before_r) = (shared.ttl(&id_of(&n)).await, shared.ttl(&id_of(&r)).await);
        let on_rust = http_get(rust, "/get", Some(&n), &[]).await;
        let on_node = http_get(node.port, "/get", Some(&r), &[]).await;
        let (after_n, after_r) = (shared.ttl(&id_of(&n)).await, shared.ttl(&id_of(&r)).await);
        assert!(
            (after_n - after_r).abs() <= 1.0,
            "{flags:?}: after a touch, Node's session {after_n} s, Rust's {after_r} s"
        );
        assert!(
            after_n >= before_n && after_r >= before_r,
            "{flags:?}: renewed"
        );
        assert_eq!(
            on_rust.cookie().is_some(),
            on_node.cookie().is_some(),
            "{flags:?}: Set-Cookie on a read (rolling sends it, the others do not)"
        );
    }
    shared.drop_namespace().await;
}

/// 32 Node requests and 32 Rust requests set different keys of one session at the same
/// moment. Tessera patches the one key it sets, atomically; express-session saves the
/// whole session it loaded, so a Node write drops every key written by anyone between its
/// load and its save. Prints how many of each side's keys survived.
async fn mixed_fleet(kind: Kind) {
    let test = format!("mixed_fleet on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    let node = start_node(&shared, &["--secret", "s"]).await;
    // The Rust side: express_compat, whose `/set` patches only the keys it sets.
    let mut args: Vec<String> = ["--port", "0", "--secret", "s"].map(String::from).to_vec();
    args.extend(shared.node_flags());
    let config = tessera_examples::compat::Config::from_args(args).unwrap();
    let app = tessera_examples::compat::app(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let rust = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut runs = Vec::new();
    for round in 0..3 {
        let cookie = http_get(rust, "/set?start=1", None, &[])
            .await
            .cookie()
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (cookie, port) = (cookie.clone(), if i % 2 == 0 { node.port } else { rust });
            let side = if i % 2 == 0 { "node" } else { "rust" };
            tasks.push(tokio::spawn(async move {
                http_get(port, &format!("/set?{side}{i}={i}"), Some(&cookie), &[])
                    .await
                    .status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200, "round {round}");
        }
        let data = http_get(rust, "/get", Some(&cookie), &[]).await.json();
        let kept = |side: &str, parity: usize| {
            (0..64)
                .filter(|i| i % 2 == parity)
                .filter(|i| data[format!("{side}{i}")] == json!(i))
                .count()
        };
        runs.push((kept("node", 0), kept("rust", 1)));
    }
    eprintln!(
        "mixed fleet on {kind:?}: of 32 Node and 32 Rust writes at once, kept (Node, Rust) = {runs:?}"
    );
    shared.drop_namespace().await;
}

/// The same with Rust alone on both sides of the race: every write survives.
async fn rust_fleet(kind: Kind) {
    let test = format!("rust_fleet on {kind:?}");
    let Some(shared) = Shared::open(kind, &test).await else {
        return;
    };
    let mut args: Vec<String> = ["--port", "0", "--secret", "s"].map(String::from).to_vec();
    args.extend(shared.node_flags());
    let config = tessera_examples::compat::Config::from_args(args).unwrap();
    let mut ports = Vec::new();
    for _ in 0..2 {
        let app = tessera_examples::compat::app(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        ports.push(listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let cookie = http_get(ports[0], "/set?start=1", None, &[])
        .await
        .cookie()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (cookie, port) = (cookie.clone(), ports[i % 2]);
        tasks.push(tokio::spawn(async move {
            http_get(port, &format!("/set?k{i}={i}"), Some(&cookie), &[])
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let data = http_get(ports[1], "/get", Some(&cookie), &[]).await.json();
    let kept = (0..64)
        .filter(|i| data[format!("k{i}")] == json!(i))
        .count();
    assert_eq!(kept, 64, "{data}");
    shared.drop_namespace().await;
}

macro_rules! on_both_stores {
    ($($name:ident => $run:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_redis() {
                    super::$run(super::Kind::Redis).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$run(super::Kind::Pg).await;
                }
            }
        )*
    };
}

on_both_stores! {
    a_session_made_by_node_continues_in_rust_with_nested_unicode_values_and_nodes_keys_kept_byte_for_byte => node_to_rust,
    a_session_made_by_rust_continues_in_node_and_changes_are_seen_both_ways => rust_to_node,
    secret_rotation_works_across_sides_old_signed_by_one_verified_and_resigned_by_the_other => secret_rotation,
    regenerate_destroy_and_logout_on_one_side_are_seen_on_the_other => regenerate_and_destroy_cross_over,
    the_store_expiry_agrees_within_a_second_and_rolling_and_resave_renew_it_alike => expiry_agrees,
    a_mixed_fleet_of_node_and_rust_writing_at_once_is_measured => mixed_fleet,
    two_rust_instances_writing_at_once_keep_all_64_writes => rust_fleet,
}
