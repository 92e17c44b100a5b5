//! Integration tests live in `tests/`. The library holds one item: the README, whose code
//! blocks run as doctests (`cargo test -p streams-tests --doc`).

/// The project's README; its Rust example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;
