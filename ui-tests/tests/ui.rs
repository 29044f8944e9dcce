//! Compile-fail and compile-pass cases of `#[derive(SessionData)]`. Refresh the `.stderr`
//! snapshots with `TRYBUILD=overwrite cargo test -p tessera-ui-tests` and review them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("fail/*.rs");
    t.pass("pass/*.rs");
}
