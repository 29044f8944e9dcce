//! `profile_requests KIND SCENARIO N`: N in-process requests, for callgrind/perf
//! (`valgrind --tool=callgrind target/release/profile_requests tessera A 20000`).
//! SCENARIO is A, A-read, B, or (Tessera only) K<keys>: `views += 1` on a session that
//! holds that many other keys, and U and U-read: A and A-read on a session tied to a
//! user (`set_user`).

use axum::body::Body;
use axum::http::{Request, header};
use tower::ServiceExt;

fn main() {
    let mut args = std::env::args().skip(1);
    let kind: tessera_bench::Kind = match args.next().unwrap_or_default().parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let scenario = args.next().unwrap_or_else(|| "A".to_owned());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        std::process::exit(1);
    };
    let app = tessera_bench::app(kind);
    // K2000, K8000: `views += 1` on a session that holds that many other keys (Tessera).
    let keys: Option<usize> = scenario.strip_prefix('K').and_then(|n| n.parse().ok());
    let logged_in = scenario.starts_with('U');
    let first_path = match keys {
        Some(n) => format!("/wide/fill/{n}"),
        None if logged_in => "/login".to_owned(),
        None => "/".to_owned(),
    };
    let Ok(first) = Request::get(first_path.as_str()).body(Body::empty()) else {
        std::process::exit(1);
    };
    let first = rt.block_on(app.clone().oneshot(first));
    let cookie = first
        .ok()
        .and_then(|r| r.headers().get(header::SET_COOKIE).cloned())
        .and_then(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .map(str::to_owned)
        });
    // Bare axum sets no cookie: it gets one of the same shape anyway, so that in A and
    // A-read every server parses the same request (as in the load benchmark).
    let cookie = cookie.or_else(|| {
        Some(format!(
            "connect.sid=s%3A{}.{}%2F{}",
            "i".repeat(32),
            "s".repeat(20),
            "t".repeat(20)
        ))
    });
    let (path, with_cookie) = match scenario.as_str() {
        "A" | "U" => ("/", true),
        "A-read" | "U-read" => ("/read", true),
        _ if keys.is_some() => ("/wide", true),
        _ => ("/", false),
    };
    let mut ok = 0usize;
    for _ in 0..n {
        let mut req = Request::get(path);
        if let (true, Some(c)) = (with_cookie, &cookie) {
            req = req.header(header::COOKIE, c);
        }
        let Ok(req) = req.body(Body::empty()) else {
            continue;
        };
        let res = match rt.block_on(app.clone().oneshot(req)) {
            Ok(res) => res,
            Err(never) => match never {},
        };
        ok += usize::from(res.status().is_success());
    }
    println!("{ok} ok of {n}");
}
