//! The `login` example in a real browser: Debian's Chromium, driven over WebDriver
//! (chromedriver) with fantoccini, once over plain HTTP and once over HTTPS with a
//! certificate the test makes.
//!
//! Needs `chromium` and `chromedriver` (`.ci/run` installs Debian's packages). On a
//! failure the page is saved as a screenshot under the test's output directory
//! (`target/tmp/browser-screenshots/`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tessera::{SameSite, Secret, SecureConnection, SessionData};
use tessera_examples::login::{Auth, REMEMBER_FOR};
use tessera_tests::services::unavailable;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// chromedriver, killed when dropped.
struct Driver {
    port: u16,
    _child: Child,
}

async fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(test: &str) -> Option<Driver> {
    let (Some(driver), Some(_)) = (which("chromedriver"), which("chromium")) else {
        unavailable(
            test,
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
        );
        return None;
    };
    let port = free_port().await;
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(Driver {
                port,
                _child: child,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start on port {port}");
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file())
}

async fn browser(driver: &Driver) -> Client {
    let profile = std::env::temp_dir().join(format!(
        "tessera-chromium-{}-{}",
        std::process::id(),
        driver.port
    ));
    let caps = serde_json::json!({
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": which("chromium").unwrap(),
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// Serves the login example over HTTP, or over HTTPS with a fresh self-signed
/// certificate (with `SameSite=None`, which browsers take only with `Secure`).
async fn serve(https: bool) -> String {
    let secret = Secret::short_for_migration("a browser-test secret of some length").unwrap();
    if !https {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = tessera_examples::login::app(secret);
        tokio::spawn(async move { axum::serve(listener, app).await });
        return format!("http://127.0.0.1:{}", addr.port());
    }
    let options = Auth::options().with_same_site(Some(SameSite::Auto));
    // The acceptor terminates TLS in this process: it marks requests secure.
    let app = tessera_examples::login::app_with(secret, options).layer(Extension(SecureConnection));
    let listener = TlsListener::bind().await;
    let port = listener.tcp.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("https://localhost:{port}")
}

/// A TLS listener for `axum::serve`, with a certificate for `localhost` made here.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsListener {
    async fn bind() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        Self {
            tcp: TcpListener::bind(("127.0.0.1", 0)).await.unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The session cookie the browser holds, if any.
async fn sid(c: &Client) -> Option<fantoccini::cookies::Cookie<'static>> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "sid")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn log_in(c: &Client, base: &str, remember: bool) {
    c.goto(&format!("{base}/")).await.unwrap();
    c.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wonderland")
        .await
        .unwrap();
    if remember {
        c.find(Locator::Id("remember"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(c, "#private").await, "Only alice can see this.");
}

/// Every step of the test, in one browser session.
async fn journey(c: &Client, base: &str, https: bool) {
    // Before any change: no session, no cookie (save_uninitialized is off).
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(sid(c).await.is_none());
    // An anonymous preference starts a session.
    c.goto(&format!("{base}/prefs/theme?value=dark"))
        .await
        .unwrap();
    let anonymous = sid(c).await.expect("a session cookie");
    // The cookie's attributes: Secure only over HTTPS ("auto"), SameSite as configured.
    assert_eq!(anonymous.secure(), Some(https), "{anonymous:?}");
    assert_eq!(anonymous.http_only(), Some(true));
    // SameSite "auto" over HTTPS is None (with Secure); the example's Lax otherwise.
    let expected_same_site = if https { "Some(None)" } else { "Some(Lax)" };
    assert_eq!(
        format!("{:?}", anonymous.same_site()),
        expected_same_site,
        "{anonymous:?}"
    );

    // Logging in rotates the id; the old cookie no longer opens anything.
    log_in(c, base, false).await;
    let logged_in = sid(c).await.unwrap();
    assert_ne!(logged_in.value(), anonymous.value(), "a new id at login");
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(text_of(c, "#hello").await, "Hello alice.");
    assert!(
        text_of(c, "#prefs").await.contains("theme: dark"),
        "data kept across the login"
    );
    // The 30-minute cookie of the example.
    let expires = logged_in
        .expires_datetime()
        .expect("a max-age cookie has Expires");
    let left = expires.unix_timestamp() - unix_now();
    assert!((1700..=1800).contains(&left), "{left} s");

    // The pre-login cookie, put back, is a stranger now.
    let mut stale = logged_in.clone();
    stale.set_value(anonymous.value().to_owned());
    c.delete_all_cookies().await.unwrap();
    c.add_cookie(stale).await.unwrap();
    c.goto(&format!("{base}/private")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Id("login"))
        .await
        .expect("the protected page sends a stranger to the login form");
    c.delete_all_cookies().await.unwrap();
    c.add_cookie(logged_in.clone()).await.unwrap();

    // Two tabs change different fields at the same moment: both survive.
    let first = c.window().await.unwrap();
    let second = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(first.clone()).await.unwrap();
    c.goto(&format!("{base}/")).await.unwrap();
    c.execute("fetch('/prefs/theme?value=light&delay=500')", Vec::new())
        .await
        .unwrap();
    c.switch_to_window(second).await.unwrap();
    c.goto(&format!("{base}/prefs/language?value=fr&delay=500"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(text_of(c, "#prefs").await, "theme: light, language: fr");
    c.close_window().await.unwrap();
    c.switch_to_window(first).await.unwrap();

    // Logging out clears the cookie, and the protected page redirects.
    c.goto(&format!("{base}/")).await.unwrap();
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Id("login"))
        .await
        .unwrap();
    assert!(sid(c).await.is_none(), "the browser dropped the cookie");
    c.goto(&format!("{base}/private")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path() == "/",
        "redirected to the login form"
    );

    // "Remember me": a 30-day cookie.
    log_in(c, base, true).await;
    let remembered = sid(c).await.unwrap();
    let left = remembered.expires_datetime().unwrap().unix_timestamp() - unix_now();
    let days = REMEMBER_FOR.as_secs() as i64;
    assert!((days - 120..=days).contains(&left), "{left} s");
}

async fn run(https: bool) {
    let test = if https {
        "the_login_example_works_in_chromium_over_https"
    } else {
        "the_login_example_works_in_chromium_over_http"
    };
    let Some(driver) = start_driver(test).await else {
        return;
    };
    let base = serve(https).await;
    let c = browser(&driver).await;
    let outcome = tokio::spawn({
        let c = c.clone();
        async move { journey(&c, &base, https).await }
    })
    .await;
    if let Err(failure) = outcome {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{test}.png"));
        if let Ok(png) = c.screenshot().await {
            std::fs::write(&path, png).unwrap();
            eprintln!("screenshot of the failure: {}", path.display());
        }
        let _ = c.close().await;
        std::panic::resume_unwind(failure.into_panic());
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_example_works_in_chromium_over_http() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_example_works_in_chromium_over_https() {
    run(true).await;
}
