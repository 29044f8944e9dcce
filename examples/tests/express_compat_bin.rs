//! The `express_compat` binary over real TCP: flags, `listening P`, and a session that
//! survives across connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Server, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_express_compat"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn express_compat");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("port");
    (Server(child), port)
}

/// One HTTP/1.1 request on a fresh connection: (status, set-cookie values, body).
fn get(port: u16, path: &str, cookie: Option<&str>) -> (u16, Vec<String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head/body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let cookies = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    (status, cookies, body.to_owned())
}

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
