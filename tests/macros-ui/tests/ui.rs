//! Misuse of the derive macros gives clear compile errors: each `ui/*.rs` must fail to
//! compile with the message in the `ui/*.stderr` beside it.

#[test]
fn misuse_gives_clear_compile_errors() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
