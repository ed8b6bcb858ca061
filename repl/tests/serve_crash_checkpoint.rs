//! Placeholder while the test is written.
mod support;

#[test]
fn placeholder() {}
