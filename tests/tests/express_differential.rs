//! Differential test against the real express-session: the same scripted requests go to
//! `tests/node/express_compat.js` (express-session 1.19) and to the `express_compat`
//! example, and their answers must agree — status, body, and whether and how the cookie
//! is set — except for Tessera's documented differences.
//!
//! Needs Node.js and `npm ci --prefix tests/node`; `.ci/run` does both and sets
//! `TESSERA_EXPRESS_SCRIPT`. Without it the test prints why it is skipped (or fails when
//! `TESSERA_REQUIRE_SERVICES=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use serde_json::Value;
use tessera_tests::node::{NodeApp, http_get as get};
use tokio::net::TcpListener;

/// One side of the comparison: a port, a cookie jar and the ids seen so far.
struct Side {
    port: u16,
    jar: Option<String>,
    ids: HashMap<String, usize>,
}

impl Side {
    fn label(&mut self, id: &str) -> String {
        let n = self.ids.len();
        format!("ID{}", self.ids.entry(id.to_owned()).or_insert(n))
    }

    fn normalize_cookie(&mut self, sc: &str) -> String {
        let mut parts = sc.split("; ");
        let pair = parts.next().unwrap_or_default();
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = if value.is_empty() {
            String::new()
        } else {
            let decoded = value
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2B", "+");
            let id = decoded
                .strip_prefix("s:")
                .and_then(|v| v.rsplit_once('.'))
                .map(|x| x.0.to_owned())
                .unwrap_or(decoded);
            self.label(&id)
        };
        let attrs: Vec<String> = parts
            .map(|a| {
                if a.starts_with("Expires=") {
                    "Expires=<date>".to_owned()
                } else {
                    a.to_owned()
                }
            })
            .collect();
        format!("{name}={value}; {}", attrs.join("; "))
    }

    fn normalize_body(&mut self, path: &str, body: &str) -> Value {
        if path.ends_with("/id") && !body.starts_with('{') {
            return Value::String(self.label(body));
        }
        let mut v: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
        if let Value::Object(map) = &mut v {
            for key in ["id", "old", "destroyed"] {
                if let Some(Value::String(id)) = map.get(key).cloned() {
                    map.insert(key.to_owned(), Value::String(self.label(&id)));
                }
            }
            if let Some(Value::Number(n)) = map.get("maxAge").cloned() {
                // express can be a millisecond short (59999 for 60000): compare seconds.
                let secs = (n.as_f64().unwrap_or(0.0) / 1000.0).round();
                map.insert("maxAge".to_owned(), serde_json::json!(secs));
            }
            if map.contains_key("error") {
                map.insert("error".to_owned(), Value::String("<message>".to_owned()));
            }
        }
        v
    }

    async fn step(&mut self, path: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, Value) {
        let r = get(self.port, path, self.jar.as_deref(), headers).await;
        assert!(r.set_cookies.len() <= 1, "{:?}", r.set_cookies);
        let cookie = r.set_cookies.first().cloned();
        if let Some(sc) = &cookie {
            let pair = sc.split(';').next().unwrap_or_default().to_owned();
            self.jar = if sc.contains("Expires=Thu, 01 Jan 1970") {
                None
            } else {
                Some(pair)
            };
        }
        let cookie = cookie.map(|c| self.normalize_cookie(&c));
        let body = self.normalize_body(path.split('?').next().unwrap_or(path), &r.body);
        (r.status, cookie, body)
    }
}

/// The Rust side of a scenario; its server (and the store connections it holds) stops
/// when dropped.
struct RustSide {
    port: u16,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for RustSide {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start_rust(store: &[String], flags: &[&str]) -> RustSide {
    let args = ["--port".to_owned(), "0".to_owned()]
        .into_iter()
        .chain(store.iter().cloned())
        .chain(flags.iter().map(|s| (*s).to_owned()));
    let cfg = tessera_examples::compat::Config::from_args(args).unwrap();
    let app = tessera_examples::compat::app(&cfg).await.unwrap();
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    RustSide { port, server }
}

/// What may differ in a step, each a documented difference.
#[derive(Clone, Copy, PartialEq, Eq)]
enum May {
    /// Nothing.
    Not,
    /// The `Set-Cookie` (Tessera clears the cookie on destroy and sends changed cookies).
    DifferInCookie,
    /// On a shared store, the answer too: Tessera stores a cookie change, while
    /// connect-redis' and connect-pg-simple's touch leave the stored cookie as it was.
    DifferOnSharedStores,
}

/// A step: the path, request headers, and what may differ.
struct Step(&'static str, &'static [(&'static str, &'static str)], May);

const fn s(path: &'static str) -> Step {
    Step(path, &[], May::Not)
}
const fn differs(path: &'static str) -> Step {
    Step(path, &[], May::DifferInCookie)
}
const fn differs_on_shared_stores(path: &'static str) -> Step {
    Step(path, &[], May::DifferOnSharedStores)
}
const HTTPS: &[(&str, &str)] = &[("X-Forwarded-Proto", "https")];

fn scenarios() -> Vec<(&'static str, Vec<&'static str>, Vec<Step>)> {
    vec![
        (
            "express defaults (resave, saveUninitialized)",
            vec!["--secret", "s", "--resave", "--save-uninitialized"],
            vec![
                s("/get"),
                s("/get"),
                s("/views"),
                s("/views"),
                s("/id"),
                s("/get"),
            ],
        ),
        (
            "lean: no cookie until modified, browser-session cookie not resent",
            vec!["--secret", "s"],
            vec![
                s("/get"),
                s("/get"),
                s("/views"),
                s("/views"),
                s("/get"),
                s("/touch"),
                s("/id"),
            ],
        ),
        (
            "max-age: modified sessions resend the cookie",
            vec!["--secret", "s", "--max-age", "60000"],
            vec![
                s("/views"),
                s("/views"),
                s("/get"),
                s("/touch"),
                s("/views"),
            ],
        ),
        (
            "rolling",
            vec!["--secret", "s", "--rolling", "--max-age", "60000"],
            vec![s("/get"), s("/views"), s("/get"), s("/get")],
        ),
        (
            "rolling with save-uninitialized",
            vec!["--secret", "s", "--rolling", "--save-uninitialized"],
            vec![s("/get"), s("/get"), s("/views")],
        ),
        (
            "set and get JSON values",
            vec!["--secret", "s"],
            vec![
                s("/set?a=1&b=hello&c=%7B%22x%22%3A%5B1%2C2%5D%7D&d=true&e=null"),
                s("/get"),
                s("/set?a=2"),
                s("/get"),
            ],
        ),
        (
            "regenerate",
            vec!["--secret", "s", "--max-age", "60000"],
            vec![
                s("/views"),
                s("/views"),
                s("/regenerate"),
                s("/get"),
                s("/views"),
                s("/id"),
            ],
        ),
        (
            "destroy",
            vec!["--secret", "s"],
            vec![
                s("/views"),
                differs("/destroy"),
                s("/get"),
                s("/views"),
                s("/views"),
            ],
        ),
        (
            "unset keep",
            vec!["--secret", "s", "--unset", "keep"],
            vec![s("/views"), s("/unset"), s("/views")],
        ),
        (
            "unset destroy",
            vec!["--secret", "s", "--unset", "destroy"],
            vec![s("/views"), differs("/unset"), s("/get"), s("/views")],
        ),
        (
            "reload and save",
            vec!["--secret", "s"],
            vec![
                s("/reload"),
                s("/views"),
                s("/reload"),
                s("/save"),
                s("/set?x=1"),
                s("/reload"),
            ],
        ),
        (
            "save of an uninitialized session",
            vec!["--secret", "s", "--save-uninitialized"],
            vec![s("/save"), s("/get"), s("/views")],
        ),
        (
            "cookie maxAge from the handler",
            vec!["--secret", "s", "--max-age", "60000"],
            vec![
                s("/views"),
                differs("/cookie?maxAge=5000"),
                differs_on_shared_stores("/touch"),
                s("/cookie?maxAge=abc"),
                differs("/cookie?maxAge=null"),
            ],
        ),
        (
            "path gate",
            vec!["--secret", "s", "--path", "/foo"],
            vec![
                s("/views"),
                s("/foo/views"),
                s("/foo/views"),
                s("/nowhere"),
                s("/foo/nowhere"),
                s("/foo/get"),
            ],
        ),
        (
            "cookie attributes",
            vec![
                "--secret",
                "s",
                "--name",
                "sid",
                "--domain",
                "example.com",
                "--priority",
                "high",
                "--partitioned",
                "--same-site",
                "strict",
                "--http-only",
                "false",
                "--max-age",
                "5000",
            ],
            vec![s("/views"), s("/views"), s("/get")],
        ),
        (
            "secure cookie over http is not sent",
            vec!["--secret", "s", "--secure", "true"],
            vec![s("/views"), s("/views")],
        ),
        (
            "secure auto and same-site none behind a trusted proxy",
            vec![
                "--secret",
                "s",
                "--secure",
                "auto",
                "--proxy",
                "true",
                "--same-site",
                "none",
            ],
            vec![
                Step("/views", HTTPS, May::Not),
                Step("/views", HTTPS, May::Not),
                s("/get"),
            ],
        ),
        (
            "untrusted proxy header is ignored",
            vec!["--secret", "s", "--secure", "auto", "--proxy", "false"],
            vec![
                Step("/views", HTTPS, May::Not),
                Step("/views", HTTPS, May::Not),
            ],
        ),
        (
            "secret rotation list signs with the first",
            vec!["--secret", "new", "--secret", "old"],
            vec![s("/views"), s("/views"), s("/get")],
        ),
    ]
}

/// The store flags of one side: the store, and for a shared store a key prefix of its
/// own (each side keeps its own sessions; they are compared, not shared).
fn store_flags(store: &str, side: &str) -> Vec<String> {
    let mut flags = vec!["--store".to_owned(), store.to_owned()];
    if store == "redis" {
        flags.push("--redis-url".to_owned());
        flags.push(tessera_tests::services::redis_url());
        flags.push("--prefix".to_owned());
        flags.push(format!("{}:", tessera_tests::services::unique(side)));
    }
    if store == "pg" {
        flags.push("--pg-url".to_owned());
        flags.push(tessera_tests::services::database_url());
        flags.push("--table".to_owned());
        flags.push(tessera_tests::services::unique(&format!(
            "tessera_diff_{side}_"
        )));
    }
    flags
}

/// Runs every scenario on both sides with `store`, and compares.
async fn compare_on(store: &str, test: &str) {
    let script = match tessera_tests::node::script() {
        Ok(script) => script,
        Err(why) => return tessera_tests::services::unavailable(test, &why),
    };
    let mut mismatches = Vec::new();
    for (name, flags, steps) in scenarios() {
        let rust_flags = store_flags(store, "rust");
        let rust_side = start_rust(&rust_flags, &flags).await;
        let rust_port = rust_side.port;
        let mut node_flags = store_flags(store, "node");
        node_flags.extend(flags.iter().map(|f| (*f).to_owned()));
        if store == "pg" {
            // connect-pg-simple needs its table; the Rust side creates Rust's.
            create_pg_table(&node_flags).await;
        }
        let node_app = NodeApp::start(&script, &node_flags).await;
        let node_port = node_app.port;
        let mut node = Side {
            port: node_port,
            jar: None,
            ids: HashMap::new(),
        };
        let mut rust = Side {
            port: rust_port,
            jar: None,
            ids: HashMap::new(),
        };
        for (i, Step(path, headers, may)) in steps.iter().enumerate() {
            let (ns, nc, nb) = node.step(path, headers).await;
            let (rs, rc, rb) = rust.step(path, headers).await;
            let shared_differs = *may == May::DifferOnSharedStores && store != "memory";
            let cookie_ok = *may == May::DifferInCookie || shared_differs || nc == rc;
            let body_ok = shared_differs || nb == rb;
            if ns != rs || !body_ok || !cookie_ok {
                mismatches.push(format!(
                    "[{store}: {name}] step {i} GET {path}\n  express: {ns} {nc:?} {nb}\n  tessera: {rs} {rc:?} {rb}"
                ));
            }
        }
    }
    if store == "pg" {
        drop_pg_tables().await;
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn tessera_answers_like_express_session_on_the_memory_store() {
    compare_on(
        "memory",
        "tessera_answers_like_express_session_on_the_memory_store",
    )
    .await;
}

/// Drops the tables of this process's comparisons.
async fn drop_pg_tables() {
    let db = tessera_tests::services::pg_client(&tessera_tests::services::database_url())
        .await
        .unwrap();
    let pattern = format!("tessera_diff_%{}%", std::process::id());
    let tables = db
        .query(
            "SELECT tablename::text FROM pg_tables WHERE tablename LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap();
    for table in tables {
        let table: String = table.get(0);
        db.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .await
            .unwrap();
    }
}

/// Creates the table named in `flags` (`--table`) for connect-pg-simple.
async fn create_pg_table(flags: &[String]) {
    let table = flags
        .iter()
        .skip_while(|f| *f != "--table")
        .nth(1)
        .cloned()
        .unwrap_or_default();
    tessera_postgres::PostgresStore::from_url(&tessera_tests::services::database_url())
        .unwrap()
        .table(&table)
        .create_table_if_missing(true)
        .prune_interval(None)
        .build()
        .await
        .unwrap();
}

#[tokio::test]
async fn tessera_answers_like_express_session_with_connect_pg_simple() {
    compare_on(
        "pg",
        "tessera_answers_like_express_session_with_connect_pg_simple",
    )
    .await;
}

#[tokio::test]
async fn tessera_answers_like_express_session_with_connect_redis() {
    compare_on(
        "redis",
        "tessera_answers_like_express_session_with_connect_redis",
    )
    .await;
}
