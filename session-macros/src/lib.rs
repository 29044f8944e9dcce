//! `#[derive(SessionData)]` for [tessera](https://docs.rs/tessera). Use it through
//! `tessera::SessionData`; this crate holds no runtime logic.
//!
//! The derive parses the struct and its `#[session(...)]` attributes into a small model
//! (`ast`), checks every option with the same rules the runtime uses (`rules`, shared
//! with the `tessera` crate), and only then expands. All attribute errors are reported
//! together, each at its own token.

#![forbid(unsafe_code)]

mod ast;
mod check;
mod expand;
use tessera_rules as rules;
use tessera_rules::date as time;

use proc_macro::TokenStream;

/// Derives `tessera::SessionData`: the field table, the change-tracking view and the
/// compile-time-checked default options of your session struct.
///
/// Every `#[session(...)]` option, with its forms, default, express-session name,
/// run-time setter and configuration key, is in the
/// [attribute reference](https://docs.rs/tessera/latest/tessera/#attribute-reference) of
/// the `tessera` crate's documentation.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}
