//! Compile-fail and compile-pass cases of `#[derive(SessionData)]`. Refresh the `.stderr`
//! snapshots with `TRYBUILD=overwrite cargo test -p tessera-ui-tests` and review them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The compiler the `.stderr` snapshots were written with; CI runs the same one.
const PINNED_RUSTC: &str = "rustc 1.95.0";

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !version.starts_with(PINNED_RUSTC) {
        let message = format!(
            "the ui-test snapshots are pinned to {PINNED_RUSTC}, but this is {:?}; \
             run them with that toolchain, or refresh them with TRYBUILD=overwrite and update PINNED_RUSTC",
            version.trim()
        );
        // CI checks the snapshots on the pinned compiler: there a mismatch fails.
        assert!(std::env::var_os("TESSERA_UI_PINNED").is_none(), "{message}");
        // Elsewhere the comparison is skipped, visibly: written to the terminal directly,
        // past the test harness's capture of `eprintln!`.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED ui snapshots: {message}");
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("fail/*.rs");
    t.pass("pass/*.rs");
}
