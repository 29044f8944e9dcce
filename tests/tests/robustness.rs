//! Bad input never panics: thousands of generated Cookie headers through the layer, and
//! mutated stored records through the parser. Deterministic (a fixed-seed xorshift), so
//! a failure reproduces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::routing::get;
use tessera::{Record, Secret, Session, SessionData, SessionLayer, SessionOptions};
use tessera_tests::{Browser, Recording, send};

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates `base` a few times with bytes that matter to cookie parsing.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b";=% \"\t.:sS0aZ+/-_\x7f\x80\xc3\xa9,";
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = if v.is_empty() {
            0
        } else {
            rng.below(v.len() + 1)
        };
        match rng.below(4) {
            0 if !v.is_empty() && at < v.len() => {
                v.remove(at);
            }
            1 if at < v.len() => v[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            _ => {
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
            }
        }
    }
    v
}

#[tokio::test]
async fn thousands_of_malformed_cookie_headers_get_a_defined_answer() {
    async fn bump(mut s: Session<Visit>) -> String {
        *s.views += 1;
        s.views.to_string()
    }
    let store = Recording::default();
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store.clone())
        .with_options(
            SessionOptions::default()
                .with_resave(false)
                .with_save_uninitialized(false),
        );
    let app = Router::new().route("/", get(bump)).layer(layer);
    let mut b = Browser::new(app.clone());
    b.get("/").await;
    let valid = b.cookie.clone().unwrap();
    let base = format!("theme=dark; {valid}; lang=\"en\"");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for _ in 0..3000 {
        let bytes = mutate(&mut rng, base.as_bytes());
        // Only what an HTTP stack can deliver: a valid header value.
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            continue;
        };
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.headers_mut().insert(header::COOKIE, value);
        let r = send(&app, req).await;
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&bytes));
        // Either the intact session (2, 3, ...) or a fresh one (1).
        assert!(r.body.parse::<u64>().is_ok(), "{}", r.body);
        checked += 1;
    }
    assert!(
        checked > 2000,
        "only {checked} headers were valid header values"
    );
}

#[test]
fn mutated_stored_records_parse_or_fail_without_panicking() {
    let express = br#"{"cookie":{"originalMaxAge":60000,"partitioned":true,"priority":"high","expires":"2026-11-26T01:13:46.493Z","secure":false,"httpOnly":true,"domain":"example.com","path":"/","sameSite":"lax"},"views":1,"user":{"name":"alice","roles":["a","b"]}}"#;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut ok = 0;
    for _ in 0..5000 {
        let bytes = mutate(&mut rng, express);
        if let Ok(record) = Record::from_json(&bytes) {
            // Whatever parses can be written back and read again.
            let again = Record::from_json(record.to_json().as_bytes()).unwrap();
            assert_eq!(again.fields, record.fields);
            ok += 1;
        }
    }
    assert!(
        ok > 0,
        "no mutation parsed; the test would not exercise the writer"
    );
}
