//! Parsing: the struct and its `#[session(...)]` attributes into a model. Every problem is
//! collected (with its span) instead of stopping at the first.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, Ident, Lit, Type, Visibility};

use crate::rules;

/// Collected errors; combined into one `syn::Error` at the end.
#[derive(Default)]
pub struct Errors(Option<syn::Error>, bool);

impl Errors {
    /// Records an option whose value was refused: the checks of option combinations
    /// then stay silent, since they would judge a value that is not there (a second,
    /// cascading error).
    pub fn push_value(&mut self, e: syn::Error) {
        self.1 = true;
        self.push(e);
    }
    /// Whether an option's value was refused.
    pub fn value_refused(&self) -> bool {
        self.1
    }
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    pub fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }
    pub fn into_error(self) -> Option<syn::Error> {
        self.0
    }
}

pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

#[derive(Default)]
pub struct CookieModel {
    pub max_age_ms: Option<Spanned<u64>>,
    pub expires_ms: Option<Spanned<i64>>,
    pub path: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub http_only: Option<Spanned<bool>>,
    pub secure: Option<Spanned<rules::Secure>>,
    pub same_site: Option<Spanned<rules::SameSite>>,
    pub partitioned: Option<Spanned<bool>>,
    pub priority: Option<Spanned<rules::Priority>>,
}

#[derive(Default)]
pub struct OptionsModel {
    pub name: Option<Spanned<String>>,
    pub cookie: CookieModel,
    pub rolling: Option<Spanned<bool>>,
    pub resave: Option<Spanned<bool>>,
    pub save_uninitialized: Option<Spanned<bool>>,
    pub unset: Option<Spanned<rules::Unset>>,
    pub proxy: Option<Spanned<bool>>,
    pub idle_timeout_ms: Option<Spanned<u64>>,
    pub absolute_timeout_ms: Option<Spanned<u64>>,
    pub id_header: Option<Spanned<String>>,
}

pub enum FieldKind {
    Stored,
    Skip,
    Flatten,
}

pub struct FieldModel {
    pub ident: Ident,
    pub vis: Visibility,
    pub ty: Type,
    pub key: String,
    pub kind: FieldKind,
}

pub struct Container {
    pub ident: Ident,
    pub vis: Visibility,
    pub options: OptionsModel,
    pub fields: Vec<FieldModel>,
}

use rules::{COOKIE_KEYS, TOP_KEYS};
const FIELD_KEYS: &[&str] = &["rename", "skip", "flatten"];

/// Parses the input. `Err` only when the shape itself is unusable (not a struct with
/// named fields); option errors are collected in `errors` and leave defaults in place.
pub fn parse(input: &DeriveInput, errors: &mut Errors) -> Result<Container, syn::Error> {
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(_) => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "SessionData needs named fields: each field is stored under its name; \
                     write `struct Name { field: Type }`",
                ));
            }
            Fields::Unit => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "SessionData cannot be derived for a unit struct: a session needs at least one named field",
                ));
            }
        },
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "SessionData can only be derived for a struct with named fields, not an enum; \
                 put the enum in a field of a struct",
            ));
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "SessionData can only be derived for a struct with named fields, not a union",
            ));
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "SessionData cannot be derived for a generic struct; use concrete field types",
        ));
    }

    let mut options = OptionsModel::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("session")) {
        let res = attr.parse_nested_meta(|meta| {
            parse_top(&meta, &mut options, errors);
            Ok(())
        });
        if let Err(e) = res {
            errors.push(e);
        }
    }

    let mut fields = Vec::new();
    for f in &named.named {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        let mut key = ident.to_string();
        if let Some(stripped) = key.strip_prefix("r#") {
            key = stripped.to_owned();
        }
        let mut kind = FieldKind::Stored;
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("session")) {
            let res = attr.parse_nested_meta(|meta| {
                let k = path_name(&meta);
                match k.as_str() {
                    "rename" => match lit_str(&meta) {
                        Ok(s) => key = s.value,
                        Err(e) => errors.push(e),
                    },
                    "skip" => kind = FieldKind::Skip,
                    "flatten" => kind = FieldKind::Flatten,
                    _ => {
                        unknown(&meta, &k, FIELD_KEYS, "field", errors);
                    }
                }
                Ok(())
            });
            if let Err(e) = res {
                errors.push(e);
            }
        }
        fields.push(FieldModel {
            ident,
            vis: f.vis.clone(),
            ty: f.ty.clone(),
            key,
            kind,
        });
    }

    Ok(Container {
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        options,
        fields,
    })
}

fn path_name(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| {
            meta.path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect::<Vec<_>>()
                .join("::")
        })
}

/// Reports an unknown key (with a suggestion) and skips its value.
fn unknown(meta: &ParseNestedMeta<'_>, key: &str, known: &[&str], what: &str, errors: &mut Errors) {
    let mut msg = if what.is_empty() {
        format!("unknown session option `{key}`")
    } else {
        format!("unknown session {what} option `{key}`")
    };
    if let Some(near) = rules::closest(key, known) {
        msg.push_str(&format!("; did you mean `{near}`?"));
    } else {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        msg.push_str(&format!("; expected one of {}", list.join(", ")));
    }
    errors.at(meta.path.span(), msg);
    skip_value(meta);
}

fn skip_value(meta: &ParseNestedMeta<'_>) {
    if meta.input.peek(syn::Token![=]) {
        if let Ok(v) = meta.value() {
            let _ = v.parse::<syn::Expr>();
        }
    } else if meta.input.peek(syn::token::Paren) {
        let _ = meta.parse_nested_meta(|inner| {
            skip_value(&inner);
            Ok(())
        });
    }
}

fn lit(meta: &ParseNestedMeta<'_>) -> syn::Result<Lit> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match expr {
        syn::Expr::Lit(l) => Ok(l.lit),
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => Err(syn::Error::new(
            u.span(),
            format!(
                "`{}` cannot be negative; use a positive value such as \"30m\"",
                path_name(meta)
            ),
        )),
        other => Err(syn::Error::new(
            other.span(),
            "expected a literal value (a string, an integer or `true`/`false`)",
        )),
    }
}

fn lit_str(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<String>> {
    match lit(meta)? {
        Lit::Str(s) => Ok(Spanned {
            value: s.value(),
            span: s.span(),
        }),
        other => Err(syn::Error::new(
            other.span(),
            format!(
                "`{}` expects a string literal, like `= \"...\"`",
                path_name(meta)
            ),
        )),
    }
}

fn lit_bool(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<bool>> {
    if !meta.input.peek(syn::Token![=]) {
        // A bare flag: `rolling`.
        return Ok(Spanned {
            value: true,
            span: meta.path.span(),
        });
    }
    match lit(meta)? {
        Lit::Bool(b) => Ok(Spanned {
            value: b.value,
            span: b.span(),
        }),
        Lit::Str(s) => {
            let name = path_name(meta);
            let text = s.value();
            // `"no"`, `"off"`, `"0"` mean false; `"yes"`, `"on"`, `"1"` mean true.
            let word = text.trim().to_ascii_lowercase();
            let meant = if matches!(word.as_str(), "true" | "yes" | "y" | "on" | "1") {
                "true"
            } else if matches!(word.as_str(), "false" | "no" | "n" | "off" | "0") {
                "false"
            } else {
                return Err(syn::Error::new(
                    s.span(),
                    format!(
                        "`{name}` expects a bool, not a string: write `{name} = true` or `{name} = false` (without quotes)"
                    ),
                ));
            };
            Err(syn::Error::new(
                s.span(),
                format!(
                    "`{name}` expects a bool, not a string: write `{name} = {meant}` without quotes"
                ),
            ))
        }
        other => Err(syn::Error::new(
            other.span(),
            format!("`{}` expects `true` or `false`", path_name(meta)),
        )),
    }
}

fn set_once<T>(
    slot: &mut Option<Spanned<T>>,
    meta: &ParseNestedMeta<'_>,
    value: syn::Result<Spanned<T>>,
    errors: &mut Errors,
) {
    match value {
        Err(e) => errors.push_value(e),
        Ok(v) => {
            if slot.is_some() {
                errors.at(
                    meta.path.span(),
                    format!("duplicate session option `{}`", path_name(meta)),
                );
            } else {
                *slot = Some(v);
            }
        }
    }
}

/// Applies a rule to a string option, reporting its message at the value.
fn checked(
    value: syn::Result<Spanned<String>>,
    rule: impl FnOnce(&str) -> Result<(), String>,
) -> syn::Result<Spanned<String>> {
    let v = value?;
    rule(&v.value).map_err(|m| syn::Error::new(v.span, m))?;
    Ok(v)
}

/// One of an option's choices, parsed into the enum the runtime uses.
fn choice<E: std::str::FromStr<Err = rules::ChoiceError>>(
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<Spanned<E>> {
    let v = lit_str(meta)?;
    match v.value.parse::<E>() {
        Ok(value) => Ok(Spanned {
            value,
            span: v.span,
        }),
        Err(e) => Err(syn::Error::new(v.span, e.message)),
    }
}

/// A duration with a unit (`"30m"`), for `option`: a bare number is ambiguous (seconds to
/// a Rust reader, milliseconds to express), and zero is a mistake.
fn duration_ms(meta: &ParseNestedMeta<'_>, option: &str) -> syn::Result<Spanned<u64>> {
    let zero = if option == "max_age" {
        "`max_age = 0` expires the session at once; omit `max_age` for a browser-session cookie"
            .to_owned()
    } else {
        format!("`{option}` of zero ends every session at once; omit `{option}` for no limit")
    };
    match lit(meta) {
        Ok(Lit::Str(s)) => match rules::parse_duration_ms(&s.value()) {
            Ok(ms) => Ok(Spanned {
                value: ms,
                span: s.span(),
            }),
            Err(m) if option != "max_age" && m.contains("is zero") => {
                Err(syn::Error::new(s.span(), zero))
            }
            Err(m) => Err(syn::Error::new(s.span(), m)),
        },
        Ok(Lit::Int(i)) => match i.base10_parse::<u64>() {
            Ok(0) => Err(syn::Error::new(i.span(), zero)),
            // `max_age = 1800`: seconds to a Rust reader, milliseconds to express.
            Ok(n) => Err(syn::Error::new(i.span(), rules::bare_number_message(n))),
            Err(e) => Err(e),
        },
        Ok(other) => Err(syn::Error::new(
            other.span(),
            format!(
                "`{option}` expects a duration with a unit, such as \"30m\", \"1h\", \"7d\", \"90s\" or \"1500ms\""
            ),
        )),
        Err(e) => Err(e),
    }
}

fn parse_top(meta: &ParseNestedMeta<'_>, o: &mut OptionsModel, errors: &mut Errors) {
    let key = path_name(meta);
    match key.as_str() {
        "name" | "key" => {
            let v = checked(lit_str(meta), rules::check_cookie_name);
            set_once(&mut o.name, meta, v, errors);
        }
        "rolling" => set_once(&mut o.rolling, meta, lit_bool(meta), errors),
        "resave" => set_once(&mut o.resave, meta, lit_bool(meta), errors),
        "save_uninitialized" => set_once(&mut o.save_uninitialized, meta, lit_bool(meta), errors),
        "proxy" => set_once(&mut o.proxy, meta, lit_bool(meta), errors),
        "idle_timeout" => {
            let v = duration_ms(meta, "idle_timeout");
            set_once(&mut o.idle_timeout_ms, meta, v, errors);
        }
        "absolute_timeout" => {
            let v = duration_ms(meta, "absolute_timeout");
            set_once(&mut o.absolute_timeout_ms, meta, v, errors);
        }
        "id_header" => {
            let v = checked(lit_str(meta), rules::check_id_header);
            set_once(&mut o.id_header, meta, v, errors);
        }
        "unset" => {
            let v = choice::<rules::Unset>(meta);
            set_once(&mut o.unset, meta, v, errors);
        }
        "cookie" => {
            let res = meta.parse_nested_meta(|inner| {
                parse_cookie(&inner, &mut o.cookie, errors);
                Ok(())
            });
            if let Err(e) = res {
                errors.push(e);
            }
        }
        "secret" | "secrets" => {
            errors.at(
                meta.path.span(),
                "secrets do not belong in source code; pass the secret at run time: \
                 `SessionLayer::<T>::new(Secret::from_env(\"SESSION_SECRET\")?)`",
            );
            skip_value(meta);
        }
        "store" | "genid" | "signature" => {
            let how = match key.as_str() {
                "store" => "`.with_store(store)`",
                "genid" => "`.with_genid(|parts| ...)`",
                _ => "`.with_signer(signer)`",
            };
            errors.at(
                meta.path.span(),
                format!("`{key}` is a run-time value, not an attribute option; set it on the layer with {how}"),
            );
            skip_value(meta);
        }
        _ => {
            // `max_age` written at the top level belongs in `cookie(...)`.
            if let Some(near) = rules::closest(&key, COOKIE_KEYS) {
                errors.at(
                    meta.path.span(),
                    format!("`{key}` is a cookie option; write it inside `cookie({near} = ...)`"),
                );
                skip_value(meta);
                return;
            }
            unknown(meta, &key, TOP_KEYS, "", errors);
        }
    }
}

fn parse_cookie(meta: &ParseNestedMeta<'_>, c: &mut CookieModel, errors: &mut Errors) {
    let key = path_name(meta);
    match key.as_str() {
        "max_age" => {
            let v = duration_ms(meta, "max_age");
            set_once(&mut c.max_age_ms, meta, v, errors);
        }
        "expires" => {
            let v = lit_str(meta).and_then(|s| {
                crate::time::parse_iso_date(&s.value)
                    .map(|ms| Spanned {
                        value: ms,
                        span: s.span,
                    })
                    .ok_or_else(|| {
                        syn::Error::new(
                            s.span,
                            "`expires` expects an ISO-8601 date such as \"2027-01-01T00:00:00Z\"",
                        )
                    })
            });
            set_once(&mut c.expires_ms, meta, v, errors);
        }
        "path" => {
            let v = checked(lit_str(meta), rules::check_cookie_path);
            set_once(&mut c.path, meta, v, errors);
        }
        "domain" => {
            let v = checked(lit_str(meta), rules::check_cookie_domain);
            set_once(&mut c.domain, meta, v, errors);
        }
        "http_only" => set_once(&mut c.http_only, meta, lit_bool(meta), errors),
        "partitioned" => set_once(&mut c.partitioned, meta, lit_bool(meta), errors),
        "secure" => {
            let v = if meta.input.peek(syn::Token![=]) {
                match lit(meta) {
                    Ok(Lit::Bool(b)) => Ok(Spanned {
                        value: if b.value {
                            rules::Secure::Always
                        } else {
                            rules::Secure::Never
                        },
                        span: b.span(),
                    }),
                    Ok(Lit::Str(s)) if s.value() == "auto" => Ok(Spanned {
                        value: rules::Secure::Auto,
                        span: s.span(),
                    }),
                    Ok(other) => Err(syn::Error::new(
                        other.span(),
                        "`secure` expects `true`, `false` or \"auto\"",
                    )),
                    Err(e) => Err(e),
                }
            } else {
                Ok(Spanned {
                    value: rules::Secure::Always,
                    span: meta.path.span(),
                })
            };
            set_once(&mut c.secure, meta, v, errors);
        }
        "same_site" => {
            let v = choice::<rules::SameSite>(meta);
            set_once(&mut c.same_site, meta, v, errors);
        }
        "priority" => {
            let v = choice::<rules::Priority>(meta);
            set_once(&mut c.priority, meta, v, errors);
        }
        _ => unknown(meta, &key, COOKIE_KEYS, "cookie", errors),
    }
}
