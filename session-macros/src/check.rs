//! Validation of the parsed model as a whole: the rules that involve more than one
//! option or field. Single values were checked while parsing (`ast`), with the same
//! shared `rules`.

use syn::spanned::Spanned;

use crate::ast::{Container, Errors, FieldKind, OptionsModel};
use crate::rules;

pub fn check(c: &Container, errors: &mut Errors) {
    let o = &c.options.cookie;
    if let (Some(_), Some(expires)) = (&o.max_age_ms, &o.expires_ms) {
        errors.at(
            expires.span,
            "`max_age` and `expires` both set the lifetime; keep only one (prefer `max_age`)",
        );
    }
    if !errors.value_refused() {
        check_combination(&c.options, errors);
    }
    let mut seen: Vec<(&str, &syn::Ident)> = Vec::new();
    let mut flatten: Option<&syn::Ident> = None;
    for f in &c.fields {
        match f.kind {
            FieldKind::Skip => continue,
            FieldKind::Flatten => {
                if let Some(first) = flatten {
                    errors.at(
                        f.ident.span(),
                        format!(
                            "only one field can be `flatten`; `{first}` already receives the undeclared keys"
                        ),
                    );
                }
                flatten = Some(&f.ident);
                if !is_json_map(&f.ty) {
                    errors.at(
                        f.ty.span(),
                        "a `flatten` field must be a `serde_json::Map<String, serde_json::Value>`",
                    );
                }
                continue;
            }
            FieldKind::Stored => {}
        }
        if f.key == "cookie" {
            errors.at(
                f.ident.span(),
                "the stored key `cookie` is reserved for the session cookie; rename the field with `#[session(rename = \"...\")]`",
            );
        }
        if f.key == "_tessera" {
            errors.at(
                f.ident.span(),
                "the stored key `_tessera` is reserved for Tessera's own entry (creation time and user); rename the field with `#[session(rename = \"...\")]`",
            );
        }
        if f.key.is_empty() {
            errors.at(f.ident.span(), "a stored key cannot be empty");
        }
        if let Some((_, other)) = seen.iter().find(|(k, _)| *k == f.key) {
            errors.at(
                f.ident.span(),
                format!(
                    "fields `{other}` and `{}` are both stored under the key \"{}\"; rename one",
                    f.ident, f.key
                ),
            );
        }
        seen.push((&f.key, &f.ident));
    }
}

/// The browser rules on attribute combinations, shared with the runtime (`rules`).
fn check_combination(o: &OptionsModel, errors: &mut Errors) {
    let c = &o.cookie;
    let settings = rules::CookieSettings {
        name: o.name.as_ref().map_or("connect.sid", |n| n.value.as_str()),
        secure: c.secure.as_ref().map(|v| v.value),
        same_site: c.same_site.as_ref().map(|v| v.value),
        partitioned: c.partitioned.as_ref().is_some_and(|p| p.value),
        domain: c.domain.as_ref().map(|d| d.value.as_str()),
        path: c.path.as_ref().map_or("/", |p| p.value.as_str()),
    };
    let fallback = proc_macro2::Span::call_site();
    for (culprit, message) in rules::check_combination(&settings) {
        let span = match culprit {
            rules::Culprit::Name => o.name.as_ref().map(|v| v.span),
            rules::Culprit::SameSite => c.same_site.as_ref().map(|v| v.span),
            rules::Culprit::Partitioned => c.partitioned.as_ref().map(|v| v.span),
            rules::Culprit::Domain => c.domain.as_ref().map(|v| v.span),
            rules::Culprit::Path => c.path.as_ref().map(|v| v.span),
            rules::Culprit::IdleTimeout => o.idle_timeout_ms.as_ref().map(|v| v.span),
            rules::Culprit::AbsoluteTimeout => o.absolute_timeout_ms.as_ref().map(|v| v.span),
        };
        errors.at(span.unwrap_or(fallback), message);
    }
    let lifetimes = rules::Lifetimes {
        idle_ms: o.idle_timeout_ms.as_ref().map(|v| v.value),
        absolute_ms: o.absolute_timeout_ms.as_ref().map(|v| v.value),
        cookie_lifetime: c.max_age_ms.is_some() || c.expires_ms.is_some(),
        rolling: o.rolling.as_ref().map(|v| v.value),
    };
    for (culprit, message) in rules::check_lifetimes(&lifetimes) {
        let span = match culprit {
            rules::Culprit::AbsoluteTimeout => o.absolute_timeout_ms.as_ref().map(|v| v.span),
            _ => o.idle_timeout_ms.as_ref().map(|v| v.span),
        };
        errors.at(span.unwrap_or(fallback), message);
    }
}

pub fn is_json_map(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Map" || s.ident == "Fields"),
        _ => false,
    }
}
