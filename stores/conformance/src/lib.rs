//! The conformance suite of Tessera's session stores: every rule of the
//! [`tessera::store`] contract, checked against a real store, races included.
//!
//! Run it from your store's tests. Each check uses fresh random ids, so a shared backend
//! can run it beside other tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = tessera::MemoryStore::default();
//! // `run()` for a store without `SessionAdmin`; `run_with_admin()` adds the per-user
//! // index checks (`USER_CHECKS`).
//! tessera_store_tests::Suite::new(store).run_with_admin().await.assert_passed();
//! # }
//! ```
//!
//! A store that keeps its records as text can also hand the suite a way to write raw
//! text under an id ([`Suite::with_raw_writer`]); the suite then checks that corrupt
//! records are reported, not panicked on, and that fields written by another writer
//! keep their bytes through patches.
//!
//! The suite catches what a store author falls into: a read-modify-write `patch` loses
//! concurrent updates, a `patch` or `rotate` that writes after a `destroy` brings the
//! session back. Tessera's own tests run it on a deliberately naive store and check
//! that it fails.
//!
//! The checks sleep (stores keep their own clocks): the whole suite takes a few
//! seconds, most of it waiting for records to expire. Run it on a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread")]`) so that the races run in parallel.
//!
//! ## This crate's files
//!
//! `lib.rs` holds the suite and the checks of the store contract, each written next to
//! the rule it checks (a long file, because the checks are many and each says what it
//! saw when it fails); the per-user index checks are in `users.rs`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tessera::store::{Outcome, SessionStore, StoreError};
use tessera::{FieldChange, LoadedRecord, Patch, Record, RecordView, SessionCookie, Touch};

/// Writes raw text under an id, as the store keeps it, for the corrupt-record and
/// foreign-writer checks.
pub type RawWriter =
    Arc<dyn Fn(String, Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The suite, configured for one store.
pub struct Suite<S> {
    store: Arc<S>,
    precision: Duration,
    raw: Option<RawWriter>,
    prefix: String,
}

/// One check that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The check, named after the rule.
    pub check: &'static str,
    /// What was seen.
    pub message: String,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// The checks that held.
    pub passed: Vec<&'static str>,
    /// The checks that did not.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Notes what the check named `check` found.
    fn record(&mut self, check: &'static str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.passed.push(check),
            Err(message) => self.failures.push(Failure { check, message }),
        }
    }

    /// Whether the check named `check` failed.
    pub fn failed(&self, check: &str) -> bool {
        self.failures.iter().any(|f| f.check == check)
    }

    /// Panics with every failure unless all checks held.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(
            self.failures.is_empty(),
            "the store failed the conformance suite:\n{self}"
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for failure in &self.failures {
            writeln!(f, "- {}: {}", failure.check, failure.message)?;
        }
        write!(
            f,
            "{} passed, {} failed",
            self.passed.len(),
            self.failures.len()
        )
    }
}

type Check<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

// After `ensure!`, which it uses.
mod users;

/// The names of the checks, in the order they run.
pub const CHECKS: &[&str] = &[
    "set_then_get_round_trips_cookie_and_fields",
    "a_missing_id_is_none",
    "patch_changes_only_the_listed_fields",
    "patch_never_recreates_a_missing_record",
    "destroy_removes_and_answers_missing_the_second_time",
    "touch_renews_the_expiry_and_keeps_the_fields",
    "touch_never_recreates_a_missing_record",
    "rotate_moves_the_record_and_keeps_its_data",
    "rotate_of_a_missing_record_writes_nothing",
    "writes_after_destroy_leave_nothing_live",
    "writing_an_expired_cookie_deletes_the_record",
    "an_expired_record_is_never_returned",
    "concurrent_patches_of_64_fields_all_survive",
    "patches_racing_a_destroy_never_resurrect_it",
    "a_rotation_racing_a_destroy_never_resurrects_it",
    "a_1_mb_record_round_trips_and_patches",
    "ids_with_unusual_characters_work",
    "nested_and_unicode_values_round_trip",
    "unknown_keys_keep_their_bytes_through_patches",
    "corrupt_records_are_reported_not_panicked_on",
];

/// The checks of the per-user index ([`tessera::SessionAdmin::user_sessions`],
/// [`tessera::SessionAdmin::destroy_user_sessions`]), run by [`Suite::run_with_admin`].
pub const USER_CHECKS: &[&str] = &[
    "user_sessions_lists_the_live_sessions_tied_to_the_user",
    "the_user_tie_follows_rotations_and_patches",
    "destroy_user_sessions_spares_the_exception_and_other_users",
    "a_stale_index_entry_never_revokes_another_users_session",
    "revocation_racing_patches_and_rotations_never_resurrects",
];

impl<S: SessionStore> Suite<S> {
    /// The suite for `store`, with expiry checked to the millisecond.
    pub fn new(store: S) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// [`Suite::new`] for a store already shared.
    pub fn from_arc(store: Arc<S>) -> Self {
        Self {
            store,
            precision: Duration::ZERO,
            raw: None,
            prefix: String::new(),
        }
    }

    /// The precision the store states for expiry (say, whole seconds): a record may
    /// outlive its deadline by this much, never more.
    pub fn expiry_precision(mut self, precision: Duration) -> Self {
        self.precision = precision;
        self
    }

    /// A way to write raw stored text under an id, for the corrupt-record and
    /// foreign-writer checks (skipped without it).
    pub fn with_raw_writer(mut self, raw: RawWriter) -> Self {
        self.raw = Some(raw);
        self
    }

    /// Starts every id with `prefix` (for example to keep ids in one Redis Cluster
    /// hash slot: `"{t}"`).
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Runs every check; a store error or a broken rule is a failure, never a panic.
    pub async fn run(&self) -> Report {
        let mut report = Report::default();
        for &name in CHECKS {
            report.record(name, self.check(name).await);
        }
        report
    }

    fn check(&self, name: &'static str) -> Check<'_> {
        match name {
            "set_then_get_round_trips_cookie_and_fields" => Box::pin(self.round_trip()),
            "a_missing_id_is_none" => Box::pin(self.missing()),
            "patch_changes_only_the_listed_fields" => Box::pin(self.patch_listed()),
            "patch_never_recreates_a_missing_record" => Box::pin(self.patch_missing()),
            "destroy_removes_and_answers_missing_the_second_time" => Box::pin(self.destroy()),
            "touch_renews_the_expiry_and_keeps_the_fields" => Box::pin(self.touch()),
            "touch_never_recreates_a_missing_record" => Box::pin(self.touch_missing()),
            "rotate_moves_the_record_and_keeps_its_data" => Box::pin(self.rotate()),
            "rotate_of_a_missing_record_writes_nothing" => Box::pin(self.rotate_missing()),
            "writes_after_destroy_leave_nothing_live" => Box::pin(self.after_destroy()),
            "writing_an_expired_cookie_deletes_the_record" => Box::pin(self.expired_write()),
            "an_expired_record_is_never_returned" => Box::pin(self.expiry()),
            "concurrent_patches_of_64_fields_all_survive" => Box::pin(self.concurrent_patches()),
            "patches_racing_a_destroy_never_resurrect_it" => Box::pin(self.patch_vs_destroy()),
            "a_rotation_racing_a_destroy_never_resurrects_it" => Box::pin(self.rotate_vs_destroy()),
            "a_1_mb_record_round_trips_and_patches" => Box::pin(self.big()),
            "ids_with_unusual_characters_work" => Box::pin(self.unusual_ids()),
            "nested_and_unicode_values_round_trip" => Box::pin(self.unicode()),
            "unknown_keys_keep_their_bytes_through_patches" => Box::pin(self.foreign_bytes()),
            "corrupt_records_are_reported_not_panicked_on" => Box::pin(self.corrupt()),
            other => Box::pin(async move { Err(format!("no check named {other}")) }),
        }
    }

    fn id(&self, tag: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!(
            "{}conf-{tag}-{nanos:x}-{}",
            self.prefix,
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, String> {
        match self.store.get(id).await {
            Ok(Some(loaded)) => loaded
                .to_record()
                .map(Some)
                .map_err(|e| format!("get({id}): a loaded record does not decode: {e}")),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("get({id}) failed: {}", chain(&e))),
        }
    }

    async fn live(&self, id: &str) -> Result<bool, String> {
        Ok(self.get(id).await?.is_some())
    }

    async fn set(&self, id: &str, record: &Record) -> Result<(), String> {
        self.store
            .set(id, RecordView::from(record))
            .await
            .map_err(|e| format!("set({id}) failed: {}", chain(&e)))
    }

    async fn patch(
        &self,
        id: &str,
        cookie: &SessionCookie,
        changes: &[FieldChange],
    ) -> Result<Outcome, String> {
        self.store
            .patch(id, Patch::new(cookie, changes))
            .await
            .map_err(|e| format!("patch({id}) failed: {}", chain(&e)))
    }

    async fn round_trip(&self) -> Result<(), String> {
        let id = self.id("roundtrip");
        let mut r = record(Some(Duration::from_secs(60)));
        r.cookie = tessera::Record::from_json(
            br#"{"cookie":{"originalMaxAge":60000,"partitioned":true,"priority":"high","expires":"2999-11-26T01:13:46.493Z","secure":true,"httpOnly":false,"domain":"example.com","path":"/app","sameSite":"none"}}"#,
        )
        .map_err(|e| e.to_string())?
        .cookie;
        r.cookie.set_max_age(Some(Duration::from_secs(60)));
        self.set(&id, &r).await?;
        let got = self.get(&id).await?.ok_or("record missing after set")?;
        ensure!(
            got.fields == r.fields,
            "fields {:?} came back as {:?}",
            r.fields,
            got.fields
        );
        let (a, b) = (&got.cookie, &r.cookie);
        ensure!(
            a.original_max_age_ms() == b.original_max_age_ms()
                && a.path() == b.path()
                && a.domain() == b.domain()
                && a.secure() == b.secure()
                && a.http_only() == b.http_only()
                && a.same_site() == b.same_site()
                && a.partitioned() == b.partitioned()
                && a.priority() == b.priority(),
            "cookie {b:?} came back as {a:?}"
        );
        Ok(())
    }

    async fn missing(&self) -> Result<(), String> {
        ensure!(
            !self.live(&self.id("missing")).await?,
            "an id never stored was found"
        );
        Ok(())
    }

    async fn patch_listed(&self) -> Result<(), String> {
        let id = self.id("patch");
        let r = record(Some(Duration::from_secs(60)));
        self.set(&id, &r).await?;
        let mut cookie = r.cookie.clone();
        cookie.set_max_age(Some(Duration::from_secs(120)));
        let changes = [
            FieldChange::set("views", json!(2)),
            FieldChange::set("new", json!("x")),
            FieldChange::remove("user"),
        ];
        let outcome = self.patch(&id, &cookie, &changes).await?;
        ensure!(
            outcome == Outcome::Applied,
            "patch of a live record answered {outcome:?}"
        );
        let got = self.get(&id).await?.ok_or("record missing after patch")?;
        let mut expected = r.fields.clone();
        expected.insert("views".into(), json!(2));
        expected.insert("new".into(), json!("x"));
        expected.remove("user");
        ensure!(
            got.fields == expected,
            "expected {expected:?}, found {:?}",
            got.fields
        );
        ensure!(
            got.cookie.original_max_age_ms() == Some(120_000),
            "the patch's cookie was not stored: {:?}",
            got.cookie
        );
        Ok(())
    }

    async fn patch_missing(&self) -> Result<(), String> {
        let id = self.id("ghost");
        let cookie = record(Some(Duration::from_secs(60))).cookie;
        let outcome = self
            .patch(&id, &cookie, &[FieldChange::set("views", json!(9))])
            .await?;
        ensure!(
            outcome == Outcome::Missing,
            "patch of a missing record answered {outcome:?}"
        );
        ensure!(!self.live(&id).await?, "patch created a missing record");
        let outcome = self.patch(&id, &cookie, &[]).await?;
        ensure!(
            outcome == Outcome::Missing,
            "an empty patch of a missing record answered {outcome:?}"
        );
        ensure!(
            !self.live(&id).await?,
            "an empty patch created a missing record"
        );
        Ok(())
    }

    async fn destroy(&self) -> Result<(), String> {
        let id = self.id("destroy");
        self.set(&id, &record(None)).await?;
        let first = self.store.destroy(&id).await.map_err(|e| chain(&e))?;
        ensure!(
            first == Outcome::Applied,
            "destroy of a live record answered {first:?}"
        );
        ensure!(!self.live(&id).await?, "destroyed record still returned");
        let second = self.store.destroy(&id).await.map_err(|e| chain(&e))?;
        ensure!(
            second == Outcome::Missing,
            "second destroy answered {second:?}"
        );
        Ok(())
    }

    async fn touch(&self) -> Result<(), String> {
        let id = self.id("touch");
        let r = record(Some(Duration::from_millis(1500)));
        self.set(&id, &r).await?;
        let mut cookie = r.cookie.clone();
        cookie.set_max_age(Some(Duration::from_secs(60)));
        // A lazy touch that is due (it moves the deadline by about 58 s, more than the
        // 10 s threshold) must be written.
        let loaded = self.store.get(&id).await.map_err(|e| chain(&e))?;
        let loaded = loaded.and_then(|l| l.deadline());
        let touch = Touch::new(&cookie).lazy(loaded, Some(Duration::from_secs(10)));
        let outcome = self.store.touch(&id, touch).await.map_err(|e| chain(&e))?;
        ensure!(
            outcome == Outcome::Applied,
            "touch of a live record answered {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(1600) + self.precision).await;
        let got = self
            .get(&id)
            .await?
            .ok_or("touch did not renew the expiry")?;
        ensure!(
            got.fields == r.fields,
            "touch changed the fields: {:?}",
            got.fields
        );
        Ok(())
    }

    async fn touch_missing(&self) -> Result<(), String> {
        let id = self.id("touch-ghost");
        let cookie = record(Some(Duration::from_secs(60))).cookie;
        let outcome = self
            .store
            .touch(&id, Touch::new(&cookie))
            .await
            .map_err(|e| chain(&e))?;
        ensure!(
            outcome == Outcome::Missing,
            "touch of a missing record answered {outcome:?}"
        );
        ensure!(!self.live(&id).await?, "touch created a missing record");
        Ok(())
    }

    async fn rotate(&self) -> Result<(), String> {
        let (old, new) = (self.id("rot-old"), self.id("rot-new"));
        let r = record(Some(Duration::from_secs(60)));
        self.set(&old, &r).await?;
        let outcome = self
            .store
            .rotate(&old, &new, None)
            .await
            .map_err(|e| chain(&e))?;
        ensure!(
            outcome == Outcome::Applied,
            "rotate of a live record answered {outcome:?}"
        );
        ensure!(
            !self.live(&old).await?,
            "the old id still answers after rotate"
        );
        let got = self
            .get(&new)
            .await?
            .ok_or("the new id is empty after rotate")?;
        ensure!(
            got.fields == r.fields,
            "rotate changed the fields: {:?}",
            got.fields
        );
        ensure!(
            got.cookie.original_max_age_ms() == Some(60_000),
            "rotate changed the cookie: {:?}",
            got.cookie
        );
        Ok(())
    }

    async fn rotate_missing(&self) -> Result<(), String> {
        let (old, new) = (self.id("rot-ghost"), self.id("rot-ghost-new"));
        let outcome = self
            .store
            .rotate(&old, &new, None)
            .await
            .map_err(|e| chain(&e))?;
        ensure!(
            outcome == Outcome::Missing,
            "rotate of a missing record answered {outcome:?}"
        );
        ensure!(
            !self.live(&new).await?,
            "rotate of a missing record created the new id"
        );
        Ok(())
    }

    async fn after_destroy(&self) -> Result<(), String> {
        let id = self.id("after");
        let new = self.id("after-new");
        let r = record(Some(Duration::from_secs(60)));
        self.set(&id, &r).await?;
        self.store.destroy(&id).await.map_err(|e| chain(&e))?;
        let patched = self
            .patch(&id, &r.cookie, &[FieldChange::set("views", json!(5))])
            .await?;
        let touched = self
            .store
            .touch(&id, Touch::new(&r.cookie))
            .await
            .map_err(|e| chain(&e))?;
        let rotated = self
            .store
            .rotate(&id, &new, None)
            .await
            .map_err(|e| chain(&e))?;
        ensure!(
            [patched, touched, rotated] == [Outcome::Missing; 3],
            "after destroy: patch {patched:?}, touch {touched:?}, rotate {rotated:?}"
        );
        ensure!(
            !self.live(&id).await? && !self.live(&new).await?,
            "a write after destroy brought the session back"
        );
        Ok(())
    }

    async fn expired_write(&self) -> Result<(), String> {
        let id = self.id("expired-write");
        self.set(&id, &record(Some(Duration::from_secs(60))))
            .await?;
        let mut expired = record(None);
        expired.cookie.set_max_age_ms(Some(-1000));
        self.set(&id, &expired).await?;
        ensure!(
            !self.live(&id).await?,
            "a record written with an expired cookie is live"
        );
        Ok(())
    }

    async fn expiry(&self) -> Result<(), String> {
        let id = self.id("expiry");
        self.set(&id, &record(Some(Duration::from_millis(1200))))
            .await?;
        ensure!(self.live(&id).await?, "record missing right after set");
        tokio::time::sleep(Duration::from_millis(1300) + self.precision).await;
        ensure!(
            !self.live(&id).await?,
            "a record was returned after its deadline plus the stated precision ({:?})",
            self.precision
        );
        Ok(())
    }

    async fn concurrent_patches(&self) -> Result<(), String> {
        let id = self.id("concurrent");
        let r = record(Some(Duration::from_secs(60)));
        self.set(&id, &r).await?;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = Arc::clone(&self.store);
            let (id, cookie) = (id.clone(), r.cookie.clone());
            tasks.push(tokio::spawn(async move {
                let changes = [FieldChange::set(format!("f{i}"), json!(i))];
                store.patch(&id, Patch::new(&cookie, &changes)).await
            }));
        }
        for task in tasks {
            let outcome = task
                .await
                .map_err(|e| format!("a patch task failed: {e}"))?;
            let outcome = outcome.map_err(|e| chain(&e))?;
            ensure!(
                outcome == Outcome::Applied,
                "a concurrent patch answered {outcome:?}"
            );
        }
        let got = self
            .get(&id)
            .await?
            .ok_or("record missing after the patches")?;
        let kept = (0..64)
            .filter(|i| got.fields.get(&format!("f{i}")) == Some(&json!(i)))
            .count();
        ensure!(kept == 64, "{kept} of 64 concurrent patches survived");
        ensure!(
            got.fields.get("views") == Some(&json!(1)),
            "an unpatched field changed"
        );
        Ok(())
    }

    async fn patch_vs_destroy(&self) -> Result<(), String> {
        for round in 0..16 {
            let id = self.id("race-patch");
            let r = record(Some(Duration::from_secs(60)));
            self.set(&id, &r).await?;
            let mut tasks = Vec::new();
            for i in 0..8 {
                let store = Arc::clone(&self.store);
                let (target, cookie) = (id.clone(), r.cookie.clone());
                tasks.push(tokio::spawn(async move {
                    let changes = [FieldChange::set(format!("f{i}"), json!(i))];
                    store
                        .patch(&target, Patch::new(&cookie, &changes))
                        .await
                        .map(|_| ())
                }));
                if i == round % 8 {
                    let store = Arc::clone(&self.store);
                    let id = id.clone();
                    tasks.push(tokio::spawn(
                        async move { store.destroy(&id).await.map(|_| ()) },
                    ));
                }
            }
            for task in tasks {
                task.await
                    .map_err(|e| format!("a task failed: {e}"))?
                    .map_err(|e| chain(&e))?;
            }
            ensure!(
                !self.live(&id).await?,
                "round {round}: after a destroy and concurrent patches, the record is live again"
            );
        }
        Ok(())
    }

    async fn rotate_vs_destroy(&self) -> Result<(), String> {
        for round in 0..64 {
            let (old, new) = (self.id("race-rot"), self.id("race-rot-new"));
            self.set(&old, &record(Some(Duration::from_secs(60))))
                .await?;
            let (rotate, destroy) = {
                let (s1, s2) = (Arc::clone(&self.store), Arc::clone(&self.store));
                let (o1, o2, n1) = (old.clone(), old.clone(), new.clone());
                let rotate = tokio::spawn(async move { s1.rotate(&o1, &n1, None).await });
                // The destroy starts at different points of the move, round by round:
                // after a few turns of the scheduler, or after a millisecond, which lands
                // inside a move that takes network round trips between its steps.
                let destroy = tokio::spawn(async move {
                    if round % 5 == 4 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        for _ in 0..round % 5 {
                            tokio::task::yield_now().await;
                        }
                    }
                    s2.destroy(&o2).await
                });
                (rotate, destroy)
            };
            let rotated = rotate
                .await
                .map_err(|e| format!("a task failed: {e}"))?
                .map_err(|e| chain(&e))?;
            let destroyed = destroy
                .await
                .map_err(|e| format!("a task failed: {e}"))?
                .map_err(|e| chain(&e))?;
            let new_live = self.live(&new).await?;
            ensure!(!self.live(&old).await?, "round {round}: the old id is live");
            // Either the rotation came first (the destroy then found nothing under the old
            // id, and the new id lives), or the destroy did (nothing lives).
            ensure!(
                !(rotated == Outcome::Applied && destroyed == Outcome::Applied),
                "round {round}: both the rotation and the destroy found the record"
            );
            ensure!(
                new_live == (rotated == Outcome::Applied),
                "round {round}: rotate answered {rotated:?}, destroy {destroyed:?}, and the new id is {}",
                if new_live { "live" } else { "gone" }
            );
        }
        Ok(())
    }

    async fn big(&self) -> Result<(), String> {
        let id = self.id("big");
        let mut r = record(Some(Duration::from_secs(60)));
        let chunk = "x".repeat(1000);
        for i in 0..1024 {
            r.fields.insert(format!("k{i}"), json!(chunk));
        }
        self.set(&id, &r).await?;
        let got = self
            .get(&id)
            .await?
            .ok_or("a 1 MB record is missing after set")?;
        ensure!(got.fields == r.fields, "a 1 MB record came back changed");
        self.patch(&id, &r.cookie, &[FieldChange::set("k7", json!("small"))])
            .await?;
        let got = self
            .get(&id)
            .await?
            .ok_or("a 1 MB record is missing after a patch")?;
        ensure!(
            got.fields.get("k7") == Some(&json!("small"))
                && got.fields.get("k8") == Some(&json!(chunk)),
            "a patch of a 1 MB record went wrong"
        );
        Ok(())
    }

    async fn unusual_ids(&self) -> Result<(), String> {
        for odd in [
            "a:b",
            "a b",
            "ü-ñ-日本",
            "{tag}x",
            "x/../y",
            "*",
            "\"q\"",
            "a\\b",
            "%2F",
            "sess:x",
        ] {
            let id = self.id(odd);
            let r = record(Some(Duration::from_secs(60)));
            self.set(&id, &r).await?;
            ensure!(self.live(&id).await?, "id {id:?} is missing after set");
            let outcome = self
                .patch(&id, &r.cookie, &[FieldChange::set("views", json!(3))])
                .await?;
            ensure!(
                outcome == Outcome::Applied,
                "patch of id {id:?} answered {outcome:?}"
            );
            self.store.destroy(&id).await.map_err(|e| chain(&e))?;
            ensure!(!self.live(&id).await?, "id {id:?} is live after destroy");
        }
        let long = format!("{}{}", self.id("long"), "z".repeat(200));
        self.set(&long, &record(None)).await?;
        ensure!(
            self.live(&long).await?,
            "a 256-byte id is missing after set"
        );
        Ok(())
    }

    async fn unicode(&self) -> Result<(), String> {
        let id = self.id("unicode");
        let mut r = record(Some(Duration::from_secs(60)));
        r.fields.insert(
            "profile".into(),
            json!({"name": "Zoë 🦀 \u{2028}", "tags": ["a", {"b": [null, true, -1.5e-3]}], "quote": "\"/\\"}),
        );
        self.set(&id, &r).await?;
        let got = self.get(&id).await?.ok_or("record missing after set")?;
        ensure!(
            got.fields == r.fields,
            "nested values came back as {:?}",
            got.fields
        );
        Ok(())
    }

    async fn foreign_bytes(&self) -> Result<(), String> {
        let Some(raw) = &self.raw else {
            // Without raw text, check what the trait can express: values survive.
            let id = self.id("foreign");
            let mut r = record(Some(Duration::from_secs(60)));
            r.fields
                .insert("fromNode".into(), json!({"n": 1.5, "s": "é"}));
            self.set(&id, &r).await?;
            self.patch(&id, &r.cookie, &[FieldChange::set("views", json!(2))])
                .await?;
            let got = self.get(&id).await?.ok_or("record missing after a patch")?;
            ensure!(
                got.fields.get("fromNode") == r.fields.get("fromNode"),
                "an unknown key changed"
            );
            return Ok(());
        };
        let id = self.id("foreign");
        let base = record(Some(Duration::from_secs(60)));
        let cookie = base.cookie.to_json();
        let node = format!(
            r#"{{"cookie":{cookie},"n":1.50,"big":12345678901234567890,"esc":"\u00e9\/","passport":{{"user":"alice","roles":[]}},"views":1}}"#
        );
        raw(id.clone(), node.into_bytes()).await;
        let outcome = self
            .patch(&id, &base.cookie, &[FieldChange::set("views", json!(2))])
            .await?;
        ensure!(
            outcome == Outcome::Applied,
            "patch of a foreign record answered {outcome:?}"
        );
        let loaded: LoadedRecord = self
            .store
            .get(&id)
            .await
            .map_err(|e| chain(&e))?
            .ok_or("a foreign record is missing after a patch")?;
        for (key, bytes) in [
            ("n", &b"1.50"[..]),
            ("big", b"12345678901234567890"),
            ("esc", br#""\u00e9\/""#),
            ("passport", br#"{"user":"alice","roles":[]}"#),
            ("views", b"2"),
        ] {
            let found = loaded.field_json(key);
            ensure!(
                found.as_deref() == Some(bytes),
                "`{key}` was {:?} and is now {:?}",
                String::from_utf8_lossy(bytes),
                found.map(|f| String::from_utf8_lossy(&f).into_owned())
            );
        }
        Ok(())
    }

    async fn corrupt(&self) -> Result<(), String> {
        let Some(raw) = &self.raw else {
            return Ok(());
        };
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            br#"{"cookie":3}"#,
            br#"{"views":1}"#,
            br#"{"cookie":{"expires":"soon"}}"#,
            b"{\"cookie\":{},\"k\":\"\xff\"}",
            b"",
        ] {
            let id = self.id("corrupt");
            raw(id.clone(), bad.to_vec()).await;
            match self.store.get(&id).await {
                Err(StoreError::Corrupt(_)) | Ok(None) => {}
                Ok(Some(_)) => {
                    return Err(format!(
                        "corrupt text {:?} loaded as a record",
                        String::from_utf8_lossy(bad)
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "corrupt text {:?} gave a backend error, not Corrupt: {}",
                        String::from_utf8_lossy(bad),
                        chain(&e)
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A small record: a view count and a nested user.
fn record(max_age: Option<Duration>) -> Record {
    let mut cookie = SessionCookie::default();
    cookie.set_max_age(max_age);
    let mut r = Record {
        cookie,
        ..Record::default()
    };
    r.fields.insert("views".into(), json!(1));
    r.fields.insert("user".into(), json!({"name": "alice"}));
    r
}

/// An error and its sources, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
