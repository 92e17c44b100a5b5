//! Derive macros for the streams framework.
//!
//! Use them through `streams_core` (`streams_core::{StreamsSerde, EventTime}` or
//! `streams_core::prelude::*`), which re-exports both; the generated code names
//! `::streams_core` (and, for [`StreamsSerde`](derive@StreamsSerde), `::serde`), so the crate
//! using the derives must depend on those crates directly.
//!
//! # `#[derive(StreamsSerde)]`
//!
//! Implements `streams_core::serde::DefaultSerde` for a struct or enum, so the DSL needs no
//! explicit serde for it. The derive does not implement serde's traits: derive
//! `serde::Serialize` and `serde::Deserialize` as well. The wire format is chosen with
//! `#[streams(format = "...")]` on the type:
//!
//! | attribute                        | serde                                  |
//! |----------------------------------|----------------------------------------|
//! | none, or `#[streams(format = "json")]` | `streams_core::serde::JsonSerde`  |
//! | `#[streams(format = "bincode")]` | `streams_core::serde::BincodeSerde`    |
//!
//! ```ignore
//! use streams_core::StreamsSerde;
//!
//! #[derive(serde::Serialize, serde::Deserialize, StreamsSerde)]
//! #[streams(format = "bincode")]
//! struct PageView {
//!     user: String,
//!     page: String,
//! }
//! ```
//!
//! Each type parameter `T` of the type gets the bounds
//! `T: serde::Serialize + serde::de::DeserializeOwned + 'static` on the generated impl.
//!
//! # `#[derive(EventTime)]`
//!
//! Implements `streams_core::time::EventTime` for a struct (named or tuple fields) whose event
//! time is the one field marked `#[event_time]`. The field must implement
//! `streams_core::time::IntoEpochMillis`: epoch milliseconds as `i64` or `u64`, or a chrono
//! `DateTime<Utc>`.
//!
//! ```ignore
//! use streams_core::EventTime;
//!
//! #[derive(EventTime)]
//! struct Click {
//!     user: String,
//!     #[event_time]
//!     at: chrono::DateTime<chrono::Utc>,
//! }
//!
//! #[derive(EventTime)]
//! struct Tick(#[event_time] i64, f64);
//! ```
//!
//! When the field's type mentions a type parameter (`struct Stamped<T> { #[event_time] at: T }`),
//! the impl requires that type to implement `IntoEpochMillis`.
//!
//! # Errors
//!
//! Misuse is reported as a compile error at the offending tokens, never as a panic: an unknown
//! or repeated `format`, an unknown key in `#[streams(...)]`, a missing or repeated
//! `#[event_time]` field, `#[event_time]` with arguments, or a derive on the wrong kind of type.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod event_time;
mod streams_serde;

/// Implements `streams_core::serde::DefaultSerde` with a JSON (default) or bincode serde.
///
/// Choose the format with `#[streams(format = "json")]` or `#[streams(format = "bincode")]` on
/// the struct or enum. The type must also derive (or implement) `serde::Serialize` and
/// `serde::Deserialize`; every type parameter is bounded by
/// `serde::Serialize + serde::de::DeserializeOwned + 'static`.
///
/// ```ignore
/// #[derive(serde::Serialize, serde::Deserialize, streams_core::StreamsSerde)]
/// enum Command {
///     Start { id: u64 },
///     Stop,
/// }
/// ```
#[proc_macro_derive(StreamsSerde, attributes(streams))]
pub fn derive_streams_serde(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    streams_serde::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `streams_core::time::EventTime` from the struct field marked `#[event_time]`.
///
/// Exactly one field must be marked. Its type must implement
/// `streams_core::time::IntoEpochMillis` (`i64` or `u64` epoch milliseconds, or
/// `chrono::DateTime<Utc>`).
///
/// ```ignore
/// #[derive(streams_core::EventTime)]
/// struct Reading {
///     sensor: String,
///     #[event_time]
///     taken_at_ms: u64,
/// }
/// ```
#[proc_macro_derive(EventTime, attributes(event_time))]
pub fn derive_event_time(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event_time::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
