//! Session methods (regenerate, rotate_id, destroy, reload, save, touch, cookie) and the
//! derive's field handling (rename, skip, flatten, undeclared keys, undecodable values).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera::{
    Record, Secret, Session, SessionCookie, SessionData, SessionLayer, SessionOptions, SessionStore,
};
use tessera_tests::{Browser, Recording, id_of};

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
}

#[derive(SessionData, Default)]
struct Shop {
    views: u64,
    user: Option<String>,
    #[session(rename = "cartItems")]
    cart: Vec<Item>,
    #[session(skip)]
    scratch: u32,
}

fn lean() -> SessionOptions {
    SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false)
}

async fn bump(mut s: Session<Shop>) -> String {
    *s.views += 1;
    s.views.to_string()
}

async fn login(mut s: Session<Shop>) -> String {
    s.rotate_id().await.unwrap();
    s.user.set(Some("alice".into()));
    s.id().to_owned()
}

async fn regen(mut s: Session<Shop>) -> String {
    s.regenerate().await.unwrap();
    format!("{} {}", s.id(), *s.views)
}

async fn logout(mut s: Session<Shop>) -> &'static str {
    s.destroy().await.unwrap();
    "bye"
}

async fn whoami(s: Session<Shop>) -> String {
    format!("{:?} {}", *s.user, *s.views)
}

async fn add_to_cart(mut s: Session<Shop>) -> String {
    s.cart.push(Item {
        sku: "tea".into(),
        qty: 2,
    });
    s.scratch = 7;
    s.cart.len().to_string()
}

async fn reload_after_change(mut s: Session<Shop>) -> String {
    *s.views += 100;
    match s.reload().await {
        Ok(()) => s.views.to_string(),
        Err(e) => format!("error: {e}"),
    }
}

async fn save_then_change(mut s: Session<Shop>) -> String {
    *s.views += 1;
    s.save().await.unwrap();
    s.views.to_string()
}

async fn remember_me(mut s: Session<Shop>) -> String {
    s.cookie_mut()
        .set_max_age(Some(Duration::from_secs(30 * 86400)));
    format!("{:?}", s.cookie().max_age().map(|d| d.as_secs() / 86400))
}

async fn touch(mut s: Session<Shop>) -> String {
    s.touch();
    format!("{:?}", s.cookie().max_age_ms())
}

fn app(store: impl SessionStore, options: SessionOptions) -> Router {
    let layer = SessionLayer::<Shop>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store)
        .with_options(options);
    Router::new()
        .route("/bump", get(bump))
        .route("/login", get(login))
        .route("/regen", get(regen))
        .route("/logout", get(logout))
        .route("/whoami", get(whoami))
        .route("/cart", get(add_to_cart))
        .route("/reload", get(reload_after_change))
        .route("/save", get(save_then_change))
        .route("/remember", get(remember_me))
        .route("/touch", get(touch))
        .layer(layer)
}

#[tokio::test]
async fn rotate_id_moves_the_data_to_a_new_id_and_destroys_the_old_one() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let old = id_of(&b.get("/bump").await.set_cookie().unwrap());
    let r = b.get("/login").await;
    let new = id_of(&r.set_cookie().expect("a new cookie after login"));
    assert_eq!(r.body, new);
    assert_ne!(old, new);
    assert!(store.record(&old).await.is_none(), "old id destroyed");
    assert_eq!(
        b.get("/whoami").await.body,
        "Some(\"alice\") 1",
        "data kept"
    );
}

#[tokio::test]
async fn rotate_id_keeps_undeclared_stored_keys() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
    let mut rec = store.record(&id).await.unwrap();
    rec.fields
        .insert("fromNode".into(), json!({"flash": ["hi"]}));
    store.put(&id, &rec).await;
    let new = id_of(&b.get("/login").await.set_cookie().unwrap());
    let rec = store.record(&new).await.unwrap();
    assert_eq!(rec.fields["fromNode"], json!({"flash": ["hi"]}));
    assert_eq!(rec.fields["user"], json!("alice"));
}

#[tokio::test]
async fn regenerate_gives_a_new_id_with_fresh_data_and_destroys_the_old_session() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    b.get("/bump").await;
    let old = id_of(
        &b.get("/bump")
            .await
            .set_cookie()
            .unwrap_or_else(|| b.cookie.clone().unwrap()),
    );
    let r = b.get("/regen").await;
    let (new, views) = r.body.split_once(' ').unwrap();
    assert_ne!(new, old);
    assert_eq!(views, "0");
    assert_eq!(id_of(&r.set_cookie().unwrap()), new);
    assert!(store.record(&old).await.is_none());
    assert!(
        store.record(new).await.is_some(),
        "regenerated session is saved"
    );
}

#[tokio::test]
async fn destroy_removes_the_session_and_clears_the_browser_cookie() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
    let r = b.get("/logout").await;
    let sc = r.set_cookie().expect("a clearing Set-Cookie");
    assert!(
        sc.starts_with("connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        "{sc}"
    );
    assert!(store.record(&id).await.is_none());
    assert_eq!(b.cookie, None);
    assert_eq!(b.get("/whoami").await.body, "None 0");
}

#[tokio::test]
async fn reload_discards_unsaved_changes() {
    let mut b = Browser::new(app(Recording::default(), lean()));
    b.get("/bump").await;
    assert_eq!(b.get("/reload").await.body, "1");
    assert_eq!(b.get("/whoami").await.body, "None 1");
}

#[tokio::test]
async fn reload_of_a_session_missing_from_the_store_fails() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let r = b.get("/reload").await;
    assert!(
        r.body.starts_with("error: failed to load session"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn save_persists_mid_request_and_skips_the_end_of_request_write() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    b.get("/bump").await;
    let before = store.calls.snapshot();
    assert_eq!(b.get("/save").await.body, "2");
    let after = store.calls.snapshot();
    assert_eq!(
        after.2 - before.2,
        1,
        "exactly one patch: the explicit save"
    );
    assert_eq!(after.4 - before.4, 0, "no touch after save");
}

#[tokio::test]
async fn save_of_a_new_session_also_sends_its_cookie() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let r = b.get("/save").await;
    let id = id_of(&r.set_cookie().expect("no orphan record"));
    assert_eq!(store.record(&id).await.unwrap().fields["views"], json!(1));
}

#[tokio::test]
async fn cookie_max_age_change_is_stored_and_sent_remember_me() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
    let r = b.get("/remember").await;
    assert!(r.body.contains("29") || r.body.contains("30"), "{}", r.body);
    let sc = r.set_cookie().expect("remember-me cookie sent");
    assert!(sc.contains("; Expires="), "{sc}");
    let rec = store.record(&id).await.unwrap();
    assert_eq!(rec.cookie.original_max_age_ms(), Some(30 * 86_400_000));
    // The change is sent once, not on every later request.
    assert_eq!(b.get("/whoami").await.set_cookie(), None);
    // Later requests renew by the remembered amount.
    let r = b.get("/touch").await;
    let left: i64 = r
        .body
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert!(left > 29 * 86_400_000, "{left}");
}

#[tokio::test]
async fn touch_resets_the_expiry() {
    let opts = lean().with_max_age(Some(Duration::from_secs(60))).unwrap();
    let mut b = Browser::new(app(Recording::default(), opts));
    b.get("/bump").await;
    let r = b.get("/touch").await;
    let left: i64 = r
        .body
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert!((59_000..=60_000).contains(&left), "{left}");
}

#[tokio::test]
async fn rename_stores_under_the_new_key_and_skip_is_never_stored() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let id = id_of(&b.get("/cart").await.set_cookie().unwrap());
    let rec = store.record(&id).await.unwrap();
    assert_eq!(rec.fields["cartItems"], json!([{"sku": "tea", "qty": 2}]));
    assert!(!rec.fields.contains_key("cart"));
    assert!(!rec.fields.contains_key("scratch"));
    assert_eq!(
        rec.to_json()
            .split_once(",\"")
            .map(|x| x.0.starts_with("{\"cookie\":{")),
        Some(true)
    );
}

#[tokio::test]
async fn undeclared_stored_keys_survive_patches_and_resave() {
    for opts in [lean(), SessionOptions::default()] {
        let store = Recording::default();
        let mut b = Browser::new(app(store.clone(), opts));
        let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
        let mut rec = store.record(&id).await.unwrap();
        rec.fields.insert("legacy".into(), json!([1, 2, 3]));
        store.put(&id, &rec).await;
        b.get("/bump").await;
        b.get("/whoami").await;
        let rec = store.record(&id).await.unwrap();
        assert_eq!(rec.fields["legacy"], json!([1, 2, 3]));
        assert_eq!(rec.fields["views"], json!(2));
    }
}

#[tokio::test]
async fn undecodable_stored_field_falls_back_to_default_and_keeps_the_others() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), lean()));
    let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
    let mut rec = store.record(&id).await.unwrap();
    rec.fields.insert("user".into(), json!({"not": "a string"}));
    rec.fields.insert("views".into(), json!(41));
    store.put(&id, &rec).await;
    let r = b.get("/whoami").await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "None 41"));
    // Untouched, the undecodable value stays as stored (no silent loss).
    b.get("/bump").await;
    let rec = store.record(&id).await.unwrap();
    assert_eq!(rec.fields["user"], json!({"not": "a string"}));
    assert_eq!(rec.fields["views"], json!(42));
}

#[derive(SessionData, Default)]
struct Open {
    views: u64,
    #[session(flatten)]
    rest: Map<String, Value>,
}

#[tokio::test]
async fn flatten_map_receives_undeclared_keys_and_each_key_is_its_own_field() {
    async fn edit(mut s: Session<Open>) -> String {
        let seen = s.rest.get("fromNode").cloned().unwrap_or(Value::Null);
        s.rest.insert("added".into(), json!(1));
        s.rest.remove("gone");
        // Touching an unchanged key is not a change.
        let same = s.rest.get("same").cloned().unwrap_or(Value::Null);
        s.rest.insert("same".into(), same);
        seen.to_string()
    }
    let store = Recording::default();
    let layer = SessionLayer::<Open>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store.clone())
        .with_options(lean());
    let mut b = Browser::new(
        Router::new()
            .route("/edit", get(edit))
            .route(
                "/bump",
                get(|mut s: Session<Open>| async move {
                    *s.views += 1;
                    "ok"
                }),
            )
            .layer(layer),
    );
    let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
    let mut rec: Record = store.record(&id).await.unwrap();
    rec.fields.insert("fromNode".into(), json!("hello"));
    rec.fields.insert("gone".into(), json!(true));
    rec.fields.insert("same".into(), json!([1]));
    store.put(&id, &rec).await;
    assert_eq!(b.get("/edit").await.body, "\"hello\"");
    let patch = store.last_patch.lock().unwrap().clone().unwrap();
    let mut changes = patch.changes.clone();
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        changes,
        vec![
            tessera::FieldChange::set("added", json!(1)),
            tessera::FieldChange::remove("gone")
        ]
    );
    let rec = store.record(&id).await.unwrap();
    assert_eq!(rec.fields.get("gone"), None);
    assert_eq!(rec.fields["fromNode"], json!("hello"));
    assert_eq!(rec.fields["views"], json!(1));
}

#[test]
fn session_cookie_model_reads_express_fields() {
    let rec = Record::from_json(
        br#"{"cookie":{"originalMaxAge":60000,"expires":"2999-01-01T00:00:00.000Z","httpOnly":true,"path":"/"},"n":1}"#,
    )
    .unwrap();
    let c: &SessionCookie = &rec.cookie;
    assert_eq!(c.original_max_age_ms(), Some(60000));
    assert!(c.max_age().unwrap() > Duration::from_secs(86400 * 300));
    assert!(c.http_only());
    assert_eq!(c.path(), "/");
}

#[tokio::test]
async fn a_one_field_change_in_a_10_kb_session_writes_under_2_percent_of_its_bytes() {
    #[derive(SessionData, Default)]
    struct Big {
        views: u64,
        #[session(flatten)]
        rest: Map<String, Value>,
    }
    async fn fill(mut s: Session<Big>) -> &'static str {
        let chunk = "x".repeat(500);
        for i in 0..20 {
            s.rest
                .insert(format!("field{i:02}"), json!({"text": chunk, "n": i}));
        }
        "filled"
    }
    async fn bump(mut s: Session<Big>) -> &'static str {
        *s.views += 1;
        "bumped"
    }
    let store = Recording::default();
    let layer = SessionLayer::<Big>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store.clone())
        .with_options(
            lean()
                .with_max_age(Some(Duration::from_secs(3600)))
                .unwrap(),
        );
    let mut b = Browser::new(
        Router::new()
            .route("/fill", get(fill))
            .route("/bump", get(bump))
            .layer(layer),
    );
    let id = id_of(&b.get("/fill").await.set_cookie().unwrap());
    b.get("/bump").await;
    let record = store.record(&id).await.unwrap();
    let record_bytes = record.to_json().len();
    assert!(record_bytes >= 10_000, "{record_bytes}");
    let patch = store.last_patch.lock().unwrap().clone().unwrap();
    assert_eq!(patch.changes.len(), 1);
    // What a store receives: the changed fields and the renewed cookie.
    let cookie_bytes = Record {
        cookie: patch.cookie.clone(),
        fields: Default::default(),
    }
    .to_json()
    .len();
    let change_bytes = serde_json::to_vec(&patch.changes).unwrap().len();
    let written = cookie_bytes + change_bytes;
    assert!(
        written * 100 <= record_bytes * 2,
        "wrote {written} bytes of a {record_bytes}-byte record"
    );
}

fn extraction_app(store: Recording) -> Router {
    async fn twice(_a: Session<Shop>, _b: Session<Shop>) -> &'static str {
        "unreachable: the second extraction is rejected"
    }
    async fn one_after_another(request: axum::extract::Request) -> String {
        use axum::extract::FromRequestParts;
        let (mut parts, _body) = request.into_parts();
        {
            let mut first = Session::<Shop>::from_request_parts(&mut parts, &())
                .await
                .unwrap();
            *first.views += 10;
        }
        let mut second = Session::<Shop>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        *second.views += 1;
        second.views.to_string()
    }
    async fn kept_past_the_handler(mut s: Session<Shop>) -> &'static str {
        *s.views += 1;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(s);
        });
        "returned without the session"
    }
    let layer = SessionLayer::<Shop>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store)
        .with_options(lean());
    Router::new()
        .route("/twice", get(twice))
        .route("/sequential", get(one_after_another))
        .route("/kept", get(kept_past_the_handler))
        .layer(layer)
}

#[tokio::test]
async fn extracting_the_session_twice_at_once_is_rejected_not_deadlocked() {
    let mut b = Browser::new(extraction_app(Recording::default()));
    let r = tokio::time::timeout(Duration::from_secs(5), b.get("/twice"))
        .await
        .expect("no deadlock");
    assert_eq!(r.status, 500);
    assert!(r.body.contains("already extracted"), "{}", r.body);
    assert!(r.body.contains("Session<methods::Shop>"), "{}", r.body);
}

#[tokio::test]
async fn a_route_without_the_layer_answers_500_naming_the_session_type_it_lacks() {
    async fn needs(s: Session<Shop>) -> String {
        s.id().to_owned()
    }
    let app = Router::new().route("/", get(needs));
    let r = tessera_tests::send(
        &app,
        axum::http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "no Session<methods::Shop> for this request: is SessionLayer<methods::Shop> installed \
         for this route, and is the request under its cookie path?"
    );
}

#[tokio::test]
async fn a_session_extracted_again_after_the_first_is_dropped_sees_its_changes() {
    let store = Recording::default();
    let mut b = Browser::new(extraction_app(store.clone()));
    let r = b.get("/sequential").await;
    assert_eq!(r.body, "11");
    let id = id_of(&r.set_cookie().expect("the changed session is saved"));
    assert_eq!(store.record(&id).await.unwrap().fields["views"], json!(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_kept_past_the_handler_is_a_500_and_nothing_is_saved() {
    let store = Recording::default();
    let mut b = Browser::new(extraction_app(store.clone()));
    let r = b.get("/kept").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "session still in use");
    assert!(r.set_cookie().is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.calls.snapshot().1, 0, "no set");
    assert_eq!(store.calls.snapshot().2, 0, "no patch");
}

#[tokio::test]
async fn the_built_in_memory_store_answers_every_method_like_a_wrapped_store() {
    // The layer calls a plain MemoryStore directly (no boxed future); a wrapped one goes
    // through the general path. Both must give the same answers.
    async fn walk(app: Router) -> Vec<String> {
        let mut b = Browser::new(app);
        let mut seen = Vec::new();
        for path in [
            "/bump",
            "/bump",
            "/cart",
            "/save",
            "/reload",
            "/touch",
            "/remember",
            "/bump",
            "/login",
            "/whoami",
            "/regen",
            "/bump",
            "/logout",
            "/bump",
        ] {
            let r = b.get(path).await;
            let cookie = r.set_cookie().map(|c| {
                // Ids are random and dates move: keep the attribute names only.
                c.split(';')
                    .skip(1)
                    .map(|a| a.split('=').next().unwrap_or_default().trim().to_owned())
                    .collect::<Vec<_>>()
                    .join(";")
            });
            let body = if matches!(path, "/login" | "/regen") {
                r.body.split(' ').skip(1).collect::<Vec<_>>().join(" ")
            } else {
                r.body.clone()
            };
            seen.push(format!("{path} {} {body} {cookie:?}", r.status));
        }
        seen
    }
    let plain = walk(app(tessera::MemoryStore::default(), lean())).await;
    let wrapped = walk(app(Recording::default(), lean())).await;
    assert_eq!(plain, wrapped);
    assert!(
        plain.iter().any(|l| l.starts_with("/bump 200 OK 4")),
        "{plain:#?}"
    );
}

#[tokio::test]
async fn a_middleware_that_keeps_the_request_extensions_does_not_lose_the_session() {
    use axum::extract::Request;
    use axum::middleware::{Next, from_fn};
    use axum::response::Response;
    // An inner middleware that copies the request's extensions into the response keeps
    // a second reference to the session's slot alive after the handler returns.
    async fn keep_extensions(req: Request, next: Next) -> Response {
        let kept = req.extensions().clone();
        let mut res = next.run(req).await;
        res.extensions_mut().extend(kept);
        res
    }
    let store = Recording::default();
    let layer = SessionLayer::<Shop>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store.clone())
        .with_options(lean());
    let app = Router::new()
        .route("/bump", get(bump))
        .layer(from_fn(keep_extensions))
        .layer(layer);
    let mut b = Browser::new(app);
    assert_eq!(b.get("/bump").await.body, "1");
    let r = b.get("/bump").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "2");
    let id = id_of(b.cookie.as_deref().unwrap());
    assert_eq!(store.record(&id).await.unwrap().fields["views"], json!(2));
}

mod limits {
    use super::*;

    #[derive(SessionData, Default)]
    #[session(resave = false, save_uninitialized = false)]
    struct Open {
        views: u64,
        #[session(flatten)]
        rest: Map<String, Value>,
    }

    async fn add(
        mut s: Session<Open>,
        axum::extract::Path((n, len)): axum::extract::Path<(usize, usize)>,
    ) -> &'static str {
        let start = s.rest.len();
        for i in start..start + n {
            s.rest.insert(format!("k{i}"), json!("x".repeat(len)));
        }
        "added"
    }

    async fn count(s: Session<Open>) -> String {
        s.rest.len().to_string()
    }

    fn app(store: Recording, options: SessionOptions) -> Router {
        let layer = SessionLayer::<Open>::new(Secret::short_for_migration("keyboard cat").unwrap())
            .with_store(store)
            .with_options(options);
        Router::new()
            .route("/add/{n}/{len}", get(add))
            .route("/count", get(count))
            .layer(layer)
    }

    #[tokio::test]
    async fn a_change_past_max_keys_is_refused_with_an_error_naming_the_limit_and_nothing_is_saved()
    {
        let store = Recording::default();
        let options = SessionOptions::default()
            .with_resave(false)
            .with_save_uninitialized(false)
            .with_max_keys(100);
        let mut b = Browser::new(app(store.clone(), options));
        assert_eq!(b.get("/add/90/1").await.body, "added");
        let r = b.get("/add/20/1").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.body.contains("max_keys (100)"), "{}", r.body);
        assert_eq!(
            b.get("/count").await.body,
            "90",
            "the stored session stayed"
        );
        // `views` is a stored key too: 90 + 9 + 1 is the limit.
        assert_eq!(
            b.get("/add/9/1").await.body,
            "added",
            "up to the limit is fine"
        );
        assert_eq!(b.get("/count").await.body, "99");
    }

    #[tokio::test]
    async fn a_change_past_max_record_bytes_is_refused_and_nothing_is_saved() {
        let store = Recording::default();
        let options = SessionOptions::default()
            .with_resave(false)
            .with_save_uninitialized(false)
            .with_max_record_bytes(10_000);
        let mut b = Browser::new(app(store.clone(), options));
        assert_eq!(b.get("/add/5/1000").await.body, "added");
        let r = b.get("/add/5/1000").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.body.contains("max_record_bytes (10000)"), "{}", r.body);
        assert_eq!(b.get("/count").await.body, "5");
        // A first request that is over the limit on its own saves nothing either.
        let mut fresh = Browser::new(app(
            store.clone(),
            SessionOptions::default().with_max_record_bytes(10_000),
        ));
        let r = fresh.get("/add/20/1000").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.set_cookie(), None);
    }

    #[tokio::test]
    async fn a_stored_session_over_the_limits_starts_a_fresh_session() {
        let store = Recording::default();
        let mut b = Browser::new(app(
            store.clone(),
            SessionOptions::default()
                .with_resave(false)
                .with_save_uninitialized(false),
        ));
        assert_eq!(b.get("/add/50/1").await.body, "added");
        // The same cookie and store behind a layer with a lower bound.
        b.app = app(
            store.clone(),
            SessionOptions::default()
                .with_resave(false)
                .with_save_uninitialized(false)
                .with_max_keys(20),
        );
        assert_eq!(b.get("/count").await.body, "0");
    }
}

/// A snapshot's value, as the handler would hand it to a template.
#[derive(SessionData, Default, Serialize)]
struct Profile {
    name: String,
    #[session(rename = "cartItems")]
    cart: Vec<Item>,
    #[session(skip)]
    #[serde(skip)]
    scratch: u32,
    #[session(flatten)]
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[tokio::test]
async fn a_snapshot_is_the_whole_session_as_the_struct_and_changes_nothing() {
    let store = Recording::default();
    let layer = SessionLayer::<Profile>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store.clone())
        .with_options(lean());
    let app = Router::new()
        .route(
            "/fill",
            get(|mut s: Session<Profile>| async move {
                s.name.set("Zoë".to_owned());
                s.cart.push(Item {
                    sku: "tea".into(),
                    qty: 2,
                });
                s.rest.insert("theme".into(), json!("dark"));
                s.scratch = 7;
                // Taken mid-request: it sees this request's changes.
                axum::Json(s.snapshot().unwrap())
            }),
        )
        .route(
            "/show",
            get(|s: Session<Profile>| async move { axum::Json(s.snapshot().unwrap()) }),
        )
        .layer(layer);
    let mut b = Browser::new(app);
    let filled = b.get("/fill").await.json();
    let expected = json!({"name": "Zoë", "cart": [{"sku": "tea", "qty": 2}], "theme": "dark"});
    assert_eq!(filled, expected);
    let writes = store.calls.patch.load(std::sync::atomic::Ordering::SeqCst)
        + store.calls.set.load(std::sync::atomic::Ordering::SeqCst);
    // A later request's snapshot: stored fields as stored, the skipped one its default.
    assert_eq!(b.get("/show").await.json(), expected);
    assert_eq!(
        store.calls.patch.load(std::sync::atomic::Ordering::SeqCst)
            + store.calls.set.load(std::sync::atomic::Ordering::SeqCst),
        writes,
        "a snapshot wrote to the store"
    );
}
