//! express-session's end-of-request decisions, as pure functions named after its own
//! (`shouldSave`, `shouldTouch`, `shouldSetCookie`, and what `destroy` and `unset`
//! leave behind). They read a few facts about the request's session and answer; the
//! layer gathers the facts, calls them, and does the writing. Each is tested by a table
//! of cases that needs no HTTP.

use crate::options::Unset;

/// What the end of a request knows about its session.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Facts {
    /// The id was not read from the request's cookie: a new session, or one whose id
    /// was regenerated or rotated in this request.
    pub(crate) new_id: bool,
    /// The id changed in this request (`rotate_id`): the moved record is written too.
    pub(crate) id_changed: bool,
    /// A field changed (now, or in a `save()` earlier in the request), or the id did.
    pub(crate) modified: bool,
    /// The handler changed the cookie (`cookie_mut`).
    pub(crate) cookie_changed: bool,
    /// Fields changed since the stored record was read or written.
    pub(crate) unsaved_changes: bool,
    /// The store holds a record under the id.
    pub(crate) in_store: bool,
    /// That record equals what was loaded (loaded with `resave` off, or saved in this
    /// request).
    pub(crate) saved_clean: bool,
    /// `save()` wrote the session during this request.
    pub(crate) saved_in_request: bool,
    /// The cookie has an expiry (not a browser-session cookie).
    pub(crate) expires: bool,
    /// The cookie is `Secure`.
    pub(crate) secure_cookie: bool,
    /// The request came over TLS (or a trusted proxy said so).
    pub(crate) request_secure: bool,
    /// The `rolling` option.
    pub(crate) rolling: bool,
    /// The `saveUninitialized` option.
    pub(crate) save_uninitialized: bool,
}

/// Whether the response carries the session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetCookie {
    /// Send it.
    Send,
    /// express would send it, but it is `Secure` and the request is not: hold it back.
    HeldBackInsecure,
    /// Do not send it.
    No,
}

/// express's `shouldSetCookie`. A new id gets its cookie when the session is kept
/// (`saveUninitialized`, a change, or already saved: unlike express, which leaves an
/// orphan record, a session the handler saved explicitly also gets its cookie). A known
/// id gets it again with `rolling`, a changed cookie, or a change to an expiring
/// session. Never a `Secure` cookie over plain http.
pub(crate) fn should_set_cookie(f: &Facts) -> SetCookie {
    let express = if f.new_id {
        f.save_uninitialized || f.modified || f.in_store
    } else {
        f.rolling || f.cookie_changed || (f.expires && f.modified)
    };
    match (express, f.secure_cookie && !f.request_secure) {
        (false, _) => SetCookie::No,
        (true, true) => SetCookie::HeldBackInsecure,
        (true, false) => SetCookie::Send,
    }
}

/// express's `shouldSave`. A new, never-stored session without `saveUninitialized` is
/// saved only when modified; otherwise the session is saved unless the store already
/// holds exactly it (nothing changed, no cookie change, and the record is clean, which
/// `resave` turns off), and a moved record always is.
pub(crate) fn should_save(f: &Facts) -> bool {
    if !f.save_uninitialized && !f.in_store && f.new_id {
        f.modified
    } else {
        let store_holds_it = f.in_store && f.saved_clean && !f.unsaved_changes;
        f.id_changed || !store_holds_it || f.cookie_changed
    }
}

/// express's `shouldTouch`: a stored session that is not saved, under a known id, and
/// not already written by `save()` in this request, has its expiry renewed.
pub(crate) fn should_touch(f: &Facts) -> bool {
    !should_save(f) && f.in_store && !f.new_id && !f.saved_in_request
}

/// What reaches the store at the end of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// The changed fields and the renewed cookie of a stored session.
    Patch,
    /// The whole record of a session the store does not hold.
    Set,
    /// The renewed expiry alone.
    Touch,
    /// Nothing.
    Nothing,
}

/// The write the decisions above add up to.
pub(crate) fn write(f: &Facts) -> Write {
    match (should_save(f), f.in_store) {
        (true, true) => Write::Patch,
        (true, false) => Write::Set,
        (false, _) if should_touch(f) => Write::Touch,
        (false, _) => Write::Nothing,
    }
}

/// After `destroy`: the cookie is cleared when the request brought one.
pub(crate) fn clear_cookie_after_destroy(had_cookie: bool) -> bool {
    had_cookie
}

/// After `unset` (express's `req.session = null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterUnset {
    /// `unset = "keep"`: the stored session stays, the cookie is left alone.
    Keep,
    /// `unset = "destroy"`: the stored session is destroyed, and the cookie cleared when
    /// the request brought one.
    Destroy {
        /// Send a clearing cookie.
        clear_cookie: bool,
    },
}

/// What `unset` does under the option.
pub(crate) fn after_unset(unset: Unset, had_cookie: bool) -> AfterUnset {
    match unset {
        Unset::Keep => AfterUnset::Keep,
        Unset::Destroy => AfterUnset::Destroy {
            clear_cookie: had_cookie,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session loaded from the request's cookie, as it was stored.
    fn loaded() -> Facts {
        Facts {
            in_store: true,
            saved_clean: true,
            ..Facts::default()
        }
    }

    /// A request without a cookie.
    fn fresh() -> Facts {
        Facts {
            new_id: true,
            ..Facts::default()
        }
    }

    #[test]
    fn should_save_follows_express() {
        let cases: &[(&str, Facts, bool)] = &[
            ("unchanged, clean (resave off)", loaded(), false),
            (
                "unchanged, resave on",
                Facts {
                    saved_clean: false,
                    ..loaded()
                },
                true,
            ),
            (
                "a field changed",
                Facts {
                    modified: true,
                    unsaved_changes: true,
                    ..loaded()
                },
                true,
            ),
            (
                "the cookie changed",
                Facts {
                    cookie_changed: true,
                    ..loaded()
                },
                true,
            ),
            (
                "the id moved",
                Facts {
                    new_id: true,
                    id_changed: true,
                    modified: true,
                    ..loaded()
                },
                true,
            ),
            ("new, uninitialized, saveUninitialized off", fresh(), false),
            (
                "new, modified, saveUninitialized off",
                Facts {
                    modified: true,
                    unsaved_changes: true,
                    ..fresh()
                },
                true,
            ),
            (
                "new, uninitialized, saveUninitialized on",
                Facts {
                    save_uninitialized: true,
                    ..fresh()
                },
                true,
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(should_save(facts), *want, "{name}");
        }
    }

    #[test]
    fn should_touch_follows_express() {
        let cases: &[(&str, Facts, bool)] = &[
            ("unchanged, clean: touched", loaded(), true),
            (
                "saved by save() already",
                Facts {
                    saved_in_request: true,
                    ..loaded()
                },
                false,
            ),
            (
                "saved at the end instead",
                Facts {
                    modified: true,
                    unsaved_changes: true,
                    ..loaded()
                },
                false,
            ),
            ("new: nothing to touch", fresh(), false),
            (
                "not in the store",
                Facts {
                    in_store: false,
                    ..loaded()
                },
                false,
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(should_touch(facts), *want, "{name}");
        }
    }

    #[test]
    fn should_set_cookie_follows_express_and_never_sends_secure_over_http() {
        let cases: &[(&str, Facts, SetCookie)] = &[
            ("known id, nothing new", loaded(), SetCookie::No),
            (
                "known id, rolling",
                Facts {
                    rolling: true,
                    ..loaded()
                },
                SetCookie::Send,
            ),
            (
                "known id, cookie changed",
                Facts {
                    cookie_changed: true,
                    ..loaded()
                },
                SetCookie::Send,
            ),
            (
                "known id, modified, browser-session cookie",
                Facts {
                    modified: true,
                    ..loaded()
                },
                SetCookie::No,
            ),
            (
                "known id, modified, expiring cookie",
                Facts {
                    modified: true,
                    expires: true,
                    ..loaded()
                },
                SetCookie::Send,
            ),
            ("new, uninitialized, not kept", fresh(), SetCookie::No),
            (
                "new, saveUninitialized",
                Facts {
                    save_uninitialized: true,
                    ..fresh()
                },
                SetCookie::Send,
            ),
            (
                "new, saved explicitly",
                Facts {
                    in_store: true,
                    ..fresh()
                },
                SetCookie::Send,
            ),
            (
                "Secure over http",
                Facts {
                    modified: true,
                    secure_cookie: true,
                    ..fresh()
                },
                SetCookie::HeldBackInsecure,
            ),
            (
                "Secure over https",
                Facts {
                    modified: true,
                    secure_cookie: true,
                    request_secure: true,
                    ..fresh()
                },
                SetCookie::Send,
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(should_set_cookie(facts), *want, "{name}");
        }
    }

    #[test]
    fn the_write_is_a_patch_a_set_a_touch_or_nothing() {
        let changed = Facts {
            modified: true,
            unsaved_changes: true,
            ..loaded()
        };
        assert_eq!(write(&changed), Write::Patch);
        let new = Facts {
            modified: true,
            unsaved_changes: true,
            ..fresh()
        };
        assert_eq!(write(&new), Write::Set);
        assert_eq!(write(&loaded()), Write::Touch);
        assert_eq!(write(&fresh()), Write::Nothing);
    }

    #[test]
    fn destroy_and_unset_clear_the_cookie_only_when_one_came() {
        assert!(clear_cookie_after_destroy(true));
        assert!(!clear_cookie_after_destroy(false));
        assert_eq!(after_unset(Unset::Keep, true), AfterUnset::Keep);
        assert_eq!(
            after_unset(Unset::Destroy, true),
            AfterUnset::Destroy { clear_cookie: true }
        );
        assert_eq!(
            after_unset(Unset::Destroy, false),
            AfterUnset::Destroy {
                clear_cookie: false
            }
        );
    }
}
