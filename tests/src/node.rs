//! The real express-session (tests/node/express_compat.js) as a child process, and a
//! small HTTP/1.1 client for talking to it and to `express_compat` over TCP.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A running Node server, killed when dropped.
pub struct NodeApp {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _child: Child,
}

/// The reference script (`TESSERA_EXPRESS_SCRIPT`), or why it is missing.
pub fn script() -> Result<String, String> {
    std::env::var("TESSERA_EXPRESS_SCRIPT").map_err(|_| {
        "TESSERA_EXPRESS_SCRIPT is not set (npm ci --prefix tests/node, then point it at tests/node/express_compat.js)"
            .to_owned()
    })
}

impl NodeApp {
    /// Starts `node <script> --port 0 <args>` and waits for `listening P`.
    ///
    /// # Panics
    ///
    /// When Node cannot start or does not print its port.
    pub async fn start(script: &str, args: &[String]) -> Self {
        let mut child = Command::new("node")
            .arg(script)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start node: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("node's stdout"));
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap_or_else(|e| panic!("read node's first line: {e}"));
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("node did not start ({args:?}): {line:?}"));
        Self {
            port,
            _child: child,
        }
    }
}

/// An HTTP answer read whole.
#[derive(Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Every `Set-Cookie`.
    pub set_cookies: Vec<String>,
    /// The body (de-chunked).
    pub body: String,
}

impl HttpReply {
    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// When it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `name=value` of the first `Set-Cookie`.
    pub fn cookie(&self) -> Option<String> {
        self.set_cookies
            .first()
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
    }
}

/// `GET path` on a fresh connection to 127.0.0.1:`port`.
///
/// # Panics
///
/// When the server does not answer HTTP.
pub async fn http_get(
    port: u16,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpReply {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head: {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let set_cookies = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpReply {
        status,
        set_cookies,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest.get(n + 2..).unwrap_or_default();
    }
    out
}
