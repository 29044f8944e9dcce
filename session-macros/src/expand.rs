//! Checking the model as a whole, then expanding it into the trait impl and the tracked
//! view.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast::{self, Container, Errors, FieldKind, OptionsModel};

pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let container = match ast::parse(input, &mut errors) {
        Ok(c) => c,
        Err(e) => {
            let mut all = Errors::default();
            all.push(e);
            if let Some(more) = errors.into_error() {
                all.push(more);
            }
            return all
                .into_error()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
        }
    };
    crate::check::check(&container, &mut errors);
    let expanded = expand(&container);
    match errors.into_error() {
        // The impl is still emitted (with the valid options), so the one mistake is the
        // only error the user sees, not a cascade of "trait not implemented".
        Some(e) => {
            let err = e.to_compile_error();
            quote! { #err #expanded }
        }
        None => expanded,
    }
}

fn options(o: &OptionsModel) -> TokenStream {
    let mut calls = Vec::new();
    if let Some(n) = &o.name {
        let v = &n.value;
        calls.push(quote!(.__name(#v)));
    }
    let c = &o.cookie;
    if let Some(p) = &c.path {
        let v = &p.value;
        calls.push(quote!(.__path(#v)));
    }
    if let Some(d) = &c.domain {
        let v = &d.value;
        calls.push(quote!(.__domain(#v)));
    }
    if let Some(m) = &c.max_age_ms {
        let v = m.value;
        calls.push(quote!(.__max_age_ms(#v)));
    }
    if let Some(e) = &c.expires_ms {
        let v = e.value;
        calls.push(quote!(.__expires_ms(#v)));
    }
    if let Some(b) = &c.http_only {
        let v = b.value;
        calls.push(quote!(.with_http_only(#v)));
    }
    if let Some(b) = &c.partitioned {
        let v = b.value;
        calls.push(quote!(.with_partitioned(#v)));
    }
    if let Some(s) = &c.secure {
        let variant = format_ident!("{}", format!("{:?}", s.value));
        calls.push(quote!(.with_secure(::tessera::__private::Secure::#variant)));
    }
    if let Some(s) = &c.same_site {
        let variant = format_ident!("{}", format!("{:?}", s.value));
        calls.push(quote!(.with_same_site(::core::option::Option::Some(::tessera::__private::SameSite::#variant))));
    }
    if let Some(p) = &c.priority {
        let variant = format_ident!("{}", format!("{:?}", p.value));
        calls.push(quote!(.with_priority(::core::option::Option::Some(::tessera::__private::Priority::#variant))));
    }
    for (opt, method) in [
        (&o.rolling, quote!(with_rolling)),
        (&o.resave, quote!(with_resave)),
        (&o.save_uninitialized, quote!(with_save_uninitialized)),
    ] {
        if let Some(b) = opt {
            let v = b.value;
            calls.push(quote!(.#method(#v)));
        }
    }
    if let Some(p) = &o.proxy {
        let v = p.value;
        calls.push(quote!(.with_proxy(::core::option::Option::Some(#v))));
    }
    if let Some(t) = &o.idle_timeout_ms {
        let v = t.value;
        calls.push(quote!(.__idle_timeout_ms(#v)));
    }
    if let Some(t) = &o.absolute_timeout_ms {
        let v = t.value;
        calls.push(quote!(.__absolute_timeout_ms(#v)));
    }
    if let Some(h) = &o.id_header {
        let v = &h.value;
        calls.push(quote!(.__id_header(#v)));
    }
    if let Some(u) = &o.unset {
        let variant = format_ident!("{}", format!("{:?}", u.value));
        calls.push(quote!(.with_unset(::tessera::__private::Unset::#variant)));
    }
    quote! {
        {
            use ::tessera::__private::CheckedSetters as _;
            <::tessera::__private::SessionOptions as ::core::default::Default>::default() #(#calls)*
        }
    }
}

fn expand(c: &Container) -> TokenStream {
    let ident = &c.ident;
    let vis = &c.vis;
    let tracked = format_ident!("{}Tracked", ident);
    let options = options(&c.options);
    let p = quote!(::tessera::__private);

    let declared: Vec<&str> = c
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Stored))
        .map(|f| f.key.as_str())
        .collect();

    let mut view_fields = Vec::new();
    let mut defaults = Vec::new();
    let mut load = Vec::new();
    let mut fresh = Vec::new();
    let mut encode = Vec::new();
    let mut diff = Vec::new();
    let mut settle = Vec::new();
    let mut snapshot = Vec::new();
    let mut ops_fns = Vec::new();
    for (i, f) in c.fields.iter().enumerate() {
        let name = &f.ident;
        let fvis = &f.vis;
        let ty = &f.ty;
        let key = &f.key;
        let d = format_ident!("__default_{}", i);
        let ops = format_ident!("__tessera_ops_{}", i);
        defaults.push(quote!(#name: #d));
        // A `flatten` on a type that is not a map was reported; expand it as a plain
        // field so that the report stays the only error.
        let kind = match f.kind {
            FieldKind::Flatten if !crate::check::is_json_map(ty) => &FieldKind::Stored,
            ref k => k,
        };
        match kind {
            FieldKind::Stored => {
                // The one place that requires `Serialize + Deserialize` of the field type,
                // spanned at the type: one precise error if it does not hold.
                ops_fns.push(quote_spanned! {ty.span()=>
                    #[inline]
                    fn #ops() -> #p::FieldOps<#ty> {
                        #p::field_ops::<#ty>()
                    }
                });
                view_fields.push(quote!(#fvis #name: ::tessera::Field<#ty>));
                fresh.push(quote!(#name: ::tessera::Field::__new(#d)));
                load.push(quote! {
                    #name: ::tessera::Field::__new(
                        match #tracked::#ops().decode(stored, #key) {
                            ::core::option::Option::Some(v) => v,
                            ::core::option::Option::None => #d,
                        }
                    )
                });
                encode.push(quote!(#tracked::#ops().encode_into(#key, &#d, out)?;));
                diff.push(quote!(#tracked::#ops().diff(&view.#name, #key, baseline, all, out)?;));
                settle.push(quote!(view.#name.__settle();));
                snapshot.push(quote!(#name: #tracked::#ops().copy(#key, &view.#name)?));
            }
            FieldKind::Flatten => {
                view_fields.push(quote!(#fvis #name: ::tessera::Field<#ty>));
                fresh.push(quote!(#name: ::tessera::Field::__new(#d)));
                load.push(
                    quote!(#name: ::tessera::Field::__new(#p::load_flatten(stored, DECLARED))),
                );
                encode.push(quote! {
                    for (k, v) in #d {
                        if !DECLARED.contains(&k.as_str()) {
                            out.insert(k, v);
                        }
                    }
                });
                diff.push(quote!(#p::diff_flatten(&view.#name, baseline, DECLARED, all, out);));
                settle.push(quote!(view.#name.__settle();));
                snapshot.push(quote!(#name: ::core::clone::Clone::clone(&*view.#name)));
            }
            FieldKind::Skip => {
                view_fields.push(quote!(#fvis #name: #ty));
                fresh.push(quote!(#name: #d));
                load.push(quote!(#name: #d));
                // Not stored, and not required to be `Clone`: the snapshot has its default.
                snapshot.push(quote!(#name: #d));
            }
        }
    }
    let doc = format!(
        "The tracked view of [`{ident}`] that `tessera::Session<{ident}>` derefs to: each stored field is a \
         [`tessera::Field`] whose mutable use marks it touched."
    );

    quote! {
        #[doc = #doc]
        #[allow(missing_docs)]
        #vis struct #tracked {
            #(#view_fields,)*
        }

        impl ::core::fmt::Debug for #tracked {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#tracked)).finish_non_exhaustive()
            }
        }

        #[allow(non_snake_case)]
        impl #tracked {
            #[inline]
            fn __tessera_defaults() -> #ident {
                ::tessera::__private::defaults::<#ident>()
            }
            #(#ops_fns)*
        }

        #[automatically_derived]
        impl ::tessera::SessionData for #ident {
            type Tracked = #tracked;

            fn options() -> ::tessera::SessionOptions {
                #options
            }

            #[allow(unused_variables)]
            fn __load(stored: &::tessera::__private::Baseline) -> #tracked {
                const DECLARED: &[&str] = &[#(#declared),*];
                let #ident { #(#defaults,)* } = #tracked::__tessera_defaults();
                #tracked { #(#load,)* }
            }

            fn __fresh() -> #tracked {
                let #ident { #(#defaults,)* } = #tracked::__tessera_defaults();
                #tracked { #(#fresh,)* }
            }

            #[allow(unused_variables)]
            fn __encode_defaults(out: &mut ::tessera::Fields) -> ::core::result::Result<(), ::tessera::EncodeError> {
                const DECLARED: &[&str] = &[#(#declared),*];
                let #ident { #(#defaults,)* } = #tracked::__tessera_defaults();
                #(#encode)*
                ::core::result::Result::Ok(())
            }

            #[allow(unused_variables)]
            fn __diff(
                view: &#tracked,
                baseline: &::tessera::__private::Baseline,
                all: bool,
                out: &mut ::std::vec::Vec<::tessera::FieldChange>,
            ) -> ::core::result::Result<(), ::tessera::EncodeError> {
                const DECLARED: &[&str] = &[#(#declared),*];
                #(#diff)*
                ::core::result::Result::Ok(())
            }

            #[allow(unused_variables)]
            fn __settle(view: &mut #tracked) {
                #(#settle)*
            }

            #[allow(unused_variables)]
            fn __snapshot(view: &#tracked) -> ::core::result::Result<#ident, ::tessera::EncodeError> {
                let #ident { #(#defaults,)* } = #tracked::__tessera_defaults();
                ::core::result::Result::Ok(#ident { #(#snapshot,)* })
            }
        }
    }
}
