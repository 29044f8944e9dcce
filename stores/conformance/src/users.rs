//! The per-user index checks ([`crate::USER_CHECKS`]): listing a user's sessions,
//! revoking them, and the races of a revocation with patches and moves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tessera::store::{Outcome, SessionAdmin, StoreError};
use tessera::{FieldChange, Patch, Record, Touch};

use crate::{Report, Suite, USER_CHECKS, chain, record};

/// A record tied to `user` through its `_tessera` entry, as `Session::set_user` writes it.
fn tied_record(user: &str) -> Record {
    let mut r = record(Some(Duration::from_secs(60)));
    r.fields.insert(
        tessera::META_KEY.into(),
        json!({"created": 1_796_316_000_000_i64, "user": user, "agent": "conformance/1"}),
    );
    r
}

impl<S: SessionAdmin> Suite<S> {
    /// Runs every check of [`Suite::run`], then the per-user index checks
    /// ([`USER_CHECKS`]), races included.
    pub async fn run_with_admin(&self) -> Report {
        let mut report = self.run().await;
        for &name in USER_CHECKS {
            let outcome = match name {
                "user_sessions_lists_the_live_sessions_tied_to_the_user" => {
                    self.user_listing().await
                }
                "the_user_tie_follows_rotations_and_patches" => self.user_tie_moves().await,
                "destroy_user_sessions_spares_the_exception_and_other_users" => {
                    self.user_revoke().await
                }
                "a_stale_index_entry_never_revokes_another_users_session" => {
                    self.user_stale_entry().await
                }
                "revocation_racing_patches_and_rotations_never_resurrects" => {
                    self.user_revoke_races().await
                }
                other => Err(format!("no check named {other}")),
            };
            report.record(name, outcome);
        }
        report
    }

    async fn listed(&self, user: &str) -> Result<Vec<String>, String> {
        let mut ids: Vec<String> = self
            .store
            .user_sessions(user)
            .await
            .map_err(|e| format!("user_sessions({user}) failed: {}", chain(&e)))?
            .into_iter()
            .map(|info| info.id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn revoke(&self, user: &str, except: Option<&str>) -> Result<usize, String> {
        self.store
            .destroy_user_sessions(user, except)
            .await
            .map_err(|e| format!("destroy_user_sessions({user}) failed: {}", chain(&e)))
    }

    async fn user_listing(&self) -> Result<(), String> {
        let (user, other) = (self.id("user"), self.id("other-user"));
        let mut mine: Vec<String> = (0..3).map(|_| self.id("mine")).collect();
        for id in &mine {
            self.set(id, &tied_record(&user)).await?;
        }
        self.set(&self.id("theirs"), &tied_record(&other)).await?;
        self.set(
            &self.id("anonymous"),
            &record(Some(Duration::from_secs(60))),
        )
        .await?;
        let gone = self.id("mine-destroyed");
        self.set(&gone, &tied_record(&user)).await?;
        self.store.destroy(&gone).await.map_err(|e| chain(&e))?;
        mine.sort();
        ensure!(
            self.listed(&user).await? == mine,
            "user_sessions listed {:?}, not the three live sessions {mine:?}",
            self.listed(&user).await?
        );
        let infos = self
            .store
            .user_sessions(&user)
            .await
            .map_err(|e| chain(&e))?;
        let now = SystemTime::now();
        for info in &infos {
            ensure!(
                info.user_agent.as_deref() == Some("conformance/1")
                    && info.created.is_some()
                    && info.expires.is_some_and(|at| at > now)
                    && info
                        .last_seen
                        .is_some_and(|at| at <= now + Duration::from_secs(2)),
                "a listed session lacks its agent, creation time, expiry or last use: {info:?}"
            );
        }
        ensure!(
            self.listed(&self.id("nobody")).await?.is_empty(),
            "a user with no sessions has some"
        );
        Ok(())
    }

    async fn user_tie_moves(&self) -> Result<(), String> {
        let user = self.id("user");
        let (old, new) = (self.id("tie-old"), self.id("tie-new"));
        self.set(&old, &tied_record(&user)).await?;
        let moved = self
            .store
            .rotate(&old, &new, Some(&user))
            .await
            .map_err(|e| chain(&e))?;
        ensure!(moved == Outcome::Applied, "rotate answered {moved:?}");
        ensure!(
            self.listed(&user).await? == vec![new.clone()],
            "after rotate the user's sessions are {:?}, not the new id",
            self.listed(&user).await?
        );
        // A login on an existing session ties it by a patch...
        let later = self.id("tie-later");
        let r = record(Some(Duration::from_secs(60)));
        self.set(&later, &r).await?;
        let tie = [FieldChange::set(
            tessera::META_KEY,
            json!({"created": 1_796_316_000_000_i64, "user": user}),
        )];
        let patched = self
            .store
            .patch(&later, Patch::new(&r.cookie, &tie).with_user(Some(&user)))
            .await
            .map_err(|e| chain(&e))?;
        ensure!(patched == Outcome::Applied, "patch answered {patched:?}");
        let mut both = vec![new.clone(), later.clone()];
        both.sort();
        ensure!(
            self.listed(&user).await? == both,
            "a session tied by a patch is not listed: {:?}",
            self.listed(&user).await?
        );
        // ...and a logout that keeps the session unties it.
        let untie = [FieldChange::remove(tessera::META_KEY)];
        self.store
            .patch(&later, Patch::new(&r.cookie, &untie))
            .await
            .map_err(|e| chain(&e))?;
        ensure!(
            self.listed(&user).await? == vec![new],
            "an untied session is still listed: {:?}",
            self.listed(&user).await?
        );
        Ok(())
    }

    async fn user_revoke(&self) -> Result<(), String> {
        let (user, other) = (self.id("user"), self.id("other-user"));
        let ids: Vec<String> = (0..5).map(|_| self.id("device")).collect();
        for id in &ids {
            self.set(id, &tied_record(&user)).await?;
        }
        let theirs = self.id("theirs");
        self.set(&theirs, &tied_record(&other)).await?;
        let keep = &ids[0];
        let destroyed = self.revoke(&user, Some(keep)).await?;
        ensure!(destroyed == 4, "destroyed {destroyed} sessions, not 4");
        for id in &ids[1..] {
            ensure!(!self.live(id).await?, "revoked session {id} is still live");
        }
        ensure!(self.live(keep).await?, "the spared session was destroyed");
        ensure!(
            self.live(&theirs).await?,
            "another user's session was destroyed"
        );
        ensure!(
            self.listed(&user).await? == vec![keep.clone()],
            "after revocation the user's sessions are {:?}",
            self.listed(&user).await?
        );
        ensure!(
            self.revoke(&user, None).await? == 1 && !self.live(keep).await?,
            "revoking without an exception left the last session"
        );
        Ok(())
    }

    async fn user_stale_entry(&self) -> Result<(), String> {
        let (alice, bob) = (self.id("alice"), self.id("bob"));
        let id = self.id("handed-over");
        self.set(&id, &tied_record(&alice)).await?;
        // The session now belongs to bob (alice logged out, bob logged in on it).
        let r = tied_record(&bob);
        let change = [FieldChange::set(
            tessera::META_KEY,
            r.fields[tessera::META_KEY].clone(),
        )];
        self.store
            .patch(&id, Patch::new(&r.cookie, &change).with_user(Some(&bob)))
            .await
            .map_err(|e| chain(&e))?;
        let destroyed = self.revoke(&alice, None).await?;
        ensure!(
            destroyed == 0 && self.live(&id).await?,
            "revoking alice destroyed {destroyed} sessions, bob's among them"
        );
        ensure!(
            self.listed(&alice).await?.is_empty(),
            "alice still lists bob's session"
        );
        ensure!(
            self.listed(&bob).await? == vec![id],
            "bob's session is not listed"
        );
        Ok(())
    }

    async fn user_revoke_races(&self) -> Result<(), String> {
        for round in 0..64 {
            let user = self.id("racer");
            let (old, new) = (self.id("race-old"), self.id("race-new"));
            let r = tied_record(&user);
            self.set(&old, &r).await?;
            let mut tasks = Vec::new();
            for n in 0..4 {
                let (store, old, new, user, cookie) = (
                    Arc::clone(&self.store),
                    old.clone(),
                    new.clone(),
                    user.clone(),
                    r.cookie.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let change = [FieldChange::set(format!("f{n}"), json!(n))];
                    let patch = Patch::new(&cookie, &change).with_user(Some(&user));
                    store.patch(&old, patch).await?;
                    if n == 0 {
                        // The moved session is known under its new id only through
                        // the move itself.
                        store.rotate(&old, &new, Some(&user)).await?;
                        store
                            .touch(&new, Touch::new(&cookie).with_user(Some(&user)))
                            .await?;
                    } else {
                        store.patch(&old, patch).await?;
                    }
                    Ok::<(), StoreError>(())
                }));
            }
            // Start the revocation at different points of the changes and the move.
            match round % 4 {
                0 => {}
                1 => tokio::task::yield_now().await,
                2 => {
                    for _ in 0..round % 16 {
                        tokio::task::yield_now().await;
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
            let revoked = self.revoke(&user, None).await?;
            for task in tasks {
                task.await
                    .map_err(|e| format!("a task failed: {e}"))?
                    .map_err(|e| chain(&e))?;
            }
            ensure!(
                !self.live(&old).await? && !self.live(&new).await?,
                "round {round}: a session revoked while it changed or moved lives on \
                 (revoked {revoked}; old live: {}, new live: {})",
                self.live(&old).await?,
                self.live(&new).await?
            );
        }
        Ok(())
    }
}
