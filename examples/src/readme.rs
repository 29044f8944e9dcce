//! The README, compiled here so that its first snippet is checked as a doctest (the
//! snippets that need a store or a server of their own are marked `ignore`).

#![doc = include_str!("../../README.md")]
