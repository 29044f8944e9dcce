//! The examples, driven in process: counter, login, and every route of express_compat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::{Request, StatusCode, header};
use serde_json::json;
use tessera::Secret;
use tessera_examples::compat::{Config, app};
use tessera_tests::{Browser, id_of};

async fn compat(args: &str) -> Browser {
    let args = format!("--port 0 --store memory --secret s1 {args}");
    let cfg = Config::from_args(args.split_whitespace().map(str::to_owned)).unwrap();
    Browser::new(app(&cfg).await.unwrap())
}

#[tokio::test]
async fn counter_counts_views_and_shows_time_left() {
    let mut b = Browser::new(tessera_examples::counter::app(
        Secret::short_for_migration("s").unwrap(),
    ));
    assert_eq!(
        b.get("/").await.body,
        "welcome to the session demo. refresh!"
    );
    let body = b.get("/").await.body;
    assert!(body.starts_with("<p>views: 2</p><p>expires in: "), "{body}");
    assert!(
        body.contains("in: 59s") || body.contains("in: 60s"),
        "{body}"
    );
}

#[tokio::test]
async fn login_rotates_the_id_protects_the_page_and_logout_destroys() {
    let mut b = Browser::new(tessera_examples::login::app(
        Secret::short_for_migration("s").unwrap(),
    ));
    assert_eq!(
        b.get("/private").await.status,
        StatusCode::SEE_OTHER,
        "to the login form"
    );
    let form = |body: &'static str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
    };
    let wrong = tessera_tests::send(
        &b.app,
        form("user=alice&password=nope").unwrap().map(Into::into),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // A pre-login session (a planted or anonymous id) must not survive the login.
    assert_eq!(b.get("/prefs/theme?value=dark").await.body, "saved");
    let before = b.cookie.clone();
    assert!(before.is_some(), "a preference starts a session");
    let mut req = form("user=alice&password=wonderland")
        .unwrap()
        .map(axum::body::Body::from);
    if let Some(c) = &before {
        req.headers_mut().insert(header::COOKIE, c.parse().unwrap());
    }
    let r = tessera_tests::send(&b.app, req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let sc = r.set_cookie().expect("login cookie");
    assert!(sc.starts_with("sid="), "{sc}");
    assert!(sc.contains("SameSite=Lax"), "{sc}");
    if let Some(old) = &before {
        assert_ne!(id_of(old), id_of(&sc));
    }
    b.cookie = Some(sc.split(';').next().unwrap().to_owned());
    assert_eq!(
        b.get("/private").await.body,
        "<p id=private>Only alice can see this.</p>"
    );
    assert!(b.get("/").await.body.contains("theme: dark"), "data kept");
    let r = b.request(Request::post("/logout")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/private").await.status, StatusCode::SEE_OTHER);
}

/// Logs `b` in as alice from a browser that says it is `agent`.
async fn log_in(b: &mut Browser, agent: &str) {
    let mut req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, agent)
        .body(axum::body::Body::from("user=alice&password=wonderland"))
        .unwrap();
    if let Some(c) = &b.cookie {
        req.headers_mut().insert(header::COOKIE, c.parse().unwrap());
    }
    let r = tessera_tests::send(&b.app, req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sc = r.set_cookie().expect("login cookie");
    b.cookie = Some(sc.split(';').next().unwrap().to_owned());
}

#[tokio::test]
async fn login_lists_your_devices_and_logs_out_everywhere_else() {
    let app = tessera_examples::login::app(Secret::short_for_migration("s").unwrap());
    let mut browsers: Vec<Browser> = (0..3).map(|_| Browser::new(app.clone())).collect();
    for (i, b) in browsers.iter_mut().enumerate() {
        log_in(b, &format!("browser-{i}")).await;
    }
    assert!(browsers[0].get("/").await.body.contains("your devices"));
    let page = browsers[0].get("/devices").await.body;
    assert_eq!(page.matches("<li class=device>").count(), 3, "{page}");
    assert!(page.contains("browser-0 <b>(this device)</b>"), "{page}");
    assert!(page.contains("browser-2, last seen 0 min ago"), "{page}");
    let r = browsers[0]
        .request(Request::post("/devices/logout-others"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = browsers[0].get("/devices").await.body;
    assert_eq!(page.matches("<li class=device>").count(), 1, "{page}");
    for b in &mut browsers[1..] {
        assert_eq!(
            b.get("/private").await.status,
            StatusCode::SEE_OTHER,
            "a device logged out elsewhere still sees the private page"
        );
    }
    assert!(
        browsers[0]
            .get("/private")
            .await
            .body
            .contains("Only alice")
    );
}

#[tokio::test]
async fn compat_views_set_get_and_id() {
    let mut b = compat("--save-uninitialized").await;
    let v = b.get("/views").await.json();
    assert_eq!(v["views"], 1);
    assert_eq!(v["maxAge"], serde_json::Value::Null);
    let id = v["id"].as_str().unwrap().to_owned();
    let r = b.get("/id").await;
    assert_eq!(r.body, id);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let v = b
        .get("/set?a=1&b=hello&c=%7B%22x%22%3Atrue%7D")
        .await
        .json();
    assert_eq!(
        v,
        json!({"views": 1, "a": 1, "b": "hello", "c": {"x": true}})
    );
    assert_eq!(b.get("/get").await.json(), v);
}

#[tokio::test]
async fn compat_regenerate_destroy_unset() {
    let mut b = compat("--save-uninitialized").await;
    b.get("/views").await;
    let v = b.get("/regenerate").await.json();
    assert_ne!(v["old"], v["id"]);
    assert_eq!(b.get("/get").await.json(), json!({}));
    let id = b.get("/id").await.body;
    let v = b.get("/destroy").await.json();
    assert_eq!(v, json!({"destroyed": id}));
    assert_eq!(b.get("/unset").await.json(), json!({"unset": true}));
}

#[tokio::test]
async fn compat_reload_save_touch_and_cookie() {
    let mut b = compat("--max-age 60000").await;
    let r = b.get("/reload").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("failed to load session")
    );
    b.get("/views").await;
    assert_eq!(b.get("/reload").await.json(), json!({"views": 1}));
    assert_eq!(b.get("/save").await.json(), json!({"views": 1}));
    let m = b.get("/touch").await.json()["maxAge"].as_i64().unwrap();
    assert!((59_000..=60_000).contains(&m), "{m}");
    let m = b.get("/cookie?maxAge=5000").await.json()["maxAge"]
        .as_i64()
        .unwrap();
    assert!((4_000..=5_000).contains(&m), "{m}");
    assert_eq!(
        b.get("/cookie?maxAge=null").await.json(),
        json!({"maxAge": null})
    );
    let r = b.get("/cookie?maxAge=soon").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn compat_path_option_serves_both_prefixes_and_reports_no_session_outside() {
    let mut b = compat("--path /foo --save-uninitialized").await;
    assert_eq!(b.get("/views").await.json(), json!({"noSession": true}));
    let v = b.get("/foo/views").await.json();
    assert_eq!(v["views"], 1);
    let r = b.get("/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json(),
        json!({"notFound": "/nowhere", "hasSession": false})
    );
    let r = b.get("/foo/nowhere").await;
    assert_eq!(
        r.json(),
        json!({"notFound": "/foo/nowhere", "hasSession": true})
    );
}

#[tokio::test]
async fn compat_flags_configure_the_cookie() {
    let mut b = compat(
        "--name sid --max-age 60000 --same-site strict --secure false --http-only false \
         --domain example.com --partitioned --priority high --rolling --resave --unset destroy --proxy true",
    )
    .await;
    let sc = b.get("/views").await.set_cookie().unwrap();
    assert!(sc.starts_with("sid=s%3A"), "{sc}");
    assert!(
        sc.contains("; Domain=example.com; Path=/; Expires="),
        "{sc}"
    );
    assert!(
        sc.ends_with("GMT; Partitioned; Priority=High; SameSite=Strict"),
        "{sc}"
    );
    assert!(
        Config::from_args(
            ["--port", "1", "--secret", "s", "--same-site", "sideways"].map(String::from)
        )
        .is_err()
    );
    assert!(
        Config::from_args(["--port", "1", "--secret", "s", "--store", "mongo"].map(String::from))
            .is_err()
    );
}
