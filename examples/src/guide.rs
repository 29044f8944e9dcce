//! The migration guide, `docs/moving-from-express-session.md`, compiled here so that
//! its Rust snippets are checked as doctests.

#![doc = include_str!("../../docs/moving-from-express-session.md")]
