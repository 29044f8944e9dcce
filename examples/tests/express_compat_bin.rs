//! The `express_compat` binary over real TCP: flags, `listening P`, and a session that
//! survives across connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{get, start};

#[test]
fn express_compat_binary_serves_views_over_tcp_and_prints_listening() {
    let (_server, port) = start(&[
        "--port",
        "0",
        "--store",
        "memory",
        "--secret",
        "keyboard cat",
        "--max-age",
        "60000",
        "--save-uninitialized",
        "--same-site",
        "lax",
    ]);
    let (status, cookies, body) = get(port, "/views", None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["views"], 1);
    assert_eq!(v["id"].as_str().map(str::len), Some(32));
    let cookie = cookies
        .first()
        .expect("Set-Cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(cookies[0].contains("; SameSite=Lax"), "{cookies:?}");
    let (_, _, body) = get(port, "/views", Some(&cookie));
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["views"], 2);
    let max_age = v["maxAge"].as_i64().expect("maxAge");
    assert!((59_000..=60_000).contains(&max_age), "{max_age}");
}

#[test]
fn express_compat_rejects_unknown_flags_and_missing_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_express_compat"))
        .args(["--port", "0", "--store", "memory"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--secret"));
    let out = Command::new(env!("CARGO_BIN_EXE_express_compat"))
        .args(["--port", "0", "--secret", "s", "--frobnicate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
