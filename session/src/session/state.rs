//! Everything the layer knows about one request's session: its id, the tracked view,
//! the baseline it was loaded from, the cookie, Tessera's record entry, and what was
//! stored or changed during the request.

use std::sync::Arc;

use http::request::Parts;

use super::SessionError;
use crate::baseline::Baseline;
use crate::cookie::SessionCookie;
use crate::data::SessionData;
use crate::layer::{Ctx, Transport};
use crate::meta::{META_KEY, Meta};
use crate::record::{FieldChange, Fields, LoadedRecord, Patch, RecordView};

/// Whether Tessera's own record entry ([`META_KEY`]) has something to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaWrite {
    /// Nothing new.
    Clean,
    /// A new session's creation time: written with the session if it is saved anyway,
    /// but not a reason to save it (`saveUninitialized` still decides).
    Along,
    /// The user tie changed, or a loaded session got its creation time: a modification.
    Changed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    Destroyed,
    Unset,
}

/// Where the session's id came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdOrigin {
    /// The id the request's verified cookie (or header) carried, its session loaded.
    FromRequest,
    /// A new id. `had_cookie`: the request carried a verified id whose session was gone.
    New { had_cookie: bool },
    /// Changed in this request (`regenerate`, `rotate_id`): itself a modification.
    Changed { had_cookie: bool },
}

impl IdOrigin {
    /// The request carried a verified session id.
    pub(crate) fn had_cookie(self) -> bool {
        match self {
            Self::FromRequest => true,
            Self::New { had_cookie } | Self::Changed { had_cookie } => had_cookie,
        }
    }

    /// The id is not the one the request carried.
    pub(crate) fn is_new(self) -> bool {
        self != Self::FromRequest
    }

    /// The id changed in this request.
    pub(crate) fn changed(self) -> bool {
        matches!(self, Self::Changed { .. })
    }
}

/// What the store holds under the session's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Nothing (a new session, or one destroyed or lost in this request).
    Nothing,
    /// The record the session was loaded from; `clean`: it equals the baseline (loaded
    /// with `resave` off).
    Loaded { clean: bool },
    /// Written by `save()` in this request, and equal to the baseline.
    SavedThisRequest,
}

impl Stored {
    pub(crate) fn in_store(self) -> bool {
        self != Self::Nothing
    }

    pub(crate) fn clean(self) -> bool {
        matches!(self, Self::Loaded { clean: true } | Self::SavedThisRequest)
    }

    pub(crate) fn saved_in_request(self) -> bool {
        self == Self::SavedThisRequest
    }
}

/// What `save()` already wrote in this request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Field changes (or an id change).
    pub(crate) fields: bool,
    /// Cookie changes.
    pub(crate) cookie: bool,
}

/// Everything the layer knows about the request's session.
pub(crate) struct State<T: SessionData> {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) id: String,
    pub(crate) origin: IdOrigin,
    pub(crate) view: T::Tracked,
    /// The stored fields the view was loaded from (`None`: a new session, whose
    /// baseline is the encoded `Default`, computed only when needed).
    pub(crate) baseline: Option<Baseline>,
    pub(crate) cookie: SessionCookie,
    /// When the store said it would drop the loaded record (ms since the epoch).
    pub(crate) loaded_deadline: Option<i64>,
    pub(crate) stored: Stored,
    pub(crate) flushed: Flushed,
    pub(crate) phase: Phase,
    pub(crate) request_secure: bool,
    /// A copy of the request head for a custom `genid` (only kept when one is set).
    pub(crate) genid_parts: Option<Arc<Parts>>,
    /// Tessera's record entry: read from the baseline on first use (a session that
    /// never asks costs no lookup).
    pub(crate) meta: std::sync::OnceLock<Option<Box<Meta>>>,
    pub(crate) meta_write: MetaWrite,
    /// Where the request carried the id, and so where the response sends it.
    pub(crate) transport: Transport,
    /// The id of a stored session this request found past its absolute timeout: the
    /// layer destroys it before its own write (not while loading, which would make
    /// every request's extraction future larger).
    pub(crate) stale_id: Option<Box<str>>,
}

impl<T: SessionData> State<T> {
    /// A new session (fresh data, the layer's cookie options) for `id`.
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        id: String,
        had_cookie: bool,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        transport: Transport,
        stale_id: Option<Box<str>>,
    ) -> Self {
        let mut now = None;
        let mut clock = || *now.get_or_insert_with(|| ctx.now_ms());
        let cookie = SessionCookie::from_options(&ctx.options.cookie, request_secure, &mut clock);
        // The absolute timeout counts from here.
        let created = ctx.options.absolute_timeout.map(|_| clock());
        let meta = created.map(|created| {
            Box::new(Meta {
                created: Some(created),
                ..Meta::default()
            })
        });
        Self {
            origin: IdOrigin::New { had_cookie },
            meta: std::sync::OnceLock::from(meta),
            meta_write: if created.is_some() {
                MetaWrite::Along
            } else {
                MetaWrite::Clean
            },
            transport,
            stale_id,
            ..Self::assemble(ctx, id, request_secure, genid_parts, T::__fresh(), cookie)
        }
    }

    /// The session loaded from the store under the id the request's cookie carried.
    /// With an absolute timeout, its record entry is read now (`now` stamps a creation
    /// time on a record that has none: written by Node, or before the option was on).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn loaded(
        ctx: Arc<Ctx>,
        id: String,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        loaded: LoadedRecord,
        saved_clean: bool,
        transport: Transport,
        now: i64,
    ) -> Self {
        let view = T::__load(&loaded.fields);
        let (meta, meta_write) = match ctx.options.absolute_timeout {
            None => (std::sync::OnceLock::new(), MetaWrite::Clean),
            Some(_) => {
                let mut meta = loaded.meta();
                let write = if meta.created.is_none() {
                    meta.created = Some(now);
                    MetaWrite::Changed
                } else {
                    MetaWrite::Clean
                };
                (std::sync::OnceLock::from(Some(Box::new(meta))), write)
            }
        };
        Self {
            transport,
            meta,
            meta_write,
            loaded_deadline: loaded.deadline,
            origin: IdOrigin::FromRequest,
            baseline: Some(loaded.fields),
            stored: Stored::Loaded { clean: saved_clean },
            ..Self::assemble(ctx, id, request_secure, genid_parts, view, loaded.cookie)
        }
    }

    /// A state for `id` with `view` and `cookie`, nothing stored and nothing changed yet.
    fn assemble(
        ctx: Arc<Ctx>,
        id: String,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        view: T::Tracked,
        cookie: SessionCookie,
    ) -> Self {
        Self {
            ctx,
            id,
            origin: IdOrigin::New { had_cookie: false },
            view,
            baseline: None,
            cookie,
            loaded_deadline: None,
            stored: Stored::Nothing,
            flushed: Flushed::default(),
            phase: Phase::Active,
            request_secure,
            genid_parts,
            meta: std::sync::OnceLock::new(),
            meta_write: MetaWrite::Clean,
            transport: Transport::Cookie,
            stale_id: None,
        }
    }

    pub(super) fn replace_with(&mut self, loaded: LoadedRecord, saved_clean: bool) {
        self.loaded_deadline = loaded.deadline;
        self.view = T::__load(&loaded.fields);
        self.baseline = Some(loaded.fields);
        self.cookie = loaded.cookie;
        self.meta = std::sync::OnceLock::new();
        self.meta_write = MetaWrite::Clean;
        self.stored = Stored::Loaded { clean: saved_clean };
        self.phase = Phase::Active;
    }

    /// The stored fields (the encoded defaults for a new session, computed only when
    /// needed).
    pub(crate) fn baseline(&mut self) -> Result<&Baseline, SessionError> {
        if self.baseline.is_none() {
            let mut fields = Fields::new();
            T::__encode_defaults(&mut fields)?;
            self.baseline = Some(Baseline::from(fields));
        }
        Ok(self.baseline.get_or_insert_with(Baseline::default))
    }

    /// The changed fields against the baseline.
    pub(crate) fn changes(&mut self) -> Result<Vec<FieldChange>, SessionError> {
        let mut out = Vec::new();
        self.baseline()?;
        if let Some(b) = &self.baseline {
            T::__diff(&self.view, b, false, &mut out)?;
            if !out.is_empty() && !b.surely_within(&out, &self.ctx.options) {
                let (keys, bytes) = b.size_after(&out);
                self.ctx.options.check_size(keys, bytes)?;
            }
        }
        Ok(out)
    }

    /// The patch of this session: its cookie and `changes`, with the text it was loaded
    /// from as a compare-and-set store's guess.
    pub(crate) fn patch<'a>(&'a self, changes: &'a [FieldChange]) -> Patch<'a> {
        Patch::new(&self.cookie, changes)
            .with_loaded_text(self.baseline.as_ref().and_then(Baseline::record_text))
            .with_cookie_attributes_changed(self.flushed.cookie || self.cookie.changed)
    }

    /// The whole record of this session with `changes`, which [`State::changes`]
    /// computed (and with them the baseline), applied.
    pub(crate) fn record<'a>(&'a self, changes: &'a [FieldChange]) -> RecordView<'a> {
        static NONE: std::sync::OnceLock<Baseline> = std::sync::OnceLock::new();
        let base = match &self.baseline {
            Some(base) => base,
            None => NONE.get_or_init(Baseline::default),
        };
        RecordView::of(&self.cookie, base, changes)
    }

    /// Tessera's record entry (`None`: the record has none), read from the stored
    /// fields on first use.
    pub(crate) fn meta(&self) -> Option<&Meta> {
        self.meta
            .get_or_init(|| {
                self.baseline
                    .as_ref()
                    .and_then(|b| b.get(META_KEY))
                    .map(|stored| {
                        Box::new(match stored {
                            crate::baseline::StoredValue::Json(text) => Meta::from_json(text),
                            crate::baseline::StoredValue::Value(v) => Meta::from_value(v),
                        })
                    })
            })
            .as_deref()
    }

    pub(super) fn meta_mut(&mut self) -> &mut Meta {
        let meta = self.meta().cloned().unwrap_or_default();
        self.meta = std::sync::OnceLock::from(Some(Box::new(meta)));
        match self.meta.get_mut() {
            Some(Some(meta)) => meta,
            _ => unreachable!("the entry was just set"),
        }
    }

    /// The user the session is tied to. The end of every request asks, so a record
    /// without an entry answers without initialising the cached entry.
    pub(crate) fn user(&self) -> Option<&str> {
        if self.meta.get().is_none() {
            // Not read yet: borrow the user from the stored text if the scanner reads it.
            match self.baseline.as_ref().and_then(|b| b.get(META_KEY)) {
                None => return None,
                Some(crate::baseline::StoredValue::Json(text)) => {
                    if let Ok(user) = crate::meta::user_in(text) {
                        return user;
                    }
                }
                Some(crate::baseline::StoredValue::Value(_)) => {}
            }
        }
        self.meta().and_then(|m| m.user.as_deref())
    }

    /// Keeps the cookie's expiry, and so the store's, within the absolute timeout: a
    /// session never outlives `created + absolute_timeout` in the browser or the store,
    /// however recently it was renewed. Run before every write and cookie.
    #[inline]
    pub(crate) fn cap_to_absolute_timeout(&mut self) {
        if let Some(limit) = self.ctx.options.absolute_timeout {
            self.cap_expiry(limit);
        }
    }

    // Out of line: sessions without an absolute timeout pay for the check above only,
    // and the record-entry read stays out of the request path's inlined code.
    #[inline(never)]
    fn cap_expiry(&mut self, limit: std::time::Duration) {
        if let Some(created) = self.meta().and_then(|m| m.created) {
            self.cookie
                .cap_expires_at(created.saturating_add(crate::time::duration_ms(limit)));
        }
    }

    /// The write of the record entry, if it has something new.
    pub(crate) fn meta_change(&self) -> Option<FieldChange> {
        if self.meta_write == MetaWrite::Clean {
            return None;
        }
        Some(match self.meta().and_then(Meta::to_value) {
            Some(v) => FieldChange::set(META_KEY, v),
            None => FieldChange::remove(META_KEY),
        })
    }

    /// Changes the record entry with `f`; a real change is a modification.
    pub(crate) fn change_meta(&mut self, now: i64, f: impl FnOnce(&mut Meta)) {
        let meta = self.meta_mut();
        let before = meta.clone();
        f(meta);
        if *meta != before {
            if meta.user.is_some() && meta.created.is_none() {
                meta.created = Some(now);
            }
            self.meta_write = MetaWrite::Changed;
        }
    }

    /// The stored session is gone (destroyed or expired by another request): nothing
    /// more is written for it, and its cookie is cleared.
    pub(crate) fn lost(&mut self) -> SessionError {
        self.phase = Phase::Destroyed;
        self.stored = Stored::Nothing;
        SessionError::Gone
    }

    pub(super) fn new_id(&self) -> Result<String, SessionError> {
        self.ctx.generate_id(self.genid_parts.as_deref())
    }

    pub(crate) fn is_new_id(&self) -> bool {
        self.origin.is_new()
    }
}
