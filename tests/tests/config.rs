//! Options from configuration files and the environment are judged by the same rules as
//! the `#[session(...)]` attribute: each compile-fail case of `ui-tests/fail` has its
//! run-time twin here, rejected with a clear `ConfigError`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera::{ConfigError, Secret, SessionData, SessionLayer, SessionOptions};

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

fn config(pairs: &[(&str, &str)]) -> Result<SessionOptions, ConfigError> {
    SessionOptions::default().with_config(pairs.iter().copied())
}

fn rejected(pairs: &[(&str, &str)], needle: &str) {
    match config(pairs) {
        Ok(o) => panic!("{pairs:?} was accepted: {o:?}"),
        Err(e) => assert!(e.to_string().contains(needle), "{pairs:?}: {e}"),
    }
}

#[test]
fn config_rejects_the_misconfigurations_the_attribute_rejects() {
    rejected(&[("maxage2", "30m")], "did you mean `max_age`?");
    rejected(&[("samsite", "lax")], "did you mean `same_site`?");
    rejected(
        &[("frobnicate", "1")],
        "unknown session option `frobnicate`",
    );
    rejected(&[("resave", "maybe")], "expected `true` or `false`");
    rejected(&[("max_age", "30 minutes")], "unknown duration unit");
    rejected(&[("max_age", "0")], "zero");
    rejected(
        &[("max_age", "1800")],
        "has no unit, so it is ambiguous: as seconds write \"30m\", \"1800s\" or \"1800000ms\"",
    );
    rejected(&[("max_age", "-5m")], "negative");
    rejected(&[("max_age", "5w")], "unknown duration unit `w`");
    rejected(&[("same_site", "none")], "needs `secure = true`");
    rejected(
        &[("same_site", "none"), ("secure", "auto")],
        "needs `secure = true`",
    );
    rejected(
        &[("partitioned", "true")],
        "`partitioned` needs `secure = true`",
    );
    rejected(&[("name", "__Host-sid")], "must be Secure");
    rejected(
        &[
            ("name", "__Host-sid"),
            ("secure", "true"),
            ("domain", "example.com"),
        ],
        "cannot have a domain",
    );
    rejected(
        &[("name", "__Host-sid"), ("secure", "true"), ("path", "/app")],
        "must have `path = \"/\"`",
    );
    rejected(&[("name", "__Secure-sid")], "must be Secure");
    rejected(&[("name", "my sid")], "a space");
    rejected(&[("name", "a;b")], "`;`");
    rejected(&[("name", "")], "empty");
    rejected(&[("name", "séance")], "non-ASCII");
    rejected(&[("path", "app")], "must start with \"/\"");
    rejected(&[("domain", "https://example.com")], "scheme");
    rejected(&[("domain", "example.com:8080")], "port");
    rejected(&[("unset", "drop")], "\"keep\", \"destroy\"");
    rejected(&[("priority", "urgent")], "\"low\", \"medium\", \"high\"");
    rejected(
        &[("same_site", "sometimes")],
        "\"strict\", \"lax\", \"none\", \"auto\"",
    );
    rejected(&[("secure", "yes")], "\"true\", \"false\", \"auto\"");
    rejected(&[("secret", "keyboard cat")], "Secret::from_env");
    rejected(&[("expires", "next tuesday")], "ISO-8601");
}

#[test]
fn config_accepts_every_valid_form() {
    let o = config(&[
        ("name", "__Host-sid"),
        ("cookie.max_age", "7d"),
        ("cookie.secure", "true"),
        ("cookie.same_site", "none"),
        ("cookie.partitioned", "true"),
        ("cookie.priority", "HIGH"),
        ("cookie.http_only", "false"),
        ("rolling", "true"),
        ("resave", "false"),
        ("saveUninitialized", "false"),
        ("unset", "destroy"),
        ("proxy", "true"),
    ])
    .unwrap();
    assert_eq!(o.name(), "__Host-sid");
    for d in ["90s", "30m", "1h", "7d", "250ms", "60000ms"] {
        config(&[("max_age", d)]).unwrap();
    }
    config(&[("expires", "2999-01-01T00:00:00Z")]).unwrap();
    config(&[("same_site", "auto"), ("secure", "auto")]).unwrap();
}

/// Runs `env_child` in a child process with `vars` set (the workspace forbids the
/// `unsafe` that `std::env::set_var` needs in edition 2024).
fn run_env_child(vars: &[(&str, &str)], expect: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "env_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(vars.iter().copied())
        .env("TESSERA_ENV_CHILD_EXPECT", expect)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "child did not run: {text}");
    text
}

#[test]
#[ignore = "run by environment_variables_are_read_with_a_prefix_and_checked in a child process"]
fn env_child() {
    let expect = std::env::var("TESSERA_ENV_CHILD_EXPECT").unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    match SessionOptions::default().with_env("TESSERA_T_") {
        Ok(o) => {
            assert_eq!(expect, "ok", "accepted: {o:?}");
            assert_eq!(o.name(), "__Host-sid");
            println!("child: accepted {}", o.name());
        }
        Err(e) => {
            assert!(expect.starts_with("err:"), "rejected: {e}");
            assert!(e.to_string().contains(&expect[4..]), "{e}");
            println!("child: rejected with {e}");
        }
    }
}

#[test]
fn environment_variables_are_read_with_a_prefix_and_checked() {
    let text = run_env_child(
        &[
            ("TESSERA_T_NAME", "__Host-sid"),
            ("TESSERA_T_COOKIE_SECURE", "true"),
            ("TESSERA_T_COOKIE_MAX_AGE", "30m"),
            (
                "TESSERA_T_SECRET",
                "not an option, left to Secret::from_env",
            ),
        ],
        "ok",
    );
    assert!(text.contains("child: accepted __Host-sid"), "{text}");
    let text = run_env_child(
        &[
            ("TESSERA_T_NAME", "__Host-sid"),
            ("TESSERA_T_COOKIE_DOMAIN", "example.com"),
        ],
        "err:must be Secure",
    );
    assert!(text.contains("child: rejected"), "{text}");
}

#[test]
fn environment_variables_that_name_no_option_do_not_stop_start_up_and_near_misses_warn() {
    let text = run_env_child(
        &[
            ("TESSERA_T_NAME", "__Host-sid"),
            ("TESSERA_T_COOKIE_SECURE", "true"),
            // What a Linux desktop sets under the prefix `SESSION_`.
            ("TESSERA_T_MANAGER", "local/host:@/tmp/.ICE-unix/1234"),
            ("TESSERA_T_COOKIE_SAMESITEX", "lax"),
        ],
        "ok",
    );
    assert!(text.contains("child: accepted __Host-sid"), "{text}");
    assert!(
        text.contains("environment variable `TESSERA_T_COOKIE_SAMESITEX` is not a session option; did you mean `TESSERA_T_COOKIE_SAME_SITE`?"),
        "{text}"
    );
    assert!(!text.contains("TESSERA_T_MANAGER` is not"), "{text}");
}

#[test]
fn an_environment_variable_with_a_bad_value_is_named_in_the_error() {
    let text = run_env_child(
        &[
            ("TESSERA_T_NAME", "__Host-sid"),
            ("TESSERA_T_COOKIE_MAX_AGE", "1800"),
        ],
        "err:environment variable `TESSERA_T_COOKIE_MAX_AGE`: invalid session option `max_age`: the duration `1800` has no unit",
    );
    assert!(text.contains("child: rejected"), "{text}");
}

#[test]
fn try_with_options_rejects_what_browsers_reject() {
    let bad = SessionOptions::default().with_same_site(Some("none".parse().unwrap()));
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("s").unwrap());
    let err = layer.clone().try_with_options(bad).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid session option `same_site`"),
        "{err}"
    );
    let good = SessionOptions::default()
        .with_same_site(Some("none".parse().unwrap()))
        .with_secure(tessera::Secure::Always);
    assert!(layer.try_with_options(good).is_ok());
}

#[test]
fn the_hidden_setters_the_derive_calls_refuse_what_the_rules_refuse() {
    use tessera::__private::CheckedSetters as _;
    let o = SessionOptions::default()
        .__path("/app; Domain=evil.example")
        .__domain("evil.example; Secure")
        .__name("bad name");
    assert_eq!(o.name(), "connect.sid");
    assert_eq!(o.path(), "/");
    assert!(!format!("{o:?}").contains("evil"), "{o:?}");
    let o = SessionOptions::default()
        .__path("/app")
        .__domain("example.com")
        .__name("sid");
    assert_eq!((o.name(), o.path()), ("sid", "/app"));
    assert!(format!("{o:?}").contains("example.com"), "{o:?}");
}
