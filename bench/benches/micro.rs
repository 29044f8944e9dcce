//! Criterion micro-benchmarks of the hot pieces of a session request, plus whole
//! in-process requests (no network) through bare axum, Tessera and tower-sessions.
//!
//! `cargo bench -p tessera-bench --bench micro`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tessera::{
    FieldChange, HmacSigner, MemoryStore, Patch, Record, RecordView, Secret, SessionCookie,
    SessionStore, Signer,
};
use tower::ServiceExt;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn signing(c: &mut Criterion) {
    let secret = Secret::new("a benchmark secret that is long enough").unwrap();
    let id = "0123456789abcdefghijklmnopqrstuv";
    let signed = HmacSigner.sign(id, &secret);
    c.bench_function("sign a cookie value", |b| {
        b.iter(|| HmacSigner.sign(black_box(id), &secret))
    });
    c.bench_function("unsign a cookie value", |b| {
        b.iter(|| HmacSigner.unsign(black_box(&signed), &secret).is_some())
    });
    let secrets = tessera::Secrets::from(secret.clone());
    // The value as the browser sends it back (URL-encoded).
    let sent = format!("s%3A{}", signed.replace('/', "%2F").replace('+', "%2B"));
    c.bench_function(
        "read a cookie value verified before (per-thread memory)",
        |b| b.iter(|| tessera::__bench::read_signed_cookie(&secrets, black_box(&sent)).is_some()),
    );
}

fn cookie_header(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_static(
            "_ga=GA1.2.1234567890.1234567890; theme=dark; lang=en-GB; csrftoken=abcdefghijklmnopqrstuvwxyz012345; \
             connect.sid=s%3A0123456789abcdefghijklmnopqrstuv.BpxCrWRpvZMh%2Fwk%2Fdjl34N%2Bm%2BVQEU7K%2F5WenLwJCgFU; _gid=GA1.2.987",
        ),
    );
    c.bench_function("parse a Cookie header with 6 cookies", |b| {
        b.iter(|| tessera::__bench::find_cookie(black_box(&headers), "connect.sid"))
    });
    c.bench_function("generate a session id", |b| {
        b.iter(tessera::__bench::generate_id)
    });
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(Some(std::time::Duration::from_secs(3600)));
    c.bench_function("render Set-Cookie", |b| {
        b.iter(|| {
            tessera::__bench::render_set_cookie(
                black_box(&cookie),
                "connect.sid",
                "s:abc.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU",
            )
        })
    });
}

/// A session of about `bytes` bytes of JSON, in 20 fields.
pub fn big_record(bytes: usize) -> Record {
    let mut r = Record::default();
    r.cookie
        .set_max_age(Some(std::time::Duration::from_secs(3600)));
    r.fields.insert("views".into(), json!(1));
    let chunk = "x".repeat(bytes / 20);
    for i in 0..20 {
        r.fields
            .insert(format!("field{i:02}"), json!({"text": chunk, "n": i}));
    }
    r
}

fn store(c: &mut Criterion) {
    let rt = rt();
    let store = MemoryStore::default();
    let mut small = Record::default();
    small.fields.insert("views".into(), json!(1));
    rt.block_on(store.set("small", RecordView::from(&small)))
        .unwrap();
    let big = big_record(10_000);
    rt.block_on(store.set("big", RecordView::from(&big)))
        .unwrap();
    for (name, id) in [("small", "small"), ("10 KB", "big")] {
        c.bench_function(&format!("MemoryStore get + decode a {name} session"), |b| {
            b.iter(|| {
                let r = rt.block_on(store.get(black_box(id))).unwrap().unwrap();
                let v: Option<u64> = r
                    .field_json("views")
                    .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
                    .and_then(|v| v.as_u64());
                black_box(v)
            })
        });
    }
    c.bench_function("MemoryStore patch 1 field of a 10 KB session", |b| {
        let changes = [FieldChange::set("views", json!(2))];
        let patch = Patch::new(&big.cookie, &changes);
        b.iter(|| rt.block_on(store.patch(black_box("big"), patch)).unwrap())
    });
}

fn requests(c: &mut Criterion) {
    let rt = rt();
    for kind in ["bare", "tessera", "tower-sessions"] {
        let app = tessera_bench::app(kind.parse().unwrap());
        let first = rt
            .block_on(
                app.clone()
                    .oneshot(Request::get("/").body(Body::empty()).unwrap()),
            )
            .unwrap();
        let cookie = first
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .unwrap_or_default();
        for (scenario, path, with_cookie) in [
            ("A", "/", true),
            ("A-read", "/read", true),
            ("B", "/", false),
        ] {
            c.bench_function(&format!("in-process request {scenario} {kind}"), |b| {
                b.iter(|| {
                    let mut req = Request::get(path);
                    if with_cookie && !cookie.is_empty() {
                        req = req.header(header::COOKIE, &cookie);
                    }
                    let res = rt
                        .block_on(app.clone().oneshot(req.body(Body::empty()).unwrap()))
                        .unwrap();
                    black_box(res.status())
                })
            });
        }
    }
}

criterion_group!(benches, signing, cookie_header, store, requests);
criterion_main!(benches);
